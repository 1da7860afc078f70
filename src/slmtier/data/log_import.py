"""Production logs as training data: the LLM's logged answers to a task, turned into train/validation/test files.

Formats read (one JSON object per line; each line's format is recognised by its keys):
- chat-completions logs as gateways and proxies export them: the request's `messages` (top level, or under
  `request`/`body`), and the response as an OpenAI chat.completion object (`response`, or under
  `response.body`) or its text (`output`/`completion`); `model`, `usage` and a time (`created`, `timestamp`,
  `time`, `created_at`: Unix seconds or ISO 8601) when present;
- chat fine-tuning files and traces whose `messages` end with the assistant's answer;
- slmtier's router log (`slmtier route --log-inputs`): the LLM's answer to each escalated request and to each
  shadowed one (the local tier's own answers are not teacher labels and are skipped).
The task input is the last user message, or the part of it `input_pattern` names (as routing.yaml's `input`);
the answer is parsed by the task's own parser, and a row whose answer does not parse is dropped and counted.

Then: exact duplicates (case, spacing and digits aside) and near-duplicates (TF-IDF cosine of word uni- and
bigrams at `near_duplicate` or above) are removed, the earliest kept; and the rows are split by time, the test
split the latest, so the benchmark measures the requests that came after the training data, and no test input
has a duplicate in the training data. Everything dropped is counted by reason in the data card, the
unreadable lines named file:line.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slmtier.data.text import is_blank
from slmtier.errors import DataError, SlmtierError
from slmtier.tasks import plain_answer

CARD_FILE = "data_card.json"
MAX_NAMED_LINES = 20
TIME_KEYS = ("time", "timestamp", "created", "created_at", "start_time", "startTime")


@dataclass
class LoggedAnswer:
    """One LLM answer to one task input, with where it was read."""

    input: str
    answer: Any  # the parsed answer in its data-file form (a label, a JSON object, a summary)
    time: float | None
    model: str | None
    source: str  # file:line


@dataclass
class Imported:
    rows: list[LoggedAnswer] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    unreadable: list[str] = field(default_factory=list)  # file:line: why
    formats: Counter = field(default_factory=Counter)
    read: int = 0


def read_logged_answers(paths: Iterable[Path], task, *, input_pattern: str | None = None) -> Imported:
    pattern = compile_pattern(input_pattern)
    found = Imported()
    for path in paths:
        with Path(path).open(encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                found.read += 1
                where = f"{path}:{number}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    _unreadable(found, where, "not a JSON object (a line cut short?)")
                    continue
                if not isinstance(record, dict):
                    _unreadable(found, where, "not a JSON object")
                    continue
                _read_record(found, record, where, task, pattern)
    return found


def _unreadable(found: Imported, where: str, why: str) -> None:
    found.dropped["unreadable line"] += 1
    if len(found.unreadable) < MAX_NAMED_LINES:
        found.unreadable.append(f"{where}: {why}")


def _read_record(found: Imported, record: dict, where: str, task, pattern: re.Pattern | None) -> None:
    when = read_time(record)
    if "request_id" in record and "task" in record and ("kind" in record or "tier" in record):
        found.formats["slmtier router log"] += 1
        if record.get("kind") == "shadow":
            if record.get("error"):
                found.dropped["the LLM's call failed"] += 1
                return
        elif record.get("tier") != "llm":
            found.dropped["answered by a local tier (not the LLM)"] += 1
            return
        text = record.get("input")
        if not isinstance(text, str):
            found.dropped["no input logged (route with --log-inputs)"] += 1
            return
        answer = record.get("answer")
        raw = answer if isinstance(answer, str) else json.dumps(answer) if answer is not None else None
        _add(found, task, text, raw, when, record.get("model"), where)
        return
    messages = _first(record, ("messages",), ("request", "messages"), ("body", "messages"), ("input", "messages"))
    if not isinstance(messages, list):
        _unreadable(found, where, "no `messages` list (request, body or top level)")
        return
    raw, model = _response_text(record)
    if raw is None and messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
        found.formats["chat messages ending with the answer"] += 1
        raw, messages = _content(messages[-1]), messages[:-1]
    else:
        found.formats["chat-completions log"] += 1
    if raw is None:
        found.dropped["no answer (an error response, or none logged)"] += 1
        return
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    text = _content(users[-1]) if users else None
    if text is not None and pattern is not None:
        match = pattern.search(text)
        text = match.group("input") if match else None
        if text is None:
            found.dropped["input pattern not found in the last user message"] += 1
            return
    if text is None or is_blank(text):
        found.dropped["no user message"] += 1
        return
    _add(found, task, text, raw, when, model or _first(record, ("model",), ("request", "model"), ("body", "model")),
         where)  # fmt: skip


def _add(found: Imported, task, text: str, raw: str | None, when, model, where: str) -> None:
    parsed = task.parse(raw) if raw is not None else None
    if parsed is None:
        found.dropped["the task's parser cannot read the answer"] += 1
        return
    found.rows.append(LoggedAnswer(text, plain_answer(parsed), when, model if isinstance(model, str) else None, where))


def _first(record: dict, *paths: tuple[str, ...]):
    for path in paths:
        value: Any = record
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            return value
    return None


def _content(message: dict) -> str | None:
    content = message.get("content")
    if isinstance(content, list):  # content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else None


def _response_text(record: dict) -> tuple[str | None, str | None]:
    """(the answer's text, the model that answered) from the response as logged, or (None, None)."""
    response = _first(record, ("response", "body"), ("response",), ("completion",), ("output",))
    if isinstance(response, str):
        return response, None
    if not isinstance(response, dict):
        return None, None
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message") or {}
        return _content(message) if isinstance(message, dict) else None, response.get("model")
    return None, None


def read_time(record: dict) -> float | None:
    """Unix seconds from the record's time (Unix seconds or milliseconds, or ISO 8601), or None."""
    places = [record, record.get("response"), _first(record, ("response", "body")), record.get("request")]
    for place in places:
        if not isinstance(place, dict):
            continue
        for key in TIME_KEYS:
            value = place.get(key)
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    try:
                        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                    except ValueError:
                        continue
                    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)).timestamp()
            if isinstance(value, (int, float)):
                return float(value) / 1000 if value > 1e11 else float(value)
    return None


