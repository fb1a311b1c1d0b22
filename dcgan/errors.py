"""Errors that the CLI turns into one line and a non-zero exit, never a traceback."""


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
