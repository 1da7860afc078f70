"""The architect report: any number of runs (tasks x base models x seeds) in one place, from their files.

Per task, the model to deploy is chosen on the validation split: the best validation score among the task's
runs, of each run's generative SLM (or of its encoder, in runs without the SLM tier). Its verdict, costs and
errors are then the ones measured on the test split, which played no part in the choice. Without validation
predictions the choice falls back to test scores, and the report says the figures are then optimistic.
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


def local_tier(metrics: dict) -> str:
    """The tier a run is compared by across runs: its generative SLM, else (an encoder-only run) its encoder."""
    return "slm" if "slm" in metrics["candidates"] else metrics.get("lead_tier", "slm")


def base_model(metrics: dict) -> str:
    return metrics["training"]["base_model"] if local_tier(metrics) == "slm" else metrics["encoder"]["model"]


def _summarise_task(runs: list[RunFiles]) -> dict:
    metric = runs[0].metrics["comparison"]["metric"]
    by_validation = all("validation" in run.metrics["candidates"][local_tier(run.metrics)] for run in runs)

    def score(run: RunFiles) -> float:
        tier = run.metrics["candidates"][local_tier(run.metrics)]
        return tier["validation"][metric] if by_validation else tier["quality"]["value"]

    chosen = max(runs, key=score)
    m = chosen.metrics
    tier = local_tier(m)
    llm_name = next(name for name in m["candidates"] if name not in (m.get("tiers") or {"slm": None}))
    entry = (m.get("tiers") or {}).get(tier, m)  # this tier's comparison, cascade and economics
    comparison = entry["comparison"]
    return {
        "kind": m["task_kind"],
        "metric": metric,
        "tier": tier,
        "selected_by": "validation" if by_validation else "test (no validation predictions: optimistic)",
        "selected_run": str(chosen.run_dir),
        "base_model": base_model(m),
        "llm": m["candidates"][llm_name]["model"],
        "llm_name": llm_name,
        "verdict": m["decision"]["verdict"],
        "reason": m["decision"]["reason"],
        "rule": m["decision"]["rule"],
        "gap": comparison["gap"],
        "n_needed_if_equal": comparison.get("n_needed_if_equal"),
        "margin": comparison["margin"],
        "economics": entry["economics"],
        "hardware": m.get("hardware"),
        "cascade": entry.get("cascade"),
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
    slm = run.metrics["candidates"][local_tier(run.metrics)]
    interval = slm["quality"]["interval"]
    return {
        "run": str(run.run_dir),
        "base_model": base_model(run.metrics),
        "selection_score": selection_score,
        "quality": interval["value"],
        "low": interval["low"],
        "high": interval["high"],
        "usd_per_1k": slm["cost"].get("per_1k_requests_usd"),
        "p95_ms": slm["latency_ms"]["p95"],
        "verdict": run.metrics["decision"]["verdict"],
    }


def _worst_errors(run: RunFiles) -> list[dict]:
    rows = sorted(
        run.predictions[local_tier(run.metrics)], key=lambda row: (row["correct"], -(row.get("confidence") or 0))
    )
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
