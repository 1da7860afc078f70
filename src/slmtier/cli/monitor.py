"""`slmtier monitor LOG... --routing ROUTING.yaml --out DIR`: live traffic against what was benchmarked.

Exit codes, for a cron job or a CI pipeline: 0 every check passed; 1 a check fired or a cascade's verdict no
longer holds (the sentences on stderr and in monitor.json); 2 bad input (an unreadable or cut-short log line, a
record of a task or routing.yaml not given, a bad option), after writing what the readable records show.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sys
from pathlib import Path

from slmtier.cli.errors import name_and_number
from slmtier.errors import SlmtierError

FIRED, BAD_INPUT = 1, 2


def add_monitor_command(commands) -> None:
    monitor = commands.add_parser("monitor", help="check the router's logged traffic against the benchmark")
    monitor.add_argument("logs", nargs="+", help="request log files, folders of them, or glob patterns")
    monitor.add_argument("--routing", nargs="+", type=Path, required=True,
                         help="the routing.yaml each logged task was served under")  # fmt: skip
    monitor.add_argument("--out", type=Path, required=True, help="where monitor.{json,md,html} go")
    monitor.add_argument("--since", help="first time included: ISO 8601 (UTC unless it says) or Unix seconds")
    monitor.add_argument("--until", help="first time excluded, likewise")
    monitor.add_argument("--window", help="judge each window of this length apart (30m, 1h, 1d); default: one")
    monitor.add_argument("--labels", type=Path, help="human labels: JSONL or CSV with request_id and label columns")
    monitor.add_argument("--family-alpha", type=float, default=0.05,
                         help="false-alarm rate per window on undrifted traffic, shared by its checks")  # fmt: skip
    monitor.add_argument("--latency-slo-ms", action="append", default=[], metavar="TASK=MS",
                         help="p95 latency SLO of a task (checked only when given)")  # fmt: skip
    monitor.add_argument(
        "--reference-splits",
        default="validation,test",
        metavar="SPLITS",
        help="the run's held-out splits live traffic is compared with (validation, test or both)",
    )
    monitor.add_argument("--tracking", choices=["none", "wandb"], default="none", help="also log the figures there")
    monitor.set_defaults(handler=run_monitor)


def parse_time(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as err:
        raise SlmtierError(f"{option} {value!r}: a time such as 2026-12-07T09:00 or Unix seconds") from err
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)).timestamp()


def read_labels(path: Path) -> dict:
    """request_id -> gold answer (a label, or for extraction a JSON object), from JSONL or CSV."""
    labels, text = {}, path.read_text(encoding="utf-8") if path.is_file() else None
    if text is None:
        raise SlmtierError(f"--labels {path}: no such file")
    if path.suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        numbered = [(index + 2, row) for index, row in enumerate(rows)]
    else:
        numbered = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    numbered.append((number, json.loads(line)))
                except ValueError as err:
                    raise SlmtierError(f"{path}:{number}: not a JSON object ({err})") from err
    for number, row in numbered:
        if not isinstance(row, dict) or not row.get("request_id") or row.get("label") is None:
            raise SlmtierError(f"{path}:{number}: each row needs request_id and label")
        labels[str(row["request_id"])] = row["label"]
    return labels


def run_monitor(args: argparse.Namespace) -> None:
    from slmtier.monitor.logs import read_logs
    from slmtier.monitor.reference import load_reference
    from slmtier.monitor.refit import refit
    from slmtier.monitor.report import propose_routing, write_outputs
    from slmtier.monitor.run import Settings, monitor_task, split_by_routing, window_seconds

    window_seconds(args.window)  # a bad --window fails before anything is read
    if not 0 < args.family_alpha < 1:
        raise SlmtierError(f"--family-alpha {args.family_alpha}: a probability between 0 and 1")
    slo = dict(name_and_number(item, "--latency-slo-ms", "TASK=MILLISECONDS") for item in args.latency_slo_ms)
    settings = Settings(family_alpha=args.family_alpha, window=args.window, latency_slo_ms=slo)
    since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    splits = tuple(split.strip() for split in args.reference_splits.split(",") if split.strip())
    references = [load_reference(path, splits) for path in args.routing]
    labels = read_labels(args.labels) if args.labels else None
    logs = read_logs(args.logs, since=since, until=until)
    own, stray = split_by_routing(logs, references)
    problems = logs.problems + stray
    tasks = []
    for reference in references:
        records = own[reference.routing_id]
        if not len(records):
            problems.append(f"{reference.path}: no record in the logs was served under this routing.yaml")
        task = monitor_task(reference, records, settings, labels)
        task["logs_window"] = [_label(records["time"].min()), _label(records["time"].max())] if len(records) else None
        task["expected"] = _expected_lines(reference)
        if reference.tier == "cascade":
            task["refit"] = refit(reference, records, labels, seed=settings.seed)
            if not task["refit"].get("holds", True):
                task["fired"].append(task["refit"]["sentence"])
            propose_routing(task)
        tasks.append(task)
    fired = [f"{task['task']}: {sentence}" for task in tasks for sentence in task["fired"]]
    code = BAD_INPUT if problems else (FIRED if fired else 0)
    status = {
        0: "Every check passed.",
        FIRED: f"{len(fired)} alarm(s): see below.",
        BAD_INPUT: f"Bad input ({len(problems)} problem(s)); the figures are the readable records'.",
    }[code]
    times = logs.records["time"] if len(logs.records) else None
    result = {
        "version": 1,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "status": status,
        "status_class": {0: "ok", FIRED: "fired", BAD_INPUT: "bad"}[code],
        "exit_code": code,
        "files": [str(path) for path in logs.files],
        "lines": logs.lines,
        "records": len(logs.records),
        "since_label": _label(since if since is not None else (times.min() if times is not None else None)),
        "until_label": _label(until if until is not None else (times.max() if times is not None else None)),
        "window": args.window or "the whole range",
        "family_alpha": settings.family_alpha,
        "problems": problems,
        "fired": fired,
        "tasks": tasks,
    }
    for path in write_outputs(result, args.out):
        print(path)
    for task in tasks:
        if task.get("proposed_routing"):
            print(task["proposed_routing"])
    if args.tracking == "wandb":
        from slmtier.tracking import log_monitor

        log_monitor(result, args.out)
    for line in problems + fired:
        print(line, file=sys.stderr)
    if code:
        sys.exit(code)


def _label(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{dt.datetime.fromtimestamp(float(seconds), dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


def _expected_lines(reference) -> dict:
    """The reference value of each plotted figure (dashed lines), where the run has one."""
    expected = reference.expected
    key = "cascade" if reference.tier == "cascade" else (reference.local or "llm")
    mean = lambda values: sum(values) / len(values) if values else None  # noqa: E731
    return {
        "escalation_rate": reference.expected_escalation_rate,
        "shadow_agreement": mean(reference.agreement),
        "estimated_quality": mean(reference.confidences),
        "p95_ms": (expected.get("p95_ms") or {}).get(key),
        "usd_per_1k": (expected.get("usd_per_1k") or {}).get(key),
    }
