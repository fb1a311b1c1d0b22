"""Writing files so that a reader, a crash or a planted link never meets half of one:
everything is written under a temporary name beside its target and renamed into place;
folders are made with one clear error; files opened in place refuse symbolic links."""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from dcgan.errors import DcganError, OutputError, shorten
from dcgan.files.reading import UnsafeFile, kind_of


def file_name_part(text: str, fallback: str, limit: int = 100) -> str:
    """text made fit for a file or folder name: runs of anything but letters, digits, '.',
    '_' and '-' become '_', no leading or trailing dot or underscore, at most limit
    characters; fallback when nothing is left."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:limit] or fallback


def open_no_follow(path: Path, flags: int, mode: int = 0o644) -> int:
    """os.open that refuses a symbolic link (or anything but a regular file) at path: a
    link planted in a run folder must not get a file elsewhere overwritten."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFile(refused_link(path)) from None
        if exc.errno == errno.ENXIO:  # opening a FIFO with no reader for writing
            raise UnsafeFile(f"{path}: is a FIFO (named pipe); remove it") from None
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UnsafeFile(f"{path}: is {kind_of(info.st_mode)}; remove it")
    os.set_blocking(fd, True)
    return fd


def refused_link(path: Path) -> str:
    return (
        f"{path}: is a symbolic link; dcgan never writes through links in a run folder (remove it)"
    )


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextmanager
def atomic_path(path: Path) -> Iterator[str]:
    """A temporary name beside path, renamed onto it only once the writer has finished,
    so that a reader (or a crash) never meets half a file. A failed write (a full disk, no
    permission) leaves path as it was and is an OutputError naming path."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # ".name.*.tmp*": rundir.TEMPORARY_PATTERN finds what a killed writer left.
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}"
        )
        os.close(fd)
    except OSError as exc:
        raise _output_error(path, exc) from None
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide the file from others
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _output_error(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """An empty staging folder beside path that takes path's name only once the writer has
    filled it: a folder under path's name is always complete."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # ".name.tmp*": rundir.TEMPORARY_PATTERN finds what a killed writer left.
        staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp"))
    except OSError as exc:
        raise _output_error(path, exc) from None
    retired = path.parent / f"{staging.name}.old"
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_UMASK)
        if path.exists():
            path.rename(retired)  # aside, not rmtree'd: path is missing for two renames only
        staging.rename(path)
    except OSError as exc:
        if retired.exists() and not path.exists():
            retired.rename(path)  # the new folder could not take its place: keep the old
        raise _output_error(path, exc) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if retired.is_dir():
            shutil.rmtree(retired, ignore_errors=True)
        elif retired.exists():
            retired.unlink()


def _output_error(path: Path, exc: OSError) -> OutputError:
    return OutputError(f"{path}: cannot write: {exc.strerror or exc}")


def check_folder(path: Path, option: str = "") -> bool:
    """Whether path is a folder already (False: missing), before anything is written; a
    file or anything else in its place is bad input named by option (e.g. "--out")."""
    shown = f"{option} {shorten(str(path), 200)}" if option else shorten(str(path), 200)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise DcganError(f"{shown}: cannot be a folder: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        return True
    kind = "a file" if stat.S_ISREG(mode) else kind_of(mode)
    raise DcganError(f"{shown}: is {kind}, not a folder")


def make_folder(path: Path, option: str = "") -> None:
    """path as a folder, with its parents. A file in the way is bad input (exit 2); a
    place that refuses it (read-only, full, no permission) an OutputError (exit 1); both
    name the folder."""
    if check_folder(path, option):
        return
    shown = f"{option} {shorten(str(path), 200)}" if option else shorten(str(path), 200)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.EEXIST, errno.ENOTDIR, errno.ENAMETOOLONG, errno.ELOOP):
            raise DcganError(f"{shown}: cannot be a folder: {reason}") from None
        raise OutputError(f"{shown}: cannot create the folder: {reason}") from None


def refuse_existing(paths: Sequence[Path], force: bool) -> None:
    """Never overwrite without --force; checked before anything is written."""
    existing = [] if force else [p for p in paths if p.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise DcganError(
            f"{existing[0]}{more} already exists: use --force to replace, or --out to write "
            "elsewhere"
        )


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


# The hidden ".name.*.tmp*" that atomic_path and atomic_dir write under: what a killed
# writer leaves behind, and what run_folder.remove_stale_temporaries deletes.
TEMPORARY_PATTERN = re.compile(r"^\..+\.tmp")
