"""Errors for user mistakes: the command line prints their message, not a traceback."""


class SlmtierError(Exception):
    """A problem the user can fix (bad data, bad config, missing files); the message says how."""


class DataError(SlmtierError):
    """A data file is missing or a row is invalid; the message names file:line."""


class ModelSourceError(SlmtierError):
    """A model cannot be found or loaded from where the config points."""


class RunDirError(SlmtierError):
    """A run directory lacks the files a command needs."""
