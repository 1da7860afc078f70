"""Find a data file from the path a recipe gives, and say why a path leads to no file: missing, a folder, a
symbolic link to nothing or in a loop, a pipe. Each is a different fix, so each gets its own message.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from slmtier.config import PROJECT_ROOT
from slmtier.errors import DataError

MAX_SHOWN_LINKS = 5


def resolve_data_path(path: str) -> Path:
    """A data path as given: absolute, relative to the current directory, or to the repo root. A link counts as
    found even when it leads nowhere, so that find_data_file can say so."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or os.path.lexists(candidate):
        return candidate
    in_project = PROJECT_ROOT / candidate
    return in_project if os.path.lexists(in_project) else candidate


def find_data_file(path: str, key: str) -> Path:
    """The regular file `path` names; raises DataError saying what is there instead. `key`: the config key."""
    if not path.strip():
        raise DataError(f"{key} is empty; set it to a .jsonl or .csv file")
    file = resolve_data_path(path)
    try:
        mode = file.stat().st_mode
    except OSError as err:
        raise DataError(_why_unreachable(path, file, err, key)) from err
    if stat.S_ISDIR(mode):
        raise DataError(f"{key}: {path} is a folder; point {key} at one .jsonl or .csv file")
    if not stat.S_ISREG(mode):
        raise DataError(f"{key}: {path} is not a regular file (a pipe or a device?); save the data to a file first")
    return file


def _why_unreachable(path: str, file: Path, err: OSError, key: str) -> str:
    if err.errno == errno.ELOOP:
        return (
            f"{key}: {path} is a symbolic link loop ({_link_chain(file)}), so it leads to no file; "
            f"fix the link, or point {key} at the data file itself"
        )
    if file.is_symlink():
        return (
            f"{key}: {path} is a symbolic link to {os.readlink(file)}, which does not exist (moved or deleted?); "
            f"fix the link, or point {key} at the data file itself"
        )
    if err.errno in (errno.ENOENT, errno.ENOTDIR):
        return f"{key}: {path}: data file not found (looked in {Path.cwd()} and {PROJECT_ROOT}); fix {key}"
    return f"{key}: {path}: cannot open it ({err.strerror})"


def _link_chain(file: Path) -> str:
    """'train.jsonl -> b.jsonl -> train.jsonl': the links followed from `file` until one repeats."""
    shown, seen, link = [str(file)], set(), file
    while link.is_symlink() and link not in seen and len(shown) <= MAX_SHOWN_LINKS:
        seen.add(link)
        target = os.readlink(link)
        shown.append(target)
        link = Path(os.path.normpath(link.parent / target))
    return " -> ".join(shown) if len(shown) > 1 else f"a folder on the way to {file} is a link loop"
