"""Where every artifact of a run lives: output.dir/NNNNN-<name>/, never reused."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from dcgan.errors import RunDirError

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
    def tensorboard(self) -> Path:
        return self.root / "logs"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def generator(self) -> Path:
        return self.root / "generator.keras"

    @property
    def progress_gif(self) -> Path:
        return self.root / "progress.gif"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

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


def open_run_dir(path: Path) -> RunDir:
    """An existing run; refuses folders that are not one."""
    if not path.exists():
        raise RunDirError(f"{path}: no such run directory")
    if not path.is_dir():
        raise RunDirError(f"{path}: is not a run directory (expected a folder)")
    run = RunDir(path)
    if not run.config.is_file():
        raise RunDirError(f"{path}: not a run directory (no config.yaml)")
    return run
