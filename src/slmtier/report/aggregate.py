"""The architect report: any number of runs (tasks x base models x seeds) in one place, from their files.

Per task, the SLM to deploy is chosen on the validation split (the best validation score among the task's
runs); its verdict, costs and errors are then the ones measured on the test split, which played no part
in the choice. Without validation predictions the choice falls back to test scores, and the report says
the figures are then optimistic.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from slmtier.errors import RunDirError
from slmtier.report.render import RunFiles, load_run

WORST_ERRORS = 5


def load_runs(run_dirs: list[Path]) -> list[RunFiles]:
    runs = [load_run(Path(d)) for d in run_dirs]
    old = [str(run.run_dir) for run in runs if "comparison" not in run.metrics]
    if old:
        raise RunDirError(f"{old}: written before verdicts had intervals and costs; rerun them to aggregate")
    return runs


def summarise_runs(runs: list[RunFiles]) -> dict:
    """report.json: per task, every run's SLM and the selected one, with what decided."""
    tasks: dict[str, list[RunFiles]] = {}
    for run in runs:
        tasks.setdefault(run.metrics["recipe"], []).append(run)
    return {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "runs": len(runs),
        "tasks": {name: _summarise_task(task_runs) for name, task_runs in sorted(tasks.items())},
    }


def _summarise_task(runs: list[RunFiles]) -> dict:
    metric = runs[0].metrics["comparison"]["metric"]
    by_validation = all("validation" in run.metrics["candidates"]["slm"] for run in runs)

    def score(run: RunFiles) -> float:
        slm = run.metrics["candidates"]["slm"]
        return slm["validation"][metric] if by_validation else slm["quality"]["value"]

    chosen = max(runs, key=score)
    m = chosen.metrics
    llm_name = next(name for name in m["candidates"] if name != "slm")
    return {
        "kind": m["task_kind"],
        "metric": metric,
        "selected_by": "validation" if by_validation else "test (no validation predictions: optimistic)",
        "selected_run": str(chosen.run_dir),
        "base_model": m["training"]["base_model"],
        "llm": m["candidates"][llm_name]["model"],
        "llm_name": llm_name,
        "verdict": m["decision"]["verdict"],
        "reason": m["decision"]["reason"],
        "rule": m["decision"]["rule"],
        "gap": m["comparison"]["gap"],
        "n_needed_if_equal": m["comparison"].get("n_needed_if_equal"),
        "margin": m["comparison"]["margin"],
        "economics": m["economics"],
        "hardware": m.get("hardware"),
        "cascade": m.get("cascade"),
        "data": m["data"],
        "created": m["created"],
        "candidates": m["candidates"],
        "models": [_model_point(run, metric, score(run)) for run in sorted(runs, key=score, reverse=True)],
        "worst_errors": _worst_errors(chosen),
        "latency_samples": {
            name: [row["latency_ms"] for row in rows if row.get("latency_ms")]
            for name, rows in chosen.predictions.items()
        },
        "price": (m["candidates"][llm_name].get("source") or {}).get("price"),
    }


def _model_point(run: RunFiles, metric: str, selection_score: float) -> dict:
    slm = run.metrics["candidates"]["slm"]
    interval = slm["quality"]["interval"]
    return {
        "run": str(run.run_dir),
        "base_model": run.metrics["training"]["base_model"],
        "selection_score": selection_score,
        "quality": interval["value"],
        "low": interval["low"],
        "high": interval["high"],
        "usd_per_1k": slm["cost"].get("per_1k_requests_usd"),
        "p95_ms": slm["latency_ms"]["p95"],
        "verdict": run.metrics["decision"]["verdict"],
    }


def _worst_errors(run: RunFiles) -> list[dict]:
    rows = sorted(run.predictions["slm"], key=lambda row: (row["correct"], -(row.get("confidence") or 0)))
    return [
        {key: row.get(key) for key in ("id", "input", "raw_output", "gold", "correct", "confidence")}
        for row in rows[:WORST_ERRORS]
        if row["correct"] < 1
    ]


def write_aggregate(run_dirs: list[Path], out_dir: Path) -> tuple[Path, ...]:
    """report.json, report.md and a self-contained report.html for many runs, in out_dir."""
    from slmtier.report.render import render_aggregate

    summary = summarise_runs(load_runs(run_dirs))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = out_dir / "report.json", out_dir / "report.md", out_dir / "report.html"
    paths[0].write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    markdown, html = render_aggregate(summary)
    paths[1].write_text(markdown, encoding="utf-8")
    paths[2].write_text(html, encoding="utf-8")
    return paths
