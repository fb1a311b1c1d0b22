"""Files that may be hostile: only regular files are read, each within a size bound;
archives are measured before anything is inflated; files written in a run folder are never
followed through a symbolic link; values echoed into a message are cut short.

No TensorFlow: the config, the run listing and the data readers all use this.
"""

from __future__ import annotations

import errno
import os
import stat
import zipfile
from pathlib import Path
from typing import BinaryIO

from dcgan.errors import DcganError

KiB, MiB, GiB = 2**10, 2**20, 2**30


class UnsafeFile(DcganError):
    """A file that is not what it must be: not a regular file, too large, a link where the
    tool writes, an archive that would inflate past its bound."""


def shorten(text: str, limit: int = 80) -> str:
    """text for a one-line message: a 10 MB value comes back as its first characters."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 3]}... ({len(text):,} characters)"


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

    Opened without blocking, so a FIFO is refused instead of waiting for a writer; a
    device (/dev/zero) is refused instead of read forever.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UnsafeFile(f"{path}: no such {what}") from None
    except OSError as exc:
        raise UnsafeFile(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(f"{path}: is {kind_of(info.st_mode)}, not a {what}")
        if limit is not None and info.st_size > limit:
            raise UnsafeFile(
                f"{path}: is {size_text(info.st_size)}, over the {size_text(limit)} a {what} "
                "may have"
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


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


def check_zip(path: Path, max_total: int, max_member: int | None = None) -> list[str]:
    """The member names of a zip archive whose members, inflated, stay within the bounds;
    measured from the archive's directory before anything is inflated. zipfile checks
    each member's size again while inflating it, so a directory that lies fails there."""
    try:
        with open_regular(path, what="zip archive") as stream, zipfile.ZipFile(stream) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise UnsafeFile(f"{path}: not a readable zip archive: {shorten(str(exc))}") from None
    total = 0
    for member in members:
        total += member.file_size
        if max_member is not None and member.file_size > max_member:
            raise UnsafeFile(
                f"{path}: its {shorten(member.filename, 60)} inflates to "
                f"{size_text(member.file_size)}, over the {size_text(max_member)} allowed"
            )
    if total > max_total:
        raise UnsafeFile(
            f"{path}: inflates to {size_text(total)}, over the {size_text(max_total)} allowed"
        )
    return [member.filename for member in members]


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


def check_zip_members(path: Path, max_total: int, limits: dict[str, int]) -> list[str]:
    """check_zip, and each member named in limits within its own bound: the members a
    loader reads whole into memory (a .keras file's config.json) may be far smaller than
    the archive."""
    names = check_zip(path, max_total)
    try:
        with open_regular(path, what="zip archive") as stream, zipfile.ZipFile(stream) as archive:
            sizes = [(info.filename, info.file_size) for info in archive.infolist()]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise UnsafeFile(f"{path}: not a readable zip archive: {shorten(str(exc))}") from None
    for name, size in sizes:
        limit = limits.get(name)
        if limit is not None and size > limit:
            raise UnsafeFile(
                f"{path}: its {shorten(name, 60)} inflates to {size_text(size)}, over the "
                f"{size_text(limit)} allowed"
            )
    return names


def printable(value: str | os.PathLike[str]) -> str:
    """A path or name for a one-line message: bytes that are not UTF-8 (a file name made on
    another system) as \\xff escapes, control characters (a newline in a name) escaped, so
    the message stays one line and can be written to any terminal or log."""
    text = os.fspath(value)
    try:
        text = os.fsencode(text).decode("utf-8", "backslashreplace")
    except UnicodeError:  # a lone surrogate that no file name decodes to
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )
