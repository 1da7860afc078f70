"""End to end on a tiny random-weight model built in the test: train, predict, decide, report."""

import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from helpers.files import REPO, read_jsonl
from helpers.processes import run_train_cli
from helpers.tiny import run_sample_recipe, tiny_overrides
from slmtier.config import compose_config, to_run_config
from slmtier.data import load_splits
from slmtier.tasks import build_task
from slmtier.tiers.slm import load_base_model
from slmtier.tiers.slm import train as run_training
from slmtier.training import build_sft_dataset, count_too_long


def test_training_changes_the_adapter_and_not_the_base(tiny_model_dir, small_data, tmp_path):
    cfg = to_run_config(compose_config(tiny_overrides(tiny_model_dir, small_data, tmp_path / "run")[:-1]))
    task = build_task(cfg.task)
    splits = load_splits(cfg.data, task.check_target)
    model, tokenizer = load_base_model(cfg)
    base_before = {name: p.detach().clone() for name, p in model.named_parameters()}

    peft_model, result = run_training(cfg, task, splits, model, tokenizer, tmp_path)

    assert result.steps == 4 and result.tokens > 0 and result.truncated_examples == 0
    for name, param in peft_model.named_parameters():
        if "lora_" in name:
            continue
        original = name.removeprefix("base_model.model.").replace(".base_layer", "")
        assert not param.requires_grad
        assert torch.equal(param, base_before[original]), f"base weight {original} changed"
    adapter = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    lora_b = [t for k, t in adapter.items() if "lora_B" in k]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b), "LoRA B starts at zero and must have moved"


def test_too_long_examples_are_counted(tiny_model_dir, small_data, tmp_path):
    cfg = to_run_config(compose_config(tiny_overrides(tiny_model_dir, small_data, tmp_path / "run")[:-1]))
    task = build_task(cfg.task)
    dataset = build_sft_dataset(task, load_splits(cfg.data, task.check_target).train)
    _, tokenizer = load_base_model(cfg)
    assert count_too_long(tokenizer, dataset, 10_000) == 0
    assert count_too_long(tokenizer, dataset, 20) == len(dataset)


def test_cli_run_writes_the_run_directory_contract(tiny_run):
    run_dir = tiny_run.run_dir
    assert f"run directory: {run_dir}" in tiny_run.stdout and "verdict: " in tiny_run.stdout

    for name in [
        "config.yaml",
        "metrics.json",
        "report.md",
        "report.html",
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "predictions/slm.jsonl",
        "predictions/baseline.jsonl",
    ]:
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.rglob("*.bin")), "safetensors only"
    assert not (run_dir / "trainer").exists(), "checkpoints and TRL's model card are removed after training"

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["recipe"] == "ticket_classifier" and metrics["task_kind"] == "classification"
    assert set(metrics["candidates"]) == {"slm", "baseline"}
    for candidate in metrics["candidates"].values():
        assert {
            "model",
            "n",
            "quality",
            "accuracy",
            "macro_f1",
            "per_label",
            "confusion",
            "invalid_rate",
        } <= set(candidate)
        assert candidate["n"] == 12 and candidate["quality"]["metric"] == "accuracy"
    assert metrics["decision"]["verdict"] in {"slm", "llm"} and metrics["decision"]["reason"]

    test_ids = [row["id"] for row in read_jsonl(tiny_run.data["test"])]
    for name in ["slm", "baseline"]:
        rows = read_jsonl(run_dir / "predictions" / f"{name}.jsonl")
        assert [row["id"] for row in rows] == test_ids
        for row in rows:
            assert {"id", "input", "raw_output", "parsed", "gold", "correct", "latency_ms"} <= set(row)
            assert row["latency_ms"] > 0


def test_report_rebuilds_from_files_alone(tiny_run, tmp_path):
    run_dir = tmp_path / "run"  # a copy in another folder, without the adapter: no model is needed to report
    shutil.copytree(tiny_run.run_dir, run_dir, ignore=shutil.ignore_patterns("adapter"))
    (run_dir / "report.md").unlink()
    (run_dir / "report.html").unlink()

    rebuilt = subprocess.run(
        [sys.executable, "-m", "slmtier", "report", str(run_dir)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    markdown = (run_dir / "report.md").read_text()
    assert "Verdict:" in markdown and "Confusion matrix" in markdown
    assert "<table" in (run_dir / "report.html").read_text()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.train=data/tickets/nope.jsonl", "data file not found"),
        ("baseline.kind=telepathy", "baseline.kind 'telepathy' is not one of"),
        ("trainer.max_length=16", "all 24 training examples are longer than trainer.max_length=16"),
    ],
)
def test_user_mistakes_fail_before_training_without_traceback(tiny_model_dir, small_data, tmp_path, override, message):
    run_dir = tmp_path / "run"
    result = run_train_cli(*tiny_overrides(tiny_model_dir, small_data, run_dir), override)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (run_dir / "adapter").exists()


