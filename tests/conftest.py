"""Fixtures every test folder shares: the tiny random-weight chat model (built here, no downloads) and small
data files. Plain functions the tests share live in tests/helpers/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.files import TICKETS, read_jsonl, write_jsonl
from helpers.tiny import build_tiny_chat_model

# Nothing in the tests may reach the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    rows = read_jsonl(TICKETS / "train.jsonl")
    texts = [row["text"] for row in rows] + [row["label"] for row in rows] + ["user assistant system"]
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-llama"), texts)


@pytest.fixture
def small_data(tmp_path) -> dict[str, Path]:
    """A few rows of each ticket split, so smoke runs take seconds."""
    out = {}
    for split, n in [("train", 24), ("validation", 8), ("test", 12)]:
        out[split] = write_jsonl(tmp_path / f"{split}.jsonl", read_jsonl(TICKETS / f"{split}.jsonl")[:n])
    return out
