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
# One torch thread, here and in every train.py the tests start (set before anything imports torch): the tiny
# models' matrices are too small to share out, and on a busy 2-core machine each op of a second thread waits for
# a core (the tiny model's 4 training steps took 0.2 s with one thread and 10 s with two while another process
# ran). The real models (tests marked slow) get every core back. An OMP_NUM_THREADS of your own is kept.
THREADS_SET_BY_USER = "OMP_NUM_THREADS" in os.environ
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def every_core_for_the_real_models(request, monkeypatch):
    if THREADS_SET_BY_USER or request.node.get_closest_marker("slow") is None:
        yield
        return
    import torch

    monkeypatch.delenv("OMP_NUM_THREADS")
    torch.set_num_threads(os.cpu_count() or 1)
    yield
    torch.set_num_threads(1)


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
