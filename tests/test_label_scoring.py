"""Label scoring on a tiny random-weight model: the cached, padded, prefix-shared passes give exactly the
log-probabilities of a plain forward pass over prompt + label, and the chosen label is the one greedy
decoding's first step and then the full-label score pick."""

from __future__ import annotations

import pytest
import torch

from slmtier.inference import merged_adapter, render_prompt
from slmtier.label_scoring import _common_prefix_length, build_label_tokens, score_labels

# "card" is a prefix of two others (told apart by the end-of-turn token); several share a first token.
LABELS = ["card", "card_arrival", "card_linking", "refund", "refund_not_showing", "billing"]
TEXTS = [
    "my card has not arrived yet",
    "how do I link the card to the app? it says error 4 every time I try, on two phones",
    "refund",
    "where is the refund I was promised last week for the broken hub, order NW-482913",
    "charged twice",
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(tiny_model_dir)


def conversation(text: str) -> list[dict]:
    return [{"role": "system", "content": "Pick one: " + ", ".join(LABELS)}, {"role": "user", "content": text}]


def brute_force_logprobs(model, tokenizer, text: str, ids: tuple[int, ...]) -> list[float]:
    """log P(each continuation token | prompt and the tokens before it), from one uncached forward pass."""
    prompt = tokenizer(render_prompt(tokenizer, conversation(text)), add_special_tokens=False).input_ids
    sequence = torch.tensor([prompt + list(ids)])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=sequence).logits[0].float(), dim=-1)
    return [logprobs[len(prompt) - 1 + step, token].item() for step, token in enumerate(ids)]


def test_label_tokens_end_with_the_end_of_turn_token(tiny):
    _, tokenizer = tiny
    labels = build_label_tokens(tokenizer, conversation("x"), LABELS)
    assert [item.label for item in labels] == LABELS
    assert all(item.ids[-1] == tokenizer.eos_token_id for item in labels)
    assert labels[0].ids != labels[1].ids[: len(labels[0].ids)]  # "card" + end is not a prefix of "card_arrival"
    decoded = tokenizer.decode(labels[1].ids, skip_special_tokens=True)
    assert decoded == "card_arrival"


def test_scores_equal_a_plain_forward_pass_and_pick_greedys_group_best(tiny):
    model, tokenizer = tiny
    answers = score_labels(model, tokenizer, [conversation(t) for t in TEXTS], LABELS, batch_size=2)
    continuations = build_label_tokens(tokenizer, conversation("x"), LABELS)
    for text, answer in zip(TEXTS, answers, strict=True):
        assert answer.raw_output in LABELS and answer.batch_size in (1, 2)
        full = {c.label: brute_force_logprobs(model, tokenizer, text, c.ids) for c in continuations}
        chosen = next(c for c in continuations if c.label == answer.raw_output)
        # The reported token log-probabilities are the label's (end of turn left out), as computed uncached.
        assert answer.token_logprobs == pytest.approx(full[answer.raw_output][:-1], abs=1e-4)
        # Greedy's first step: the best first token among the labels' first tokens ...
        first = {c.ids[0]: full[c.label][0] for c in continuations}
        assert chosen.ids[0] == max(first, key=first.get)
        # ... then the best whole label (end of turn included) among those starting with it.
        group = [c.label for c in continuations if c.ids[0] == chosen.ids[0]]
        assert answer.raw_output == max(group, key=lambda label: sum(full[label]))


def test_batch_size_and_order_do_not_change_answers(tiny):
    model, tokenizer = tiny
    conversations = [conversation(t) for t in TEXTS]
    one = score_labels(model, tokenizer, conversations, LABELS, batch_size=1)
    many = score_labels(model, tokenizer, conversations[::-1], LABELS, batch_size=16)[::-1]
    assert [a.raw_output for a in one] == [a.raw_output for a in many]
    for a, b in zip(one, many, strict=True):
        assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-4)


def test_common_prefix_leaves_every_prompt_a_token_of_its_own():
    assert _common_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert _common_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2
    assert _common_prefix_length([[7, 1], [8, 1]]) == 0
    assert _common_prefix_length([[5, 6, 7]]) == 2


def test_a_single_conversation_and_no_shared_prefix_work(tiny):
    model, tokenizer = tiny
    assert len(score_labels(model, tokenizer, [conversation(TEXTS[0])], LABELS)) == 1
    no_shared = [[{"role": "user", "content": t}] for t in ("alpha", "beta")]  # differ from the first token on
    assert len(score_labels(model, tokenizer, no_shared, LABELS)) == 2


def test_merged_adapter_predicts_the_same_and_restores_the_weights(tiny):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    before = {n: p.detach().clone() for n, p in peft_model.named_parameters()}
    conversations = [conversation(t) for t in TEXTS]
    plain = score_labels(peft_model, tokenizer, conversations, LABELS)
    with merged_adapter(peft_model):
        merged = score_labels(peft_model, tokenizer, conversations, LABELS)
    assert [a.raw_output for a in merged] == [a.raw_output for a in plain]
    for a, b in zip(plain, merged, strict=True):
        assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-4)
    for name, parameter in peft_model.named_parameters():
        assert torch.allclose(parameter, before[name], atol=1e-6), name
    peft_model.unload()  # the module-scoped base model gets its plain layers back
