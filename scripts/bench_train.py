"""Training throughput of the embedded SLM on the ticket recipe under several settings, in one run.

    python scripts/bench_train.py --steps 12 --settings fp32 bf16

A short warm-up run goes first (the first training in a process pays one-off costs), then each
setting trains `--steps` steps on the same batches. Prints non-padding tokens/s, the final loss (so
a faster setting that learns differently shows), and each setting's speed as a ratio to the first.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from slmtier.config import CONFIG_DIR, register_configs
from slmtier.data import load_splits
from slmtier.pipeline import load_base_model
from slmtier.tasks import build_task
from slmtier.training import build_sft_dataset, train_adapter

# name -> overrides of trainer.* or lora.* fields, on top of the shipped defaults.
SETTINGS = {
    "fp32": {"bf16": False},
    "bf16": {"bf16": True},
    "fp32_lora_dropout": {"bf16": False, "lora_dropout": 0.05},
    "bf16_lora_dropout": {"bf16": True, "lora_dropout": 0.05},
    "bf16_random_order": {"bf16": True, "train_sampling_strategy": "random"},
    "bf16_grad_ckpt": {"bf16": True, "gradient_checkpointing": True},
    "bf16_batch16": {"bf16": True, "per_device_train_batch_size": 16},
}


def run_setting(cfg, dataset, overrides: dict, steps: int, work_dir: Path) -> dict:
    trainer_fields = {k: v for k, v in overrides.items() if hasattr(cfg.trainer, k)}
    lora_cfg = replace(cfg.lora, **{k: v for k, v in overrides.items() if k not in trainer_fields})
    trainer_cfg = replace(cfg.trainer, max_steps=steps, logging_steps=steps, **trainer_fields)
    model, tokenizer = load_base_model(cfg)
    _, result = train_adapter(model, tokenizer, dataset, trainer_cfg=trainer_cfg, lora_cfg=lora_cfg, work_dir=work_dir)
    return {"tokens_per_s": round(result.tokens_per_s, 1), "loss": round(result.train_loss, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--settings", nargs="*", default=["fp32", "bf16"], choices=list(SETTINGS))
    parser.add_argument("--out", type=Path, help="also write the results here as JSON")
    args = parser.parse_args()
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = OmegaConf.to_object(compose("train", overrides=["recipe=ticket_classifier"]))
    task = build_task(cfg.task)
    dataset = build_sft_dataset(task, load_splits(cfg.data, task.check_target).train)
    with tempfile.TemporaryDirectory() as work:
        run_setting(cfg, dataset, SETTINGS[args.settings[0]], 3, Path(work))  # warm-up, discarded
        results = {name: run_setting(cfg, dataset, SETTINGS[name], args.steps, Path(work)) for name in args.settings}
    reference = results[args.settings[0]]["tokens_per_s"]
    for measured in results.values():
        measured["ratio"] = round(measured["tokens_per_s"] / reference, 3)
    text = json.dumps({"steps": args.steps, "results": results}, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
