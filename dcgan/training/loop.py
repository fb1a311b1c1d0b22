"""Train (or resume) one run, in stages: prepare, restore, load the data, plan the calls,
fit (with its rollbacks), finish."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from dcgan import imaging
from dcgan.config import Config
from dcgan.data.classes import with_classes
from dcgan.data.pipeline import make_distributed_dataset
from dcgan.data.sources import load_labelled
from dcgan.errors import (
    ConfigError,
    OutOfMemory,
    OutputError,
    RunDirError,
    TrainingDiverged,
)
from dcgan.files import writing
from dcgan.files.reading import UnsafeFile
from dcgan.files.writing import open_no_follow
from dcgan.metrics import evaluation, scores
from dcgan.metrics.features import FeatureExtractor, make_extractor
from dcgan.models.adversarial import (
    DCGAN,
    OPTIONAL_STATES,
    checkpoint_objects,
    make_gan,
    set_learning_rates,
)
from dcgan.models.networks import (
    build_discriminator,
    build_generator,
    freeze_blocks,
    inference_generator,
    standing_statistics,
)
from dcgan.runtime import compiled
from dcgan.storage import checkpoints, lock, metrics_file, run_folder
from dcgan.storage.fixed_noise import draw_fixed_noise, kept_fixed_noise
from dcgan.storage.run_folder import RunDir, check_start_from
from dcgan.training import callbacks
from dcgan.training.execution import Execution, plan, step_flops, steps_per_execution
from dcgan.training.writer import BackgroundWriter

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


def build_gan(config: Config, execution: Execution | None = None) -> DCGAN:
    """The models and optimizers in the execution's strategy and precision (set by
    execution.plan); without one, on one device in Keras' current policy."""
    strategy = execution.strategy if execution else tf.distribute.get_strategy()
    distributed = strategy.num_replicas_in_sync > 1
    with strategy.scope():
        discriminator = build_discriminator(config, sync_norm=distributed)
        freeze_blocks(discriminator, config.train.freeze_d)  # before its Adam is built
        return make_gan(
            build_generator(config, sync_norm=distributed),
            discriminator,
            config,
            loss_scaling=bool(execution and execution.loss_scaling),
            jit_compile=bool(execution and execution.xla),
        )


def sampling_generator(gan: DCGAN, config: Config) -> Callable[[], keras.Model]:
    """A function that returns G as samples, evaluation and export see it now: float32,
    Keras' own layers, and the moving-average weights when model.ema is on (with
    BatchNorm statistics measured for them)."""
    model = inference_generator(config)
    # The (step, rollbacks) whose weights the model holds: a rollback revisits steps, but
    # it also counts up, so within a process the pair names one set of weights.
    held: list[tuple[int, int]] = []
    pairs = list(zip(model.weights, gan.sampling_variables(), strict=True))

    @compiled
    def copy_weights():  # device to device in one call, not through the host
        for target, source in pairs:
            target.assign(source.value)

    def current() -> keras.Model:
        key = (int(gan.step.numpy()), int(gan.rollbacks.numpy()))
        if held == [key]:
            return model  # a grid and an evaluation at one step: measure the statistics once
        copy_weights()
        if gan.ema_weights:
            standing_statistics(model)
        held[:] = [key]
        return model

    return current


