"""Extraction task: prompt, JSON parser (never raises), normalisation per type, and the scoring rules."""

import json

import pytest

from slmtier.config import FieldSpec, TaskConfig
from slmtier.data import Example
from slmtier.errors import SlmtierError
from slmtier.tasks import build_task
from slmtier.tasks.extraction import find_json_object, normalise_value

FIELDS = [
    FieldSpec(name="order_id", type="string", description="e.g. NW-482913", case_sensitive=True),
    FieldSpec(name="name", type="string"),
    FieldSpec(name="products", type="list"),
    FieldSpec(name="quantity", type="number"),
    FieldSpec(name="action", type="enum", values=["cancel", "return"]),
    FieldSpec(name="date", type="date"),
]


@pytest.fixture
def task():
    return build_task(TaskConfig(kind="extraction", instruction="Extract:\n{fields}", fields=FIELDS))


def gold(**values):
    record = {"order_id": None, "name": None, "products": [], "quantity": None, "action": None, "date": None}
    record.update(values)
    return record


def test_prompt_lists_fields_with_types_and_answer_is_compact_json(task):
    prompt = task.system_prompt()
    assert "- order_id: text or null; e.g. NW-482913" in prompt
    assert "- products: list of strings, [] if none" in prompt
    assert '- action: one of "cancel", "return" or null' in prompt
    assert "- date: date as YYYY-MM-DD or null" in prompt
    answer = task.format_target({"quantity": 2, "order_id": "NW-1"})
    assert list(json.loads(answer)) == ["order_id", "name", "products", "quantity", "action", "date"]
    messages = task.build_messages(Example("x", "hello", gold()))
    assert messages[-1] == {"role": "user", "content": "hello"}


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        (FieldSpec(name="s"), "  Dana   Whitfield ", ["dana whitfield"]),
        (FieldSpec(name="s", case_sensitive=True), "NW-1", ["NW-1"]),
        (FieldSpec(name="s"), "", []),
        (FieldSpec(name="s"), None, []),
        (FieldSpec(name="s"), ["9 pm", "9 PM"], ["9 pm"]),  # a slot mentioned twice is a set
        (FieldSpec(name="n", type="number"), "3", ["3"]),
        (FieldSpec(name="n", type="number"), 3.0, ["3"]),
        (FieldSpec(name="n", type="number"), "three", ["3"]),
        (FieldSpec(name="n", type="number"), "1,200", ["1200"]),
        (FieldSpec(name="d", type="date"), "2026-12-03", ["2026-12-03"]),
        (FieldSpec(name="d", type="date"), "Thursday 3 Dec 2026", ["2026-12-03"]),
        (FieldSpec(name="d", type="date"), "December 3rd, 2026", ["2026-12-03"]),
        (FieldSpec(name="d", type="date"), "the 3rd of December 2026", ["2026-12-03"]),
        (FieldSpec(name="e", type="enum", values=["cancel", "return"]), "Cancel", ["cancel"]),
        (FieldSpec(name="l", type="list"), ["Lumo Bulb", "lumo bulb", "Hub"], ["hub", "lumo bulb"]),
        (FieldSpec(name="l", type="list"), "Lumo Bulb", ["lumo bulb"]),
        (FieldSpec(name="l", type="list"), [], []),
    ],
)
def test_normalise_value(spec, value, expected):
    assert normalise_value(value, spec) == (expected, None)


@pytest.mark.parametrize(
    ("spec", "value", "message"),
    [
        (FieldSpec(name="n", type="number"), "lots", "expected a number"),
        (FieldSpec(name="n", type="number"), True, "boolean"),
        (FieldSpec(name="d", type="date"), "next friday", "expected a date"),
        (FieldSpec(name="d", type="date"), 20261203, "expected a date string"),
        (FieldSpec(name="e", type="enum", values=["cancel"]), "refund", "is not one of"),
        (FieldSpec(name="s"), {"a": 1}, "expected text"),
        (FieldSpec(name="l", type="list"), 5, "expected a list"),
    ],
)
def test_normalise_value_type_errors(spec, value, message):
    items, error = normalise_value(value, spec)
    assert items == [] and message in error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('Sure! ```json\n{"a": {"b": [1, 2]}}\n``` done', {"a": {"b": [1, 2]}}),
        ('{broken {"a": 2}', {"a": 2}),
        ("[1, 2]", None),
        ('{"a": 1', None),
        ("", None),
        ("{" * 500, None),
    ],
)
def test_find_json_object(text, expected):
    assert find_json_object(text) == expected


