"""Every side effect of training is one small Keras callback.

Training runs K steps per call into its compiled function (train.steps_per_execution),
and Keras calls on_train_batch_end once per call with the call's last batch index b: the
global step is start_step + b + 1 (a resumed run does not start at 0). Every interval is a
multiple of K, so each periodic side effect still happens at exactly its step. Between
intervals a callback does nothing and needs no numbers from the device (async_safe); the
one read every call is the divergence guard's flag, and the progress bar reads the losses
when it redraws. File work goes to the background writer. on_train_end reads the model's
own step counter: after Ctrl-C it is the only number that is sure.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import keras
import numpy as np
import tensorflow as tf

from dcgan import imaging
from dcgan.config import EvalConfig
from dcgan.data.augment import adaptive
from dcgan.files import writing
from dcgan.files.reading import UnsafeFile, read_text
from dcgan.metrics import device_scores, evaluation, scores
from dcgan.metrics.device_scores import DeviceKid
from dcgan.metrics.evaluation import EVAL_SEED, real_features
from dcgan.metrics.features import FeatureExtractor
from dcgan.models.adversarial import nonfinite_variable
from dcgan.models.latents import balanced_classes, class_rows, latent_stream
from dcgan.models.networks import class_count
from dcgan.runtime import compiled
from dcgan.storage import checkpoints
from dcgan.storage.metrics_file import METRIC_NAMES, METRICS_COLUMNS, MONITOR_NAMES, read_metrics
from dcgan.storage.run_folder import RunDir
from dcgan.training.writer import BackgroundWriter, Job

log = logging.getLogger(__name__)


class Monitors:
    """Values that callbacks measure now and then (tensors or numbers), held until
    MetricsLog writes its next row, and the latest of each for the warnings."""

    def __init__(self):
        self.pending: dict[str, float | tf.Tensor] = {}
        self.latest: dict[str, tuple[int, float | tf.Tensor]] = {}

    def report(self, step: int, name: str, value: float | tf.Tensor) -> None:
        self.pending[name] = value
        self.latest[name] = (step, value)

    def take(self) -> dict[str, float | tf.Tensor]:
        taken, self.pending = self.pending, {}
        return taken


@dataclass(frozen=True)
class Training:
    """What the side effects of one fit() share."""

    run: RunDir
    objects: dict  # what a checkpoint holds
    generator: Callable[[], keras.Model]  # G as samples, evaluation and export see it
    monitors: Monitors
    start_step: int
    total_steps: int


class StepCallbacks(keras.callbacks.CallbackList):
    """The run's callbacks, called in order on the training thread, with each call's
    outputs handed on as tensors. Keras' own list turns them into Python numbers after
    every call (a wait for the device) unless every callback is async-safe, and then runs
    the callbacks on a thread pool, where the divergence guard no longer comes first."""

    def __init__(self, callbacks: list[keras.callbacks.Callback], model: keras.Model):
        super().__init__(callbacks, add_history=True, add_progbar=False, model=model)
        self._async_train = False  # never Keras' thread pool: order matters
        self.needs_numbers = [
            c
            for c in self.callbacks
            if not getattr(c, "async_safe", False)
            and type(c).on_train_batch_end is not keras.callbacks.Callback.on_train_batch_end
        ]
        # Set while the side effects of a call run: an error raised with it set came from
        # one of them, between two calls, where the models hold a whole step.
        self.in_side_effects = False

    def on_train_batch_end(self, batch, logs=None):
        numbers = (
            {key: float(value) for key, value in (logs or {}).items()}
            if self.needs_numbers
            else None
        )
        self.in_side_effects = True
        for callback in self.callbacks:
            wants_numbers = callback in self.needs_numbers
            callback.on_train_batch_end(batch, numbers if wants_numbers else logs)
        self.in_side_effects = False

    def on_train_end(self, logs=None):
        self.in_side_effects = True
        super().on_train_end(logs)
        self.in_side_effects = False


class StepCallback(keras.callbacks.Callback):
    # Reads nothing from the device on calls where it has nothing to do.
    async_safe = True

    def __init__(self, start_step: int):
        super().__init__()
        self.start_step = start_step

    def global_step(self, batch: int) -> int:
        return self.start_step + batch + 1

    def model_step(self) -> int:
        return int(self.model.step.numpy())


class Periodic(StepCallback):
    """A side effect every `every` steps: at_step(step) runs at each multiple of it.
    every None or 0 means never (a subclass may still act in on_train_end)."""

    def __init__(self, every: int | None, start_step: int, writer: BackgroundWriter | None = None):
        super().__init__(start_step)
        if every is not None and every < 0:
            raise ValueError(f"{type(self).__name__}: every must be positive, got {every}")
        self.every = every or 0
        self.writer = writer

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def on_train_batch_end(self, batch, logs=None):
        step = self.global_step(batch)
        if self.due(step):
            self.at_step(step)

    def at_step(self, step: int) -> None:
        raise NotImplementedError

    def submit(self, job: Job) -> None:
        """File work: to the background writer, or done here without one."""
        if self.writer is None:
            job()
        else:
            self.writer.submit(job)


ADA_PREVIEW = 16  # real images in augment.png


class SampleGrids(Periodic):
    """A grid of the generator's images for the run's fixed noise every `every` steps
    (for a conditional run, one row per class, the same latents down each column).
    The images are computed here, on the device; the PNG and TensorBoard image are
    written by the background writer."""

    def __init__(
        self,
        training: Training,
        noise: np.ndarray,
        every: int,
        tensorboard: tf.summary.SummaryWriter | None = None,
        real_diversity: float | None = None,
        writer: BackgroundWriter | None = None,
        num_classes: int | None = None,
    ):
        """With real_diversity, each grid also reports to training.monitors the diversity
        of the fixed noise's images relative to real images."""
        super().__init__(every, training.start_step, writer)
        self.columns = None
        if num_classes:
            latents, classes = class_rows(noise, num_classes)
            self.inputs = (tf.constant(latents), tf.constant(classes))
            self.columns = len(latents) // num_classes
        else:
            self.inputs = tf.constant(noise)
        self.run, self.tensorboard = training.run, tensorboard
        self.generator, self.monitors = training.generator, training.monitors
        self.real_diversity = real_diversity
        self.last_written: int | None = None

    def write(self, step: int) -> None:
        pixels = _render(self.generator(), self.inputs)
        if self.real_diversity and step > 0:
            diversity = device_scores.mean_pairwise_distance(pixels) / self.real_diversity
            self.monitors.report(step, "diversity", diversity)
        path = self.run.sample_path(step)
        self.submit(lambda: self._save(pixels, step, path))
        self.last_written = step

    def _save(self, pixels: tf.Tensor, step: int, path: Path) -> None:
        grid = imaging.make_grid(imaging.to_uint8(np.asarray(pixels)), self.columns)
        imaging.save_png(grid, path)
        if self.tensorboard is not None:
            with self.tensorboard.as_default():
                tf.summary.image("samples", grid[None], step=step)

    def on_train_begin(self, logs=None):
        if self.start_step == 0:
            self.write(0)  # the untrained generator: the first frame of progress.gif

    def at_step(self, step: int) -> None:
        self.write(step)

    def on_train_end(self, logs=None):
        step = self.model_step()
        if self.last_written != step and not self.run.sample_path(step).exists():
            self.write(step)


