"""Every shipped base-model config composes and names LoRA targets that exist in its architecture.

Checked on tiny random-weight models of the same architecture built here (no downloads): each named
target is a linear layer of the model, and peft attaches adapters to exactly those.
"""

import pytest
import torch

from slmtier.config import CONFIG_DIR, compose_config, to_run_config
from slmtier.training import resolve_target_modules

MODELS = sorted(p.stem for p in (CONFIG_DIR / "model").glob("*.yaml"))
TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "vocab_size": 256,
    "max_position_embeddings": 128,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}
# Vision-language checkpoints are fine-tuned on text here; their language model is the text architecture.
TEXT_ARCHITECTURE = {"gemma3": "gemma3_text"}


def build_tiny(architecture: str):
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    config = AutoConfig.for_model(TEXT_ARCHITECTURE.get(architecture, architecture), **TINY)
    return AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize("name", MODELS)
def test_model_config_composes_and_its_lora_targets_exist(name):
    cfg = to_run_config(compose_config(["recipe=ticket_classifier", f"model={name}"]))
    model_cfg = cfg.model
    assert model_cfg.name == name and model_cfg.source and model_cfg.architecture, f"{name}: describe the model"
    assert model_cfg.params_b and model_cfg.memory_gb_lora and model_cfg.memory_gb_qlora
    assert not model_cfg.trust_remote_code  # every shipped model runs with transformers' own code
    model = build_tiny(model_cfg.architecture)
    linear = {full.rsplit(".", 1)[-1] for full, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    missing = set(model_cfg.lora_target_modules) - linear
    assert not missing, (
        f"{name}: {sorted(missing)} are not linear layers of {model_cfg.architecture} ({sorted(linear)})"
    )

    from peft import LoraConfig, get_peft_model

    targets = resolve_target_modules(cfg.lora, model_cfg.lora_target_modules)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=targets, task_type="CAUSAL_LM"))
    adapted = {
        full.split(".lora_A")[0].rsplit(".", 1)[-1] for full, _ in peft_model.named_parameters() if ".lora_A" in full
    }
    assert adapted == set(model_cfg.lora_target_modules)


def test_lora_targets_fall_back_in_order():
    from slmtier.config import LoraConfig

    assert resolve_target_modules(LoraConfig(), ["q_proj", "v_proj"]) == ["q_proj", "v_proj"]
    assert resolve_target_modules(LoraConfig(), []) == "all-linear"
    assert resolve_target_modules(LoraConfig(target_modules=["o_proj"]), ["q_proj"]) == ["o_proj"]
    assert resolve_target_modules(LoraConfig(target_modules=["all-linear"]), ["q_proj"]) == "all-linear"


def test_model_template_quirks_reach_training_rows():
    from slmtier.data import Example
    from slmtier.tasks import build_task
    from slmtier.training import build_sft_dataset

    cfg = to_run_config(compose_config(["recipe=ticket_classifier", "model=qwen3_8b"]))
    assert cfg.model.chat_template_kwargs == {"enable_thinking": False}
    rows = build_sft_dataset(build_task(cfg.task), [Example("a", "my card was charged twice", "billing")],
                             chat_template_kwargs=cfg.model.chat_template_kwargs)  # fmt: skip
    assert rows[0]["chat_template_kwargs"] == {"enable_thinking": False}


def test_qlora_on_a_cpu_stops_at_start_up(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: QLoRA is allowed here")
    from helpers.processes import run_train_cli

    result = run_train_cli("recipe=ticket_classifier", "lora=qlora", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2 and "needs a CUDA GPU" in result.stderr and "Traceback" not in result.stderr


def test_dora_trains_on_the_tiny_model(tiny_model_dir, small_data, tmp_path):
    import json

    from helpers.processes import run_train_cli
    from helpers.tiny import tiny_overrides

    result = run_train_cli(*tiny_overrides(tiny_model_dir, small_data, tmp_path / "run"), "lora=dora")
    assert result.returncode == 0, result.stderr[-2000:]
    adapter = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
    assert adapter["use_dora"] is True
    assert sorted(adapter["target_modules"]) == sorted(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


def test_full_fine_tuning_saves_the_whole_model(tiny_model_dir, small_data, tmp_path):
    import json

    from safetensors.torch import load_file

    from helpers.processes import run_train_cli
    from helpers.tiny import tiny_overrides

    run_dir = tmp_path / "run"
    result = run_train_cli(
        *tiny_overrides(tiny_model_dir, small_data, run_dir), "trainer.finetune=full", "trainer.learning_rate=0.01"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert not (run_dir / "adapter").exists()
    trained = load_file(run_dir / "model" / "model.safetensors")
    original = load_file(tiny_model_dir / "model.safetensors")
    name = "model.layers.0.mlp.down_proj.weight"
    assert not torch.equal(trained[name], original[name]), "every weight is trained"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["candidates"]["slm"]["model"] == "tiny fully fine-tuned"
    assert "Fine-tuning: tiny fully fine-tuned" in (run_dir / "report.md").read_text()  # no "LoRA r=None"
    assert "model: " in (run_dir / "routing.yaml").read_text() or metrics["decision"]["verdict"] == "llm"


def test_full_fine_tuning_and_4bit_exclude_each_other(tmp_path):
    from helpers.processes import run_train_cli

    result = run_train_cli(
        "recipe=ticket_classifier", "trainer.finetune=full", "lora=qlora", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 2 and "exclude each other" in result.stderr
