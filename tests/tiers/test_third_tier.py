"""A third local tier is one module and one registry entry: a tier written here, in the test, with the contract of
slmtier.tiers (NAME, check, prepare, load, complete_entry, price), registered in TIERS and asked for with
`tiers=[...]`, is trained, benchmarked, priced, decided on, reported and routed by the unchanged pipeline, and
loaded back from the run directory it answers exactly as the benchmark did.

The tier is the simplest honest classifier: the train split's most frequent label for every input, with that
label's share of the train split as its confidence."""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from helpers.files import read_jsonl
from helpers.tiny import tiny_overrides
from slmtier.benchmark.cost import price_local
from slmtier.candidate import answer
from slmtier.data import load_splits
from slmtier.inference import Generation
from slmtier.report.routing import build_routing
from slmtier.run_dir import RunDir, write_json_atomic
from slmtier.tasks import build_task
from slmtier.tiers import TIERS, Prepared


@dataclass
class MajorityCandidate:
    name: str
    label: str
    share: float
    model: str = "majority label"
    info: dict = field(default_factory=lambda: {"kind": "local", "tier": "majority"})

    def predict(self, task, examples):
        return [Generation(raw_output=self.label, latency_ms=0.01, input_tokens=0, output_tokens=0, batch_size=1,
                           confidence=self.share) for _ in examples]  # fmt: skip


def build_majority_tier() -> types.ModuleType:
    """The module a developer would write as src/slmtier/tiers/majority.py."""
    tier = types.ModuleType("majority")
    tier.NAME = "majority"

    def check(cfg):
        if cfg.task.kind != "classification":
            raise ValueError("the majority tier classifies")

    def prepare(cfg, task, splits, run_dir, *, base):
        counts = Counter(example.target for example in splits.train)
        label, count = counts.most_common(1)[0]
        trained = {"label": label, "share": count / len(splits.train)}
        write_json_atomic(Path(run_dir) / "majority.json", trained)
        entry = {"base_model": "majority", **trained, "routing": {"label": label, "rule": "{run_dir}/majority.json"}}
        return Prepared(MajorityCandidate(tier.NAME, label, trained["share"]), entry)

    def load(run_dir, cfg):
        trained = json.loads((Path(run_dir) / "majority.json").read_text())
        return MajorityCandidate(tier.NAME, trained["label"], trained["share"])

    tier.check, tier.prepare, tier.load = check, prepare, load
    tier.complete_entry = lambda entry, test_rows: entry
    tier.price = price_local
    return tier


@pytest.fixture
def majority_tier(monkeypatch):
    module = build_majority_tier()
    monkeypatch.setitem(TIERS, module.NAME, module)
    return module


def test_a_third_tier_is_one_module_and_one_registry_entry(majority_tier, tiny_model_dir, small_data, tmp_path,
                                                             monkeypatch):  # fmt: skip
    from slmtier.cli.train import main

    run_dir = tmp_path / "run"
    overrides = [o if not o.startswith("tiers=") else "tiers=[majority,slm]"
                 for o in tiny_overrides(tiny_model_dir, small_data, run_dir)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["train.py", *overrides])
    main()  # in this process, where the test registered the tier

    metrics = RunDir(run_dir).read_metrics()
    assert list(metrics.tiers) == ["slm", "majority"] and list(metrics.candidates) == ["slm", "majority", "baseline"]
    block = metrics.tiers["majority"]
    train_labels = Counter(row["label"] for row in read_jsonl(small_data["train"]))
    assert block.training["label"] == train_labels.most_common(1)[0][0]
    assert block.comparison["tier"] == "majority" and block.comparison["gap"]["n"] == 12
    assert any(check["tier"] == "majority" for check in metrics.decision.checks)
    assert metrics.candidates["majority"]["cost"]["per_1k_requests_usd"] > 0  # priced by its own `price`
    # The report has a line for it (the generic one: the tier brought no template of its own).
    markdown = (run_dir / "report.md").read_text()
    assert f"- Majority tier: base_model majority, label {block.training['label']}" in markdown
    routing = yaml.safe_load((run_dir / "routing.yaml").read_text())
    assert {"majority", "slm", "llm"} <= set(routing["expected"]["quality"])
    # Had the verdict chosen it, routing.yaml would carry the block its module recorded, paths resolved.
    chosen = dataclasses.replace(metrics, decision=dataclasses.replace(metrics.decision, verdict="majority",
                                                                           tier="majority"))  # fmt: skip
    routed = build_routing(chosen, yaml.safe_load(RunDir(run_dir).read_config_text()), run_dir)
    assert routed["tier"] == "majority"
    assert routed["majority"] == {"label": block.training["label"], "rule": f"{run_dir.resolve()}/majority.json"}

    # Loaded back from the run directory, it answers every test example as the benchmark recorded.
    cfg = RunDir(run_dir).read_config()
    task = build_task(cfg.task)
    test = load_splits(cfg.data, task.check_target).test
    served = answer(majority_tier.load(run_dir, cfg), task, test)
    rows = RunDir(run_dir).read_predictions("majority")
    assert [(a.raw_output, a.parsed, a.confidence) for a in served] == [
        (row["raw_output"], row["parsed"], row["confidence"]) for row in rows
    ]