class AugmentPreview(Periodic):
    """With ADA: augment.png, real images as D sees them at the current p, every `every`
    steps (with the sample grids). The augmentation runs here, on the device; the PNG is
    written by the background writer."""

    def __init__(
        self,
        training: Training,
        real_images: np.ndarray,
        every: int,
        writer: BackgroundWriter | None = None,
    ):
        super().__init__(every, training.start_step, writer)
        self.run = training.run
        self.real_images = tf.constant(imaging.from_uint8(real_images[:ADA_PREVIEW]))

    def at_step(self, step: int) -> None:
        p = self.model.ada_p
        seen = adaptive(self.real_images, p, tf.constant([step, 7], tf.int64))
        self.submit(lambda: self._save(seen, step, p))

    def on_train_end(self, logs=None):
        step = self.model_step()
        if not self.due(step):  # what D saw last, also when no grid step was reached
            self.at_step(step)

    def _save(self, seen: tf.Tensor, step: int, p: tf.Tensor) -> None:
        grid = imaging.make_grid(imaging.to_uint8(np.asarray(seen)))
        imaging.save_png(imaging.label(grid, f"step {step}: p = {float(p):.3f}"),
                         self.run.augment_preview)  # fmt: skip


@compiled
def _render(generator: keras.Model, inputs) -> tf.Tensor:
    """G's images in inference mode, in one call into the device; inputs are latents, or
    (latents, classes) for a conditional G."""
    return generator(list(inputs) if isinstance(inputs, tuple) else inputs, training=False)


