"""Where the repository and its sample data are, and JSONL files read and written as the package writes them."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TICKETS = REPO / "data" / "tickets"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_sample_splits(folder: Path, dataset: str, sizes: tuple[int, int, int]) -> dict[str, Path]:
    """The first rows of a shipped sample dataset's train, validation and test splits, written into `folder`."""
    return {
        split: write_jsonl(folder / f"{split}.jsonl", read_jsonl(REPO / "data" / dataset / f"{split}.jsonl")[:n])
        for split, n in zip(("train", "validation", "test"), sizes, strict=True)
    }
