"""Where every artifact of a run lives: output.dir/NNNNN-<name>/, never reused."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from dcgan.config import parse_yaml
from dcgan.errors import DcganError, OutputError, RunDirError
from dcgan.safe_files import (
    MiB,
    UnsafeFile,
    open_no_follow,
    open_regular,
    read_text,
    refused_link,
    shorten,
)

RUN_PATTERN = re.compile(r"^(\d{5})-")
SAMPLE_PATTERN = re.compile(r"^step-(\d+)\.png$")
CHECKPOINT_PATTERN = re.compile(r"^step-(\d+)$")
CHECKPOINT_PREFIX = "ckpt"  # files inside a checkpoint folder: ckpt.index, ckpt.data-*
METRIC_NAMES = ("d_loss", "g_loss", "d_real", "d_fake", "d_accuracy")  # DCGAN.metrics
# Measured now and then (sample grids, evaluations): empty in the other rows.
MONITOR_NAMES = ("diversity", "kid", "copy_rate")
METRICS_COLUMNS = ("step", *METRIC_NAMES, "images_per_sec", *MONITOR_NAMES)
# Every row has these, also in runs written before d_accuracy and the monitors existed.
REQUIRED_COLUMNS = ("step", "d_loss", "g_loss", "d_real", "d_fake", "images_per_sec")


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


def checkpoint_dir(folder: Path, step: int) -> Path:
    return folder / f"step-{step:07d}"


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in step order (a folder only gets its name once it is whole)."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match and (path / f"{CHECKPOINT_PREFIX}.index").is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(folder: Path) -> tuple[int, Path] | None:
    found = list_checkpoints(folder)
    return found[-1] if found else None


MAX_METRICS_BYTES = 256 * MiB  # a million rows at log_every 1 is about 100 MB


def read_metrics(path: Path) -> list[dict[str, str]]:
    """Complete rows of metrics.csv in step order, the last one written for a step winning:
    Ctrl-C in the middle of a write can leave a step twice or a row cut short. A row whose
    step or required values are not numbers is left out (the file may have been edited);
    so is a monitor value that is not one."""
    if not path.is_file():
        return []
    text = read_text_lenient(path, MAX_METRICS_BYTES, "metrics file")
    lines = text.splitlines()
    if not lines:
        return []
    header = lines[0].split(",")
    rows = {}
    for line in lines[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        step = row.get("step") or ""
        if not step.isdigit() or not all(_is_number(row.get(c)) for c in REQUIRED_COLUMNS):
            continue
        for name in MONITOR_NAMES:
            if name in row and not _is_number(row[name]):
                row[name] = ""
        rows[int(step)] = row
    return [rows[step] for step in sorted(rows)]


def _is_number(text: str | None) -> bool:
    # Our own rows hold only "%.6g" and "%.1f" numbers: no quotes, no commas in a field.
    if not text or len(text) > 32:
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_text_lenient(path: Path, limit: int, what: str) -> str:
    """A regular file of at most limit bytes as text, bytes that are not UTF-8 replaced."""
    with open_regular(path, limit, what) as stream:
        return stream.read(limit).decode("utf-8", "replace")


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
    if not path.exists():
        raise RunDirError(f"{path}: no such run directory")
    if not path.is_dir():
        raise RunDirError(f"{path}: is not a run directory (expected a folder)")
    run = RunDir(path)
    if not run.config.exists():  # one that is not a regular file is refused when read
        raise RunDirError(f"{path}: not a run directory (no config.yaml)")
    return run


@dataclass(frozen=True)
class RunSummary:
    name: str
    source: str
    size: str
    step: int
    total_steps: int | None
    d_loss: float | None
    g_loss: float | None
    last_sample: str
    state: str  # finished | stopped | running | broken
    problem: str | None = None  # why a broken run could not be read


# What the tool writes directly in a run folder. atomic_path replaces a file by renaming
# (a link at its name is replaced, not followed), but a linked folder, or a link where a
# file is opened in place (the log, the lock), would send writes outside the run.
WRITTEN_IN_RUN = (
    "config.yaml", "fixed_noise.npy", "metrics.csv", "losses.png", "generator.keras",
    "progress.gif", "train.log", "train.lock", "samples", "checkpoints", "logs", "eval",
    "generated", "interpolations", "export", "nearest",
)  # fmt: skip


def refuse_links(run: RunDir) -> None:
    """A RunDirError if anything the tool writes in run is a symbolic link."""
    for name in WRITTEN_IN_RUN:
        if (run.root / name).is_symlink():
            raise RunDirError(refused_link(run.root / name))


def _lock_text(fd: int) -> str:
    """What train.lock says: "PID on HOST since TIME" (empty for a new file)."""
    return os.pread(fd, 200, 0).decode("utf-8", "replace")


def _lock_holder(text: str) -> int | None:
    first = text.split(maxsplit=1)[0] if text.strip() else ""
    return int(first) if first.isdigit() else None


@contextmanager
def training_lock(run: RunDir) -> Iterator[int | None]:
    """One writer per run: an exclusive flock on train.lock, which names its process.

    The kernel drops the lock when its process dies, however it dies, so a lock left by a
    killed run is taken over without any guessing from pids or ages. Yields the pid of the
    process whose stale lock was taken over, if any.
    """
    refuse_links(run)
    while True:
        try:
            fd = open_no_follow(run.lock, os.O_RDWR | os.O_CREAT, 0o644)
        except UnsafeFile as exc:
            raise RunDirError(str(exc)) from None
        except OSError as exc:
            raise RunDirError(f"{run.lock}: cannot create the run's lock: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_text(fd)
            os.close(fd)
            pid = _lock_holder(holder)
            who = holder.strip() or "(unknown)"
            raise RunDirError(
                f"{run.root}: is being trained by process {who}; stop it"
                f"{f' (kill {pid})' if pid else ''} or wait for it to finish"
            ) from None
        # The holder may have finished and unlinked the file between our open and flock:
        # then this lock guards nothing, and the next round opens the new file.
        try:
            if os.fstat(fd).st_ino == os.stat(run.lock).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        previous = _lock_holder(_lock_text(fd))
        try:
            os.ftruncate(fd, 0)
            holder = f"{os.getpid()} on {socket.gethostname()} since {time.ctime()}\n"
            os.pwrite(fd, holder.encode(), 0)
        except OSError as exc:  # a full disk
            raise OutputError(f"{run.lock}: cannot write the run's lock: {exc.strerror}") from None
        yield previous if previous != os.getpid() else None
    finally:
        run.lock.unlink(missing_ok=True)
        os.close(fd)  # after the unlink: nobody can lock the old file and think it current


def training_pid(run: RunDir) -> int | None:
    """The process training this run now, if any (it holds train.lock)."""
    try:
        fd = open_no_follow(run.lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RunDirError(f"{run.lock}: cannot read: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _lock_holder(_lock_text(fd)) or -1
    finally:
        os.close(fd)  # also drops our shared lock, if we got it
    return None


TEMPORARY_PATTERN = re.compile(r"^\..+\.tmp")


def remove_stale_temporaries(run: RunDir) -> int:
    """Delete what writers killed mid-write left: imaging.atomic_path's and atomic_dir's
    hidden `.name.*.tmp*` files and folders. Only safe under the run's lock."""
    removed = 0
    for folder in (run.root, run.samples, run.checkpoints):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if TEMPORARY_PATTERN.match(entry.name):
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed += 1
    return removed