class MetricsLog(Periodic):
    """Averages of the losses and D's outputs over each `every` steps: metrics.csv and
    TensorBoard scalars. The averages are read off the device here; the CSV is rewritten
    whole and renamed (so never half-written) by the background writer. Rows past the
    resumed step (written after the last checkpoint of a run that was killed) are dropped,
    so each step has exactly one row."""

    def __init__(
        self,
        path: Path,
        every: int,
        batch_size: int,
        start_step: int,
        tensorboard: tf.summary.SummaryWriter | None = None,
        monitors: Monitors | None = None,
        writer: BackgroundWriter | None = None,
    ):
        """monitors: values measured now and then (diversity, KID, copy rate), written
        into the next row."""
        super().__init__(every, start_step, writer)
        if every <= 0:
            raise ValueError(f"MetricsLog: every must be positive, got {every}")
        self.path, self.batch_size, self.tensorboard = path, batch_size, tensorboard
        self.monitors = monitors or Monitors()
        self.rows: list[list[str]] = []  # the writer's: appended and written there
        self.unmeasured: set[str] = set()  # columns of METRIC_NAMES this run leaves empty
        self.last_logged = start_step

    def on_train_begin(self, logs=None):
        objective = getattr(self.model, "objective", None)
        # Left empty, not 0, in a run without R1: nothing to plot.
        self.unmeasured = {"r1"} if objective is not None and not objective.r1_gamma else set()
        self.rows = [
            [row.get(column) or "" for column in METRICS_COLUMNS]
            for row in read_metrics(self.path)
            if int(row["step"]) <= self.start_step
        ]
        self._write()
        self.clock = time.perf_counter()

    def _write(self) -> None:
        text = io.StringIO()
        csv_writer = csv.writer(text)
        csv_writer.writerow(METRICS_COLUMNS)
        csv_writer.writerows(self.rows)
        writing.atomic_write_text(self.path, text.getvalue())

    def log(self, step: int) -> None:
        if step <= self.last_logged:
            return
        values = self.model.take_metrics()  # tensors, read by the writer; the averages restart
        now = time.perf_counter()
        rate = (step - self.last_logged) * self.batch_size / max(now - self.clock, 1e-9)
        self.last_logged, self.clock = step, now  # first: Ctrl-C below must not log it twice
        objective = getattr(self.model, "objective", None)
        if objective is not None and objective.ada:
            self.monitors.report(step, "ada_p", self.model.ada_p)  # a snapshot on the device
        measured = self.monitors.take()
        self.submit(lambda: self._append(step, values, rate, measured))

    def _append(self, step: int, values: list, rate: float, measured: dict) -> None:
        numbers = {
            name: float(value)
            for name, value in zip(METRIC_NAMES, values, strict=True)
            if name not in self.unmeasured
        }
        measured = {name: float(value) for name, value in measured.items()}
        self.rows.append(
            [
                str(step),
                *(f"{numbers[name]:.6g}" if name in numbers else "" for name in METRIC_NAMES),
                f"{rate:.1f}",
                *(f"{measured[name]:.6g}" if name in measured else "" for name in MONITOR_NAMES),
            ]
        )
        self._write()
        if self.tensorboard is not None:
            with self.tensorboard.as_default():
                for name, value in numbers.items():
                    tf.summary.scalar(name, value, step=step)
                tf.summary.scalar("images_per_sec", rate, step=step)
                for name, value in measured.items():
                    tf.summary.scalar(name, value, step=step)

    def at_step(self, step: int) -> None:
        self.log(step)

    def on_train_end(self, logs=None):
        self.log(self.model_step())
        self.submit(self._write)  # again: a forced second Ctrl-C may have cut one short
        if self.tensorboard is not None:
            self.submit(self.tensorboard.flush)


