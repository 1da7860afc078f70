"""`slmtier replay SPLIT --router URL --model TASK`: a data split sent through a running router as an application
would (the input alone as the user message), at a set rate, optionally drifted.

Drift it can inject, for trying the monitor (docs/monitor.md):
- `--label-shift LABEL=FACTOR`: rows of that label drawn FACTOR times as often (a queue's share grows);
- `--mix FILE=SHARE`: that share of the requests are inputs from another file (another domain or language);
- `--repeat K` sends the split K times (rows drawn with replacement when shifted; ids stay unique).
Each request carries `x-request-id: <prefix>-<n>`; `--write-labels FILE` writes the gold label of each
replayed row by that id, for `slmtier monitor --labels`. Exit 0 when every request got a 200, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

from slmtier.cli.errors import name_and_number
from slmtier.errors import SlmtierError


def add_replay_command(commands) -> None:
    replay = commands.add_parser("replay", help="send a data split through a running router, optionally drifted")
    replay.add_argument("split", type=Path, help="a JSONL or CSV data file (the recipe's format)")
    replay.add_argument("--router", required=True, help="the router's base URL, e.g. http://127.0.0.1:8000/v1")
    replay.add_argument("--model", required=True, help="the task's name (routing.yaml `task`)")
    replay.add_argument("--rate", type=float, default=20.0, help="requests per second (default 20)")
    replay.add_argument("--concurrency", type=int, default=8, help="requests in flight at most (default 8)")
    replay.add_argument("--repeat", type=int, default=1, help="send the split this many times")
    replay.add_argument("--text-field", default="text")
    replay.add_argument("--label-field", default="label")
    replay.add_argument("--label-shift", metavar="LABEL=FACTOR", help="draw rows of LABEL FACTOR times as often")
    replay.add_argument("--mix", metavar="FILE=SHARE", help="replace SHARE of the inputs with FILE's (its text field)")
    replay.add_argument("--id-prefix", default=f"replay-{int(time.time())}", help="request ids: <prefix>-<n>")
    replay.add_argument("--write-labels", type=Path, help="write request_id -> gold label here (JSONL)")
    replay.add_argument("--api-key-env", help="environment variable holding the router's key")
    replay.add_argument("--seed", type=int, default=0)
    replay.set_defaults(handler=run_replay)


def read_split(path: Path, text_field: str, label_field: str | None) -> list[tuple[str, object]]:
    """(input, gold or None) per row; a row without the text field is named by file:line."""
    from slmtier.data.rows import read_rows

    if not path.is_file():
        raise SlmtierError(f"{path}: no such data file")
    rows, problems = [], []
    for line, row, problem in read_rows(path):
        text = None if problem else row.get(text_field)
        if problem or not isinstance(text, str) or not text.strip():
            problems.append(f"{path}:{line}: {problem or f'no text in field {text_field!r}'}")
            continue
        rows.append((text, row.get(label_field) if label_field else None))
    if problems:
        raise SlmtierError(f"{len(problems)} bad row(s):\n  " + "\n  ".join(problems[:10]))
    if not rows:
        raise SlmtierError(f"{path}: no rows")
    return rows


def plan_requests(rows: list[tuple[str, object]], args) -> list[tuple[str, object]]:
    """The (input, gold) sequence to send: the split `repeat` times, shifted and mixed as asked (seeded)."""
    rng = np.random.default_rng(args.seed)
    n = len(rows) * args.repeat
    if args.label_shift:
        label, factor = name_and_number(args.label_shift, "--label-shift", "LABEL=FACTOR, e.g. refund=4")
        if not any(gold == label for _, gold in rows):
            raise SlmtierError(f"--label-shift: no row of {args.split} has the label {label!r}")
        weights = np.array([factor if gold == label else 1.0 for _, gold in rows])
        chosen = [rows[i] for i in rng.choice(len(rows), n, p=weights / weights.sum())]
    else:
        chosen = rows * args.repeat
        order = rng.permutation(n) if args.repeat > 1 else np.arange(n)
        chosen = [chosen[i] for i in order]
    if args.mix:
        file, share = name_and_number(args.mix, "--mix", "FILE=SHARE, e.g. other.jsonl=0.3")
        foreign = read_split(Path(file), args.text_field, None)
        for index in np.flatnonzero(rng.random(n) < share):
            chosen[index] = (foreign[rng.integers(len(foreign))][0], None)
    return chosen


async def send(plan: list[tuple[str, object]], args, key: str | None) -> list[dict]:
    import httpx
    from tqdm import tqdm

    url = args.router.rstrip("/") + "/chat/completions"
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    gate = asyncio.Semaphore(args.concurrency)
    began = time.monotonic()
    results: list[dict] = [{} for _ in plan]
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        with tqdm(total=len(plan), desc="replay", unit="req") as bar:

            async def one(index: int, text: str) -> None:
                await asyncio.sleep(max(0.0, began + index / args.rate - time.monotonic()))
                async with gate:
                    body = {"model": args.model, "messages": [{"role": "user", "content": text}]}
                    started = time.perf_counter()
                    try:
                        response = await client.post(url, json=body, headers=headers | {
                            "x-request-id": f"{args.id_prefix}-{index}"})  # fmt: skip
                        status = response.status_code
                        served = response.json().get("slmtier") if status == 200 else None
                    except httpx.HTTPError as err:
                        status, served = None, {"error": f"{type(err).__name__}: {err}"}
                    results[index] = {"status": status, "ms": (time.perf_counter() - started) * 1000,
                                      "served": served}  # fmt: skip
                    bar.update(1)

            await asyncio.gather(*(one(index, text) for index, (text, _) in enumerate(plan)))
    return results


def run_replay(args: argparse.Namespace) -> None:
    from slmtier.benchmark.summary import percentile
    from slmtier.cli.serve import read_key

    if args.rate <= 0 or args.concurrency < 1 or args.repeat < 1:
        raise SlmtierError("--rate must be above 0, --concurrency and --repeat at least 1")
    key = read_key(args.api_key_env)
    plan = plan_requests(read_split(args.split, args.text_field, args.label_field), args)
    if args.write_labels:
        args.write_labels.parent.mkdir(parents=True, exist_ok=True)
        with args.write_labels.open("w", encoding="utf-8") as handle:
            for index, (_, gold) in enumerate(plan):
                if gold is not None:
                    handle.write(json.dumps({"request_id": f"{args.id_prefix}-{index}", "label": gold}) + "\n")
    results = asyncio.run(send(plan, args, key))
    ok = [r for r in results if r["status"] == 200]
    statuses: dict[str, int] = {}
    for result in results:
        statuses[str(result["status"])] = statuses.get(str(result["status"]), 0) + 1
    times = [r["ms"] for r in ok]
    escalated = sum(bool((r["served"] or {}).get("escalated")) for r in ok)
    summary = {"sent": len(results), "statuses": statuses, "escalated": escalated,
               "p50_ms": round(percentile(times, 50), 1) if times else None,
               "p95_ms": round(percentile(times, 95), 1) if times else None}  # fmt: skip
    print(json.dumps(summary))
    if len(ok) < len(results):
        sys.exit(1)
