"""The benchmark of one run: every tier and the LLM answer the test split (and the validation split, for the
cascade), then the figures, the comparison and the verdict go into metrics.json."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import slmtier
from slmtier.benchmark.candidates import run_candidate
from slmtier.benchmark.speed import measure_speed
from slmtier.benchmark.summary import summarise_candidate
from slmtier.benchmark.verdict import assess
from slmtier.candidate import Candidate
from slmtier.config import DecisionConfig, HardwareConfig, RunConfig
from slmtier.data import Splits, resolve_data_path
from slmtier.metrics import RunMetrics, SplitData, TierResult
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
        if candidate.info.get("kind") == "local":  # its own step: per-request latency, throughput, contention
            result["latency_ms"], result["throughput"] = measure_speed(candidate, task, splits.test)
        else:  # an endpoint: each row's own request time, at the client's concurrency
            concurrency = getattr(getattr(candidate, "endpoint", None), "max_concurrency", None)
            result["latency_ms"]["concurrency"] = concurrency
            result["throughput"] = {"requests_per_s": timing.requests_per_s, "wall_s": timing.wall_s,
                                    "rows_timed": timing.rows, "concurrency": concurrency}  # fmt: skip
        run.results[candidate.name], run.test_rows[candidate.name] = result, rows
        log.info("%s: %s = %.3f", candidate.name, task.metric, result["quality"]["value"])
    return run


def summarise_run(cfg: RunConfig, recipe: str, task, splits: Splits, tiers: dict[str, Prepared], run: BenchmarkRun,
                  *, generation: dict | None = None, targets: dict | None = None) -> RunMetrics:  # fmt: skip
    """metrics.json of a run: what ran on what, each tier's block (its training, calibration), the
    candidates' metrics, each tier's comparison with the LLM, cascade and costs, the decision, the
    generation budget (slmtier.tiers.slm.fit_generation_budget), and where the training targets came from
    (`targets`: gold, or the teacher's data card, slmtier.baselines.teacher)."""
    paths = {"train": cfg.data.train, "validation": cfg.data.validation, "test": cfg.data.test}
    data = {
        split: SplitData(
            path=str(resolve_data_path(path)) if path else None,
            n=len(getattr(splits, split)),
            truncated_inputs=count_truncated([e.input for e in getattr(splits, split)], cfg.task.max_input_words),
        )
        for split, path in paths.items()
    }
    return assemble_metrics(
        task, run, recipe=recipe, data=data, llm=cfg.baseline.name, policy=cfg.decision, hardware=cfg.hardware,
        entries={name: TIERS[name].complete_entry(tier.entry, run.test_rows[name]) for name, tier in tiers.items()},
        prices={name: functools.partial(TIERS[name].price, cfg.hardware) for name in tiers}, generation=generation,
        targets=targets or {"source": "gold"},
    )  # fmt: skip


def assemble_metrics(task, run: BenchmarkRun, *, recipe: str, data: dict[str, SplitData], entries: dict[str, dict],
                     prices: dict[str, Callable], llm: str, policy: DecisionConfig,
                     hardware: HardwareConfig, generation: dict | None = None,
                     targets: dict | None = None) -> RunMetrics:  # fmt: skip
    """The verdict over the benchmarked candidates (`entries`: each local tier's training block, `prices`:
    each local tier's price as a function of its measured throughput), as metrics.json's record."""
    assessment = assess(task, run.results, run.test_rows, run.validation_rows, tiers=prices, llm=llm,
                        policy=policy, hardware=hardware)  # fmt: skip
    return RunMetrics(
        recipe=recipe,
        task_kind=task.kind,
        primary_metric=task.metric,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        slmtier_version=slmtier.__version__,
        data=data,
        candidates=run.results,
        llm=llm,
        tiers={name: TierResult(training=entries[name], **assessment.tiers[name]) for name in prices},
        lead_tier=assessment.lead_tier,
        hardware=asdict(hardware),
        decision=assessment.decision,
        generation=generation,
        targets=targets or {"source": "gold"},
    )
