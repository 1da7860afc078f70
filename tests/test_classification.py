"""Classification task: prompt format, parser (never raises), metrics."""

import pytest

from slmtier.config import TaskConfig
from slmtier.data import Example
from slmtier.errors import SlmtierError
from slmtier.tasks import build_task
from slmtier.tasks.classification import Classification, score_classification

LABELS = ("billing", "refund", "account_access")


@pytest.fixture
def task():
    return Classification(instruction="Pick one of: {labels}.", labels=LABELS)


def test_prompt_lists_labels_and_puts_few_shot_before_the_question(task):
    shot = Example("s1", "pw reset?", "account_access")
    messages = task.build_messages(Example("q1", "where is my money", "refund"), few_shot=[shot])
    assert messages[0] == {"role": "system", "content": "Pick one of: billing, refund, account_access."}
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == "account_access"
    assert messages[-1]["content"] == "where is my money"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("billing", "billing"),
        ("  Refund.\n", "refund"),
        ("Account Access", "account_access"),
        ("account-access", "account_access"),
        ("Queue: refund", "refund"),
        ("refund\nbecause the customer wants money back, not billing", "refund"),
        ("The answer is billing, I think", "billing"),
        ("billing or refund", None),  # two labels named: no choice made
        ("customer_service", None),
        ("", None),
        ("\n\n  \n", None),
        ("🙂" * 50, None),
    ],
)
def test_parse(task, raw, expected):
    assert task.parse(raw) == expected


def test_parse_never_raises_on_odd_output(task):
    for raw in ["\x00\x01", "{" * 1000, "[[]]", "ÿ" * 10_000, "billing" * 3]:
        task.parse(raw)


def test_check_target(task):
    assert task.check_target("refund") is None
    assert "not one of the recipe's labels" in task.check_target("refunds")
    assert task.check_target(3) is not None


def test_score_counts_invalid_and_builds_confusion():
    gold = ["billing", "billing", "refund", "account_access"]
    parsed = ["billing", "refund", None, "account_access"]
    m = score_classification(parsed, gold, LABELS)
    assert m["accuracy"] == 0.5
    assert m["invalid_count"] == 1 and m["invalid_rate"] == 0.25
    assert m["confusion"]["columns"][-1] == "<invalid>"
    assert m["confusion"]["matrix"] == [[1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]
    assert m["per_label"]["billing"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }
    assert m["per_label"]["refund"]["precision"] == 0.0  # one prediction, wrong
    # macro-F1 over the three labels: billing 2/3, refund 0, account_access 1
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0 + 1) / 3)


def test_perfect_and_empty_scores():
    assert score_classification(["refund"], ["refund"], LABELS)["macro_f1"] == 1.0
    assert score_classification([], [], LABELS)["accuracy"] == 0.0


def test_unknown_task_kind_is_a_clear_error():
    with pytest.raises(SlmtierError, match="task.kind 'sentiment' is not one of"):
        build_task(TaskConfig(kind="sentiment", instruction="x", labels=["a"]))
