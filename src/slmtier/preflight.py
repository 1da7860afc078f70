"""What is checked before any data or model is loaded: the config's values, each requested tier's settings
and the LLM tier's (key present, endpoint answering, log file there). A typo fails here, not after an hour."""

from __future__ import annotations

from slmtier.baselines.tier import check_llm_tier
from slmtier.benchmark.extra_metrics import check_metric_paths
from slmtier.config import RunConfig
from slmtier.errors import SlmtierError
from slmtier.tiers import check_tiers


def check_config(cfg: RunConfig) -> None:
    """Value checks the schema cannot express."""
    check_tiers(cfg)
    if cfg.inference.constrained_json and cfg.task.kind != "extraction":
        raise SlmtierError("inference.constrained_json applies to extraction recipes only (JSON answers)")
    check_metric_paths(cfg.task.extra_metrics)
    check_llm_tier(cfg)
    if cfg.data.train_targets not in ("gold", "llm"):
        raise SlmtierError(f"data.train_targets={cfg.data.train_targets!r}: gold (each row's) or llm (the LLM's)")
    if cfg.data.train_targets == "llm" and cfg.baseline.kind == "local":
        raise SlmtierError(
            "data.train_targets=llm learns from the LLM tier, and baseline.kind=local is the SLM's own untuned base "
            "model: nothing to learn from. Point the baseline at an LLM (baseline=openai_compatible: your LLM, or a "
            "bigger model behind `transformers serve` or `slmtier serve`), or at its logged answers "
            "(baseline=predictions)"
        )
    if cfg.data.teacher_max_usd is not None and cfg.data.teacher_max_usd <= 0:
        raise SlmtierError(f"data.teacher_max_usd={cfg.data.teacher_max_usd}: a budget in USD above 0, or null")
