"""User mistakes end the command with their message and exit code 2, not a traceback."""

from __future__ import annotations

import contextlib
import sys

from slmtier.errors import SlmtierError


@contextlib.contextmanager
def exit_on_user_error():
    try:
        yield
    except SlmtierError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