def train(config: Config, run: RunDir, progress_stream=None) -> TrainResult:
    """Train run up to config.train.steps, continuing from its latest checkpoint if any.

    Ctrl-C stops after the current call (train.steps_per_execution steps) with a checkpoint
    and a sample grid written. Only
    one process trains a run at a time (lock.training_lock).
    """
    with lock.training_lock(run) as stale_holder:
        file_log = _log_file_handler(run)
        file_log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logging.getLogger("dcgan").addHandler(file_log)
        if stale_holder is not None:
            log.warning("took over the lock of process %d, no longer running", stale_holder)
        policy = keras.mixed_precision.global_policy()  # execution.plan sets the run's
        try:
            return _train(config, run, progress_stream)
        except (OutputError, OSError) as exc:  # OSError: file work outside imaging's helpers
            problem = (
                f"{exc.filename or run.root}: {exc.strerror or exc}"
                if isinstance(exc, OSError)
                else str(exc)
            )
            latest = checkpoints.latest_checkpoint(run.checkpoints)
            kept = f"{latest[1].name} is intact" if latest else "no checkpoint was written yet"
            error = OutputError(f"{problem}; {kept}")
            _log_to_file(file_log, error)
            raise error from None
        except TrainingDiverged as exc:
            _log_to_file(file_log, exc)
            raise
        except (MemoryError, tf.errors.ResourceExhaustedError):
            error = OutOfMemory(
                f"{run.config}: out of memory: the data set, the models or a batch do not fit; "
                "lower data.max_images, train.batch_size, model.g_width/d_width or "
                "data.image_size"
            )
            _log_to_file(file_log, error)
            raise error from None
        finally:
            keras.mixed_precision.set_global_policy(policy)
            logging.getLogger("dcgan").removeHandler(file_log)
            file_log.close()
            file_log.stream.close()


def _log_file_handler(run: RunDir) -> logging.StreamHandler:
    """train.log, appended to; never through a link planted in its place, and a file name
    that is not UTF-8 is logged with backslash escapes instead of failing the handler."""
    try:
        fd = open_no_follow(run.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    except UnsafeFile as exc:
        raise RunDirError(str(exc)) from None
    except OSError as exc:
        raise OutputError(f"{run.log}: cannot write: {exc.strerror}") from None
    return logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace"))


def _log_to_file(handler: logging.Handler, error: Exception) -> None:
    """The error in train.log; the terminal gets it once, from the CLI."""
    handler.handle(logging.makeLogRecord({"msg": str(error), "levelname": "ERROR"}))


@dataclass
class _Session:
    """What the stages of one training share; each stage fills in what it makes."""

    config: Config
    run: RunDir
    execution: Execution
    gan: DCGAN
    objects: dict  # what a checkpoint holds
    start_step: int
    noise: np.ndarray  # the fixed latents of the sample grids
    images: np.ndarray | None = None
    extractor: FeatureExtractor | None = None
    labels: np.ndarray | None = None  # each image's class, in a conditional run


def _train(config: Config, run: RunDir, progress_stream) -> TrainResult:
    began = time.perf_counter()
    config = with_classes(config)  # the models need the class count; config.yaml keeps them
    session = _restore(config, run, *_prepare(config, run))
    total = config.train.steps
    if session.start_step >= total:
        log.info(
            "run is already at step %d of %d: nothing to train (raise it with --set train.steps=N)",
            session.start_step,
            total,
        )
        _write_generator(session.gan, run, config)
        _write_progress_gif(run)
        return TrainResult(run, session.start_step, session.start_step, total, 0.0, False)
    _load_data(session)
    _plan_calls(session)
    interrupted = _fit(session, progress_stream)
    step = int(session.gan.step.numpy())
    if not interrupted:
        _write_generator(session.gan, run, config)
    seconds = time.perf_counter() - began
    return TrainResult(run, session.start_step, step, total, seconds, interrupted)


def _prepare(config: Config, run: RunDir) -> tuple[Execution, np.ndarray | None]:
    """The device plan, determinism and seeds; what a killed writer left is cleaned up,
    and the run's kept latents read (a damaged fixed_noise.npy is refused before anything
    loads; None for a new run)."""
    execution = plan(config.train, run.config)
    if config.train.batch_size % execution.replicas:
        raise ConfigError(
            f"{run.config}: train.batch_size {config.train.batch_size} cannot be split "
            f"evenly across {execution.replicas} replicas: use a multiple of {execution.replicas}"
        )
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)
    if removed := run_folder.remove_stale_temporaries(run):
        log.info("removed %d half-written file(s) left by a process that was killed", removed)
    return execution, kept_fixed_noise(run, config)


