"""The benchmark of one run: every tier and the LLM answer the test split (and the validation split, for the
cascade), then the figures, the comparison and the verdict go into metrics.json."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import slmtier
from slmtier.benchmark.candidates import run_candidate
from slmtier.benchmark.summary import summarise_candidate
from slmtier.benchmark.verdict import assess
from slmtier.candidate import Candidate
from slmtier.config import RunConfig
from slmtier.data import Splits, resolve_data_path
from slmtier.tasks.chat import count_truncated
from slmtier.tiers import TIERS, Prepared

log = logging.getLogger(__name__)


@dataclass
class BenchmarkRun:
    results: dict[str, dict]  # candidate name -> its metrics.json entry (test split)
    test_rows: dict[str, list[dict]]
    validation_rows: dict[str, list[dict]]  # empty when the validation split was not predicted


def run_benchmark(
    task, candidates: list[Candidate], splits: Splits, predictions_dir: Path, *, extra_metrics=(), validation=False
) -> BenchmarkRun:
    """Predict the test split (and, for fitting the cascade and choosing models, the validation split)
    with every candidate."""
    run = BenchmarkRun({}, {}, {})
    for candidate in candidates:
        if validation and splits.validation:
            run.validation_rows[candidate.name], _ = run_candidate(
                candidate, task, splits.validation, predictions_dir, split="validation"
            )
        rows, timing = run_candidate(candidate, task, splits.test, predictions_dir)
        result = summarise_candidate(task, rows, model=candidate.model, extra_metrics=extra_metrics)
        result["source"] = candidate.info
        concurrency = getattr(candidate, "batch_size", None) or getattr(
            getattr(candidate, "endpoint", None), "max_concurrency", None
        )
        result["throughput"] = {"requests_per_s": timing.requests_per_s, "wall_s": timing.wall_s,
                                "rows_timed": timing.rows, "concurrency": concurrency}  # fmt: skip
        run.results[candidate.name], run.test_rows[candidate.name] = result, rows
        log.info("%s: %s = %.3f", candidate.name, task.metric, result["quality"]["value"])
    return run


def summarise_run(cfg: RunConfig, recipe: str, task, splits: Splits, tiers: dict[str, Prepared],
                  run: BenchmarkRun) -> dict:  # fmt: skip
    """metrics.json: what ran on what, the candidates' metrics, each tier's block (its training, calibration),
    each tier's comparison with the LLM, cascade and costs, and the decision."""
    verdict = assess(
        task, run.results, run.test_rows, run.validation_rows,
        tiers=list(tiers), llm=cfg.baseline.name, policy=cfg.decision, hardware=cfg.hardware,
    )  # fmt: skip
    entries = {
        module.ENTRY: module.complete_entry(tiers[name].entry, run.test_rows[name]) if name in tiers else None
        for name, module in TIERS.items()
    }
    paths = {"train": cfg.data.train, "validation": cfg.data.validation, "test": cfg.data.test}
    limit = cfg.task.max_input_words
    return {
        "recipe": recipe,
        "task_kind": task.kind,
        "primary_metric": task.metric,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "slmtier_version": slmtier.__version__,
        "data": {
            split: {
                "path": str(resolve_data_path(path)) if path else None,
                "n": len(getattr(splits, split)),
                "truncated_inputs": count_truncated([e.input for e in getattr(splits, split)], limit),
            }
            for split, path in paths.items()
        },
        **entries,
        "candidates": run.results,
        "hardware": asdict(cfg.hardware),
        **verdict,
    }
