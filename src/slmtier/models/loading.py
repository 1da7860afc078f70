"""Load a base model and its tokenizer from an embedded package, a local folder or the hub.

Safetensors only (`use_safetensors=True`): a pickle checkpoint can run code when loaded.
`trust_remote_code` stays off unless the model config turns it on.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path

import torch

from slmtier.config import ModelConfig
from slmtier.errors import ModelSourceError
from slmtier.models.embedded import resolve_embedded

log = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded:"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}


def resolve_model_path(cfg: ModelConfig, cache_dir: str | Path) -> str:
    """A local folder for embedded models and folders; the hub id otherwise (loaded through the HF cache)."""
    return resolve_source(cfg.source, "model.source", lambda name: resolve_embedded(name, Path(cache_dir).expanduser()))


def resolve_source(source: str, key: str, resolve_embedded_name) -> str:
    """`embedded:<name>` -> its folder (through `resolve_embedded_name`); an existing folder as is; a path
    that names no folder -> ModelSourceError naming `key`; anything else is a hub id."""
    if source.startswith(EMBEDDED_PREFIX):
        return str(resolve_embedded_name(source.removeprefix(EMBEDDED_PREFIX)))
    folder = Path(source).expanduser()
    if folder.is_dir():
        return str(folder)
    if source.startswith((".", "/", "~")):
        raise ModelSourceError(f"{key} {source!r}: no such folder")
    return source  # a hub id


def resolve_bf16(requested: bool | None) -> bool:
    """bf16 as asked, or (None) where it is native and faster: a bf16 CUDA GPU, or a CPU with AVX512-BF16 or AMX
    on which a bf16 matmul measures at least BF16_MIN_SPEEDUP times the fp32 one (`cpu_bf16_speedup`).

    The flags alone do not say: on one 2-core AVX512-BF16 CPU (AMD EPYC) bf16 autocast trained 1.5x faster than
    fp32 (matmul 398 against 167 GFLOP/s), on another (an Intel Xeon with the same flag, no AMX) the bf16 matmul
    ran at half the fp32 speed (164 against 318 GFLOP/s) and bf16 autocast trained 1.6x slower and scored labels
    1.6x slower (scripts/bench.py, docs/speed.md). CPUs without the instructions emulate bf16: never faster.
    """
    if requested is not None:
        return requested
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    cpu = torch.cpu
    native = any(
        getattr(cpu, probe, lambda: False)() for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )
    return native and cpu_bf16_speedup() >= BF16_MIN_SPEEDUP


BF16_MIN_SPEEDUP = 1.2  # below this, fp32 keeps the precision for little or no speed


@functools.cache
def cpu_bf16_speedup() -> float:
    """How many times faster a (512 x 1024) @ (1024 x 1024) matmul runs in bf16 than in fp32 on this CPU, with
    the threads torch uses: the best of a few rounds each (~0.1 s, once per process). Logged, because it
    decides the precision every local tier trains and answers in when `bf16` is null."""
    best = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(512, 1024, dtype=dtype), torch.randn(1024, 1024, dtype=dtype)
        a @ b  # warm-up: the kernel's first call pays its set-up
        times = []
        for _ in range(4):
            began = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - began)
        best[dtype] = min(times)
    speedup = best[torch.float32] / best[torch.bfloat16]
    log.info("bf16 matmul on this CPU: %.2fx the fp32 speed (bf16 autocast when null: %s)", speedup,
             "on" if speedup >= BF16_MIN_SPEEDUP else "off")  # fmt: skip
    return speedup


def resolve_generate_bf16(requested: bool | None) -> bool:
    """bf16 autocast for greedy decoding as asked, or (None) on a bf16 CUDA GPU only.

    On this project's 2-core AVX512-BF16 CPU, bf16 decoded order_extractor's emails 1.6x faster in batches
    (1.75-1.89 against 1.11-1.12 requests/s, 2026-12-07), but its rounding depends on the batch's shape: it
    changed 1 to 5 of 40 answers between batched and one-at-a-time decoding (fp32: none), and served through
    the router, which batches whatever arrives together, 83-93 of 100 answers equalled the benchmark's (fp32:
    100 of 100; scripts/bench_router.py). On a CPU, what is served is what was measured unless a task asks
    for the speed (`inference.generate_bf16: true`).
    """
    if requested is not None:
        return requested
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def _from_pretrained(loader, path: str, cfg: ModelConfig, **kwargs):
    try:
        return loader.from_pretrained(path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code, **kwargs)
    except (OSError, ValueError) as err:
        raise ModelSourceError(
            f"model {cfg.name!r} could not be loaded from {path!r}: {err}\n"
            "Use an embedded model (model=smollm2_135m), a local folder, or a hub id that is reachable "
            "or already in the Hugging Face cache."
        ) from err


def load_tokenizer(path: str, cfg: ModelConfig):
    from transformers import AutoTokenizer

    tokenizer = _from_pretrained(AutoTokenizer, path, cfg)
    if tokenizer.pad_token is None:  # the model config names a dedicated pad token where the vocabulary has one
        tokenizer.pad_token = cfg.pad_token or tokenizer.eos_token
    if tokenizer.chat_template is None:
        raise ModelSourceError(f"model {cfg.name!r} has no chat template; slmtier needs an instruct/chat model")
    return tokenizer


def check_4bit_supported() -> None:
    """QLoRA needs CUDA. bitsandbytes 0.50 loads 4-bit weights on a CPU but warns that its 4-bit backward
    there may be incorrect; a wrong gradient would spoil the adapter without any error, so slmtier refuses."""
    if not torch.cuda.is_available():
        raise ModelSourceError(
            "lora=qlora (4-bit base model) needs a CUDA GPU: on a CPU bitsandbytes' 4-bit backward may be "
            "incorrect. Use lora=default (or lora=dora) here, and QLoRA on a GPU"
        )


def load_model(path: str, cfg: ModelConfig, *, load_in_4bit: bool = False):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if cfg.dtype not in DTYPES:
        raise ModelSourceError(f"model.dtype {cfg.dtype!r} is not one of {sorted(DTYPES)}")
    extra = {}
    if load_in_4bit:
        check_4bit_supported()
        extra["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    model = _from_pretrained(AutoModelForCausalLM, path, cfg, dtype=DTYPES[cfg.dtype], use_safetensors=True, **extra)
    log.info("loaded %s (%.0fM parameters, %s)", cfg.name, model.num_parameters() / 1e6, model.dtype)
    return model
