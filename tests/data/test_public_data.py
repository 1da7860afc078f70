"""The recipes for the public datasets load their data from ../shared/data (read-only, beside the repo)."""

import subprocess
import sys
from pathlib import Path

import pytest

from helpers.files import REPO
from slmtier.config import compose_config, to_run_config
from slmtier.data import load_splits
from slmtier.tasks import build_task

SHARED = REPO.parent / "shared" / "data"
pytestmark = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"{SHARED} is absent (public datasets live beside the repo)"
)


def load_recipe(recipe: str, *overrides: str):
    cfg = to_run_config(compose_config([f"recipe={recipe}", *overrides]))
    task = build_task(cfg.task)
    return task, load_splits(cfg.data, task.check_target)


def test_banking77_csv_with_77_intents():
    task, splits = load_recipe("banking77")
    assert len(task.labels) == 77
    # 10,003 train rows in the file; the recipe holds 500 out as its validation split.
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (9_503, 500, 3_080)
    assert {e.target for e in splits.test} == set(task.labels)
    assert min(splits.train[0].id, splits.validation[0].id) == "train-2"  # CSV line numbers: the header is line 1


def test_restaurant8k_nested_text_and_sparse_fields():
    task, splits = load_recipe("restaurant8k")
    assert (len(splits.train), len(splits.test)) == (8_198, 3_731)
    example = next(e for e in splits.train if e.target)
    assert example.input and set(example.target) <= {"date", "time", "people", "first_name", "last_name"}
    empty = [e for e in splits.test if not e.target]
    assert len(empty) == 1_352  # "no fields" is a gold answer too
    assert task.score_example(task.parse("{}"), empty[0].target) == 1.0


def test_qmsum_converter_and_recipe(tmp_path):
    out = tmp_path / "qmsum"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "convert_qmsum.py"), str(SHARED / "qmsum_product"), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "train: 593 rows" in result.stdout
    task, splits = load_recipe(
        "qmsum_product", *(f"data.{s}={out / (s + '.jsonl')}" for s in ("train", "validation", "test"))
    )
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (593, 125, 129)
    example = splits.test[0]
    assert example.query and example.target and ": " in example.input.splitlines()[0]
    assert task.build_messages(example)[-1]["content"].startswith(f"Request: {example.query}")
    assert not Path(REPO / "data" / "qmsum_product").exists()  # never copied into the repo