MAX_CONFIG_BYTES = MiB


def summarize(run: RunDir) -> RunSummary:
    """What `dcgan runs` shows for one run; a run it cannot read is shown as broken, with
    the reason, rather than stopping the listing."""
    try:
        return _summarize(run)
    except (DcganError, OSError, ValueError, yaml.YAMLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return RunSummary(
            name=run.root.name,
            source="?",
            size="?",
            step=0,
            total_steps=None,
            d_loss=None,
            g_loss=None,
            last_sample="-",
            state="broken",
            problem=shorten(reason.replace(str(run.root) + "/", ""), 120),
        )


def _summarize(run: RunDir) -> RunSummary:
    raw = parse_yaml(read_text(run.config, MAX_CONFIG_BYTES, "config file")) or {}
    if not isinstance(raw, dict):
        raise RunDirError(f"config.yaml is a {type(raw).__name__}, not a mapping of keys")
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    train = raw.get("train") if isinstance(raw.get("train"), dict) else {}
    rows = read_metrics(run.metrics)
    latest = latest_checkpoint(run.checkpoints)
    step = max(int(rows[-1]["step"]) if rows else 0, latest[0] if latest else 0)
    total = train.get("steps") if isinstance(train.get("steps"), int) else None
    grids = run.sample_grids()
    if training_pid(run) is not None:
        state = "running"
    elif run.generator.is_file() and total is not None and step >= total:
        state = "finished"
    else:
        state = "stopped"
    size, channels = data.get("image_size", "?"), data.get("channels", "?")
    return RunSummary(
        name=run.root.name,
        source=shorten(str(data.get("source", "?")), 20),
        size=shorten(f"{size}x{size}x{channels}", 20),
        step=step,
        total_steps=total,
        d_loss=float(rows[-1]["d_loss"]) if rows else None,
        g_loss=float(rows[-1]["g_loss"]) if rows else None,
        last_sample=grids[-1][1].name if grids else "-",
        state=state,
    )


def list_runs(folder: Path) -> list[RunSummary]:
    if not folder.is_dir():
        raise RunDirError(f"{folder}: no such folder of runs")
    runs = [RunDir(p) for p in sorted(folder.iterdir()) if RUN_PATTERN.match(p.name)]
    return [summarize(run) for run in runs if run.root.is_dir() and run.config.exists()]
