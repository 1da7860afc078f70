"""Experiment trackers beyond the Trainer's own logging: the benchmark's figures, the verdict and the run's
reports go to the same tracker run the training curves went to.

W&B reads its key from WANDB_API_KEY itself; `WANDB_MODE=offline` keeps everything local (sync later with
`wandb sync`). The config sent is slmtier's resolved config, which holds key *variable names* only.
"""

from __future__ import annotations

import logging
from pathlib import Path

from slmtier.metrics import RunMetrics

log = logging.getLogger(__name__)

ARTEFACT_FILES = ("metrics.json", "report.md", "report.html", "routing.yaml", "config.yaml")


def flatten_metrics(metrics: RunMetrics) -> dict[str, float | str]:
    """The headline numbers of metrics.json as flat tracker keys (quality, costs, latency, verdict; the gap
    and the saving are the lead tier's)."""
    flat: dict[str, float | str] = {"verdict": metrics.verdict}
    for name, candidate in metrics.candidates.items():
        flat[f"{name}/quality"] = candidate["quality"]["value"]
        for key in ("low", "high"):
            flat[f"{name}/quality_{key}"] = candidate["quality"]["interval"][key]
        flat[f"{name}/latency_p95_ms"] = candidate["latency_ms"]["p95"]
        flat[f"{name}/usd_per_1k"] = candidate["cost"]["per_1k_requests_usd"]
    gap = metrics.lead.comparison["gap"]
    flat.update({"gap/value": gap["value"], "gap/low": gap["low"], "gap/high": gap["high"]})
    flat["monthly/saving_usd"] = metrics.lead.economics.get("saving_usd")
    return {key: value for key, value in flat.items() if value is not None}


def sweep_objective(metrics: RunMetrics) -> float | None:
    """The generative SLM tier's validation score (its per-example metric), or the first local tier's in a
    run without it; None without a validation split. Never the test score: the test split stays untouched by
    model and hyper-parameter choices."""
    tier = "slm" if "slm" in metrics.tiers else next(iter(metrics.tiers))
    return (metrics.candidates[tier].get("validation") or {}).get(metrics.tiers[tier].comparison["metric"])


def log_run(report_to: list[str], *, run_dir: Path, metrics: RunMetrics, config: dict) -> None:
    """Send the benchmark and the reports to each tracker named in tracking.report_to."""
    if "wandb" in report_to:
        _log_wandb(run_dir, metrics, config)
    if "tensorboard" in report_to:
        _log_tensorboard(run_dir, metrics)


def _log_wandb(run_dir: Path, metrics: RunMetrics, config: dict) -> None:
    import wandb

    run = wandb.run or wandb.init(project="slmtier", name=f"{metrics.recipe}-{run_dir.name}", dir=str(run_dir))
    run.config.update({"slmtier": config}, allow_val_change=True)
    flat = flatten_metrics(metrics)
    run.log({f"benchmark/{key}": value for key, value in flat.items() if not isinstance(value, str)})
    run.summary.update({f"benchmark/{key}": value for key, value in flat.items()})
    artefact = wandb.Artifact(f"slmtier-{metrics.recipe}", type="slmtier-run", metadata={"verdict": flat["verdict"]})
    for name in ARTEFACT_FILES:
        if (run_dir / name).is_file():
            artefact.add_file(str(run_dir / name))
    run.log_artifact(artefact)
    run.finish()


def _log_tensorboard(run_dir: Path, metrics: RunMetrics) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(run_dir / "tensorboard")) as writer:
        for key, value in flatten_metrics(metrics).items():
            if isinstance(value, str):
                writer.add_text(f"benchmark/{key}", value)
            else:
                writer.add_scalar(f"benchmark/{key}", value)


MONITOR_FIGURES = ("requests", "escalation_rate", "shadow_agreement", "estimated_quality", "p95_ms", "usd_per_1k")


def log_monitor(result: dict, out: Path) -> None:
    """`slmtier monitor --tracking wandb`: each task's window figures as a W&B time series (step = the window's
    start, Unix seconds), the checks that fired in the summary, and monitor.{json,md,html} as an artefact."""
    import wandb

    run = wandb.init(project="slmtier", job_type="monitor", name=f"monitor-{out.name}", dir=str(out))
    for task in result["tasks"]:
        for window in task["windows"]:
            prefix = f"monitor/{task['task']}"
            figures = {f"{prefix}/{key}": window[key] for key in MONITOR_FIGURES if window[key] is not None}
            figures[f"{prefix}/checks_fired"] = sum(check["fired"] for check in window["checks"])
            run.log({"window_start": window["start"], **figures})
    run.summary.update({"monitor/status": result["status"], "monitor/fired": len(result["fired"])})
    artefact = wandb.Artifact(f"slmtier-monitor-{out.name}", type="slmtier-monitor")
    for name in ("monitor.json", "monitor.md", "monitor.html"):
        artefact.add_file(str(out / name))
    run.log_artifact(artefact)
    run.finish()
