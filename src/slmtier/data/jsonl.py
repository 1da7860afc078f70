"""Read JSONL splits (one JSON object per line) into `Example`s, checking every row first.

All problems in a file are collected and reported together, each as `file:line: what is wrong`,
so a hurried recipe author fixes them in one pass instead of one per run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmtier.config import PROJECT_ROOT, DataConfig
from slmtier.errors import DataError

MAX_LISTED_PROBLEMS = 20


@dataclass(frozen=True)
class Example:
    id: str
    input: str
    target: Any


@dataclass(frozen=True)
class Splits:
    train: list[Example]
    validation: list[Example]
    test: list[Example]


def resolve_data_path(path: str) -> Path:
    """A data path as given: absolute, relative to the current directory, or to the repo root."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return candidate
    in_project = PROJECT_ROOT / candidate
    return in_project if in_project.exists() else candidate


def load_jsonl(
    path: str,
    *,
    id_field: str,
    text_field: str,
    target_field: str,
    check_target: Callable[[Any], str | None],
) -> list[Example]:
    """Examples from one JSONL file; raises DataError listing every bad row as file:line."""
    file = resolve_data_path(path)
    if not file.is_file():
        raise DataError(f"{path}: data file not found (looked in {Path.cwd()} and {PROJECT_ROOT}); fix data.* paths")
    problems: list[str] = []
    examples: list[Example] = []
    seen: dict[str, int] = {}
    with file.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            where = f"{file}:{line_no}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                problems.append(f"{where}: not valid UTF-8 ({err.reason} at byte {err.start}); re-save as UTF-8")
                continue
            if not line.strip():
                continue
            example, problem = _parse_row(line, id_field, text_field, target_field, check_target)
            if problem:
                problems.append(f"{where}: {problem}")
                continue
            if example.id in seen:
                problems.append(f"{where}: duplicate id {example.id!r} (first on line {seen[example.id]})")
                continue
            seen[example.id] = line_no
            examples.append(example)
    if problems:
        listed = "\n  ".join(problems[:MAX_LISTED_PROBLEMS])
        more = f"\n  ... and {len(problems) - MAX_LISTED_PROBLEMS} more" if len(problems) > MAX_LISTED_PROBLEMS else ""
        raise DataError(f"{len(problems)} bad row(s) in {file}:\n  {listed}{more}")
    if not examples:
        raise DataError(f"{file}: the file has no rows; every split needs at least one example")
    return examples


def _parse_row(
    line: str, id_field: str, text_field: str, target_field: str, check_target: Callable[[Any], str | None]
) -> tuple[Example | None, str | None]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        return None, f"malformed JSON ({err.msg} at column {err.colno}); each line must be one JSON object"
    if not isinstance(row, dict):
        return None, f"expected a JSON object, got {type(row).__name__}"
    missing = [name for name in (id_field, text_field, target_field) if name not in row]
    if missing:
        return None, f"missing field(s) {missing}; the row has {sorted(row)}"
    row_id, text = row[id_field], row[text_field]
    if not isinstance(row_id, (str, int)) or isinstance(row_id, bool) or str(row_id).strip() == "":
        return None, f"field {id_field!r} must be a non-empty string or integer, got {row_id!r}"
    if not isinstance(text, str):
        return None, f"field {text_field!r} must be a string, got {type(text).__name__}"
    if not text.strip():
        return None, f"field {text_field!r} is empty; drop the row or fill in the text"
    problem = check_target(row[target_field])
    if problem:
        return None, f"field {target_field!r}: {problem}"
    return Example(id=str(row_id), input=text, target=row[target_field]), None


def load_splits(cfg: DataConfig, check_target: Callable[[Any], str | None]) -> Splits:
    """Train, validation (may be empty when not configured) and test, all validated."""

    def load(path: str) -> list[Example]:
        return load_jsonl(
            path,
            id_field=cfg.id_field,
            text_field=cfg.text_field,
            target_field=cfg.target_field,
            check_target=check_target,
        )

    test = load(cfg.test)
    if cfg.max_test_examples is not None:
        test = test[: cfg.max_test_examples]
    return Splits(train=load(cfg.train), validation=load(cfg.validation) if cfg.validation else [], test=test)
