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