def _restore(
    config: Config, run: RunDir, execution: Execution, kept_noise: np.ndarray | None
) -> _Session:
    """The models, from the run's newest checkpoint when it has one; then the run's
    config.yaml and, for a new run, its fixed latents (only once the checkpoint has loaded:
    a failed resume leaves the run as it was, but for a damaged checkpoint moved aside)."""
    gan, objects, latest = _resumed_models(config, run, execution)
    if latest is None:
        _refuse_starting_over(run, config)
        if config.train.init_from is not None:
            _start_from(gan, config.train.init_from)
    set_learning_rates(gan, config.train.g_lr, config.train.d_lr)
    writing.atomic_write_text(run.config, config.to_yaml())
    start_step = int(gan.step.numpy())
    noise = kept_noise if kept_noise is not None else draw_fixed_noise(run, config)
    return _Session(config, run, execution, gan, objects, start_step, noise)


def _resumed_models(
    config: Config, run: RunDir, execution: Execution
) -> tuple[DCGAN, dict, Path | None]:
    """The models and what a checkpoint holds, from the newest checkpoint that restores
    (None: the run has none). A damaged newer one (a disk that failed, a file cut short)
    is moved aside as step-N.damaged, so that rotation and later resumes pass it by; when
    none restores, the newest one's error is the news and nothing is moved. Not across
    hosts: every worker restores the newest, and a fallback on the chief alone would
    leave them training from different steps."""
    found = list(reversed(checkpoints.list_checkpoints(run.checkpoints)))
    failures: list[tuple[Path, RunDirError]] = []
    for _, path in found[:1] if execution.several_hosts else found:
        gan = build_gan(config, execution)  # afresh: a failed restore may have set some
        objects = checkpoint_objects(gan)
        try:
            checkpoints.restore_checkpoint(objects, path, optional=OPTIONAL_STATES)
        except RunDirError as exc:
            failures.append((path, exc))
            continue
        for damaged, exc in failures:
            aside = _move_aside(damaged)
            log.warning("%s; moved aside to %s", exc, aside.name)
        log.info("resumed %s from %s", run.root, path.name)
        return gan, objects, path
    if failures:
        raise failures[0][1]
    gan = build_gan(config, execution)
    return gan, checkpoint_objects(gan), None


def _move_aside(damaged: Path) -> Path:
    """damaged renamed to the first free step-N.damaged[-K] beside it (every copy kept to
    look at; none is rotated away); a rename that fails is one line, before training."""
    names = checkpoints.aside_names(damaged)
    free = next((p for p in names if not os.path.lexists(p)), None)
    why = f"{len(names)} damaged copies are there already"
    if free is not None:
        try:
            damaged.rename(free)
            return free
        except OSError as exc:
            why = exc.strerror or str(exc)
    raise RunDirError(
        f"{damaged}: cannot be restored, nor moved aside ({why}); move it out of "
        f"{damaged.parent} and resume again"
    )


def _start_from(gan: DCGAN, source: Path) -> None:
    """G's and D's weights from another run's newest checkpoint (or a checkpoint folder);
    the optimizers and the step start afresh, and G's moving average starts at G."""
    where = f"train.init_from {source}"
    checkpoint = check_start_from(source)
    try:
        checkpoints.restore_checkpoint(
            {"generator": gan.generator, "discriminator": gan.discriminator}, checkpoint
        )
    except RunDirError as exc:
        detail = str(exc).split("): ", 1)[-1]
        raise ConfigError(
            f"{where}: its G and D do not fit this config (the same data.image_size, "
            f"data.channels, model widths and classes are needed): {detail}"
        ) from None
    if gan.ema_weights:
        for average, weight in zip(gan.ema_weights, gan.generator.weights, strict=True):
            average.assign(weight)
    log.info("started from the weights of %s", checkpoint)


