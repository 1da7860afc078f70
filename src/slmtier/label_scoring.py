"""Classification by label scoring: the labels are scored as continuations of the prompt instead of generated.

Greedy generation runs one forward pass per output token, and a prompt's answer is several tokens
(`account_access` + end of turn); it may also name no label at all. Label scoring instead:
1. runs the batch of prompts once (left-padded, KV cache kept) and reads the next-token distribution;
2. picks, like greedy decoding's first step, the most likely first token among the labels' first tokens;
3. scores the whole continuation (label tokens and the end-of-turn token) of every label starting with that
   token, in one more batched pass over a few tokens on top of the cached prompt, and answers with the
   most likely one.
So the answer is always a label, its probability (the label's tokens, end of turn excluded, as for a
generated label) is the cascade's confidence, and where the labels differ in their first token the answer
is the one greedy decoding would have started, then finished.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from slmtier.inference import Generation, render_prompt


@dataclass(frozen=True)
class LabelTokens:
    """A label as the model writes it after the prompt: its token ids, the end-of-turn token last."""

    label: str
    ids: tuple[int, ...]


def build_label_tokens(
    tokenizer, conversation: list[dict], labels: list[str], **chat_template_kwargs
) -> list[LabelTokens]:
    """Each label's continuation of `conversation`'s prompt, tokenised as in training: the chat template
    applied to the conversation with the label as the assistant's turn, minus the prompt, up to and
    including the end-of-turn token. Falls back to the label's own tokens plus the end-of-sequence token
    when the template renders earlier turns differently once an answer follows (some reasoning models)."""
    prompt = render_prompt(tokenizer, conversation, **chat_template_kwargs)
    prompt_ids = _ids(tokenizer, prompt)
    result = []
    for label in labels:
        full = tokenizer.apply_chat_template(
            [*conversation, {"role": "assistant", "content": label}], tokenize=False, **chat_template_kwargs
        )
        full_ids = _ids(tokenizer, full)
        if full.startswith(prompt) and full_ids[: len(prompt_ids)] == prompt_ids:
            ids = _through_end_of_turn(full_ids[len(prompt_ids) :], tokenizer.eos_token_id)
        else:
            ids = [*_ids(tokenizer, label), tokenizer.eos_token_id]
        result.append(LabelTokens(label, tuple(ids)))
    if len({item.ids for item in result}) < len(result):
        raise ValueError(f"two labels tokenise to the same continuation: {labels}")
    return result


def score_labels(
    model,
    tokenizer,
    conversations: list[list[dict]],
    labels: list[str],
    *,
    batch_size: int = 16,
    bf16: bool = False,
    desc: str = "score labels",
    chat_template_kwargs: dict | None = None,
) -> list[Generation]:
    """One Generation per conversation (in input order) whose raw output is the chosen label.

    The prompt tokens every conversation shares (system prompt, label list, few-shot turns) run once; each
    batch runs only its rows' own tokens on top of that cache. Latency is the wall time of the batch the
    row was in, as for generation; `output_tokens` counts the label's continuation tokens."""
    if not conversations:
        return []
    kwargs = chat_template_kwargs or {}
    prompt_ids = [_ids(tokenizer, render_prompt(tokenizer, conversation, **kwargs)) for conversation in conversations]
    # Labels tokenise the same after every prompt of a recipe (the template's assistant header is fixed).
    continuations = build_label_tokens(tokenizer, conversations[0], labels, **kwargs)
    shared = _common_prefix_length(prompt_ids)
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    results: dict[int, Generation] = {}
    model.eval()
    with (
        torch.inference_mode(),
        torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16),
        tqdm(total=len(prompt_ids), desc=desc, unit="ex") as bar,
    ):
        prefix = (
            model(input_ids=torch.tensor([prompt_ids[0][:shared]], device=model.device), use_cache=True)
            if shared
            else None
        )
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            began = time.perf_counter()
            chosen = _score_batch(
                model, _cache_of(prefix), shared, [prompt_ids[i][shared:] for i in rows], continuations, tokenizer
            )
            latency_ms = (time.perf_counter() - began) * 1000
            for row, (label_tokens, token_logprobs) in zip(rows, chosen, strict=True):
                results[row] = Generation(
                    raw_output=label_tokens.label,
                    latency_ms=latency_ms,
                    input_tokens=len(prompt_ids[row]),
                    output_tokens=len(label_tokens.ids),
                    batch_size=len(rows),
                    token_logprobs=tuple(round(v, 5) for v in token_logprobs[:-1]),  # end of turn excluded
                )
            bar.update(len(rows))
    return [results[i] for i in range(len(prompt_ids))]


