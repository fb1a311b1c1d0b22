"""One writer per run: an flock on train.lock that dies with its process."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from dcgan.errors import OutputError, RunDirError
from dcgan.files.reading import UnsafeFile
from dcgan.files.writing import open_no_follow
from dcgan.storage.run_folder import RunDir, refuse_links


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
