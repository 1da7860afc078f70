"""Task kinds. Each is three pure pieces behind the `Task` protocol: format, parse, score."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol

from slmtier.config import TaskConfig
from slmtier.data import Example
from slmtier.errors import SlmtierError
from slmtier.tasks.classification import Classification, check_labels
from slmtier.tasks.extraction import FIELD_TYPES, Extraction, as_json_object, check_enum_values
from slmtier.tasks.summarization import Summarization


class Task(Protocol):
    kind: str
    metric: str  # the primary metric
    metrics: tuple[str, ...]  # those a recipe may choose as primary

    def build_messages(self, example: Example, *, few_shot: Sequence[Example] = ()) -> list[dict]: ...

    def format_target(self, target: Any) -> str: ...

    def check_target(self, value: Any) -> str | None: ...

    def parse(self, raw_output: str) -> Any: ...

    def score_example(self, parsed: Any, gold: Any) -> float: ...

    parts_metric: str  # the metric that sum(numerators) / sum(denominators) of score_parts reproduces

    def score_parts(self, parsed: Any, gold: Any) -> tuple[float, float]: ...

    def score(self, parsed: list[Any], gold: list[Any], *, inputs: list[str] | None = None) -> dict: ...


def plain_answer(parsed: Any) -> Any:
    """A parsed answer as the application wants it: a label, a summary, or an extraction's JSON object."""
    return as_json_object(parsed) if isinstance(parsed, dict) and "values" in parsed else parsed


def build_classification(cfg: TaskConfig) -> Classification:
    if len(cfg.labels) < 2:
        raise SlmtierError("task.labels: a classification recipe needs at least two labels")
    check_labels(cfg.labels)
    return Classification(instruction=cfg.instruction, labels=tuple(cfg.labels), max_input_words=cfg.max_input_words)


def build_extraction(cfg: TaskConfig) -> Extraction:
    if not cfg.fields:
        raise SlmtierError("task.fields: an extraction recipe declares at least one field")
    names = [spec.name for spec in cfg.fields]
    if len(set(names)) != len(names):
        raise SlmtierError(f"task.fields: duplicate field names in {names}")
    for spec in cfg.fields:
        if spec.type not in FIELD_TYPES:
            raise SlmtierError(f"task.fields.{spec.name}: type {spec.type!r} is not one of {list(FIELD_TYPES)}")
        if spec.type == "enum" and not spec.values:
            raise SlmtierError(f"task.fields.{spec.name}: an enum field lists its allowed values in `values`")
        problem = check_enum_values(spec) if spec.type == "enum" else None
        if problem:
            raise SlmtierError(f"task.fields.{spec.name}: {problem}")
    return Extraction(instruction=cfg.instruction, fields=tuple(cfg.fields), max_input_words=cfg.max_input_words)


def build_summarization(cfg: TaskConfig) -> Summarization:
    return Summarization(
        instruction=cfg.instruction, max_input_words=cfg.max_input_words, similarity_model=cfg.similarity_model
    )


TASKS = {"classification": build_classification, "extraction": build_extraction, "summarization": build_summarization}


def build_task(cfg: TaskConfig) -> Task:
    """The task object for a recipe's `task:` block; every mistake in it fails here, before any work."""
    if cfg.kind not in TASKS:
        raise SlmtierError(f"task.kind {cfg.kind!r} is not one of {sorted(TASKS)}")
    task = TASKS[cfg.kind](cfg)
    if cfg.metric is None:
        return task
    if cfg.metric not in task.metrics:
        raise SlmtierError(f"task.metric {cfg.metric!r} is not one of {task.kind}'s metrics {list(task.metrics)}")
    return dataclasses.replace(task, metric=cfg.metric)
