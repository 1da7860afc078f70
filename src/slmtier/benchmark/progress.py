"""Prediction rows written as they complete, so a killed run picks up where it stopped.

While a candidate predicts a split, each finished chunk of rows is appended to
`predictions/<name>[.<split>].jsonl.progress`, flushed and fsynced. A rerun in the same run directory
reads those rows back (a last line torn by the kill is dropped, so its rows are predicted again; an LLM
answer among them comes from the response cache, not paid twice), predicts only the examples still
missing, then writes `<name>.jsonl` whole under a temporary name and renames it: a file named
`<name>.jsonl` is always complete. The progress file is removed once the final file exists.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)
# What every row holds (benchmark.candidates.build_row): a line without them is not a row.
ROW_KEYS = frozenset({"id", "raw_output", "parsed", "gold", "correct", "score_parts"})


def progress_path(final: Path) -> Path:
    return final.with_name(final.name + ".progress")


def read_finished(final: Path, ids: list[str]) -> dict[str, dict]:
    """Rows already predicted for these example ids: all of them when `final` exists and holds exactly
    these ids, else whatever the progress file holds for them."""
    wanted = set(ids)
    if final.is_file():
        rows = _read_rows(final)
        if sorted(rows) == sorted(wanted):
            return rows
    progress = progress_path(final)
    if not progress.is_file():
        return {}
    return {row_id: row for row_id, row in _read_rows(progress).items() if row_id in wanted}


def append_rows(handle, rows: Iterable[dict]) -> None:
    """One JSON line per row, on disk before returning (a kill right after loses none of them)."""
    for row in rows:
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    handle.flush()
    os.fsync(handle.fileno())


def _read_rows(path: Path) -> dict[str, dict]:
    """The whole rows of a predictions file, by id. A line that is not one (bytes that are not UTF-8, JSON
    that is not a row: damage from outside) is named with file:line and dropped, so its example is
    predicted again; a last line without its newline was cut by a kill and is dropped silently."""
    rows = {}
    with path.open("rb") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                break  # torn by a kill mid-write: predicted again
            row = _parse_row(line)
            if row is None:
                log.warning("%s:%d: not a prediction row (damaged?): dropped, its example is predicted again",
                            path, line_no)  # fmt: skip
                continue
            rows[str(row["id"])] = row
    return rows


def _parse_row(line: bytes) -> dict | None:
    try:
        row = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, nested past the parser
        return None
    if not isinstance(row, dict) or not isinstance(row.get("id"), str | int) or not ROW_KEYS <= row.keys():
        return None
    return row
