"""Fixtures every test folder shares: the tiny random-weight chat model (built here, no downloads) and small
data files. Plain functions the tests share live in tests/helpers/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.files import TICKETS, read_jsonl, write_sample_splits
from helpers.processes import run_train_cli
from helpers.tiny import TinyRun, build_tiny_chat_model, tiny_overrides

# Nothing in the tests may reach the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
# One torch thread, here and in every train.py the tests start (set before anything imports torch). On a busy
# 2-core machine each op of a second thread waits for a core: the tiny model's 4 training steps took 0.2 s with one
# thread and 10 s with two while another process ran, the real MiniLM test 54 s and 118 s. Idle, two threads gain
# nothing on the tiny models and a quarter on the real ones. An OMP_NUM_THREADS of your own is kept.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    rows = read_jsonl(TICKETS / "train.jsonl")
    texts = [row["text"] for row in rows] + [row["label"] for row in rows] + ["user assistant system"]
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-llama"), texts)


SMALL = (24, 8, 12)  # train, validation, test rows: enough for every code path, few enough for seconds


@pytest.fixture
def small_data(tmp_path) -> dict[str, Path]:
    """A few rows of each ticket split, so smoke runs take seconds."""
    return write_sample_splits(tmp_path, "tickets", SMALL)


@pytest.fixture(scope="session")
def tiny_run(tiny_model_dir, tmp_path_factory) -> TinyRun:
    """One `python train.py` run of the ticket recipe on the tiny model (small_data's rows), shared by the tests
    that read a finished run; a test that changes a run works on its own copy."""
    folder = tmp_path_factory.mktemp("tiny-run")
    data = write_sample_splits(folder, "tickets", SMALL)
    result = run_train_cli(*tiny_overrides(tiny_model_dir, data, folder / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    return TinyRun(folder / "run", data, result.stdout)


def pytest_collection_modifyitems(config, items):
    """Files holding a `slow` test first, the rest in their usual order: `make test` hands whole files to its two
    workers in this order (--dist loadfile --no-loadscope-reorder; xdist's own order, by number of tests, put
    the long files with few tests last, and one worker sat idle while the other finished them)."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
