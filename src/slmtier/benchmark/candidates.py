"""Candidates: anything that answers the task's prompts. Each one's predictions land in
`predictions/<name>.jsonl`, one row per test example, scored by the task's own parser and metric.

Every candidate sees the same task prompt; a baseline may add few-shot turns. The LLM tier
(an OpenAI-compatible endpoint, a predictions file: slmtier.baselines) is one more `Candidate`.
A row whose request failed keeps its `error` and is scored like an unparseable answer.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmtier.benchmark.progress import append_rows, progress_path, read_finished
from slmtier.candidate import Answer, Candidate, answer
from slmtier.constrained import build_constraint, build_json_schema
from slmtier.data import Example
from slmtier.inference import Generation, generate_batched, merged_adapter
from slmtier.label_scoring import score_labels

log = logging.getLogger(__name__)


@dataclass
class LocalCandidate:
    """A local transformers model (optionally a PEFT model with its adapter switched off)."""

    name: str
    model: str
    hf_model: Any
    tokenizer: Any
    few_shot: list[Example] = field(default_factory=list)
    adapter_enabled: bool = True
    batch_size: int = 16
    max_new_tokens: int = 16
    bf16: bool = False  # label scoring's forward passes
    generate_bf16: bool = False  # greedy decoding (slmtier.models.resolve_generate_bf16)
    constrained_json: bool = False  # extraction: decode only JSON objects of the task's fields
    label_scoring: bool = False  # classification: score the labels instead of generating (slmtier.label_scoring)
    info: dict = field(default_factory=lambda: {"kind": "local"})
    chat_template_kwargs: dict = field(default_factory=dict)  # the model's template quirks (model config)

    def predict(self, task, examples: list[Example]) -> list[Generation]:
        conversations = [task.build_messages(example, few_shot=self.few_shot) for example in examples]
        constraint = None
        if self.constrained_json:
            schema = build_json_schema(task.fields)
            constraint = build_constraint(schema, self.tokenizer, self.hf_model.config.vocab_size)
        # The untuned baseline reuses the fine-tuned model's weights with the adapter off: one model in memory.
        switch = merged_adapter(self.hf_model) if self.adapter_enabled else self.hf_model.disable_adapter()
        with switch:
            if self.label_scoring and task.kind == "classification":
                return score_labels(
                    self.hf_model,
                    self.tokenizer,
                    conversations,
                    list(task.labels),
                    batch_size=self.batch_size,
                    bf16=self.bf16,
                    desc=self.name,
                    chat_template_kwargs=self.chat_template_kwargs,
                )
            return generate_batched(
                self.hf_model,
                self.tokenizer,
                conversations,
                batch_size=self.batch_size,
                max_new_tokens=self.max_new_tokens,
                bf16=self.generate_bf16,
                constraint=constraint,
                desc=self.name,
                chat_template_kwargs=self.chat_template_kwargs,
            )


def select_few_shot(examples: list[Example], k: int, *, seed: int) -> list[Example]:
    """k training examples, fixed by seed; for label-like targets, round-robin over labels so all show up."""
    rng = random.Random(seed)
    shuffled = examples[:]
    rng.shuffle(shuffled)
    by_target: dict[str, list[Example]] = {}
    for example in shuffled:
        by_target.setdefault(json.dumps(example.target, sort_keys=True), []).append(example)
    if len(by_target) > len(shuffled) // 2:  # free-form targets: a plain random sample
        chosen = shuffled[:k]
    else:
        queues = list(by_target.values())
        chosen = []
        while len(chosen) < min(k, len(shuffled)):
            for queue in queues:
                if queue and len(chosen) < k:
                    chosen.append(queue.pop())
        rng.shuffle(chosen)
    return chosen


# Rows a local model predicts between two writes of the progress file: its batch_size x this.
CHUNK_BATCHES = 8


def run_candidate(
    candidate: Candidate, task, examples: list[Example], predictions_dir: Path, *, split: str = "test"
) -> tuple[list[dict], PredictionTiming]:
    """Predict, parse and score every example; write predictions/<name>.jsonl (<name>.<split>.jsonl for
    other splits); return its rows and the time this process spent predicting.

    Rows are saved as they complete (slmtier.benchmark.progress): rerun in the same run directory after a
    crash or kill, the rows already there are kept and only the missing examples are predicted."""
    suffix = "" if split == "test" else f".{split}"
    final = predictions_dir / f"{candidate.name}{suffix}.jsonl"
    final.parent.mkdir(parents=True, exist_ok=True)
    done = read_finished(final, [example.id for example in examples])
    one_call = getattr(candidate, "one_call", False)
    if one_call and any(row.get("error") for row in done.values()):
        # The LLM tier again, whole: its answers come from the response cache (nothing is paid twice), the
        # failed requests get another chance, and its source counts cover the whole split again.
        log.info("%s (%s): asking again for the whole split (%d failed earlier)", candidate.name, split,
                 sum(bool(row.get("error")) for row in done.values()))  # fmt: skip
        done = {}
    todo = [example for example in examples if example.id not in done]
    if done:
        log.info("%s (%s): %d of %d rows kept from an earlier attempt", candidate.name, split, len(done), len(examples))
    width = getattr(candidate, "batch_size", None) or 16
    # The LLM tier (a log file, an endpoint behind the response cache) keeps its answers itself: one call.
    chunk = max(1, len(todo)) if one_call else max(1, width) * CHUNK_BATCHES
    wall_s = 0.0
    with progress_path(final).open("a", encoding="utf-8") as handle:
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            began = time.perf_counter()
            answers = answer(candidate, task, part)
            wall_s += time.perf_counter() - began
            rows = [build_row(task, example, reply) for example, reply in zip(part, answers, strict=True)]
            append_rows(handle, rows)
            done.update((row["id"], row) for row in rows)
    ordered = [done[example.id] for example in examples]
    write_jsonl(final, ordered)
    progress_path(final).unlink(missing_ok=True)
    if not todo:  # all predicted by an earlier attempt: its batches' wall times, from the rows
        timed = [row for row in ordered if row.get("latency_ms") is not None]
        wall_s = sum(row["latency_ms"] / 1000 / (row.get("batch_size") or 1) for row in timed)
        return ordered, PredictionTiming(rows=len(timed), wall_s=wall_s)
    return ordered, PredictionTiming(rows=len(todo), wall_s=wall_s)


@dataclass(frozen=True)
class PredictionTiming:
    rows: int  # rows this process predicted (fewer than the split after a resume)
    wall_s: float  # the time it took

    @property
    def requests_per_s(self) -> float | None:
        return self.rows / self.wall_s if self.rows and self.wall_s > 0 else None


def build_row(task, example: Example, reply: Answer) -> dict:
    """One predictions/*.jsonl row: the example, the answer (raw, parsed, confidence), its score against the
    gold target, and how it came."""
    generation = reply.generation
    numerator, denominator = task.score_parts(reply.parsed, example.target)
    row = {
        "id": example.id,
        "input": example.input,
        "raw_output": reply.raw_output,
        "parsed": reply.parsed,
        "gold": example.target,
        "correct": task.score_example(reply.parsed, example.target),
        "latency_ms": None if generation.latency_ms is None else round(generation.latency_ms, 3),
        "input_tokens": generation.input_tokens,
        "output_tokens": generation.output_tokens,
        "batch_size": generation.batch_size,
        "error": generation.error,
        "cost_usd": generation.cost_usd,
        "usage_estimated": generation.usage_estimated,
        "cached": generation.cached,
        "attempts": generation.attempts,
        "confidence": reply.confidence,
        "score_parts": [numerator, denominator],
    }
    if generation.confidence_uncalibrated is not None:
        row["confidence_uncalibrated"] = generation.confidence_uncalibrated
    if generation.hit_limit:  # only then: rows of answers that ended on their own stay as they were
        row["hit_limit"] = True
    return row


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write to a temporary name and rename, so a killed run never leaves a half file that looks whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    partial.replace(path)
