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


def build_labels(labels):
    return build_task(TaskConfig(kind="classification", instruction="{labels}", labels=labels))


def test_labels_that_read_alike_are_refused_at_start_up():
    # The bug: the parser reads answers case- and punctuation-blind, so with both `billing` and `Billing` an
    # answer equal to the gold `billing` is parsed as `Billing` and scored wrong.
    alike = Classification(instruction="{labels}", labels=("billing", "Billing", "refund"))
    gold = ["billing", "Billing", "refund"]
    assert alike.score([alike.parse(answer) for answer in gold], gold)["accuracy"] < 1
    with pytest.raises(SlmtierError, match=r"'billing' and 'Billing' read as 'billing'") as err:
        build_labels(list(alike.labels))
    assert "rename them to differ in letters or digits" in str(err.value)
    with pytest.raises(SlmtierError, match=r"'account_access' and 'Account-Access\.' read as 'account access'"):
        build_labels(["billing", "account_access", "Account-Access."])


def test_empty_and_symbol_labels_are_refused_at_start_up():
    # The bug: an empty label matches every answer, so a right but wordy answer is unparseable and scores 0.
    with_empty = Classification(instruction="{labels}", labels=("billing", "", "refund"))
    assert with_empty.score_example(with_empty.parse("The queue is billing."), "billing") == 0.0
    assert Classification("{labels}", ("billing", "refund")).parse("The queue is billing.") == "billing"
    for labels, named in ((["billing", "", "refund"], r"\[''\]"), (["billing", "  ", "?"], r"\['  ', '\?'\]")):
        with pytest.raises(SlmtierError, match=rf"task.labels: {named} hold no letters or digits"):
            build_labels(labels)


def test_a_label_listed_twice_is_refused():
    with pytest.raises(SlmtierError, match=r"task.labels lists \['refund'\] more than once"):
        build_labels(["billing", "refund", "shipping", "refund"])
    assert build_labels(list(LABELS)).labels == LABELS


def test_a_refused_gold_label_says_what_it_probably_is(task):
    numbers = Classification(instruction="{labels}", labels=("1", "2"))
    assert numbers.check_target("1") is None
    assert numbers.check_target(1).endswith(': it is a JSON number and labels are text; write it in quotes ("1")')
    assert "if the numbers are class indices, write each row's label name" in task.check_target(2)
    assert task.check_target("Billing").endswith("labels are matched exactly: did you mean 'billing'?")
    booleans = Classification(instruction="{labels}", labels=("True", "False"))
    assert "YAML reads unquoted yes/no/on/off as booleans" in booleans.check_target("yes")
    assert booleans.check_target(True).endswith('it is a JSON boolean and labels are text; write it in quotes ("True")')