def _load_data(session: _Session) -> None:
    """The training images, and the feature space of the evaluations: a missing one is a
    config problem before the first step, not a crash at the first evaluation."""
    config = session.config
    session.images, session.labels = load_labelled(config.data)
    # Only now: a run that fails on its data is removed, and never announced.
    log.info("run directory: %s", session.run.root)
    log.info(
        "data: %d images of %s from %s",
        len(session.images),
        "x".join(map(str, session.images.shape[1:])),
        config.data.source,
    )
    if config.eval.every is not None:
        session.extractor = make_extractor(config.eval.features, download=False)


def _plan_calls(session: _Session) -> None:
    """Steps per call into the compiled training function, logged with the reason."""
    config, gan = session.config, session.gan
    log.info(
        "training %s: steps %d -> %d, batch %d%s",
        config.name,
        session.start_step,
        config.train.steps,
        config.train.batch_size,
        ", deterministic ops" if config.train.deterministic else "",
    )
    steps, steps_reason = steps_per_execution(
        config, session.start_step, step_flops(gan.generator, gan.discriminator, config)
    )
    gan.steps_per_execution = steps  # read when fit() makes the training function
    log.info("execution: %s; %s", session.execution.describe(), steps_reason)


def _fit(session: _Session, progress_stream) -> bool:
    """fit() from the start step to train.steps, again from the last good checkpoint after
    each rollback; every file written (or its error raised) before it returns, and a
    side effect's error raised after a checkpoint of the steps trained. True when Ctrl-C
    or SIGTERM stopped it early."""
    config, run, gan = session.config, session.run, session.gan
    tensorboard = tf.summary.create_file_writer(str(run.tensorboard))
    writer = BackgroundWriter()
    if session.start_step == 0 and config.train.on_nan == "rollback":
        # Somewhere to roll back to before the first interval.
        checkpoints.save_checkpoint(
            session.objects, run.checkpoints, 0, config.output.keep_checkpoints
        )
    segment_start, interrupted = session.start_step, False
    try:
        while True:
            # The data order is a function of the step, so each segment (the whole run,
            # or the part after a rollback) asks for the batches from its first step on.
            dataset = make_distributed_dataset(
                session.images,
                gan.objective.images_per_step(config.train.batch_size),
                config.seed,
                segment_start,
                session.execution.strategy,
                session.labels,
            )
            side_effects = _side_effects(
                session, segment_start, tensorboard, writer, progress_stream
            )
            step_callbacks = callbacks.StepCallbacks(side_effects, gan)
            try:
                with _stop_after_this_call(gan) as stop:
                    gan.fit(
                        dataset,
                        epochs=1,
                        steps_per_epoch=config.train.steps - segment_start,
                        shuffle=False,  # the dataset orders itself
                        verbose=0,
                        callbacks=step_callbacks,
                    )
                interrupted = stop.requested and int(gan.step.numpy()) < config.train.steps
                break
            except KeyboardInterrupt:  # a second Ctrl-C: stop now
                interrupted = True
                # fit() skips on_train_end when interrupted: flush everything for the step.
                for callback in side_effects:
                    callback.on_train_end()
                break
            except callbacks.Diverged as diverged:
                writer.flush()  # what the steps before it wrote, before the rollback's files
                segment_start = _roll_back(gan, session.objects, run, config, diverged)
            except Exception as exc:
                if step_callbacks.in_side_effects:
                    _checkpoint_before_failing(session, side_effects, exc)
                raise
            finally:
                for callback in side_effects:
                    if isinstance(callback, callbacks.Progress):
                        callback.detach()
        if not interrupted:
            writer.submit(lambda: _write_progress_gif(run))
        writer.close()  # every file written, or its error raised here
    finally:
        _close_quietly(writer)  # on the way out of an error; a no-op after close()
        tensorboard.close()
    return interrupted


