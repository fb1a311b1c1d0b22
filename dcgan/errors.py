"""Errors that the CLI turns into one line and a non-zero exit, never a traceback."""


class DcganError(Exception):
    """Bad input from the user: a config, a data folder, a run directory or a checkpoint."""


class ConfigError(DcganError):
    pass


class DataError(DcganError):
    pass


class RunDirError(DcganError):
    pass
