"""Answers an LLM already gave, read from a JSONL export of production logs.

    {"id": "t-0042", "output": "billing", "model": "gpt-4o-2024-08-06", "latency_ms": 812,
     "usage": {"prompt_tokens": 431, "completion_tokens": 2}}

Only `id` and `output` are required. Rows are joined to the test split by id: test ids absent from the
file become failed rows (counted and listed, never guessed); ids the test split lacks are counted too. A file
that answers none of the test ids (the wrong id field, another split's log) is refused: its benchmark would
only measure failures.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from slmtier.config import PredictionsFileConfig
from slmtier.data.loading import MAX_LISTED_PROBLEMS, read_rows, resolve_data_path
from slmtier.errors import DataError

log = logging.getLogger(__name__)
MAX_LISTED_IDS = 5


@dataclass(frozen=True)
class LoggedAnswer:
    output: str | None  # None: the log holds the request but no answer (the call failed in production)
    line: int
    model: str | None = None
    latency_ms: float | None = None
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


def load_logged_answers(cfg: PredictionsFileConfig) -> tuple[Path, dict[str, LoggedAnswer]]:
    """id -> answer; raises DataError listing every bad row as file:line."""
    path = resolve_data_path(cfg.path)
    if not path.is_file():
        raise DataError(f"{cfg.path}: predictions file not found; fix baseline.predictions.path")
    answers: dict[str, LoggedAnswer] = {}
    problems: list[str] = []
    for line_no, row, problem in read_rows(path):
        problem = problem or _check_row(row, cfg, answers)
        if problem:
            problems.append(f"{path}:{line_no}: {problem}")
            continue
        answers[str(row[cfg.id_field])] = _build_answer(row, cfg, line_no)
    if problems:
        shown = "\n".join(problems[:MAX_LISTED_PROBLEMS])
        more = f"\n... and {len(problems) - MAX_LISTED_PROBLEMS} more" if len(problems) > MAX_LISTED_PROBLEMS else ""
        raise DataError(f"{len(problems)} bad row(s) in the predictions file:\n{shown}{more}")
    if not answers:
        raise DataError(
            f"{path}: no rows; expected one JSON object per line with {cfg.id_field!r} and {cfg.output_field!r}"
        )
    return path, answers


@dataclass(frozen=True)
class LoggedJoin:
    """The logged answers joined to the test split by id."""

    path: Path
    answers: dict[str, LoggedAnswer]
    missing: list[str]  # test ids without an answer: scored as failed answers
    unmatched: list[str]  # ids in the file that the test split lacks: ignored


def join_logged_answers(cfg: PredictionsFileConfig, test_ids: Sequence[str]) -> LoggedJoin:
    """Read the file and join it to the test split: gaps either way are counted and logged; a file that
    answers no test id at all raises DataError, naming ids from both sides so the mismatch shows."""
    path, answers = load_logged_answers(cfg)
    test_set = set(test_ids)
    missing = [test_id for test_id in test_ids if test_id not in answers]
    unmatched = [key for key in answers if key not in test_set]
    if test_ids and len(missing) == len(test_ids):
        raise DataError(
            f"{path}: none of the {len(test_ids)} test ids has an answer in the file (its ids look like "
            f"{list(answers)[:3]}, the test split's like {list(test_ids)[:3]}). Is baseline.predictions.id_field "
            f"({cfg.id_field!r}) the field that holds the test id, and is this the log of data.test?"
        )
    if missing:
        log.warning(
            "%d test id(s) have no answer in %s (counted as failed): %s", len(missing), path, missing[:MAX_LISTED_IDS]
        )
    if unmatched:
        log.warning(
            "%d id(s) in %s are not in the test split (ignored): %s", len(unmatched), path, unmatched[:MAX_LISTED_IDS]
        )
    return LoggedJoin(path, answers, missing, unmatched)


def _check_row(row: dict, cfg: PredictionsFileConfig, seen: dict[str, LoggedAnswer]) -> str | None:
    if not isinstance(row.get(cfg.id_field), str | int):
        return f"missing or non-scalar {cfg.id_field!r} (baseline.predictions.id_field); every row needs the test id"
    key = str(row[cfg.id_field])
    if key in seen:
        return f"id {key!r} already appeared on line {seen[key].line}; keep one answer per id"
    if cfg.output_field not in row:
        return f"no {cfg.output_field!r} field (baseline.predictions.output_field); write null for a failed call"
    if row[cfg.output_field] is not None and not isinstance(row[cfg.output_field], str):
        return f"{cfg.output_field!r} is {type(row[cfg.output_field]).__name__}; it must be the LLM's raw text"
    return None


def _build_answer(row: dict, cfg: PredictionsFileConfig, line_no: int) -> LoggedAnswer:
    usage = row.get("usage") if isinstance(row.get("usage"), dict) else {}
    return LoggedAnswer(
        output=row[cfg.output_field],
        line=line_no,
        model=row.get("model") if isinstance(row.get("model"), str) else None,
        latency_ms=_number(row.get("latency_ms")),
        cost_usd=_number(row.get("cost_usd")),
        input_tokens=_count(row.get("input_tokens", usage.get("prompt_tokens"))),
        output_tokens=_count(row.get("output_tokens", usage.get("completion_tokens"))),
    )


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else None


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