class LossPlot(Periodic):
    """losses.png redrawn from metrics.csv by the background writer, after the rows before
    it: at the first multiple of `every` steps at least MIN_SECONDS after the last redraw,
    and at the end. A plot is for a person to glance at; redrawn at every interval of a
    fast device it would take the writer more time than training (0.2-0.4 s a draw)."""

    MIN_SECONDS = 30.0

    def __init__(
        self,
        metrics_path: Path,
        plot_path: Path,
        every: int,
        start_step: int,
        title: str = "",
        writer: BackgroundWriter | None = None,
        min_seconds: float = MIN_SECONDS,
    ):
        super().__init__(every, start_step, writer)
        self.metrics_path, self.plot_path, self.title = metrics_path, plot_path, title
        self.min_seconds = min_seconds
        self.last_request = -math.inf

    def draw(self) -> None:
        rows = read_metrics(self.metrics_path)
        if rows:
            series = {name: _series(rows, name) for name in (*METRIC_NAMES, *MONITOR_NAMES)}
            imaging.plot_losses(series, self.plot_path, self.title)

    def on_train_begin(self, logs=None):
        self.last_request = time.perf_counter()  # the plot of an earlier segment is recent

    def at_step(self, step: int) -> None:
        if time.perf_counter() - self.last_request >= self.min_seconds:
            self.last_request = time.perf_counter()
            self.submit(self.draw)

    def on_train_end(self, logs=None):
        self.submit(self.draw)


def _series(rows: list[dict[str, str]], name: str) -> tuple[list[int], list[float]]:
    """The steps and values of the rows that have name (monitors only some)."""
    present = [row for row in rows if row.get(name)]
    return [int(row["step"]) for row in present], [float(row[name]) for row in present]


class Diverged(Exception):
    """Raised out of fit() at the first step whose losses or weights are not finite."""

    def __init__(self, step: int, what: str):
        super().__init__(f"step {step}: {what}")
        self.step, self.what = step, what


class DivergenceGuard(StepCallback):
    """Stops fit() after a call in which a loss went NaN or infinite, before any later
    callback can write a sample grid, a metrics row or a checkpoint from it. The check runs
    in the graph every step (DCGAN.divergence keeps the first bad step); this reads its
    result once per call."""

    def on_train_batch_end(self, batch, logs=None):
        bad = self.model.divergence.read()
        if bad is not None:
            raise Diverged(*bad)


class Checkpoints(Periodic):
    """A checkpoint every `every` steps and at the end; only the newest `keep` stay. The
    background writer is flushed first: a resume from this checkpoint finds every file
    of the steps before it."""

    def __init__(
        self,
        objects: dict,
        folder: Path,
        every: int,
        keep: int,
        start_step: int,
        writer: BackgroundWriter | None = None,
    ):
        super().__init__(every, start_step, writer)
        if keep <= 0:
            raise ValueError(f"Checkpoints: keep must be positive, got {keep}")
        self.objects, self.folder, self.keep = objects, folder, keep
        self.last_saved: int | None = None
        self.last_tried: int | None = None  # differs from last_saved after a failed write

    def save(self, step: int) -> None:
        if self.writer is not None:
            self.writer.flush()
        # A loss can stay finite for the step in which a weight overflows: look at them all.
        bad = nonfinite_variable(self.model)
        if bad is not None:
            raise Diverged(step, f"{bad} is not finite")
        self.last_tried = step
        checkpoints.save_checkpoint(self.objects, self.folder, step, self.keep)
        self.last_saved = step

    def at_step(self, step: int) -> None:
        self.save(step)

    def on_train_end(self, logs=None):
        step = self.model_step()
        if step != self.last_saved:
            self.save(step)

    def save_before_failing(self) -> int | None:
        """After another side effect failed between two calls, where the models hold a
        whole step: a checkpoint of it, so a resume trains none of its steps again. Not
        once the writer has failed (a checkpoint promises every file of the steps before
        it), after this step's own save failed, or with a weight that is not finite. The
        step saved, or None."""
        try:
            step = self.model_step()
            if step in (self.start_step, self.last_tried) or (self.writer and self.writer.failed):
                return None
            self.save(step)
        except Exception as exc:  # the failure on its way out is the news, not this one
            log.warning("no checkpoint before stopping: %s", exc)
            return None
        return step