def compile_pattern(pattern: str | None) -> re.Pattern | None:
    if pattern is None:
        return None
    try:
        compiled = re.compile(pattern, re.DOTALL)
    except re.error as err:
        raise SlmtierError(f"--input-pattern is not a regular expression ({err})") from err
    if "input" not in compiled.groupindex:
        raise SlmtierError("--input-pattern needs a group named 'input': (?P<input>...)")
    return compiled


def duplicate_key(text: str) -> str:
    """Case, spacing and digits aside: "Order 48213 late" and "order 99120  late" read alike."""
    return re.sub(r"\d+", "0", " ".join(text.casefold().split()))


def remove_duplicates(rows: list[LoggedAnswer], near: float, dropped: Counter) -> list[LoggedAnswer]:
    """The rows in time order with duplicates removed, each group's earliest kept: the same text (case and
    spacing aside); the same text but for its digits with the same answer (an order number changes nothing, a
    quantity an extraction reads does); near duplicates with the same answer."""
    rows = sorted(rows, key=lambda row: (row.time is None, row.time or 0.0))
    seen, unique = set(), []
    for row in rows:
        keys = (" ".join(row.input.casefold().split()),
                (duplicate_key(row.input), json.dumps(row.answer, sort_keys=True)))  # fmt: skip
        if any(key in seen for key in keys):
            dropped["exact duplicate"] += 1
            continue
        seen.update(keys)
        unique.append(row)
    if near >= 1.0 or len(unique) < 2:
        return unique
    keep = near_duplicate_keep(unique, near)
    if (~keep).any():
        dropped["near duplicate"] += int((~keep).sum())
    return [row for row, kept in zip(unique, keep, strict=True) if kept]