def _score_batch(model, prefix_cache, shared: int, suffixes: list[list[int]], continuations, tokenizer):
    """(chosen LabelTokens, log-probability of each of its tokens) per row. `prefix_cache` holds the
    `shared` prompt tokens common to all rows (batch 1); `suffixes` are each row's remaining prompt tokens."""
    device = model.device
    width = max(len(s) for s in suffixes)
    # Left padding: every row's prompt ends in the last column, padding sits between the shared prefix and
    # the row's own tokens, masked out; positions count only real tokens, so a row sees exactly its prompt.
    suffix_ids = torch.full((len(suffixes), width), tokenizer.pad_token_id, dtype=torch.long)
    suffix_mask = torch.zeros((len(suffixes), width), dtype=torch.long)
    for i, ids in enumerate(suffixes):
        suffix_ids[i, width - len(ids) :] = torch.tensor(ids)
        suffix_mask[i, width - len(ids) :] = 1
    suffix_ids, suffix_mask = suffix_ids.to(device), suffix_mask.to(device)
    mask = torch.cat([torch.ones((len(suffixes), shared), dtype=torch.long, device=device), suffix_mask], dim=1)
    positions = (mask.cumsum(-1) - 1)[:, shared:]
    cache_name, cache = prefix_cache
    if cache is not None:
        cache.reorder_cache(torch.zeros(len(suffixes), dtype=torch.long, device=device))  # the prefix, once per row
    out = model(
        input_ids=suffix_ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
        **({cache_name: cache} if cache is not None else {}),
    )  # fmt: skip
    cache_name, cache = _cache_of(out, fresh=False)
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
    # Step 1, greedy's first step over the labels' first tokens. Ties go to the lowest token id, as in
    # greedy decoding's argmax (bf16 logits do tie).
    first_ids = torch.tensor(sorted({c.ids[0] for c in continuations}), device=device)
    best_first = first_ids[first[:, first_ids].argmax(dim=-1)].tolist()
    pairs = [(row, c) for row, token in enumerate(best_first) for c in continuations if c.ids[0] == token]
    # Step 2: every label in the chosen group scored in full, on top of the cached prompts.
    rest = max(len(c.ids) - 1 for _, c in pairs)
    rest_logprobs = None
    if rest:
        inputs = torch.full((len(pairs), rest), tokenizer.pad_token_id, dtype=torch.long)
        rest_mask = torch.zeros((len(pairs), rest), dtype=torch.long)
        for i, (_, c) in enumerate(pairs):
            inputs[i, : len(c.ids) - 1] = torch.tensor(c.ids[:-1])
            rest_mask[i, : len(c.ids) - 1] = 1
        index = torch.tensor([row for row, _ in pairs], device=device)
        cache.reorder_cache(index)
        follow = model(
            input_ids=inputs.to(device),
            attention_mask=torch.cat([mask[index], rest_mask.to(device)], dim=1),
            position_ids=positions[index, -1:] + 1 + torch.arange(rest, device=device),
            use_cache=True,
            **{cache_name: cache},
        )
        rest_logprobs = torch.log_softmax(follow.logits.float(), dim=-1)
    best: dict[int, tuple[float, LabelTokens, list[float]]] = {}
    for i, (row, c) in enumerate(pairs):
        token_logprobs = [first[row, c.ids[0]].item()]
        token_logprobs += [rest_logprobs[i, step, token].item() for step, token in enumerate(c.ids[1:])]
        total = sum(token_logprobs)
        if row not in best or total > best[row][0]:
            best[row] = (total, c, token_logprobs)
    return [(best[row][1], best[row][2]) for row in range(len(suffixes))]


def _cache_of(output, *, fresh: bool = True) -> tuple[str, object]:
    """The KV cache a forward pass returned (a copy when `fresh`; None without one), and the keyword the
    model takes it back by: `cache` since transformers 5.24, `past_key_values` before."""
    if output is None:
        return "cache", None
    name = "cache" if getattr(output, "cache", None) is not None else "past_key_values"
    cache = getattr(output, name)
    return name, copy.deepcopy(cache) if fresh else cache


def _common_prefix_length(sequences: list[list[int]]) -> int:
    """Tokens every sequence starts with, leaving each at least one token of its own."""
    first = sequences[0]
    length = min(len(s) for s in sequences) - 1
    for sequence in sequences[1:]:
        while length > 0 and sequence[:length] != first[:length]:
            length -= 1
    return max(length, 0)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids


def _through_end_of_turn(ids: list[int], eos_id: int) -> list[int]:
    """The continuation up to and including the end-of-turn token (the template may add a newline after it)."""
    return ids[: ids.index(eos_id) + 1] if eos_id in ids else ids
