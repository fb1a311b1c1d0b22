"""Where every artifact of a run lives: output.dir/NNNNN-<name>/, never reused."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dcgan.errors import ConfigError, RunDirError, require_utf8
from dcgan.files import writing
from dcgan.files.writing import refused_link
from dcgan.storage.checkpoints import is_checkpoint, latest_checkpoint

RUN_PATTERN = re.compile(r"^(\d{5})-")
SAMPLE_PATTERN = re.compile(r"^step-(\d+)\.png$")


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def fixed_noise(self) -> Path:
        return self.root / "fixed_noise.npy"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def losses_plot(self) -> Path:
        return self.root / "losses.png"

    @property
    def augment_preview(self) -> Path:
        """augment.png: training images as D sees them at ADA's current p."""
        return self.root / "augment.png"

    @property
    def tensorboard(self) -> Path:
        return self.root / "logs"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best_checkpoint(self) -> Path:
        """The checkpoint with the best evaluation score so far, apart from the rolling ones."""
        return self.checkpoints / "best"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    @property
    def generator(self) -> Path:
        return self.root / "generator.keras"

    @property
    def progress_gif(self) -> Path:
        return self.root / "progress.gif"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def lock(self) -> Path:
        return self.root / "train.lock"

    def sample_path(self, step: int) -> Path:
        return self.samples / f"step-{step:07d}.png"

    def sample_grids(self) -> list[tuple[int, Path]]:
        """The sample grids written so far, in step order."""
        if not self.samples.is_dir():
            return []
        found = []
        for path in self.samples.iterdir():
            match = SAMPLE_PATTERN.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)


def create_run_dir(output_dir: Path, name: str) -> RunDir:
    """A new numbered folder: one more than the highest number already in output_dir."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file, or a link to nowhere, by that name
        what = "a link to nothing" if output_dir.is_symlink() else "a file"
        raise RunDirError(
            f"output.dir {output_dir}: is {what}, not a folder: name a folder for the runs"
        ) from None
    except NotADirectoryError:
        raise RunDirError(
            f"output.dir {output_dir}: a folder above it is a file: name a folder for the runs"
        ) from None
    except OSError as exc:
        raise RunDirError(f"output.dir {output_dir}: cannot create: {exc.strerror}") from None
    if not output_dir.is_dir():
        raise RunDirError(f"output.dir {output_dir}: is not a folder")
    numbers = [
        int(match.group(1))
        for entry in output_dir.iterdir()
        if (match := RUN_PATTERN.match(entry.name))
    ]
    number = max(numbers, default=-1) + 1
    while True:
        root = output_dir / f"{number:05d}-{name}"
        try:
            root.mkdir()  # exclusive: two trainings started at once get two folders
            return RunDir(root)
        except FileExistsError:
            number += 1
        except OSError as exc:
            raise RunDirError(
                f"output.dir {output_dir}: cannot create a run: {exc.strerror}"
            ) from None


def discard_unstarted_run(run: RunDir) -> None:
    """Remove a run that failed before its first checkpoint (bad data, say), so a typo
    does not leave a numbered folder behind. A run with a checkpoint is never touched."""
    if not run.checkpoints.exists():
        shutil.rmtree(run.root, ignore_errors=True)


@contextmanager
def worker_scratch(source: RunDir | None) -> Iterator[RunDir]:
    """A throw-away run folder for a non-chief worker of a multi-worker cluster: it trains
    in lock-step with the chief (checkpoint saves and metric reads are collective), but only
    the chief's files are kept. Resuming, it starts from a copy of source's newest
    checkpoint, as the chief does."""
    root = Path(tempfile.mkdtemp(prefix="dcgan-worker-"))
    try:
        scratch = RunDir(root)
        if source is not None:
            latest = latest_checkpoint(source.checkpoints)
            if latest is not None:
                shutil.copytree(latest[1], scratch.checkpoints / latest[1].name)
            if source.fixed_noise.is_file():
                shutil.copy2(source.fixed_noise, scratch.fixed_noise)
        yield scratch
    finally:
        shutil.rmtree(root, ignore_errors=True)


def open_run_dir(path: Path) -> RunDir:
    """An existing run; refuses folders that are not one."""
    require_utf8(path, "run folder")
    if not path.exists():
        raise RunDirError(f"{path}: no such run directory")
    if not path.is_dir():
        raise RunDirError(f"{path}: is not a run directory (expected a folder)")
    run = RunDir(path)
    if not run.config.exists():  # one that is not a regular file is refused when read
        raise RunDirError(f"{path}: not a run directory (no config.yaml)")
    return run


TRAINING_WRITES = (
    "config.yaml", "fixed_noise.npy", "metrics.csv", "losses.png", "generator.keras",
    "progress.gif", "train.log", "train.lock", "samples", "checkpoints", "logs", "eval",
)  # fmt: skip


def refuse_links(run: RunDir, names: tuple[str, ...] = TRAINING_WRITES) -> None:
    """A RunDirError if one of names in run, which a command is about to write, is a
    symbolic link. atomic_path replaces a file by renaming (a link at its name is replaced,
    not followed), but a linked folder, or a link where a file is opened in place (the log,
    the lock), would send the writes outside the run. What a command only reads may be a
    link (checkpoints/ on another disk)."""
    for name in names:
        if (run.root / name).is_symlink():
            raise RunDirError(refused_link(run.root / name))


def remove_stale_temporaries(run: RunDir) -> int:
    """Delete what writers killed mid-write left: writing.atomic_path's and atomic_dir's
    hidden `.name.*.tmp*` files and folders. Only safe under the run's lock."""
    removed = 0
    for folder in (run.root, run.samples, run.checkpoints):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if writing.TEMPORARY_PATTERN.match(entry.name):
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed += 1
    return removed


def checkpoint_to_start_from(source: Path) -> Path | None:
    """source itself when it is a checkpoint folder, else the newest checkpoint of the run
    folder source; None when it is neither (train.init_from)."""
    if is_checkpoint(source):
        return source
    latest = latest_checkpoint(RunDir(source).checkpoints) if source.is_dir() else None
    return latest[1] if latest is not None else None


def check_start_from(source: Path) -> Path:
    """The checkpoint of train.init_from, or a ConfigError saying why there is none."""
    checkpoint = checkpoint_to_start_from(source)
    if checkpoint is not None:
        return checkpoint
    why = (
        "no such folder"
        if not source.exists()
        else "not a run with a checkpoint, nor a checkpoint folder"
    )
    raise ConfigError(f"train.init_from {source}: {why}")
