"""Every side effect of training is one small Keras callback.

Each knows the step at which fit() started (a resumed run does not start at 0), so
batch index b within this fit() is global step start_step + b + 1. on_train_end reads the
model's own step counter instead: after Ctrl-C it is the only number that is sure.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from pathlib import Path
from typing import TextIO

import keras
import numpy as np
import tensorflow as tf

from dcgan import checkpoints, imaging
from dcgan.gan import nonfinite_variable
from dcgan.rundir import METRIC_NAMES, METRICS_COLUMNS, RunDir, read_metrics


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
    ):
        super().__init__(start_step)
        if every <= 0:
            raise ValueError(f"SampleGrids: every must be positive, got {every}")
        self.run, self.noise, self.every, self.writer = run, noise, every, writer
        self.last_written: int | None = None

    def write(self, step: int) -> None:
        images = imaging.to_uint8(self.model.generator(self.noise, training=False))
        grid = imaging.make_grid(images)
        imaging.save_png(grid, self.run.sample_path(step))
        if self.writer is not None:
            with self.writer.as_default():
                tf.summary.image("samples", grid[None], step=step)
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
    ):
        super().__init__(start_step)
        if every <= 0:
            raise ValueError(f"MetricsLog: every must be positive, got {every}")
        self.path, self.every, self.batch_size, self.writer = path, every, batch_size, writer
        self.rows: list[list[str]] = []
        self.last_logged = start_step

    def on_train_begin(self, logs=None):
        self.rows = [
            [row[column] for column in METRICS_COLUMNS]
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
        self.rows.append([str(step), *(f"{v:.6g}" for v in values), f"{rate:.1f}"])
        self._write()
        if self.writer is not None:
            with self.writer.as_default():
                for name, value in zip(METRIC_NAMES, values, strict=True):
                    tf.summary.scalar(name, value, step=step)
                tf.summary.scalar("images_per_sec", rate, step=step)
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
            steps = [int(row["step"]) for row in rows]
            series = {name: [float(row[name]) for row in rows] for name in METRIC_NAMES}
            imaging.plot_losses(steps, series, self.plot_path, self.title)

    def on_train_batch_end(self, batch, logs=None):
        if self.global_step(batch) % self.every == 0:
            self.draw()

    def on_train_end(self, logs=None):
        self.draw()


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
