"""Task kinds. Each is three pure pieces behind the `Task` protocol: format, parse, score."""

from __future__ import annotations

from typing import Any, Protocol

from slmtier.config import TaskConfig
from slmtier.errors import SlmtierError
from slmtier.tasks.classification import Classification


class Task(Protocol):
    kind: str

    def build_messages(self, text: str, *, few_shot: list[tuple[str, Any]] = ()) -> list[dict]: ...

    def format_target(self, target: Any) -> str: ...

    def check_target(self, value: Any) -> str | None: ...

    def parse(self, raw_output: str) -> Any: ...

    def score_example(self, parsed: Any, gold: Any) -> float: ...

    def score(self, parsed: list[Any], gold: list[Any]) -> dict: ...


def build_classification(cfg: TaskConfig) -> Classification:
    return Classification(instruction=cfg.instruction, labels=tuple(cfg.labels), metric=cfg.metric)


TASKS = {"classification": build_classification}


def build_task(cfg: TaskConfig) -> Task:
    """The task object for a recipe's `task:` block; unknown kinds fail with the known ones listed."""
    if cfg.kind not in TASKS:
        raise SlmtierError(f"task.kind {cfg.kind!r} is not one of {sorted(TASKS)}")
    return TASKS[cfg.kind](cfg)
