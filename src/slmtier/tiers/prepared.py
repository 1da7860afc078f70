"""What a tier's `prepare` returns."""

from __future__ import annotations

from dataclasses import dataclass

from slmtier.candidate import Candidate


@dataclass(frozen=True)
class Prepared:
    candidate: Candidate | None  # None on the ranks other than 0 of a multi-process launch (they only train)
    entry: dict | None  # the tier's block in metrics.json (its training, its calibration)
