"""Train (or resume) one run: data, models, callbacks, fit, final artifacts."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from dcgan import callbacks, checkpoints, imaging, rundir
from dcgan.config import Config
from dcgan.data import make_dataset
from dcgan.gan import DCGAN, checkpoint_objects, make_gan
from dcgan.models import build_discriminator, build_generator
from dcgan.rundir import RunDir
from dcgan.sources import load_images

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    run: RunDir
    start_step: int
    step: int
    total_steps: int
    seconds: float
    interrupted: bool

    @property
    def finished(self) -> bool:
        return self.step >= self.total_steps


def build_gan(config: Config) -> DCGAN:
    return make_gan(
        build_generator(config),
        build_discriminator(config),
        seed=config.seed,
        g_lr=config.train.g_lr,
        d_lr=config.train.d_lr,
        beta1=config.train.beta1,
        beta2=config.train.beta2,
    )


def fixed_noise(run: RunDir, config: Config) -> np.ndarray:
    """The latent batch behind every sample grid of the run, drawn once and kept."""
    if run.fixed_noise.is_file():
        return np.load(run.fixed_noise).astype(np.float32)
    rng = np.random.default_rng(config.seed)
    noise = rng.standard_normal((config.output.num_samples, config.model.latent_dim))
    noise = noise.astype(np.float32)
    with imaging.atomic_path(run.fixed_noise) as tmp:
        np.save(tmp, noise)
    return noise


def train(config: Config, run: RunDir, progress_stream=None) -> TrainResult:
    """Train run up to config.train.steps, continuing from its latest checkpoint if any.

    Ctrl-C stops after the current step with a checkpoint and a sample grid written.
    """
    file_log = logging.FileHandler(run.log, encoding="utf-8")
    file_log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("dcgan").addHandler(file_log)
    imaging.atomic_write_text(run.pid_file, f"{os.getpid()}\n")  # `dcgan runs`: running
    try:
        return _train(config, run, progress_stream)
    finally:
        run.pid_file.unlink(missing_ok=True)
        logging.getLogger("dcgan").removeHandler(file_log)
        file_log.close()


def _train(config: Config, run: RunDir, progress_stream) -> TrainResult:
    began = time.perf_counter()
    keras.utils.set_random_seed(config.seed)

    gan = build_gan(config)
    objects = checkpoint_objects(gan)
    latest = rundir.latest_checkpoint(run.checkpoints)
    if latest is not None:
        checkpoints.restore_checkpoint(objects, latest[1])
        log.info("resumed %s from %s", run.root, latest[1].name)
    # Only once the checkpoint has loaded: a failed resume leaves the run's config as it was.
    imaging.atomic_write_text(run.config, config.to_yaml())
    start_step = int(gan.step.numpy())
    total = config.train.steps
    noise = fixed_noise(run, config)
    if start_step >= total:
        log.info(
            "run is already at step %d of %d: nothing to train (raise it with --set train.steps=N)",
            start_step,
            total,
        )
        _write_final_artifacts(gan, run)
        return TrainResult(run, start_step, start_step, total, 0.0, interrupted=False)

    images = load_images(config.data)
    log.info(
        "data: %d images of %s from %s",
        len(images),
        "x".join(map(str, images.shape[1:])),
        config.data.source,
    )
    # A resumed run shuffles with a new seed so it does not replay the first epoch's order.
    dataset = make_dataset(images, config.train.batch_size, seed=config.seed + start_step)

    writer = tf.summary.create_file_writer(str(run.tensorboard))
    out = config.output
    samples = callbacks.SampleGrids(run, noise, out.sample_every, start_step, writer)
    side_effects = [
        callbacks.Progress(
            total, config.train.batch_size, out.log_every, start_step, stream=progress_stream
        ),
        callbacks.MetricsLog(
            run.metrics, out.log_every, config.train.batch_size, start_step, writer
        ),
        samples,
        callbacks.LossPlot(
            run.metrics, run.losses_plot, out.sample_every, start_step, title=run.root.name
        ),
        callbacks.Checkpoints(
            objects, run.checkpoints, out.checkpoint_every, out.keep_checkpoints, start_step
        ),
    ]
    for callback in side_effects:
        callback.set_model(gan)
    if start_step == 0:
        samples.write(0)  # the untrained generator: the first frame of progress.gif

    log.info(
        "training %s: steps %d -> %d, batch %d",
        config.name,
        start_step,
        total,
        config.train.batch_size,
    )
    interrupted = False
    try:
        gan.fit(
            dataset,
            epochs=1,
            steps_per_epoch=total - start_step,
            shuffle=False,  # the dataset shuffles itself
            verbose=0,
            callbacks=side_effects,
        )
    except KeyboardInterrupt:
        interrupted = True
        # fit() skips on_train_end when interrupted: flush everything for the step reached.
        for callback in side_effects:
            callback.on_train_end()
    finally:
        writer.close()

    step = int(gan.step.numpy())
    if not interrupted:
        _write_final_artifacts(gan, run)
    return TrainResult(run, start_step, step, total, time.perf_counter() - began, interrupted)


def _write_final_artifacts(gan: DCGAN, run: RunDir) -> None:
    with imaging.atomic_path(run.generator) as tmp:
        gan.generator.save(tmp)
    imaging.write_progress_gif(run.sample_grids(), run.progress_gif)