class Progress(StepCallback):
    """A live progress bar on a terminal, redrawn at most 5 times a second (it reads the
    losses off the device only then); a plain line every `every` steps otherwise. A log
    record printed while the bar is drawn starts on a line of its own."""

    BAR = 24
    REDRAW_SECONDS = 0.2

    def __init__(
        self,
        total_steps: int,
        batch_size: int,
        every: int,
        start_step: int,
        stream: TextIO | None = None,
        interactive: bool | None = None,
    ):
        super().__init__(start_step)
        self.total, self.batch_size, self.every = total_steps, batch_size, every
        self.stream = stream or sys.stdout
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.last_draw = 0.0
        self.on_line = False  # the bar is drawn and its line not yet ended
        self.line_ender = _EndsBarLine(self)

    def on_train_begin(self, logs=None):
        self.began = time.perf_counter()
        if self.interactive:
            for handler in logging.getLogger("dcgan").handlers:
                handler.addFilter(self.line_ender)

    def end_line(self) -> None:
        if self.on_line:
            self.stream.write("\n")
            self.stream.flush()
            self.on_line = False

    def _line(self, step: int, logs: dict) -> str:
        elapsed = time.perf_counter() - self.began
        done = step - self.start_step
        rate = done * self.batch_size / max(elapsed, 1e-9)
        eta = (self.total - step) * elapsed / max(done, 1)
        values = {k: float(v) for k, v in (logs or {}).items() if k in METRIC_NAMES}
        shown = "  ".join(
            f"{label} {values[key]:.3f}"
            for key, label in (
                ("d_loss", "d_loss"),
                ("g_loss", "g_loss"),
                ("d_real", "D(x)"),
                ("d_fake", "D(G(z))"),
            )
            if key in values
        )
        return (
            f"step {step:>{len(str(self.total))}}/{self.total}  {shown}  "
            f"{rate:,.0f} img/s  eta {_clock(eta)}"
        )

    def on_train_batch_end(self, batch, logs=None):
        step = self.global_step(batch)
        if self.interactive:
            now = time.perf_counter()
            if now - self.last_draw >= self.REDRAW_SECONDS or step == self.total:
                filled = int(self.BAR * step / self.total)
                bar = "#" * filled + "." * (self.BAR - filled)
                self.stream.write(f"\r[{bar}] {self._line(step, logs)}\x1b[K")
                self.stream.flush()
                self.last_draw, self.on_line = now, True
        elif step % self.every == 0 or step == self.total:
            self.stream.write(self._line(step, logs) + "\n")
            self.stream.flush()

    def on_train_end(self, logs=None):
        self.detach()
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()
            self.on_line = False

    def detach(self) -> None:
        """Stop ending lines for the log: at the end, and when fit() ends in an error."""
        for handler in logging.getLogger("dcgan").handlers:
            handler.removeFilter(self.line_ender)


