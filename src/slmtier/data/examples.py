"""The loaded dataset's types: one `Example` per row, and the three `Splits` a run uses.

Their own module so that loading (which builds them) and checks (which inspect them) both import them, and
neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Example:
    id: str
    input: str
    target: Any
    query: str | None = None  # summarization: the question or instruction this example's summary answers


@dataclass(frozen=True)
class Splits:
    train: list[Example]
    validation: list[Example]
    test: list[Example]
    # The examples an LLM's few-shot turns are drawn from: None = train. With LLM-taught targets, the train rows
    # that carry a gold answer, so the LLM is shown gold, and the same turns when it teaches and when it is
    # benchmarked.
    shots: list[Example] | None = None

    @property
    def few_shot_pool(self) -> list[Example]:
        return self.train if self.shots is None else self.shots
