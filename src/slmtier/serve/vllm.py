"""The production equivalent of `slmtier serve`: vLLM's multi-LoRA server, one base model, many adapters."""

from __future__ import annotations

import shlex
from pathlib import Path

from slmtier.config import RunConfig
from slmtier.models.embedded import EMBEDDED_MODELS
from slmtier.models.loading import EMBEDDED_PREFIX
from slmtier.tiers.slm import trained_folder

VLLM_DEFAULT_MAX_LORA_RANK = 16


def build_vllm_command(run_cfg: RunConfig, run_dir: Path, adapter_name: str) -> str:
    """`vllm serve BASE --enable-lora --lora-modules NAME=PATH`; embedded models are named by their hub id.
    A fully fine-tuned model is served by itself: `vllm serve RUN/model --served-model-name NAME`."""
    weights = Path(run_dir) / trained_folder(run_cfg)
    if run_cfg.trainer.finetune == "full":
        return shlex.join(["vllm", "serve", str(weights.resolve()), "--served-model-name", adapter_name])
    source = run_cfg.model.source
    if source.startswith(EMBEDDED_PREFIX):
        source = EMBEDDED_MODELS[source.removeprefix(EMBEDDED_PREFIX)].hub_id
    parts = [
        "vllm",
        "serve",
        source,
        "--enable-lora",
        "--lora-modules",
        f"{adapter_name}={weights.resolve()}",
    ]
    if run_cfg.lora.r > VLLM_DEFAULT_MAX_LORA_RANK:
        parts += ["--max-lora-rank", str(run_cfg.lora.r)]
    if run_cfg.model.trust_remote_code:
        parts.append("--trust-remote-code")
    return shlex.join(parts)