class _EndsBarLine(logging.Filter):
    """Ends the progress bar's line before a log record is printed (lets every record
    through)."""

    def __init__(self, progress: Progress):
        super().__init__()
        self.progress = progress

    def filter(self, record: logging.LogRecord) -> bool:
        self.progress.end_line()
        return True


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Evaluation(Periodic):
    """KID of num_samples generated images against the training data every `every` steps
    and when the run finishes; the checkpoint with the lowest KID so far is kept in
    checkpoints/best (with best.json saying its step and score). On small data sets it
    also measures the copy rate, and warns when it passes `copy_warning` and climbs.

    The generated images always come from the same latents (those `dcgan evaluate` and
    `dcgan nearest` use), so the scores of a run compare across steps. Images, features,
    KID and the copy rate are computed on the device; only the scores come back."""

    KID_SUBSETS = 20
    BATCH = 256

    def __init__(
        self,
        training: Training,
        settings: EvalConfig,
        images: np.ndarray,
        extractor: FeatureExtractor,
    ):
        """images: the training images. KID compares with eval.num_samples of them; the copy
        rate is measured against all of them on a data set of at most
        eval.copy_check_max_images."""
        super().__init__(settings.every, training.start_step)
        if not settings.every:
            raise ValueError(f"Evaluation: every must be positive, got {settings.every}")
        self.run, self.objects, self.generator = training.run, training.objects, training.generator
        self.real_images = evaluation.real_subset(images, settings.num_samples)
        self.extractor = extractor
        self.num_samples, self.total = settings.num_samples, training.total_steps
        self.monitors, self.copy_warning = training.monitors, settings.copy_rate_warning
        copies_checked = len(images) <= settings.copy_check_max_images
        self.copy_reference = imaging.from_uint8(images) if copies_checked else None
        self.last_evaluated: int | None = None
        self.last_copy_rate: float | None = None

    def on_train_begin(self, logs=None):
        real = real_features(self.run, self.real_images, self.extractor)
        self.kid = DeviceKid(real, self.num_samples, self.KID_SUBSETS)
        latents = next(latent_stream(EVAL_SEED, self.num_samples, self.model.latent_dim, 10**9))
        self.latents = tf.constant(latents)
        self.classes = None
        if self.model.conditional:
            classes = balanced_classes(self.num_samples, class_count(self.model.generator))
            self.classes = tf.constant(classes)
        self.best = read_best(self.run)
        if self.best is not None and self.best.get("features") != self.extractor.name:
            log.info(
                "checkpoints/best was chosen by KID in %s, which does not compare with %s: "
                "the next evaluation replaces it",
                self.best.get("features"),
                self.extractor.name,
            )
            self.best = None
        if self.copy_reference is not None:  # the training set's own spacing: fixed
            self.copy_threshold = scores.copy_threshold(self.copy_reference)
            self.copy_reference_on_device = tf.constant(self.copy_reference)

    def images(self) -> tf.Tensor:
        """uint8 images of the fixed latents, as LoadedGenerator.images makes them."""
        generator = self.generator()
        batches = []
        for i in range(0, self.num_samples, self.BATCH):
            inputs = self.latents[i : i + self.BATCH]
            if self.classes is not None:
                inputs = (inputs, self.classes[i : i + self.BATCH])
            batches.append(device_scores.to_uint8(_render(generator, inputs)))
        return tf.concat(batches, axis=0)

    def evaluate(self, step: int) -> None:
        images = self.images()
        kid = self.kid(self.extractor.device_features(images, self.BATCH))
        self.monitors.report(step, "kid", kid.mean)
        line = f"step {step}: KID {kid.mean:.4f} +- {kid.std:.4f} ({self.extractor.name})"
        if self.copy_reference is not None:
            rate = float(
                device_scores.copy_rate(
                    device_scores.from_uint8(images),
                    self.copy_reference_on_device,
                    self.copy_threshold,
                )
            )
            self.monitors.report(step, "copy_rate", rate)
            line += f", copy rate {rate:.3f}"
            self._warn_on_copies(step, rate)
        if self.best is None or kid.mean < self.best["kid"]:
            self.best = save_best(self.objects, self.run, step, kid.mean, self.extractor.name)
            line += ": the best so far, kept in checkpoints/best"
        log.info(line)
        self.last_evaluated = step

    def _warn_on_copies(self, step: int, rate: float) -> None:
        climbing = self.last_copy_rate is None or rate > self.last_copy_rate
        if rate >= self.copy_warning and climbing:
            log.warning(
                "step %d: memorisation: %.0f%% of samples are closer to a training image than "
                "training images are to each other (was %s): the generator is copying its %d "
                "training images. Use train.diffaugment, more data, or the earlier "
                "checkpoints/best; see dcgan nearest --ckpt %s",
                step,
                100 * rate,
                "unmeasured" if self.last_copy_rate is None else f"{self.last_copy_rate:.0%}",
                len(self.copy_reference),
                self.run.root,
            )
        self.last_copy_rate = rate

    def at_step(self, step: int) -> None:
        self.evaluate(step)

    def on_train_end(self, logs=None):
        step = self.model_step()
        finished_past_one_interval = step >= self.total and step >= self.every
        if finished_past_one_interval and self.last_evaluated != step:
            self.evaluate(step)


