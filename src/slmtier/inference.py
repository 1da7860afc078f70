"""Batched greedy generation for a local chat model.

Prompts are sorted by length so each batch pads little, padded on the left so every row's answer
starts at the same position, and generation stops at the end-of-turn token. Greedy decoding: the
benchmark compares models, not sampling luck.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm


@dataclass(frozen=True)
class Generation:
    """One candidate's answer to one example. Local models fill the first five fields; the LLM tier
    (baselines/) also reports failures, cost and where the answer came from."""

    raw_output: str
    # Local: wall time of the batch this row was in (what each request in it waited). Endpoint: this
    # request's own time. None: no answer.
    latency_ms: float | None
    input_tokens: int | None
    output_tokens: int | None
    batch_size: int = 1
    error: str | None = None  # set when no answer came back (after every retry); the row is scored as invalid
    cost_usd: float | None = None  # None = not priced (a local model, or a model missing from the price table)
    usage_estimated: bool = False  # token counts came from a local tokenizer, not the endpoint's `usage`
    cached: bool = False  # answered from the response cache: nothing paid in this run
    attempts: int = 0  # HTTP requests made for this row in this run (0 for a local model or a cached answer)
    # Local models: the log-probability of each answer token (end of turn excluded); the cascade's confidence.
    token_logprobs: tuple[float, ...] | None = None
    # A classifier's own probability of its answer (the encoder tier: calibrated on validation), used as the
    # confidence instead of token log-probabilities; and the same before calibration, for the ECE report.
    confidence: float | None = None
    confidence_uncalibrated: float | None = None
    # A classifier's calibrated probability of every label, in the task's label order (the router's /classify).
    label_probs: tuple[float, ...] | None = None
    # Local generation stopped by max_new_tokens rather than the end-of-turn token: the answer may be cut short.
    hit_limit: bool = False


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
    chat_template_kwargs: dict | None = None,
) -> list[Generation]:
    """One Generation per conversation (in input order), answering its last user turn.

    `constraint`, when given, makes the extra `generate` arguments (a grammar's logits processor) afresh
    for each batch, since grammar engines keep per-row state."""
    prompts = [render_prompt(tokenizer, conversation, **(chat_template_kwargs or {})) for conversation in conversations]
    lengths = [count_tokens(tokenizer, prompt) for prompt in prompts]
    order = sorted(range(len(prompts)), key=lengths.__getitem__)
    generation_config = build_generation_config(tokenizer, max_new_tokens=max_new_tokens)
    results: dict[int, Generation] = {}
    model.eval()
    with tqdm(total=len(prompts), desc=desc, unit="ex") as bar:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            extra = constraint() if constraint else {}
            began = time.perf_counter()
            outputs, logprobs = generate_batch(
                model,
                tokenizer,
                [prompts[i] for i in rows],
                generation_config=generation_config,
                bf16=bf16,
                record_logprobs=True,
                **extra,
            )
            latency_ms = (time.perf_counter() - began) * 1000
            for row, tokens, token_logprobs in zip(rows, outputs, logprobs, strict=True):
                ended = bool(tokens) and tokens[-1] in (tokenizer.eos_token_id, tokenizer.pad_token_id)
                results[row] = Generation(
                    raw_output=tokenizer.decode(tokens, skip_special_tokens=True),
                    latency_ms=latency_ms,
                    input_tokens=lengths[row],
                    output_tokens=len(tokens),
                    batch_size=len(rows),
                    token_logprobs=tuple(round(v, 5) for v in token_logprobs[: len(tokens) - ended]),
                    hit_limit=not ended and len(tokens) >= max_new_tokens,
                )
            bar.update(len(rows))
    return [results[i] for i in range(len(prompts))]


# The margin over the longest train target: a quarter more, and never fewer than this many tokens.
BUDGET_MARGIN, BUDGET_MIN_MARGIN = 0.25, 8


def derive_max_new_tokens(tokenizer, targets: list[str]) -> tuple[int, int]:
    """(generation budget, longest target) for answers like `targets` (the train split's answers as the model
    is trained to write them): the longest one in tokens, plus the end-of-turn token that ends it, and a
    margin of a quarter (at least BUDGET_MIN_MARGIN tokens) for answers a little longer than any seen."""
    lengths = tokenizer(list(targets), add_special_tokens=False).input_ids if targets else []
    longest = max((len(ids) for ids in lengths), default=0)
    answer = longest + 1  # and the end-of-turn token, which generation must reach to stop on its own
    return max(math.ceil(answer * (1 + BUDGET_MARGIN)), answer + BUDGET_MIN_MARGIN), longest


def count_tokens(tokenizer, text: str) -> int:
    """Tokens of a text as the model sees it (no special tokens added: templates already hold them)."""
    return len(tokenizer(text, add_special_tokens=False).input_ids)


def render_prompt(tokenizer, conversation: list[dict], **chat_template_kwargs) -> str:
    """The chat template applied up to the assistant's turn (with the model's template quirks, if any)."""
    return tokenizer.apply_chat_template(
        conversation, tokenize=False, add_generation_prompt=True, **chat_template_kwargs
    )


def build_generation_config(tokenizer, *, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0):
    """Greedy at temperature 0 (the benchmark compares models, not sampling luck), else sampling."""
    from transformers import GenerationConfig

    sampling = (
        {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
    )
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **sampling,
    )


def generate_batch(
    model, tokenizer, prompts: list[str], *, generation_config, bf16: bool, record_logprobs: bool = False, **extra
) -> tuple[list[list[int]], list[list[float]] | None]:
    """One `model.generate` call over left-padded prompts (every row's answer starts at the same position).

    Returns each row's new tokens up to and including its end-of-turn token (padding after it dropped)
    and, with `record_logprobs`, the log-probability of every generated token under greedy decoding.
    `extra` goes to generate as is (a grammar's logits processor, a streamer)."""
    from transformers import LogitsProcessorList

    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    recorder = GreedyLogprobRecorder() if record_logprobs else None
    if recorder is not None:
        extra["logits_processor"] = LogitsProcessorList([*extra.get("logits_processor", []), recorder])
    with torch.inference_mode(), torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
        output = model.generate(**batch, generation_config=generation_config, **extra)
    new_tokens = output[:, batch["input_ids"].shape[1] :].tolist()
    tokens = [_cut_at_eos(row, tokenizer.eos_token_id, tokenizer.pad_token_id) for row in new_tokens]
    if recorder is None:
        return tokens, None
    steps = torch.stack(recorder.steps, dim=1).tolist() if recorder.steps else [[] for _ in prompts]
    return tokens, [row_logprobs[: len(row_tokens)] for row_logprobs, row_tokens in zip(steps, tokens, strict=True)]


class GreedyLogprobRecorder:
    """A logits processor that changes nothing and records, per step and row, the log-probability of the
    token greedy decoding picks (its logit minus the log-sum-exp), after every processor before it (a
    grammar's mask included). Two numbers per step instead of `output_scores`' full vocabulary."""

    def __init__(self):
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids, scores):
        scores32 = scores.float()
        self.steps.append((scores32.max(dim=-1).values - torch.logsumexp(scores32, dim=-1)).cpu())
        return scores


def _cut_at_eos(tokens: list[int], eos_id: int, pad_id: int) -> list[int]:
    """Generated tokens up to and including the first end-of-turn token; padding after it is not output."""
    for position, token in enumerate(tokens):
        if token == eos_id or token == pad_id:
            return tokens[: position + 1]
    return tokens


@contextlib.contextmanager
def merged_adapter(model):
    """A PEFT model's LoRA weights folded into its base weights while predicting, and taken out again after.

    One matmul per adapted layer instead of three, with no per-layer adapter bookkeeping: label scoring ran
    1.2x faster on the 2-core CPU. Only where undoing it is exact enough: fp32 base weights (in bf16, fp16 or
    4-bit the subtraction would not restore the base, and the untuned baseline reads those same weights)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else None
    mergeable = (
        base is not None
        and hasattr(model, "merge_adapter")
        and getattr(base, "hf_quantizer", None) is None
        and base.dtype == torch.float32
    )
    if not mergeable:
        yield model
        return
    model.merge_adapter()
    try:
        yield model
    finally:
        model.unmerge_adapter()
