"""Summarization task: prompt with an optional query, parser, ROUGE, semantic similarity, lengths."""

import pytest

from slmtier.config import TaskConfig
from slmtier.data import Example
from slmtier.tasks import build_task
from slmtier.tasks.chat import count_truncated, truncate_words


@pytest.fixture
def task():
    return build_task(
        TaskConfig(kind="summarization", instruction="Summarise.", max_input_words=5, similarity_model="")
    )


def test_prompt_puts_the_query_before_the_text_and_truncates(task):
    example = Example("m1", "one two three four five six seven", "ref", query="What was decided?")
    messages = task.build_messages(example, few_shot=[Example("s", "a b", "short", query=None)])
    assert messages[0] == {"role": "system", "content": "Summarise."}
    assert messages[1]["content"] == "a b" and messages[2]["content"] == "short"
    assert messages[-1]["content"] == "Request: What was decided?\n\none two three four five [...]"


def test_truncation_helpers():
    assert truncate_words("a b c", None) == "a b c"
    assert truncate_words("a b c", 3) == "a b c"
    assert truncate_words("a b c d", 3) == "a b c [...]"
    assert count_truncated(["a b", "a b c d", "x"], 3) == 1
    assert count_truncated(["a b c d"], None) == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  The customer called.  ", "The customer called."),
        ("Summary: The customer called.", "The customer called."),
        ("Hand-off note: x", "x"),
        ("", None),
        ("Summary:   ", None),
    ],
)
def test_parse(task, raw, expected):
    assert task.parse(raw) == expected


def test_rouge_and_lengths_hand_computed(task):
    gold = ["the cat sat on the mat", "a dog barked"]
    parsed = ["the cat sat", None]
    m = task.score(parsed, gold, inputs=["x " * 30, "y " * 10])
    # rouge1 of example 1: P 3/3, R 3/6 -> F 2/3; example 2 is empty -> 0
    assert m["rouge1"] == pytest.approx((2 / 3 + 0) / 2)
    assert m["rougeL"] == pytest.approx((2 / 3 + 0) / 2)
    assert m["rouge2"] == pytest.approx((2 * (2 / 2) * (2 / 5) / (1 + 2 / 5) + 0) / 2)
    assert m["invalid_count"] == 1 and m["invalid_rate"] == 0.5
    assert m["summary_words_mean"] == 1.5 and m["reference_words_mean"] == 4.5
    assert m["length_ratio"] == pytest.approx(1.5 / 4.5)
    assert m["compression_ratio"] == pytest.approx(40 / 3)
    assert "semantic_similarity" not in m  # switched off in this fixture
    assert task.score_example("the cat sat", "the cat sat on the mat") == pytest.approx(2 / 3)
    assert task.score_example(None, "anything") == 0.0


def test_reference_must_be_text(task):
    assert task.check_target("ok") is None
    assert task.check_target("  ") is not None and task.check_target({"a": 1}) is not None


@pytest.mark.slow
def test_semantic_similarity_with_the_embedded_encoder():
    task = build_task(TaskConfig(kind="summarization", instruction="Summarise."))
    gold = ["The customer's vacuum stopped working; a replacement was sent.", "The refund was issued today."]
    close = ["A replacement vacuum was shipped because the customer's one broke.", "Today the refund went out."]
    far = ["The weather in Oslo is cold in winter.", "Bananas are yellow."]
    near_score = task.score(close, gold)["semantic_similarity"]
    far_score = task.score(far, gold)["semantic_similarity"]
    assert 0.5 < near_score <= 1.0 and far_score < 0.3
    assert task.score([None, None], gold)["semantic_similarity"] == 0.0