def read_best(run: RunDir) -> dict | None:
    """best.json of the run's best checkpoint: {"step", "kid", "features"}, or None."""
    try:
        best = json.loads(read_text(run.best_checkpoint / "best.json", 64 * 1024, "best.json"))
        return best if isinstance(best.get("kid"), float | int) else None
    except (OSError, ValueError, AttributeError, UnsafeFile):
        return None


def save_best(objects: dict, run: RunDir, step: int, kid: float, features: str) -> dict:
    """Replace checkpoints/best whole, through the same checkpoint writer as the periodic
    ones: the checkpoint and best.json land together, and a failed write is one line.
    Returns what best.json holds."""
    best = {"step": step, "kid": kid, "features": features}
    extra = {"best.json": json.dumps(best) + "\n"}
    checkpoints.write_checkpoint(objects, run.best_checkpoint, extra_files=extra)
    return best


class HealthWatch(Periodic):
    """Warnings, at each metrics row, for the two ways a GAN stops learning: mode collapse
    (the fixed noise's images far less varied than real ones) and a D that has won
    (it tells every real from every fake, so G's gradient vanishes). A warning is not
    repeated within QUIET_ROWS metrics rows: these conditions come and go."""

    COLLAPSE_DIVERSITY = 0.3  # of real images' mean pairwise distance
    # A new G draws near-identical images until it learns to use z (on 64 px colour shapes
    # for about 250 steps); that is not a collapse. Collapse is a fall from variety, or
    # no variety yet after this many steps.
    VARIETY_GRACE_STEPS = 1000
    WON_ACCURACY = 0.99
    # One interval at 99% is common while G still learns (the digits default has a few,
    # and the very first ones, before G draws anything, are near 100%); D has won only
    # when it stays there.
    WON_ROWS = 3
    QUIET_ROWS = 20

    def __init__(self, every: int, start_step: int, monitors: Monitors):
        super().__init__(every, start_step)
        self.monitors = monitors
        self.warned: dict[str, int] = {}  # the step each warning was last given
        self.winning_rows: list[float] = []  # D's accuracy in the rows at WON_ACCURACY so far
        self.has_varied = False  # the samples were once as varied as COLLAPSE_DIVERSITY
        self.first_seen: int | None = None  # the step of the first diversity looked at

    def check(self, step: int) -> None:
        latest = self.monitors.latest.get("diversity")
        diversity = None if latest is None else float(latest[1])
        low = diversity is not None and diversity < self.COLLAPSE_DIVERSITY
        self.has_varied = self.has_varied or (diversity is not None and not low)
        if diversity is not None and self.first_seen is None:
            self.first_seen = int(latest[0])
        self._warn(
            "collapse",
            step,
            low and (self.has_varied or step >= self.VARIETY_GRACE_STEPS),
            f"step {step}: mode collapse? the fixed noise's samples are "
            f"{diversity or 0:.2f}x as varied as real images (below "
            f"{self.COLLAPSE_DIVERSITY}"
            + ("" if self.has_varied else f" in every grid since step {self.first_seen}")
            + "): look at the latest sample grid; lower the learning "
            "rates, try train.loss hinge or model.d_spectral_norm, or resume from "
            "checkpoints/best",
        )
        accuracy = float(self.model.trackers["d_accuracy"].result())
        won = accuracy >= self.WON_ACCURACY
        self.winning_rows = [*self.winning_rows, accuracy][-self.WON_ROWS :] if won else []
        self._warn(
            "won",
            step,
            len(self.winning_rows) == self.WON_ROWS,
            f"step {step}: D has won: it classified at least "
            f"{100 * min(self.winning_rows or [accuracy]):.1f}% of real and fake images "
            f"correctly in each of the last {self.WON_ROWS} metrics rows "
            f"({self.WON_ROWS * self.every} steps), so G learns little. If the sample grids "
            "stop improving, try train.label_smoothing, train.diffaugment, a lower "
            "train.d_lr or model.d_spectral_norm",
        )

    def _warn(self, name: str, step: int, condition: bool, message: str) -> None:
        last = self.warned.get(name)
        if condition and (last is None or step - last >= self.QUIET_ROWS * self.every):
            log.warning(message)
            self.warned[name] = step

    def at_step(self, step: int) -> None:
        self.check(step)