def test_bad_data_row_is_named_with_file_and_line(tiny_model_dir, small_data, tmp_path):
    rows = small_data["train"].read_text().splitlines()
    rows[4] = rows[4].replace('"label": "', '"label": "x')
    small_data["train"].write_text("\n".join(rows) + "\n")
    result = run_train_cli(*tiny_overrides(tiny_model_dir, small_data, tmp_path / "run"))
    assert result.returncode == 2
    assert f"{small_data['train']}:5: field 'label'" in result.stderr
    assert "Traceback" not in result.stderr


def test_baseline_can_be_another_local_model(tiny_model_dir, small_data, tmp_path):
    run_dir = tmp_path / "run"
    result = run_train_cli(
        *tiny_overrides(tiny_model_dir, small_data, run_dir),
        "baseline.model.name=other_local",
        f"baseline.model.source={tiny_model_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["candidates"]["baseline"]["model"] == "other_local (2-shot, untuned)"
    assert metrics["candidates"]["slm"]["model"] == "tiny + LoRA"


def test_extraction_recipe_end_to_end(tiny_model_dir, tmp_path):
    run_dir, result = run_sample_recipe("order_extractor", "orders", (16, 4, 6), tiny_model_dir, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["task_kind"] == "extraction" and metrics["primary_metric"] == "micro_f1"
    for candidate in metrics["candidates"].values():
        assert {"micro_f1", "macro_f1", "exact_match", "valid_json_rate", "per_field"} <= set(candidate)
        assert set(candidate["per_field"]) == {
            "order_id",
            "customer_name",
            "products",
            "quantity",
            "requested_action",
            "delivery_date",
        }
    rows = read_jsonl(run_dir / "predictions" / "slm.jsonl")
    assert len(rows) == 6 and all(0.0 <= row["correct"] <= 1.0 for row in rows)
    assert "Per-field F1" in (run_dir / "report.md").read_text()


def test_summarization_recipe_end_to_end(tiny_model_dir, tmp_path):
    run_dir, result = run_sample_recipe(
        "call_summarizer",
        "support_calls",
        (8, 2, 4),
        tiny_model_dir,
        tmp_path,
        "task.max_input_words=60",
        "baseline.few_shot_k=1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["task_kind"] == "summarization" and metrics["primary_metric"] == "rougeL"
    assert metrics["data"]["test"]["truncated_inputs"] == 4  # every dialogue is over 60 words
    for candidate in metrics["candidates"].values():
        assert {"rouge1", "rouge2", "rougeL", "semantic_similarity", "summary_words_mean"} <= set(candidate)
    report = (run_dir / "report.md").read_text()
    assert "ROUGE-1 / ROUGE-2 / ROUGE-L" in report and "inputs cut at the word limit: 8 train, 4 test" in report


EXACT_TEXT_MODULE = """
import datasets
import evaluate


class ExactText(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="share of outputs equal to the reference", citation="", inputs_description="",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references):
        same = sum(p == r for p, r in zip(predictions, references))
        return {"exact_text": same / len(references), "note": "strings are dropped"}
"""


def test_own_evaluate_module_as_extra_metric(tiny_model_dir, small_data, tmp_path):
    module = tmp_path / "exact_text"
    module.mkdir()
    (module / "exact_text.py").write_text(EXACT_TEXT_MODULE)
    run_dir = tmp_path / "run"
    result = run_train_cli(*tiny_overrides(tiny_model_dir, small_data, run_dir), f"task.extra_metrics=[{module}]")
    assert result.returncode == 0, result.stderr[-3000:]
    extra = json.loads((run_dir / "metrics.json").read_text())["candidates"]["slm"]["extra"]
    assert list(extra) == ["exact_text"] and 0.0 <= extra["exact_text"]["exact_text"] <= 1.0
    assert "note" not in extra["exact_text"]
    assert "| exact_text: exact_text |" in (run_dir / "report.md").read_text()

    missing = run_train_cli(
        *tiny_overrides(tiny_model_dir, small_data, tmp_path / "run2"), f"task.extra_metrics=[{tmp_path / 'nope'}]"
    )
    assert missing.returncode == 2 and "task.extra_metrics" in missing.stderr
