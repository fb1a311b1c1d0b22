"""Checkpoints: one folder per step, written whole then renamed, the last K kept.

Finding them needs no TensorFlow (`dcgan runs` lists runs without it); reading and
writing them imports it when called."""

from __future__ import annotations

import re
import shutil
import stat
from pathlib import Path

import numpy as np

from dcgan.errors import DcganError, OutputError, RunDirError
from dcgan.files.reading import kind_of
from dcgan.files.writing import atomic_dir

CHECKPOINT_PATTERN = re.compile(r"^step-(\d+)$")
DAMAGED_PATTERN = re.compile(r"^step-\d+\.damaged(-\d+)?$")  # moved aside by a resume
CHECKPOINT_PREFIX = "ckpt"  # files inside a checkpoint folder: ckpt.index, ckpt.data-*


def checkpoint_dir(folder: Path, step: int) -> Path:
    return folder / f"step-{step:07d}"


def is_checkpoint(path: Path) -> bool:
    """Whether path is a checkpoint folder (what --ckpt and train.init_from may name)."""
    return (path / f"{CHECKPOINT_PREFIX}.index").is_file()


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in step order (a folder only gets its name once it is whole)."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and is_checkpoint(path):
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(folder: Path) -> tuple[int, Path] | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None


def aside_names(checkpoint: Path) -> list[Path]:
    """Where a resume may move a damaged checkpoint, first choice first: step-N.damaged,
    then step-N.damaged-2 ... step-N.damaged-99, every one a name set_aside finds."""
    name = checkpoint.name
    later = (f"{name}.damaged-{k}" for k in range(2, 100))
    return [checkpoint.with_name(n) for n in (f"{name}.damaged", *later)]


def set_aside(folder: Path) -> list[Path]:
    """The damaged checkpoints a resume moved aside (step-N.damaged, step-N.damaged-2 ...)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if DAMAGED_PATTERN.match(p.name))


def checkpoint_damage(path: Path) -> str | None:
    """Why a checkpoint folder cannot restore, as far as its files tell without
    TensorFlow: an index that is not one, a data file that is missing, not a file or cut
    short. None: whole as far as that goes (a changed byte shows only when restoring)."""
    from dcgan.storage.tensor_bundle import BundleError, shard_extents

    try:
        shards, ends = shard_extents(path / f"{CHECKPOINT_PREFIX}.index")
    except (BundleError, DcganError) as exc:
        return f"its index is damaged ({str(exc).replace(str(path) + '/', '')})"
    for shard, end in sorted(ends.items()):
        data = path / f"{CHECKPOINT_PREFIX}.data-{shard:05d}-of-{shards:05d}"
        try:
            info = data.lstat()
        except OSError:
            return f"{data.name} is missing"
        if not stat.S_ISREG(info.st_mode):
            return f"{data.name} is {kind_of(info.st_mode)}, not a file"
        if info.st_size < end:
            return f"{data.name} is cut short: {info.st_size:,} of its {end:,} bytes"
    return None


def save_checkpoint(objects: dict, folder: Path, step: int, keep: int) -> Path:
    """Write a checkpoint for step, then delete all but the newest keep.

    Older checkpoints are deleted only after the new one is whole, so a failed write (a
    full disk) leaves them as they were.
    """
    # Saving a step again (a resumed run's final save) replaces that folder whole.
    target = write_checkpoint(objects, checkpoint_dir(folder, step))
    for _, old in list_checkpoints(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def write_checkpoint(
    objects: dict, target: Path, extra_files: dict[str, str] | None = None
) -> Path:
    """objects as a checkpoint folder at target, with extra_files (name -> text) beside it,
    all landing together; a failed write is an OutputError naming target and leaves what
    was there before."""
    import tensorflow as tf

    try:
        with atomic_dir(target) as staging:
            tf.train.Checkpoint(**objects).write(str(staging / CHECKPOINT_PREFIX))
            for name, text in (extra_files or {}).items():
                (staging / name).write_text(text, encoding="utf-8")
    except tf.errors.OpError as exc:  # TensorFlow's own writes fail with these, not OSError
        raise OutputError(f"{target}: cannot write: {tf_error_reason(exc.message)}") from None
    return target


def restore_checkpoint(
    objects: dict, path: Path, partial: bool = False, optional: tuple[str, ...] = ()
) -> None:
    """Load a checkpoint folder into objects; a mismatch is a RunDirError, not a traceback.
    partial: objects may be a subset of the checkpoint; optional: keys of objects that
    the checkpoint may lack (state added in a later version)."""
    import tensorflow as tf

    _refuse_special_files(path)
    required = {key: value for key, value in objects.items() if key not in optional}
    extra = {key: value for key, value in objects.items() if key in optional}
    try:
        status = tf.train.Checkpoint(**required).read(str(path / CHECKPOINT_PREFIX))
        if partial:
            status.expect_partial()
        else:
            status.assert_existing_objects_matched()
        if extra:
            tf.train.Checkpoint(**extra).read(str(path / CHECKPOINT_PREFIX)).expect_partial()
    except Exception as exc:  # a damaged file fails in many ways (IndexError: truncated data)
        raise RunDirError(
            f"{path}: cannot restore this checkpoint (different architecture or a damaged "
            f"file?): {_first_line(str(exc))[:200]}"
        ) from None


def _refuse_special_files(path: Path) -> None:
    """TensorFlow reads whatever it is given: a FIFO among the files would block it for
    good, a device (/dev/zero) would be read without end."""
    for entry in path.iterdir():
        mode = entry.stat().st_mode if entry.exists() else 0
        if entry.name.startswith(CHECKPOINT_PREFIX) and not stat.S_ISREG(mode):
            raise RunDirError(
                f"{entry}: is {kind_of(mode)}, not a checkpoint file; this checkpoint "
                "cannot be restored"
            )


def checkpoint_values(path: Path) -> dict[str, np.ndarray]:
    """Every value a checkpoint folder holds, by its name in the checkpoint: weights, Adam
    slots, the step, the random states, the running averages."""
    import tensorflow as tf

    prefix = str(path / CHECKPOINT_PREFIX)
    reader = tf.train.load_checkpoint(prefix)
    return {
        name: reader.get_tensor(name)
        for name, _ in tf.train.list_variables(prefix)
        if name != "_CHECKPOINTABLE_OBJECT_GRAPH"
    }


def tf_error_reason(message: str) -> str:
    """A TensorFlow error's reason for one line: '{{function_node ...}}
    /staging/ckpt_temp/part...; File too large [Op:SaveV2]' -> 'File too large' (the
    staging path means nothing to the user)."""
    text = re.sub(r"\{\{.*?\}\}|\[Op:\w+\]", "", _first_line(message)).strip()
    return text.rsplit("; ", 1)[-1].strip() or "unknown error"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "unknown error"
