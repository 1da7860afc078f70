"""Batched greedy generation for a local chat model.

Prompts are sorted by length so each batch pads little, padded on the left so every row's answer
starts at the same position, and generation stops at the end-of-turn token. Greedy decoding: the
benchmark compares models, not sampling luck.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm


@dataclass(frozen=True)
class Generation:
    raw_output: str
    latency_ms: float  # wall time of the batch this row was in: what each request in it waited
    input_tokens: int
    output_tokens: int
    batch_size: int


def generate_batched(
    model,
    tokenizer,
    conversations: list[list[dict]],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 16,
    bf16: bool = False,
    constraint: Callable[[], dict] | None = None,
    desc: str = "predict",
) -> list[Generation]:
    """One Generation per conversation (in input order), answering its last user turn.

    `constraint`, when given, makes the extra `generate` arguments (a grammar's logits processor) afresh
    for each batch, since grammar engines keep per-row state."""
    from transformers import GenerationConfig

    prompts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    lengths = [len(tokenizer(p, add_special_tokens=False).input_ids) for p in prompts]
    order = sorted(range(len(prompts)), key=lengths.__getitem__)
    generation_config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    tokenizer.padding_side = "left"
    results: dict[int, Generation] = {}
    model.eval()
    with tqdm(total=len(prompts), desc=desc, unit="ex") as bar:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = tokenizer([prompts[i] for i in rows], return_tensors="pt", padding=True, add_special_tokens=False)
            batch = batch.to(model.device)
            began = time.perf_counter()
            with (
                torch.inference_mode(),
                torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16),
            ):
                extra = constraint() if constraint else {}
                output = model.generate(**batch, generation_config=generation_config, **extra)
            latency_ms = (time.perf_counter() - began) * 1000
            new_tokens = output[:, batch["input_ids"].shape[1] :]
            for row, tokens in zip(rows, new_tokens, strict=True):
                results[row] = Generation(
                    raw_output=tokenizer.decode(tokens, skip_special_tokens=True),
                    latency_ms=latency_ms,
                    input_tokens=lengths[row],
                    output_tokens=_count_until_eos(tokens.tolist(), tokenizer.eos_token_id, tokenizer.pad_token_id),
                    batch_size=len(rows),
                )
            bar.update(len(rows))
    return [results[i] for i in range(len(prompts))]


def _count_until_eos(tokens: list[int], eos_id: int, pad_id: int) -> int:
    """Generated tokens up to and including the first end-of-turn token; padding after it is not output."""
    for position, token in enumerate(tokens):
        if token == eos_id or token == pad_id:
            return position + 1
    return len(tokens)