def near_duplicate_keep(rows: list[LoggedAnswer], near: float, chunk: int = 512) -> np.ndarray:
    """A row is dropped when an earlier kept row with the same answer has a TF-IDF vector (word uni- and bigrams)
    at cosine >= near with its own. Chunked sparse products: memory grows with chunk x rows, not rows squared;
    only the close pairs reach Python."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectors = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(
        [duplicate_key(row.input) for row in rows]
    )
    answers = np.array([json.dumps(row.answer, sort_keys=True) for row in rows], dtype=object)
    keep = np.ones(len(rows), dtype=bool)
    for start in range(0, len(rows), chunk):
        stop = min(start + chunk, len(rows))
        similar = (vectors[start:stop] @ vectors[:stop].T).tocoo()
        i, j = similar.row + start, similar.col
        close = (similar.data >= near) & (j < i)
        i, j = i[close], j[close]
        same = answers[i] == answers[j]
        i, j = i[same], j[same]
        # By row, then by the earlier row it resembles: an earlier row's fate is settled before it is looked up.
        for row, earlier in sorted(zip(i.tolist(), j.tolist(), strict=True)):
            if keep[earlier]:
                keep[row] = False
    return keep


def split_by_time(rows: list[LoggedAnswer], validation: float, test: float) -> dict[str, list[LoggedAnswer]]:
    """Train the earliest, then validation, then test the latest (shares of the rows)."""
    if not 0 < test < 1 or not 0 <= validation < 1 or validation + test >= 1:
        raise SlmtierError(f"--validation-share {validation} and --test-share {test}: shares above 0 summing below 1")
    n = len(rows)
    n_test, n_validation = max(1, round(n * test)), max(1, round(n * validation)) if validation > 0 else 0
    if n - n_test - n_validation < 1:
        raise DataError(f"only {n} usable rows: too few to split into train, validation and test")
    return {
        "train": rows[: n - n_test - n_validation],
        "validation": rows[n - n_test - n_validation : n - n_test],
        "test": rows[n - n_test :],
    }


def period(rows: list[LoggedAnswer]) -> dict:
    times = [row.time for row in rows if row.time is not None]
    stamp = lambda t: dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")  # noqa: E731
    first, last = (stamp(min(times)), stamp(max(times))) if times else (None, None)
    return {"rows": len(rows), "first": first, "last": last}


def write_split(path: Path, split: str, rows: list[LoggedAnswer]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for number, row in enumerate(rows):
            handle.write(json.dumps({"id": f"{split}-{number}", "text": row.input, "label": row.answer,
                                     "time": row.time, "model": row.model, "source": row.source},
                                    ensure_ascii=False) + "\n")  # fmt: skip


def import_logs(paths: list[Path], task, out: Path, *, input_pattern: str | None = None, near: float = 0.9,
                validation: float = 0.1, test: float = 0.2) -> dict:  # fmt: skip
    """Read, clean, split by time and write `out`/{train,validation,test}.jsonl and the data card."""
    found = read_logged_answers(paths, task, input_pattern=input_pattern)
    if not found.rows:
        listed = "; ".join(f"{n:,} {why}" for why, n in found.dropped.most_common())
        raise DataError(f"no usable LLM answer in {found.read:,} log lines ({listed or 'nothing read'})")
    untimed = sum(row.time is None for row in found.rows)
    if untimed:
        raise DataError(
            f"{untimed:,} of {len(found.rows):,} answers carry no time ({', '.join(TIME_KEYS)}), so they cannot be "
            f"split by time; e.g. {next(row.source for row in found.rows if row.time is None)}"
        )
    rows = remove_duplicates(found.rows, near, found.dropped)
    splits = split_by_time(rows, validation, test)
    out.mkdir(parents=True, exist_ok=True)
    for split, part in splits.items():
        if part:  # no validation file with --validation-share 0
            write_split(out / f"{split}.jsonl", split, part)
    card = {
        "source": "logs",
        "files": [str(path) for path in paths],
        "read_lines": found.read,
        "formats": dict(found.formats),
        "usable": len(found.rows),
        "kept": len(rows),
        "dropped": dict(found.dropped.most_common()),
        "unreadable_lines": found.unreadable,
        "models": dict(Counter(row.model or "(not logged)" for row in rows).most_common()),
        "near_duplicate_cosine": near,
        "splits": {split: period(part) for split, part in splits.items()},
        "targets": "the LLM's logged answers, parsed by the task's parser (also in the test split: agreement with "
        "the LLM, not accuracy)",
    }
    (out / CARD_FILE).write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    return card


def logged_targets(train_path: str | None, test_path: str | None) -> dict | None:
    """metrics.json `targets` for a train file written by `slmtier import-logs` (its data card beside it): the
    LLM's logged answers, their period and models, and whether the test split is the import's too (then its
    answers are the LLM's: agreement, not accuracy); None for any other train file."""
    if not train_path or train_path.startswith("hub:"):
        return None
    from slmtier.data import resolve_data_path

    train_file = resolve_data_path(train_path)
    card_path = train_file.parent / CARD_FILE
    if train_file.name != "train.jsonl":
        return None
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(card, dict) or card.get("source") != "logs":
        return None
    train = card.get("splits", {}).get("train", {})
    return {"source": "logs", "card": str(card_path), "models": card.get("models", {}), "first": train.get("first"),
            "last": train.get("last"), "rows": train.get("rows"),
            "test_targets": "llm" if test_path and resolve_data_path(test_path) == train_file.parent / "test.jsonl"
            else "gold"}  # fmt: skip
