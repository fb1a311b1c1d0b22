"""Reading files that may be hostile: only regular files are read, each within a size
bound, and archives are measured before anything is inflated.

No TensorFlow: the config, the run listing and the data readers all use this.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path
from typing import BinaryIO

from dcgan.errors import DcganError, shorten

KiB, MiB, GiB = 2**10, 2**20, 2**30


class UnsafeFile(DcganError):
    """A file that is not what it must be: not a regular file, too large, a link where the
    tool writes, an archive that would inflate past its bound."""


def size_text(count: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


def kind_of(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def open_regular(path: Path, limit: int | None = None, what: str = "file") -> BinaryIO:
    """path opened for reading in binary, if it is a regular file of at most limit bytes.

    Looked at before it is opened, so a device (/dev/zero, a tape) or a FIFO is refused
    without being opened at all; opened without blocking and checked again, in case
    something else took its name in between.
    """
    try:
        _check_regular(path, os.stat(path), limit, what)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UnsafeFile(f"{path}: no such {what}") from None
    except OSError as exc:
        raise UnsafeFile(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        _check_regular(path, os.fstat(fd), limit, what)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_regular(path: Path, info: os.stat_result, limit: int | None, what: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeFile(f"{path}: is {kind_of(info.st_mode)}, not a {what}")
    if limit is not None and info.st_size > limit:
        raise UnsafeFile(
            f"{path}: is {size_text(info.st_size)}, over the {size_text(limit)} a {what} may have"
        )


def read_bytes(path: Path, limit: int, what: str = "file") -> bytes:
    """The whole of a regular file of at most limit bytes."""
    with open_regular(path, limit, what) as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:  # it grew after the size was checked
        raise UnsafeFile(f"{path}: is over the {size_text(limit)} a {what} may have")
    return data


def read_text(path: Path, limit: int, what: str = "file") -> str:
    """A regular file of at most limit bytes, as UTF-8 text."""
    data = read_bytes(path, limit, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeFile(
            f"{path}: is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def check_zip(
    path: Path,
    max_total: int,
    max_member: int | None = None,
    limits: dict[str, int] | None = None,
) -> list[str]:
    """The member names of a zip archive whose members, inflated, stay within the bounds:
    max_total for all, max_member for each, limits[name] for the members named there (those
    a loader reads whole, such as a .keras file's config.json). Measured from the archive's
    directory before anything is inflated; zipfile checks each size again while inflating,
    so a directory that lies fails there."""
    try:
        with open_regular(path, what="zip archive") as stream, zipfile.ZipFile(stream) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise UnsafeFile(f"{path}: not a readable zip archive: {shorten(str(exc))}") from None
    total = 0
    for member in members:
        total += member.file_size
        limit = (limits or {}).get(member.filename, max_member)
        if limit is not None and member.file_size > limit:
            raise UnsafeFile(
                f"{path}: its {shorten(member.filename, 60)} inflates to "
                f"{size_text(member.file_size)}, over the {size_text(limit)} allowed"
            )
    if total > max_total:
        raise UnsafeFile(
            f"{path}: inflates to {size_text(total)}, over the {size_text(max_total)} allowed"
        )
    return [member.filename for member in members]


def read_text_lenient(path: Path, limit: int, what: str) -> str:
    """A regular file of at most limit bytes as text, bytes that are not UTF-8 replaced."""
    return read_bytes(path, limit, what).decode("utf-8", "replace")
