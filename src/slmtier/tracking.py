"""Experiment trackers beyond the Trainer's own logging: the benchmark's figures, the verdict and the run's
reports go to the same tracker run the training curves went to.

W&B reads its key from WANDB_API_KEY itself; `WANDB_MODE=offline` keeps everything local (sync later with
`wandb sync`). The config sent is slmtier's resolved config, which holds key *variable names* only.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

ARTEFACT_FILES = ("metrics.json", "report.md", "report.html", "routing.yaml", "config.yaml")


def flatten_metrics(metrics: dict) -> dict[str, float | str]:
    """The headline numbers of metrics.json as flat tracker keys (quality, costs, latency, verdict)."""
    flat: dict[str, float | str] = {"verdict": metrics["decision"]["verdict"]}
    for name, candidate in metrics["candidates"].items():
        flat[f"{name}/quality"] = candidate["quality"]["value"]
        for key in ("low", "high"):
            flat[f"{name}/quality_{key}"] = (candidate["quality"].get("interval") or {}).get(key)
        flat[f"{name}/latency_p95_ms"] = candidate["latency_ms"]["p95"]
        flat[f"{name}/usd_per_1k"] = candidate["cost"].get("per_1k_requests_usd")
    gap = (metrics.get("comparison") or {}).get("gap") or {}
    flat.update({"gap/value": gap.get("value"), "gap/low": gap.get("low"), "gap/high": gap.get("high")})
    economics = metrics.get("economics") or {}
    flat["monthly/saving_usd"] = economics.get("saving_usd")
    return {key: value for key, value in flat.items() if value is not None}


def sweep_objective(metrics: dict) -> float | None:
    """The fine-tuned SLM's validation score (its per-example metric), or the encoder's in a run without the
    SLM tier; None without a validation split. Never the test score: the test split stays untouched by model
    and hyper-parameter choices."""
    metric = (metrics.get("comparison") or {}).get("metric")
    tier = "slm" if "slm" in metrics["candidates"] else "encoder"
    return (metrics["candidates"][tier].get("validation") or {}).get(metric)


def log_run(report_to: list[str], *, run_dir: Path, metrics: dict, config: dict) -> None:
    """Send the benchmark and the reports to each tracker named in tracking.report_to."""
    if "wandb" in report_to:
        _log_wandb(run_dir, metrics, config)
    if "tensorboard" in report_to:
        _log_tensorboard(run_dir, metrics)


def _log_wandb(run_dir: Path, metrics: dict, config: dict) -> None:
    import wandb

    run = wandb.run or wandb.init(project="slmtier", name=f"{metrics['recipe']}-{run_dir.name}", dir=str(run_dir))
    run.config.update({"slmtier": config}, allow_val_change=True)
    flat = flatten_metrics(metrics)
    run.log({f"benchmark/{key}": value for key, value in flat.items() if not isinstance(value, str)})
    run.summary.update({f"benchmark/{key}": value for key, value in flat.items()})
    artefact = wandb.Artifact(f"slmtier-{metrics['recipe']}", type="slmtier-run", metadata={"verdict": flat["verdict"]})
    for name in ARTEFACT_FILES:
        if (run_dir / name).is_file():
            artefact.add_file(str(run_dir / name))
    run.log_artifact(artefact)
    run.finish()


def _log_tensorboard(run_dir: Path, metrics: dict) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(run_dir / "tensorboard")) as writer:
        for key, value in flatten_metrics(metrics).items():
            if isinstance(value, str):
                writer.add_text(f"benchmark/{key}", value)
            else:
                writer.add_scalar(f"benchmark/{key}", value)
