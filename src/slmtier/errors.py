"""Errors for user mistakes: the command line prints their message, not a traceback."""


class SlmtierError(Exception):
    """A problem the user can fix (bad data, bad config, missing files); the message says how."""

    exit_code = 2  # the command line's exit status for it


class DataError(SlmtierError):
    """A data file is missing or a row is invalid; the message names file:line."""


class ModelSourceError(SlmtierError):
    """A model cannot be found or loaded from where the config points."""


class RunDirError(SlmtierError):
    """A run directory lacks the files a command needs."""


class NoVerdict(SlmtierError):
    """The run finished but reached no verdict (e.g. the LLM failed to answer): reports written, exit status 3."""

    exit_code = 3


class DiskFull(SlmtierError):
    """A write failed for want of space; the message names the folder. The run resumes once space is freed."""
