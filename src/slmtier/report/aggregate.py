"""The architect report: any number of runs (tasks x base models x seeds) in one place, from their files.

Each run's verdict names a tier (metrics.json `lead_tier`: the tier chosen, or for `llm` the run's best local
tier). Per task, the run shown is the one whose verdict's tier scores best on the validation split; its
verdict, its tiers side by side, costs and errors are then the ones measured on the test split, which played
no part in the choice. Every local tier of every run is listed too. Without validation predictions the choice
falls back to test scores, and the report says the figures are then optimistic.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from slmtier.report.render import RunFiles, load_run, tier_rows

WORST_ERRORS = 5


def load_runs(run_dirs: list[Path]) -> list[RunFiles]:
    return [load_run(Path(d)) for d in run_dirs]


def summarise_runs(runs: list[RunFiles]) -> dict:
    """report.json: per task, the selected run's verdict and tiers, every run's local tiers, what decided."""
    tasks: dict[str, list[RunFiles]] = {}
    for run in runs:
        tasks.setdefault(run.metrics.recipe, []).append(run)
    return {
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "runs": len(runs),
        "tasks": {name: _summarise_task(task_runs) for name, task_runs in sorted(tasks.items())},
    }


def _summarise_task(runs: list[RunFiles]) -> dict:
    metric = runs[0].metrics.lead.comparison["metric"]
    by_validation = all("validation" in run.metrics.candidates[tier] for run in runs for tier in run.metrics.tiers)

    def score(run: RunFiles, tier: str) -> float:
        candidate = run.metrics.candidates[tier]
        return candidate["validation"][metric] if by_validation else candidate["quality"]["value"]

    chosen = max(runs, key=lambda run: score(run, run.metrics.lead_tier))
    m = chosen.metrics
    tier, entry = m.lead_tier, m.lead  # the verdict's tier: its training, comparison, cascade and economics
    points = [_model_point(run, name, score(run, name)) for run in runs for name in run.metrics.tiers]
    return {
        "kind": m.task_kind,
        "metric": metric,
        "tier": tier,
        "selected_by": "validation" if by_validation else "test (no validation predictions: optimistic)",
        "selected_run": str(chosen.run_dir),
        "base_model": entry.training["base_model"],
        "llm": m.candidates[m.llm]["model"],
        "llm_name": m.llm,
        "verdict": m.decision.verdict,
        "reason": m.decision.reason,
        "rule": m.decision.rule,
        "gap": entry.comparison["gap"],
        "n_needed_if_equal": entry.comparison.get("n_needed_if_equal"),
        "margin": entry.comparison["margin"],
        "economics": entry.economics,
        "hardware": m.hardware,
        "cascade": entry.cascade,
        "data": m.data,
        "created": m.created,
        "candidates": m.candidates,
        "local_tiers": list(m.tiers),
        "tiers": tier_rows(m),
        "models": sorted(points, key=lambda point: point["selection_score"], reverse=True),
        "worst_errors": _worst_errors(chosen, tier),
        "latency_samples": {
            name: [row["latency_ms"] for row in rows if row.get("latency_ms")]
            for name, rows in chosen.predictions.items()
        },
        "price": m.candidates[m.llm]["source"].get("price"),
        "learning_curve": learning_curve(runs),
    }


def learning_curve(runs: list[RunFiles]) -> dict | None:
    """Quality against train size, when a task's runs differ in it (`python train.py -m ...
    data.max_train_examples=50,100,200,null`, nested samples): per local tier (and base model) each run's
    test quality with its interval and whether it passes the non-inferiority check against the LLM
    (gap's lower bound above -margin); the LLM's line; and per tier the smallest size at which every run of
    it passes. None when every run trained on the same number of rows."""
    sizes = {run.metrics.data["train"]["n"] for run in runs}
    if len(sizes) < 2:
        return None
    tiers: dict[str, list[dict]] = {}
    llm = []
    for run in sorted(runs, key=lambda run: run.metrics.data["train"]["n"]):
        m, n = run.metrics, run.metrics.data["train"]["n"]
        interval = m.candidates[m.llm]["quality"]["interval"]
        llm.append({"n": n, "quality": interval["value"], "low": interval["low"], "high": interval["high"]})
        for name, tier in m.tiers.items():
            interval, gap = m.candidates[name]["quality"]["interval"], tier.comparison["gap"]
            key = f"{name} ({tier.training['base_model']})"
            tiers.setdefault(key, []).append({
                "n": n, "quality": interval["value"], "low": interval["low"], "high": interval["high"],
                "gap_low": gap["low"], "passes": gap["low"] > -tier.comparison["margin"], "run": str(run.run_dir),
                "targets": m.targets.get("source", "gold"),
            })  # fmt: skip
    smallest = {}
    for key, points in tiers.items():
        passing = [n for n in sorted({p["n"] for p in points}) if all(p["passes"] for p in points if p["n"] == n)]
        smallest[key] = passing[0] if passing else None
    return {"sizes": sorted(sizes), "tiers": tiers, "llm": llm, "smallest_passing": smallest,
            "margin": runs[0].metrics.lead.comparison["margin"]}  # fmt: skip


def _model_point(run: RunFiles, tier: str, selection_score: float) -> dict:
    candidate = run.metrics.candidates[tier]
    interval = candidate["quality"]["interval"]
    return {
        "run": str(run.run_dir),
        "tier": tier,
        "base_model": run.metrics.tiers[tier].training["base_model"],
        "selection_score": selection_score,
        "quality": interval["value"],
        "low": interval["low"],
        "high": interval["high"],
        "usd_per_1k": candidate["cost"]["per_1k_requests_usd"],
        "p95_ms": candidate["latency_ms"]["p95"],
        "verdict": run.metrics.verdict,
    }


def _worst_errors(run: RunFiles, tier: str) -> list[dict]:
    rows = sorted(run.predictions[tier], key=lambda row: (row["correct"], -(row.get("confidence") or 0)))
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
