"""What every answering path shares: a `Candidate` answers a task's examples, and `answer` turns its raw
output into the task's answer (the task's parser) with the confidence a cascade compares with its threshold.

The benchmark (slmtier.benchmark.candidates.run_candidate) and anything that serves a tier call `answer`, so a
served answer is the benchmarked answer by construction: same prompt (built by the task inside the
candidate), same parser, same confidence. Local tiers are in slmtier.tiers, the LLM tier in slmtier.baselines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from slmtier.benchmark.confidence import confidence_of
from slmtier.data import Example
from slmtier.inference import Generation


class Candidate(Protocol):
    name: str
    model: str  # what the report calls it: a model name and how it was prompted or tuned
    info: dict  # where its answers came from (endpoint, cache, file); recorded in metrics.json

    def predict(self, task, examples: list[Example]) -> list[Generation]: ...


@dataclass(frozen=True)
class Answer:
    """One example's answer: the raw output, its parse (None = unparseable, a counted finding), the confidence
    (None where a candidate has none, as the LLM tier), and how it came (latency, tokens, cost, error)."""

    raw_output: str
    parsed: Any
    confidence: float | None
    generation: Generation


def answer(candidate: Candidate, task, examples: list[Example]) -> list[Answer]:
    """The candidate's answers to `examples`, parsed by the task and with their confidence, in input order."""
    return answers_of(task, candidate.predict(task, examples))


async def answer_async(candidate, task, examples: list[Example], session) -> list[Answer]:
    """`answer` for an endpoint on a running event loop (the router's LLM hop): `candidate.apredict` through a
    long-lived `session` (slmtier.baselines.openai_compatible.ChatSession), parsed the same way."""
    return answers_of(task, await candidate.apredict(task, examples, session))


def answers_of(task, generations: list[Generation]) -> list[Answer]:
    answers = []
    for generation in generations:
        parsed = task.parse(generation.raw_output)
        confidence = generation.confidence
        if confidence is None:
            confidence = confidence_of(task.kind, parsed, generation.token_logprobs)
        answers.append(Answer(generation.raw_output, parsed, confidence, generation))
    return answers
