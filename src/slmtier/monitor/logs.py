"""The router's request logs, read with DuckDB: any number of files (replicas, days), filtered on time.

DuckDB parses the JSON lines in parallel and keeps them as columns; the monitor pulls only the columns and the
time range it needs. A line that is not a whole record (a writer killed mid-line, a file cut by a copy) is
skipped and reported by file and line, and every other record is still read.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from slmtier.errors import SlmtierError

# Every field a router writes (slmtier.serve.router); the JSON-valued ones are kept as text and decoded on demand.
COLUMNS = {
    "time": "DOUBLE",
    "request_id": "VARCHAR",
    "task": "VARCHAR",
    "routing": "VARCHAR",
    "kind": "VARCHAR",
    "tier": "VARCHAR",
    "escalated": "BOOLEAN",
    "confidence": "DOUBLE",
    "local_confidence": "DOUBLE",
    "answer": "JSON",
    "local_answer": "JSON",
    "parsed": "BOOLEAN",
    "tokens": "JSON",
    "cost_usd": "DOUBLE",
    "errors": "JSON",
    "error": "VARCHAR",
    "latency_ms": "JSON",
    "shadow": "BOOLEAN",
    "agrees": "BOOLEAN",
    "input_sha256": "VARCHAR",
    "input_chars": "BIGINT",
    "input": "VARCHAR",
}
SELECT = """
    time, request_id, task, routing, coalesce(kind, 'request') AS kind, tier, escalated, confidence,
    local_confidence, answer, local_answer, parsed, cost_usd, error, shadow, agrees, input_chars, input,
    CAST(json_extract(latency_ms, '$.total') AS DOUBLE) AS latency_total_ms,
    CAST(json_extract(latency_ms, '$.llm') AS DOUBLE) AS latency_llm_ms,
    CAST(json_extract(tokens, '$.input') AS BIGINT) AS input_tokens,
    CAST(json_extract(tokens, '$.output') AS BIGINT) AS output_tokens,
    errors, filename
"""


@dataclass
class RequestLogs:
    """What was read: `records` (requests and shadow answers, `kind` 'request' or 'shadow', by time), the files,
    and every problem found, as 'file:line: what' sentences."""

    records: pd.DataFrame
    files: list[Path]
    problems: list[str] = field(default_factory=list)
    lines: int = 0  # whole lines in the files, in or out of the time range


def log_files(paths: list[Path | str]) -> list[Path]:
    """Files named, the `requests-*.jsonl` of folders named, and the files glob patterns match."""
    files: list[Path] = []
    for given in map(str, paths):
        if Path(given).is_dir():
            found = sorted(Path(given).glob("requests-*.jsonl"))
        elif Path(given).is_file():
            found = [Path(given)]
        else:
            found = sorted(Path(match) for match in glob.glob(given) if Path(match).is_file())
        if not found:
            raise SlmtierError(f"{given}: no request log there (a folder of requests-*.jsonl, a file, or a glob)")
        files += found
    return list(dict.fromkeys(files))


def read_logs(paths: list[Path | str], *, since: float | None = None, until: float | None = None) -> RequestLogs:
    """Every whole record of the logs with `since <= time < until` (Unix seconds; None: open ended)."""
    files = log_files(paths)
    connection = duckdb.connect()
    columns = "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in COLUMNS.items()) + "}"
    connection.execute(
        f"CREATE TEMP TABLE log AS SELECT {SELECT} FROM read_json(?, format = 'newline_delimited', "
        f"columns = {columns}, ignore_errors = true, filename = true, maximum_object_size = 67108864)",
        [[str(path) for path in files]],
    )
    # A line DuckDB could not parse comes back as a row of nulls: it is counted against its file, then dropped.
    valid = "time IS NOT NULL AND request_id IS NOT NULL AND task IS NOT NULL"
    read = dict(connection.execute(f"SELECT filename, count(*) FROM log WHERE {valid} GROUP BY filename").fetchall())
    connection.execute(f"DELETE FROM log WHERE NOT ({valid})")
    problems, lines = [], 0
    for path in files:
        whole, cut = count_lines(path)
        lines += whole
        if cut:
            problems.append(f"{path}:{whole + 1}: the last line is cut short (its writer stopped mid-record); skipped")
        if read.get(str(path), 0) < whole:
            problems += bad_lines(path, limit=5)
    where, bounds = [], []
    if since is not None:
        where.append("time >= ?")
        bounds.append(since)
    if until is not None:
        where.append("time < ?")
        bounds.append(until)
    query = "SELECT * EXCLUDE (filename) FROM log" + (" WHERE " + " AND ".join(where) if where else "")
    records = connection.execute(query + " ORDER BY time", bounds).df()
    connection.close()
    return RequestLogs(records=records, files=files, problems=problems, lines=lines)


def count_lines(path: Path, chunk: int = 1 << 24) -> tuple[int, bool]:
    """(whole lines, whether a last line lacks its newline), reading the file in blocks."""
    whole, last = 0, b"\n"
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            whole += block.count(b"\n")
            last = block[-1:]
    return whole, last != b"\n"


def bad_lines(path: Path, *, limit: int) -> list[str]:
    """The first `limit` whole lines of `path` that are not a JSON record, as 'file:line: why'."""
    found = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                continue
            try:
                record = json.loads(line)
            except ValueError as err:
                found.append(f"{path}:{number}: not a JSON record ({err}); skipped")
            else:
                if not isinstance(record, dict) or not all(record.get(key) for key in ("time", "request_id", "task")):
                    found.append(f"{path}:{number}: not a request record (it lacks time, request_id or task); skipped")
            if len(found) >= limit:
                found.append(f"{path}: further bad lines not listed")
                break
    return found


def decode(value):
    """A JSON column's value (an answer: a label, an object, null) as Python."""
    return json.loads(value) if isinstance(value, str) else None  # a missing value reads as NaN or None
