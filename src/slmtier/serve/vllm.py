"""The production equivalent of `slmtier serve`: vLLM's multi-LoRA server, one base model, many adapters."""

from __future__ import annotations

import shlex
from pathlib import Path

from slmtier.config import RunConfig
from slmtier.models import resolve_model_path
from slmtier.tiers.slm import trained_folder

VLLM_DEFAULT_MAX_LORA_RANK = 16


def build_vllm_command(run_cfg: RunConfig, run_dir: Path, adapter_name: str) -> str:
    """`vllm serve BASE --enable-lora --lora-modules NAME=PATH`, BASE the weights the adapter was trained and
    benchmarked on: for an embedded model its dequantised local folder (the hub checkpoint of the same name
    holds other weights, which would need benchmarking again). A fully fine-tuned model is served by itself:
    `vllm serve RUN/model --served-model-name NAME`."""
    weights = Path(run_dir) / trained_folder(run_cfg)
    if run_cfg.trainer.finetune == "full":
        return shlex.join(["vllm", "serve", str(weights.resolve()), "--served-model-name", adapter_name])
    base = resolve_model_path(run_cfg.model, run_cfg.cache_dir)
    parts = ["vllm", "serve", base, "--enable-lora", "--lora-modules", f"{adapter_name}={weights.resolve()}"]
    if run_cfg.lora.r > VLLM_DEFAULT_MAX_LORA_RANK:
        parts += ["--max-lora-rank", str(run_cfg.lora.r)]
    if run_cfg.model.trust_remote_code:
        parts.append("--trust-remote-code")
    return shlex.join(parts)
