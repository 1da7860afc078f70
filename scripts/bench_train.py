"""Training throughput of the embedded SLM on the ticket recipe under a few settings, measured in one run.

    python scripts/bench_train.py --steps 12

Prints non-padding tokens/s and final loss per setting, and each setting's speed as a ratio to the first.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from slmtier.config import CONFIG_DIR, register_configs
from slmtier.data import load_splits
from slmtier.pipeline import load_base_model
from slmtier.tasks import build_task
from slmtier.training import build_sft_dataset, train_adapter

# name -> overrides of trainer.* or lora.* fields; the first is the baseline of the ratios.
SETTINGS = {
    "fp32": {},
    "fp32_grad_ckpt": {"gradient_checkpointing": True},
    "bf16_autocast": {"bf16": True},
    "bf16_no_lora_dropout": {"bf16": True, "lora_dropout": 0.0},
    "bf16_batch16": {"bf16": True, "per_device_train_batch_size": 16},
    "random_order": {"train_sampling_strategy": "random"},
    "bf16_nodrop_random": {"bf16": True, "lora_dropout": 0.0, "train_sampling_strategy": "random"},
    "bf16_nodrop_grouped": {"bf16": True, "lora_dropout": 0.0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS))
    args = parser.parse_args()
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = OmegaConf.to_object(compose("train", overrides=["recipe=ticket_classifier"]))
    task = build_task(cfg.task)
    dataset = build_sft_dataset(task, load_splits(cfg.data, task.check_target).train)
    results = {}
    for name in args.settings:
        model, tokenizer = load_base_model(cfg)
        overrides = SETTINGS[name]
        trainer_fields = {k: v for k, v in overrides.items() if hasattr(cfg.trainer, k)}
        lora_cfg = replace(cfg.lora, **{k: v for k, v in overrides.items() if k not in trainer_fields})
        trainer_cfg = replace(cfg.trainer, max_steps=args.steps, logging_steps=args.steps, **trainer_fields)
        began = time.perf_counter()
        _, result = train_adapter(
            model,
            tokenizer,
            dataset,
            trainer_cfg=trainer_cfg,
            lora_cfg=lora_cfg,
            work_dir=__import__("pathlib").Path("/tmp/slmtier-bench"),
        )
        results[name] = {
            "tokens_per_s": result.tokens_per_s,
            "loss": result.train_loss,
            "wall_s": time.perf_counter() - began,
        }
    first = results[args.settings[0]]["tokens_per_s"]
    for name, r in results.items():
        r["ratio"] = r["tokens_per_s"] / first
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
