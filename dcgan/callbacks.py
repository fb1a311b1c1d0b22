"""Every side effect of training is one small Keras callback.

Each knows the step at which fit() started (a resumed run does not start at 0), so
batch index b within this fit() is global step start_step + b + 1. on_train_end reads the
model's own step counter instead: after Ctrl-C it is the only number that is sure.
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
from pathlib import Path
from typing import TextIO

import keras
import numpy as np
import tensorflow as tf

from dcgan import checkpoints, imaging, scores
from dcgan.evaluation import generated_images, real_features
from dcgan.features import FeatureExtractor
from dcgan.gan import nonfinite_variable
from dcgan.generate import LoadedGenerator
from dcgan.rundir import METRIC_NAMES, METRICS_COLUMNS, MONITOR_NAMES, RunDir, read_metrics

log = logging.getLogger(__name__)


class Monitors:
    """Values that callbacks measure now and then, held until MetricsLog writes its next
    row, and the latest of each for the warnings."""

    def __init__(self):
        self.pending: dict[str, float] = {}
        self.latest: dict[str, tuple[int, float]] = {}

    def report(self, step: int, name: str, value: float) -> None:
        self.pending[name] = value
        self.latest[name] = (step, value)

    def take(self) -> dict[str, float]:
        taken, self.pending = self.pending, {}
        return taken


class StepCallback(keras.callbacks.Callback):
    def __init__(self, start_step: int):
        super().__init__()
        self.start_step = start_step

    def global_step(self, batch: int) -> int:
        return self.start_step + batch + 1

    def model_step(self) -> int:
        return int(self.model.step.numpy())


class SampleGrids(StepCallback):
    """A grid of the generator's images for the run's fixed noise every `every` steps."""

    def __init__(
        self,
        run: RunDir,
        noise: np.ndarray,
        every: int,
        start_step: int,
        writer: tf.summary.SummaryWriter | None = None,
        generator: Callable[[], keras.Model] | None = None,
        monitors: Monitors | None = None,
        real_diversity: float | None = None,
    ):
        """generator: returns G as samples should use (default: the model's own G);
        with monitors and real_diversity, each grid also reports the diversity of the
        fixed noise's images relative to real images."""
        super().__init__(start_step)
        if every <= 0:
            raise ValueError(f"SampleGrids: every must be positive, got {every}")
        self.run, self.noise, self.every, self.writer = run, noise, every, writer
        self.generator, self.monitors, self.real_diversity = generator, monitors, real_diversity
        self.last_written: int | None = None

    def write(self, step: int) -> None:
        generator = self.generator() if self.generator else self.model.generator
        pixels = np.asarray(generator(self.noise, training=False))
        images = imaging.to_uint8(pixels)
        grid = imaging.make_grid(images)
        imaging.save_png(grid, self.run.sample_path(step))
        if self.writer is not None:
            with self.writer.as_default():
                tf.summary.image("samples", grid[None], step=step)
        if self.monitors is not None and self.real_diversity and step > 0:
            diversity = scores.mean_pairwise_distance(pixels) / self.real_diversity
            self.monitors.report(step, "diversity", diversity)
        self.last_written = step

    def on_train_begin(self, logs=None):
        if self.start_step == 0:
            self.write(0)  # the untrained generator: the first frame of progress.gif

    def on_train_batch_end(self, batch, logs=None):
        step = self.global_step(batch)
        if step % self.every == 0:
            self.write(step)

    def on_train_end(self, logs=None):
        step = self.model_step()
        if self.last_written != step and not self.run.sample_path(step).exists():
            self.write(step)


class MetricsLog(StepCallback):
    """Averages of the losses and D's outputs over each `every` steps: metrics.csv and
    TensorBoard scalars. The CSV is rewritten whole and renamed at every row, so it is never
    half-written. Rows past the resumed step (written after the last checkpoint of a run
    that was killed) are dropped, so each step has exactly one row."""

    def __init__(
        self,
        path: Path,
        every: int,
        batch_size: int,
        start_step: int,
        writer: tf.summary.SummaryWriter | None = None,
        monitors: Monitors | None = None,
    ):
        """monitors: values measured now and then (diversity, KID, copy rate), written
        into the next row."""
        super().__init__(start_step)
        if every <= 0:
            raise ValueError(f"MetricsLog: every must be positive, got {every}")
        self.path, self.every, self.batch_size, self.writer = path, every, batch_size, writer
        self.monitors = monitors or Monitors()
        self.rows: list[list[str]] = []
        self.last_logged = start_step

    def on_train_begin(self, logs=None):
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
        imaging.atomic_write_text(self.path, text.getvalue())

    def log(self, step: int) -> None:
        if step <= self.last_logged:
            return
        values = [float(m.result()) for m in self.model.metrics]
        now = time.perf_counter()
        rate = (step - self.last_logged) * self.batch_size / max(now - self.clock, 1e-9)
        self.last_logged, self.clock = step, now  # first: Ctrl-C below must not log it twice
        measured = self.monitors.take()
        self.rows.append(
            [
                str(step),
                *(f"{v:.6g}" for v in values),
                f"{rate:.1f}",
                *(f"{measured[name]:.6g}" if name in measured else "" for name in MONITOR_NAMES),
            ]
        )
        self._write()
        if self.writer is not None:
            with self.writer.as_default():
                for name, value in zip(METRIC_NAMES, values, strict=True):
                    tf.summary.scalar(name, value, step=step)
                tf.summary.scalar("images_per_sec", rate, step=step)
                for name, value in measured.items():
                    tf.summary.scalar(name, value, step=step)
        for metric in self.model.metrics:
            metric.reset_state()

    def on_train_batch_end(self, batch, logs=None):
        step = self.global_step(batch)
        if step % self.every == 0:
            self.log(step)

    def on_train_end(self, logs=None):
        self.log(self.model_step())
        self._write()  # again: a forced second Ctrl-C may have cut the last write short
        if self.writer is not None:
            self.writer.flush()


class LossPlot(StepCallback):
    """losses.png redrawn from metrics.csv every `every` steps and at the end."""

    def __init__(
        self, metrics_path: Path, plot_path: Path, every: int, start_step: int, title: str = ""
    ):
        super().__init__(start_step)
        self.metrics_path, self.plot_path, self.every, self.title = (
            metrics_path,
            plot_path,
            every,
            title,
        )

    def draw(self) -> None:
        rows = read_metrics(self.metrics_path)
        if rows:
            series = {name: _series(rows, name) for name in (*METRIC_NAMES, *MONITOR_NAMES)}
            imaging.plot_losses(series, self.plot_path, self.title)

    def on_train_batch_end(self, batch, logs=None):
        if self.global_step(batch) % self.every == 0:
            self.draw()

    def on_train_end(self, logs=None):
        self.draw()


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
    """Stops fit() at the first non-finite loss, before any later callback of that step can
    write a sample grid, a metrics row or a checkpoint from it.

    The losses it reads are running means since the last metrics row, so a NaN in any step
    keeps them NaN: checking every step costs two floats.
    """

    def on_train_batch_end(self, batch, logs=None):
        for name in ("d_loss", "g_loss"):
            value = float((logs or {}).get(name, 0.0))
            if not math.isfinite(value):
                raise Diverged(self.global_step(batch), f"{name} is {value}")


class Checkpoints(StepCallback):
    """A checkpoint every `every` steps and at the end; only the newest `keep` stay."""

    def __init__(self, objects: dict, folder: Path, every: int, keep: int, start_step: int):
        super().__init__(start_step)
        if keep <= 0:
            raise ValueError(f"Checkpoints: keep must be positive, got {keep}")
        self.objects, self.folder, self.every, self.keep = objects, folder, every, keep
        self.last_saved: int | None = None

    def save(self, step: int) -> None:
        # A loss can stay finite for the step in which a weight overflows: look at them all.
        bad = nonfinite_variable(self.model)
        if bad is not None:
            raise Diverged(step, f"{bad} is not finite")
        checkpoints.save_checkpoint(self.objects, self.folder, step, self.keep)
        self.last_saved = step

    def on_train_batch_end(self, batch, logs=None):
        step = self.global_step(batch)
        if step % self.every == 0:
            self.save(step)

    def on_train_end(self, logs=None):
        step = self.model_step()
        if step != self.last_saved:
            self.save(step)


class Progress(StepCallback):
    """A live progress bar on a terminal; a plain line every `every` steps otherwise."""

    BAR = 24

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

    def on_train_begin(self, logs=None):
        self.began = time.perf_counter()

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
            if now - self.last_draw >= 0.2 or step == self.total:
                filled = int(self.BAR * step / self.total)
                bar = "#" * filled + "." * (self.BAR - filled)
                self.stream.write(f"\r[{bar}] {self._line(step, logs)}\x1b[K")
                self.stream.flush()
                self.last_draw = now
        elif step % self.every == 0 or step == self.total:
            self.stream.write(self._line(step, logs) + "\n")
            self.stream.flush()

    def on_train_end(self, logs=None):
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Evaluation(StepCallback):
    """KID of num_samples generated images against the training data every `every` steps
    and when the run finishes; the checkpoint with the lowest KID so far is kept in
    checkpoints/best (with best.json saying its step and score). On small data sets it
    also measures the copy rate, and warns when it passes `copy_warning` and climbs.

    The generated images always come from the same latents, so the scores of a run
    compare across steps."""

    KID_SUBSETS = 20

    def __init__(
        self,
        run: RunDir,
        objects: dict,
        generator: Callable[[], keras.Model],
        real_images: np.ndarray,
        extractor: FeatureExtractor,
        every: int,
        num_samples: int,
        total_steps: int,
        start_step: int,
        monitors: Monitors,
        copy_reference: np.ndarray | None = None,
        copy_warning: float = 0.2,
    ):
        """real_images: what KID compares with; copy_reference: the training images the
        copy rate is measured against (None: no copy check)."""
        super().__init__(start_step)
        if every <= 0:
            raise ValueError(f"Evaluation: every must be positive, got {every}")
        self.run, self.objects, self.generator = run, objects, generator
        self.real_images, self.extractor = real_images, extractor
        self.every, self.num_samples, self.total = every, num_samples, total_steps
        self.monitors, self.copy_warning = monitors, copy_warning
        self.copy_reference = None if copy_reference is None else imaging.from_uint8(copy_reference)
        self.last_evaluated: int | None = None
        self.last_copy_rate: float | None = None

    def on_train_begin(self, logs=None):
        self.real_features = real_features(self.run, self.real_images, self.extractor)
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

    def evaluate(self, step: int) -> None:
        # The same latents and uint8 images as `dcgan evaluate` and `dcgan nearest` score.
        current = LoadedGenerator(self.generator(), "training", self.run)
        images = generated_images(current, self.num_samples, batch_size=256)
        fake = self.extractor.features(images, batch_size=256)
        kid = scores.kid(self.real_features, fake, subsets=self.KID_SUBSETS)
        self.monitors.report(step, "kid", kid.mean)
        line = f"step {step}: KID {kid.mean:.4f} +- {kid.std:.4f} ({self.extractor.name})"
        if self.copy_reference is not None:
            copies = scores.copy_rate(
                imaging.from_uint8(images), self.copy_reference, threshold=self.copy_threshold
            )
            self.monitors.report(step, "copy_rate", copies.rate)
            line += f", copy rate {copies.rate:.3f}"
            self._warn_on_copies(step, copies.rate)
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

    def on_train_batch_end(self, batch, logs=None):
        step = self.global_step(batch)
        if step % self.every == 0:
            self.evaluate(step)

    def on_train_end(self, logs=None):
        step = self.model_step()
        finished_past_one_interval = step >= self.total and step >= self.every
        if finished_past_one_interval and self.last_evaluated != step:
            self.evaluate(step)


def read_best(run: RunDir) -> dict | None:
    """best.json of the run's best checkpoint: {"step", "kid", "features"}, or None."""
    try:
        best = json.loads((run.best_checkpoint / "best.json").read_text(encoding="utf-8"))
        return best if isinstance(best.get("kid"), float | int) else None
    except (OSError, ValueError, AttributeError):
        return None


def save_best(objects: dict, run: RunDir, step: int, kid: float, features: str) -> dict:
    """Replace checkpoints/best whole: the checkpoint and best.json land together.
    Returns what best.json holds."""
    best = {"step": step, "kid": kid, "features": features}
    with imaging.atomic_dir(run.best_checkpoint) as staging:
        tf.train.Checkpoint(**objects).write(str(staging / checkpoints.PREFIX))
        (staging / "best.json").write_text(json.dumps(best) + "\n", encoding="utf-8")
    return best


class HealthWatch(StepCallback):
    """Warnings, at each metrics row, for the two ways a GAN stops learning: mode collapse
    (the fixed noise's images far less varied than real ones) and a D that has won
    (it tells every real from every fake, so G's gradient vanishes). A warning is not
    repeated within QUIET_ROWS metrics rows: these conditions come and go."""

    COLLAPSE_DIVERSITY = 0.3  # of real images' mean pairwise distance
    WON_ACCURACY = 0.99
    QUIET_ROWS = 20

    def __init__(self, every: int, start_step: int, monitors: Monitors):
        super().__init__(start_step)
        self.every, self.monitors = every, monitors
        self.warned: dict[str, int] = {}  # the step each warning was last given

    def check(self, step: int) -> None:
        diversity = self.monitors.latest.get("diversity")
        collapsed = diversity is not None and diversity[1] < self.COLLAPSE_DIVERSITY
        self._warn(
            "collapse",
            step,
            collapsed,
            f"step {step}: mode collapse? the fixed noise's samples are "
            f"{diversity[1] if diversity else 0:.2f}x as varied as real images (below "
            f"{self.COLLAPSE_DIVERSITY}): look at the latest sample grid; lower the learning "
            "rates, try train.loss hinge or model.d_spectral_norm, or resume from "
            "checkpoints/best",
        )
        accuracy = float(self.model.d_accuracy_tracker.result())
        self._warn(
            "won",
            step,
            accuracy >= self.WON_ACCURACY,
            f"step {step}: D has won: it classified {100 * accuracy:.1f}% of real and fake "
            f"images correctly over the last {self.every} steps, so G learns little. Try "
            "train.label_smoothing, train.diffaugment, a lower train.d_lr or "
            "model.d_spectral_norm",
        )

    def _warn(self, name: str, step: int, condition: bool, message: str) -> None:
        last = self.warned.get(name)
        if condition and (last is None or step - last >= self.QUIET_ROWS * self.every):
            log.warning(message)
            self.warned[name] = step

    def on_train_batch_end(self, batch, logs=None):
        step = self.global_step(batch)
        if step % self.every == 0:
            self.check(step)
