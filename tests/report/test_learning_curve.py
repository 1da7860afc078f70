"""Learning curves: nested samples, and a Hydra sweep over the train size whose report draws quality against size
and names the smallest size at which each tier passes."""

from __future__ import annotations

import json

from helpers.files import TICKETS, read_jsonl, write_jsonl
from helpers.processes import run_train_cli
from helpers.tiny import tiny_overrides
from slmtier.data import Example
from slmtier.data.loading import sample


def test_samples_are_nested_and_keep_file_order():
    examples = [Example(id=str(i), input=f"text {i}", target="a") for i in range(200)]
    small, large = sample(examples, 20, seed=3), sample(examples, 120, seed=3)
    assert {e.id for e in small} < {e.id for e in large}
    assert [int(e.id) for e in large] == sorted(int(e.id) for e in large)
    assert {e.id for e in sample(examples, 20, seed=4)} != {e.id for e in small}


def test_a_sweep_over_train_sizes_draws_the_learning_curve(tiny_model_dir, tmp_path):
    data = {
        "train": write_jsonl(tmp_path / "train.jsonl", read_jsonl(TICKETS / "train.jsonl")[:24]),
        "validation": write_jsonl(tmp_path / "validation.jsonl", read_jsonl(TICKETS / "validation.jsonl")[:8]),
        "test": write_jsonl(tmp_path / "test.jsonl", read_jsonl(TICKETS / "test.jsonl")[:12]),
    }
    overrides = tiny_overrides(tiny_model_dir, data, tmp_path / "unused")[:-1]  # no hydra.run.dir in a sweep
    sweep = tmp_path / "sweep"
    result = run_train_cli("-m", *overrides, "+curve=default", "data.max_train_examples=8,null",
                           f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    runs = sorted(path.parent for path in sweep.rglob("metrics.json"))
    assert sorted(json.loads((run / "metrics.json").read_text())["data"]["train"]["n"] for run in runs) == [8, 24]
    [task] = json.loads((sweep / "report.json").read_text())["tasks"].values()
    curve = task["learning_curve"]
    assert curve["sizes"] == [8, 24] and [point["n"] for point in curve["llm"]] == [8, 24]
    [(key, points)] = curve["tiers"].items()
    assert key.startswith("slm (") and [point["n"] for point in points] == [8, 24]
    for point in points:
        metrics = json.loads((tmp_path / point["run"] / "metrics.json").read_text())
        interval = metrics["candidates"]["slm"]["quality"]["interval"]
        assert (point["quality"], point["low"], point["high"]) == (interval["value"], interval["low"], interval["high"])
        assert point["passes"] == (metrics["tiers"]["slm"]["comparison"]["gap"]["low"] > -curve["margin"])
    passing = [point["n"] for point in points if point["passes"]]
    assert curve["smallest_passing"][key] == (passing[0] if passing else None)
    assert "Learning curve: test accuracy" in (sweep / "report.md").read_text()
    assert 'data-plot="learning_curve"' in (sweep / "report.html").read_text()
