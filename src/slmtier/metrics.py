"""metrics.json: what a run measured and decided, as one typed record.

Written once, at the end of a run, by `slmtier.run_dir.RunDir.write_metrics`; read back by
`RunDir.read_metrics`, which every report, the routing file, the tracker and the sweep objective go through.
docs/run-directory.md describes every field. `schema_version` changes whenever a field is renamed, moved or
removed; a file of another version is refused with a message rather than half-read.

Shape (schema 2):
    recipe, task_kind, primary_metric, created, slmtier_version
    data:        {train|validation|test: {path, n, truncated_inputs}}
    candidates:  {name: CandidateMetrics}      every tier and the LLM tier, scored on the test split
    llm:         the LLM tier's candidate name (a key of candidates)
    tiers:       {name: TierResult}            each local tier: its training, its comparison with the LLM,
                                               its cascade and its monthly economics
    lead_tier:   the tier the verdict is about (the chosen one; for `llm`, the best local one)
    hardware:    the hardware profile the local tiers are priced with
    decision:    slmtier.benchmark.decide.Decision
    generation:  {max_new_tokens, derived, longest_train_target_tokens}: how long a local model's answer may
                 run (the SLM tier, a local baseline, `slmtier serve`); derived: fitted to the task because
                 inference.max_new_tokens was null; None in runs without a generative base model
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict

from slmtier.benchmark.decide import Decision

SCHEMA_VERSION = 2


class SplitData(TypedDict):
    path: str | None
    n: int
    truncated_inputs: int  # inputs longer than task.max_input_words, cut before the model saw them


class CandidateMetrics(TypedDict, total=False):
    """One candidate on the test split. Besides these keys it holds its task's metrics by name (accuracy,
    macro_f1, per_label, micro_f1, per_field, rougeL, ...: slmtier.tasks.<kind>.score)."""

    model: str
    n: int
    quality: dict  # {metric, value, interval: {value, low, high, n, confidence, metric}}
    # {mean, p50, p95, p99, concurrency}: one request's own time at that concurrency (a local tier: one at a
    # time, n requests, their samples; slmtier.benchmark.speed); None values when no request was timed
    latency_ms: dict
    tokens_per_request: dict  # {input, output, estimated_rows}
    requests: dict  # {answered, failed, failure_rate, failure_reasons, from_cache, http_attempts}
    cost: dict  # {total_usd, per_1k_requests_usd, priced_rows, basis, requests_per_s, contended}
    source: dict | None  # where the answers came from (the LLM tier: kind, endpoint or file, price)
    # {requests_per_s, wall_s, rows_timed, concurrency}; a local tier's also {cpu_share, others_cpu_share,
    # contended}: measured in a pass of its own, flagged when other processes took the CPU meanwhile
    throughput: dict
    validation: dict  # {n, <parts metric>}: on the validation split, when it was predicted
    extra: dict  # task.extra_metrics (BERTScore, ...)
    hit_limit: int  # answers a local model stopped at generation.max_new_tokens, not on its own (cut short?)


@dataclass
class TierResult:
    """One local tier: what its module records about its training (slmtier.tiers.<name>.complete_entry), its
    paired comparison with the LLM, its cascade fitted on validation (None when none could be fitted) and
    the monthly economics at the projected volume (`local`: this tier's boxes and dollars)."""

    training: dict
    comparison: dict
    cascade: dict | None
    economics: dict


@dataclass
class RunMetrics:
    recipe: str
    task_kind: str
    primary_metric: str
    created: str
    slmtier_version: str
    data: dict[str, SplitData]
    candidates: dict[str, CandidateMetrics]
    llm: str
    tiers: dict[str, TierResult]
    lead_tier: str
    hardware: dict
    decision: Decision
    generation: dict | None = None
    # Where the local tiers' training targets came from: {"source": "gold"}, or the teacher's data card
    # ({"source": "llm", "model": ..., "labelled": ..., "dropped": {...}, "spent_usd": ...}).
    targets: dict = field(default_factory=lambda: {"source": "gold"})
    schema_version: int = field(default=SCHEMA_VERSION)

    @property
    def lead(self) -> TierResult:
        return self.tiers[self.lead_tier]

    @property
    def verdict(self) -> str:
        return self.decision.verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            **{k: v for k, v in asdict(self).items() if k != "schema_version"},
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunMetrics:
        """The record from a parsed metrics.json; ValueError when it is of another schema or lacks a field."""
        version = raw.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {version!r}, and this slmtier reads {SCHEMA_VERSION}: the run was written by "
                f"slmtier {raw.get('slmtier_version', 'before 0.1.0')}; rebuild it with that version, or rerun it"
            )
        names = set(cls.__dataclass_fields__)
        optional = {"targets"}  # added later, with a default: runs written before it read as gold-taught
        missing, unknown = names - raw.keys() - optional, raw.keys() - names
        if missing or unknown:
            raise ValueError(f"fields missing {sorted(missing)}, unknown {sorted(unknown)}")
        values = dict(raw)
        values["tiers"] = {name: TierResult(**entry) for name, entry in raw["tiers"].items()}
        values["decision"] = Decision(**raw["decision"])
        return cls(**values)
