"""Checkpoints: one folder per step, written whole then renamed, the last K kept."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from dcgan.errors import RunDirError

CHECKPOINT_PATTERN = re.compile(r"^step-(\d+)$")
PREFIX = "ckpt"  # file prefix inside a checkpoint folder: ckpt.index, ckpt.data-*


def checkpoint_dir(folder: Path, step: int) -> Path:
    return folder / f"step-{step:07d}"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in step order (a folder only gets its name once it is whole)."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and (path / f"{PREFIX}.index").is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(folder: Path) -> tuple[int, Path] | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None


def save_checkpoint(objects: dict, folder: Path, step: int, keep: int) -> Path:
    """Write a checkpoint for step, then delete all but the newest keep."""
    target = checkpoint_dir(folder, step)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=f".{target.name}."))
    try:
        tf.train.Checkpoint(**objects).write(str(staging / PREFIX))
        if target.exists():  # the same step saved again (a resumed run's final save)
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for _, old in list_checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def restore_checkpoint(objects: dict, path: Path, partial: bool = False) -> None:
    """Load a checkpoint folder into objects; a mismatch is a RunDirError, not a traceback."""
    try:
        status = tf.train.Checkpoint(**objects).read(str(path / PREFIX))
        if partial:
            status.expect_partial()
        else:
            status.assert_existing_objects_matched()
    except (tf.errors.OpError, ValueError, AssertionError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunDirError(
            f"{path}: cannot restore this checkpoint (different architecture or a damaged "
            f"file?): {first_line[:200]}"
        ) from None
