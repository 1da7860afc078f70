"""What live traffic is compared with: the routing.yaml as deployed and the run it was decided in.

The reference is the local tier on the run's held-out splits (its confidences, its answers, the inputs: validation
and test by default, as many examples as the run has that the tier never trained on; the more, the smaller the
drift a window can show), and its agreement with the LLM on the test split for the requests it would answer itself
(a cascade escalates the rest), scored with the task's own metric: the same quantity the shadow sample measures live.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmtier.errors import SlmtierError
from slmtier.report.routing import routing_id
from slmtier.run_dir import RunDir
from slmtier.serve.routes import read_routing
from slmtier.tasks import build_task, plain_answer
from slmtier.tiers import TIERS

SPLITS = ("validation", "test")


@dataclass
class Reference:
    path: Path  # the routing.yaml
    routing: dict
    routing_id: str
    run: RunDir
    task: Any
    tier: str  # encoder | slm | cascade | llm
    local: str | None  # the local tier answering (first), or None for tier llm
    llm: str  # the LLM tier's name in the run's predictions
    margin: float  # the acceptance policy's non-inferiority margin
    escalate_below: float | None
    expected_escalation_rate: float | None
    shadow_rate: float
    confidences: list[float]  # the local tier's, on the reference splits
    answers: list[Any]  # the local tier's answers on the reference splits, as the router logs them
    inputs: list[str]  # the reference splits' inputs
    agreement: list[float]  # per test request the local tier would answer: its score against the LLM's answer
    expected: dict  # routing.yaml `expected`
    gold_scores: list[float] = field(default_factory=list)  # the deployed tier's per-example test score vs gold
    splits: tuple[str, ...] = SPLITS  # the splits the confidences, answers and inputs come from
    llm_unparsed: tuple[int, int] | None = None  # (the LLM's answers its parser could not read, answers) on test

    @property
    def name(self) -> str:
        return self.routing["task"]

    def parse(self, answer: Any) -> Any:
        """A logged answer (a label, a JSON object, a summary) back in the task's parsed form, for scoring."""
        if answer is None:
            return None
        return self.task.parse(answer if isinstance(answer, str) else json.dumps(answer))

    def score(self, answer: Any, reference: Any) -> float | None:
        """The task's metric (label match, field F1, ROUGE-L) in [0, 1] of a parsed answer against a reference
        answer in its logged form (the LLM's, or a human label); None without a reference to score against."""
        if reference is None:
            return None
        numerator, denominator = self.task.score_parts(answer, reference)
        return numerator / denominator if denominator else 1.0


def load_reference(path: Path, splits: tuple[str, ...] = SPLITS) -> Reference:
    """The routing.yaml at `path` and its run; `splits`: whose local-tier predictions are the reference
    population (a benchmark replaying the test split as traffic passes ("validation",), so that no replayed
    input is also in the reference)."""
    unknown = [split for split in splits if split not in SPLITS]
    if unknown or not splits:
        raise SlmtierError(f"reference splits {list(splits)}: choose from {', '.join(SPLITS)}")
    routing = read_routing(path)
    tier = routing["tier"]
    if tier == "undecided":
        raise SlmtierError(f"{path}: no verdict was reached, so nothing was routed to monitor")
    run = RunDir(routing["run_dir"])
    if not run.path.is_dir():
        raise SlmtierError(f"{path}: its run directory {run.path} is not there; the monitor compares with its files")
    metrics = run.check_files()
    cfg = run.read_config()
    task = build_task(cfg.task)
    cascade = routing.get("cascade") or {}
    local = cascade.get("via") if tier == "cascade" else (tier if tier in TIERS else None)
    reference = Reference(
        path=Path(path), routing=routing, routing_id=routing_id(routing), run=run, task=task, tier=tier,
        local=local, llm=metrics.llm, margin=float(cfg.decision.margin),
        escalate_below=cascade.get("escalate_below"), expected_escalation_rate=cascade.get("expected_escalation_rate"),
        shadow_rate=float((routing.get("shadow") or {}).get("rate", 0.0)), confidences=[], answers=[], inputs=[],
        agreement=[], expected=routing.get("expected") or {}, splits=tuple(splits),
    )  # fmt: skip
    llm_test = [row for row in _rows(run, metrics.llm, "test") if not row.get("error")]
    if llm_test:
        reference.llm_unparsed = (sum(row["parsed"] is None for row in llm_test), len(llm_test))
    tier_rows = _rows(run, local or metrics.llm, "test")
    reference.gold_scores = [n / d if d else 1.0 for n, d in (row["score_parts"] for row in tier_rows)]
    if local is None:
        return reference
    held_out = [row for split in splits for row in _rows(run, local, split)]
    if not held_out:
        raise SlmtierError(f"{run.path}: no predictions of the {local} tier on its {' or '.join(splits)} split: "
                           "choose another --reference-splits, or rerun the benchmark")  # fmt: skip
    reference.confidences = [row["confidence"] for row in held_out if row.get("confidence") is not None]
    reference.answers = [plain_answer(row["parsed"]) for row in held_out]
    reference.inputs = [row["input"] for row in held_out if row.get("input")]
    llm_rows = {row["id"]: row for row in _rows(run, metrics.llm, "test")}
    for row in _rows(run, local, "test"):
        other = llm_rows.get(row["id"])
        if other is None or (
            reference.escalate_below is not None and (row["confidence"] or 0) < reference.escalate_below
        ):
            continue
        score = reference.score(row["parsed"], plain_answer(other["parsed"]))
        if score is not None:
            reference.agreement.append(score)
    return reference


def _rows(run: RunDir, candidate: str, split: str) -> list[dict]:
    try:
        return run.read_predictions(candidate, split)
    except FileNotFoundError:
        return []