def test_parse_counts_type_errors_and_extra_keys(task):
    parsed = task.parse('{"order_id": "NW-1", "quantity": "lots", "action": "refund", "note": "x", "products": "Hub"}')
    assert parsed["values"]["order_id"] == ["NW-1"]
    assert parsed["values"]["quantity"] == [] and parsed["values"]["action"] == []
    assert parsed["type_errors"] == ["quantity", "action"]
    assert parsed["extra_keys"] == ["note"]
    assert parsed["values"]["products"] == ["hub"]
    assert task.parse("I cannot help with that.") is None


def test_scoring_rules_hand_computed(task):
    golds = [
        gold(order_id="NW-1", products=["Lumo Bulb", "Hub"], quantity=2, action="cancel"),
        gold(name="Dana", date="2026-12-03"),
        gold(order_id="NW-3", action="return"),
    ]
    outputs = [
        # order_id right, products {lumo bulb} (1 TP, 1 FN), quantity wrong (FP+FN), action right, name extra (FP)
        '{"order_id": "NW-1", "name": "Bo", "products": ["lumo bulb"], "quantity": 3, "action": "cancel"}',
        # everything right, "3 Dec 2026" normalises to the gold date; missing keys are null
        '{"name": " dana ", "date": "3 Dec 2026", "products": []}',
        "no json here",  # invalid: the two gold values are FNs
    ]
    m = task.score([task.parse(o) for o in outputs], golds)
    assert m["valid_json_rate"] == pytest.approx(2 / 3) and m["invalid_count"] == 1
    assert m["exact_match"] == pytest.approx(1 / 3)
    f = m["per_field"]
    assert (f["order_id"]["tp"], f["order_id"]["fp"], f["order_id"]["fn"]) == (1, 0, 1)
    assert (f["products"]["tp"], f["products"]["fp"], f["products"]["fn"]) == (1, 0, 1)
    assert (f["quantity"]["tp"], f["quantity"]["fp"], f["quantity"]["fn"]) == (0, 1, 1)
    assert (f["name"]["tp"], f["name"]["fp"], f["name"]["fn"]) == (1, 1, 0)
    assert (f["action"]["tp"], f["action"]["fp"], f["action"]["fn"]) == (1, 0, 1)
    assert (f["date"]["tp"], f["date"]["fp"], f["date"]["fn"]) == (1, 0, 0)
    # micro: tp 5, fp 2, fn 4 -> F1 = 2*5 / (2*5 + 2 + 4)
    assert m["micro_f1"] == pytest.approx(10 / 16)
    per_field_f1 = [f[k]["f1"] for k in ["order_id", "name", "products", "quantity", "action", "date"]]
    assert m["macro_f1"] == pytest.approx(sum(per_field_f1) / 6)
    # per-example scores: example 1 tp 3, fp 2, fn 2 -> 6/10; example 2 perfect; example 3 zero
    assert [task.score_example(task.parse(o), g) for o, g in zip(outputs, golds, strict=True)] == pytest.approx(
        [0.6, 1.0, 0.0]
    )


def test_both_empty_scores_one_and_counts_nothing(task):
    assert task.score_example(task.parse("{}"), gold()) == 1.0
    m = task.score([task.parse("{}")], [gold()])
    assert m["exact_match"] == 1.0 and m["macro_f1"] == 0.0 and m["micro_f1"] == 0.0


def test_check_target(task):
    assert task.check_target(gold(quantity="2")) is None
    assert "not declared" in task.check_target({"order_id": "x", "colour": "red"})
    assert "quantity: expected a number" in task.check_target(gold(quantity="many"))
    assert task.check_target("NW-1").startswith("expected a JSON object")
    strict = build_task(TaskConfig(kind="extraction", instruction="x", fields=[FieldSpec(name="a", nullable=False)]))
    assert "not nullable" in strict.check_target({"a": None})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([], "at least one field"),
        ([FieldSpec(name="a", type="money")], "type 'money' is not one of"),
        ([FieldSpec(name="a", type="enum")], "lists its allowed values"),
        ([FieldSpec(name="a"), FieldSpec(name="a")], "duplicate field names"),
    ],
)
def test_bad_field_specs_fail_at_start(fields, message):
    with pytest.raises(SlmtierError, match=message):
        build_task(TaskConfig(kind="extraction", instruction="x", fields=fields))


def test_metric_must_belong_to_the_kind():
    with pytest.raises(SlmtierError, match="task.metric 'accuracy' is not one of extraction's metrics"):
        build_task(TaskConfig(kind="extraction", instruction="x", fields=FIELDS, metric="accuracy"))
    assert build_task(TaskConfig(kind="extraction", instruction="x", fields=FIELDS, metric="exact_match")).metric == (
        "exact_match"
    )
