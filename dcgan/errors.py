"""Errors that the CLI turns into one line and a non-zero exit, never a traceback, and the
two helpers that keep a message one short, printable line."""

import os


class DcganError(Exception):
    """Bad input from the user: a config, a data folder, a run directory or a checkpoint."""

    exit_code = 2


class ConfigError(DcganError):
    pass


class DataError(DcganError):
    pass


class RunDirError(DcganError):
    pass


class OutputError(DcganError):
    """A file of the run could not be written (a full disk, a folder without permission)."""

    exit_code = 1


class OutOfMemory(DcganError):
    """The models or a batch do not fit the device or the host (an environment fault)."""

    exit_code = 1


class TrainingDiverged(DcganError):
    """A loss or weight went NaN or infinite and on_nan could not (or may not) recover."""

    exit_code = 3


def shorten(text: str, limit: int = 80) -> str:
    """text for a one-line message: a 10 MB value comes back as its first characters."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 3]}... ({len(text):,} characters)"


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


def require_utf8(path: os.PathLike[str] | str, what: str) -> None:
    """A DcganError naming what if path is not valid UTF-8: TensorFlow's file system, the
    run log and config.yaml all store paths as UTF-8."""
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        raise DcganError(
            f"{what} {printable(path)}: is not valid UTF-8; rename it (TensorFlow and the run "
            "log need UTF-8 paths)"
        ) from None