def _checkpoint_before_failing(
    session: _Session, side_effects: list[keras.callbacks.Callback], error: Exception
) -> None:
    """A side effect failed (a bug, an evaluation out of memory): the steps trained since
    the last checkpoint are kept for the resume where Checkpoints.save_before_failing can.
    Not after a write that failed (the checkpoint would likely fail as well), nor across
    hosts, where a save is a collective that the other workers are not in."""
    if isinstance(error, OutputError | OSError) or session.execution.several_hosts:
        return
    (saver,) = (c for c in side_effects if isinstance(c, callbacks.Checkpoints))
    step = saver.save_before_failing()
    if step is not None:
        log.warning(
            "saved a checkpoint of step %d before stopping: dcgan train --resume %s goes on "
            "from there",
            step,
            session.run.root,
        )


def _refuse_starting_over(run: RunDir, config: Config) -> None:
    """A run that has trained past its first checkpoint but has none left (the folder was
    deleted) would start again from step 0 and replace its generator and metrics."""
    rows = metrics_file.read_metrics(run.metrics)
    step = int(rows[-1]["step"]) if rows else 0
    # A row past the first checkpoint's step means that checkpoint was written (rows come
    # after it); a row at that step may be from a process killed while writing it.
    if not run.generator.exists() and step <= config.output.checkpoint_every:
        return  # new, or stopped before its first checkpoint: nothing to lose
    raise RunDirError(
        f"{run.root}: trained to step {step} but has no checkpoint left in checkpoints/, so "
        "it cannot be resumed (it would start again from step 0 and replace its "
        f"generator.keras and metrics.csv). Start a new run with: dcgan train --config "
        f"{run.config}; its final generator still samples: dcgan sample --ckpt {run.root}"
    )


class _StopRequest:
    requested = False


@contextmanager
def _stop_after_this_call(gan: DCGAN) -> Iterator[_StopRequest]:
    """Ctrl-C or SIGTERM during fit() asks Keras to stop after the current call (K steps,
    train.steps_per_execution), so every callback ends through on_train_end with whole
    files, instead of a KeyboardInterrupt landing in the middle of a write. A second
    Ctrl-C interrupts at once."""
    stop = _StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signal handlers belong to the main thread
        return

    def request(signum, frame):
        if stop.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.requested = True
        gan.stop_training = True

    previous = {sig: signal.signal(sig, request) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _side_effects(
    session: _Session,
    start_step: int,
    tensorboard: tf.summary.SummaryWriter,
    writer: BackgroundWriter,
    progress_stream,
) -> list[keras.callbacks.Callback]:
    """The callbacks of one fit() from start_step, in the order they run after each call:
    the divergence guard first, so that nothing from a diverged call is written; the
    measurements before the metrics row that reports them. File work goes to writer."""
    config, run, gan, images = session.config, session.run, session.gan, session.images
    out, batch_size = config.output, config.train.batch_size
    training = callbacks.Training(
        run=run,
        objects=session.objects,
        generator=sampling_generator(gan, config),
        monitors=callbacks.Monitors(),
        start_step=start_step,
        total_steps=config.train.steps,
    )
    real_sample = evaluation.real_subset(images, out.num_samples)
    side_effects = [
        callbacks.DivergenceGuard(start_step),
        callbacks.Progress(
            config.train.steps, batch_size, out.log_every, start_step, stream=progress_stream
        ),
        callbacks.SampleGrids(
            training,
            session.noise,
            out.sample_every,
            tensorboard,
            real_diversity=scores.mean_pairwise_distance(imaging.from_uint8(real_sample)),
            writer=writer,
            num_classes=len(config.data.classes) if config.model.conditional else None,
        ),
    ]
    if config.train.augment == "ada":
        side_effects.append(
            callbacks.AugmentPreview(training, real_sample, out.sample_every, writer=writer)
        )
    if session.extractor is not None:
        side_effects.append(callbacks.Evaluation(training, config.eval, images, session.extractor))
    side_effects += [
        callbacks.HealthWatch(out.log_every, start_step, training.monitors),
        callbacks.MetricsLog(
            run.metrics,
            out.log_every,
            batch_size,
            start_step,
            tensorboard,
            training.monitors,
            writer,
        ),  # fmt: skip
        callbacks.Checkpoints(
            session.objects,
            run.checkpoints,
            out.checkpoint_every,
            out.keep_checkpoints,
            start_step,
            writer,
        ),
        # After the checkpoint: its flush then waits for the rows and the grid of the step,
        # not for a redraw of the plot.
        callbacks.LossPlot(
            run.metrics, run.losses_plot, out.sample_every, start_step, run.root.name, writer
        ),
    ]
    for callback in side_effects:
        callback.set_model(gan)
    return side_effects


def _roll_back(
    gan: DCGAN, objects: dict, run: RunDir, config: Config, diverged: callbacks.Diverged
) -> int:
    """train.on_nan: stop raises TrainingDiverged; rollback reloads the newest checkpoint
    (never a non-finite one: Checkpoints refuses to write those), lowers the learning rates
    and returns the step to go on from."""
    latest = checkpoints.latest_checkpoint(run.checkpoints)
    good = (
        f"the last good checkpoint is {latest[1].name}"
        if latest
        else "there is no checkpoint yet, so a resume starts again from step 0"
    )
    what = f"training diverged at step {diverged.step}: {diverged.what}"
    if config.train.on_nan == "stop":
        raise TrainingDiverged(
            f"{what}. Nothing from that step was saved and {good}: resume with lower "
            f"learning rates (dcgan train --resume {run.root} --set train.g_lr=... "
            "--set train.d_lr=...) or set train.on_nan: rollback"
        )
    # Counted across rollbacks that land on the same checkpoint: the restore resets them.
    count = int(gan.rollbacks.numpy()) + 1
    scale = float(gan.lr_scale.numpy()) * config.train.rollback_lr_factor
    if count > config.train.max_rollbacks or latest is None:
        raise TrainingDiverged(
            f"{what}, after {count - 1} rollback(s) (train.max_rollbacks is "
            f"{config.train.max_rollbacks}); {good}. Lower train.g_lr and train.d_lr"
        )
    checkpoints.restore_checkpoint(objects, latest[1], optional=OPTIONAL_STATES)
    gan.divergence.reset()
    gan.rollbacks.assign(count)
    gan.lr_scale.assign(scale)
    set_learning_rates(gan, config.train.g_lr, config.train.d_lr)
    log.warning(
        "%s; rolled back to %s with the learning rates times %.3g (G %.3g, D %.3g): "
        "rollback %d of %d",
        what,
        latest[1].name,
        scale,
        config.train.g_lr * scale,
        config.train.d_lr * scale,
        count,
        config.train.max_rollbacks,
    )
    return latest[0]


def _write_progress_gif(run: RunDir) -> None:
    gif = imaging.write_progress_gif(run.sample_grids(), run.progress_gif)
    if gif.thinned_from:
        log.info(
            "progress.gif: %d of %d grids, evenly spaced (dcgan gif --every picks others)",
            gif.frames,
            gif.thinned_from,
        )
    if gif.skipped:
        log.warning(
            "progress.gif: left out %d file(s) of samples/ that are not grids of this run "
            "(first: %s)",
            len(gif.skipped),
            gif.skipped[0],
        )


def _write_generator(gan: DCGAN, run: RunDir, config: Config) -> None:
    with writing.atomic_path(run.generator) as tmp:
        sampling_generator(gan, config)().save(tmp)


def _close_quietly(writer: BackgroundWriter) -> None:
    """Stop the writer while another error is on its way out: that one is the news."""
    try:
        writer.close()
    except Exception:  # the error already on its way says what went wrong
        log.debug("background writer failed too", exc_info=True)
