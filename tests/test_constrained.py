"""Schema-constrained JSON decoding: the schema built from a recipe's fields, and a real xgrammar run on a
tiny random model, whose free output is noise but whose constrained output always parses."""

import json
import re

from transformers import AutoModelForCausalLM, AutoTokenizer

from slmtier.config import FieldSpec, TaskConfig
from slmtier.constrained import DATE_PATTERN, build_constraint, build_json_schema
from slmtier.inference import generate_batched
from slmtier.tasks import build_task

FIELDS = [
    FieldSpec(name="action", type="enum", values=["cancel", "return"]),
    FieldSpec(name="when", type="date"),
    FieldSpec(name="urgent", type="enum", values=["yes", "no"], nullable=False),
]


def test_schema_from_fields():
    schema = build_json_schema(
        [*FIELDS, FieldSpec(name="n", type="number", nullable=False), FieldSpec(name="items", type="list")]
    )
    assert schema["required"] == ["action", "when", "urgent", "n", "items"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["action"] == {"enum": ["cancel", "return", None]}
    assert props["urgent"] == {"enum": ["yes", "no"]}
    assert props["when"] == {"anyOf": [{"type": "string", "pattern": DATE_PATTERN}, {"type": "null"}]}
    assert props["n"] == {"type": "number"}
    assert props["items"] == {"type": "array", "items": {"type": "string"}}


def test_constrained_generation_always_parses(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    task = build_task(TaskConfig(kind="extraction", instruction="Extract:\n{fields}", fields=FIELDS))
    conversations = [[{"role": "user", "content": f"order {i}: please cancel"}] for i in range(6)]

    free = generate_batched(model, tokenizer, conversations, batch_size=3, max_new_tokens=48)
    assert all(task.parse(g.raw_output) is None for g in free)  # a random model writes noise

    constraint = build_constraint(build_json_schema(FIELDS), tokenizer, model.config.vocab_size)
    bound = generate_batched(model, tokenizer, conversations, batch_size=3, max_new_tokens=120, constraint=constraint)
    for generation in bound:
        answer = json.loads(generation.raw_output)
        assert list(answer) == ["action", "when", "urgent"]
        parsed = task.parse(generation.raw_output)
        assert parsed["extra_keys"] == [] and answer["urgent"] in {"yes", "no"}
        assert answer["action"] in {"cancel", "return", None}
        # The grammar bounds months and days but not the calendar: 2026-02-31 passes it and fails the parser.
        assert answer["when"] is None or re.match(DATE_PATTERN, answer["when"])
        assert parsed["type_errors"] in ([], ["when"])


def test_constrained_json_is_for_extraction_only(tiny_model_dir, small_data, tmp_path):
    from helpers.processes import run_train_cli

    result = run_train_cli(
        "recipe=ticket_classifier",
        f"model.source={tiny_model_dir}",
        "model.name=tiny",
        "inference.constrained_json=true",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 2 and "applies to extraction recipes only" in result.stderr


def test_pipeline_runs_constrained(tiny_model_dir, tmp_path):
    from helpers.tiny import run_sample_recipe

    run_dir, result = run_sample_recipe(
        "order_extractor",
        "orders",
        (8, 2, 4),
        tiny_model_dir,
        tmp_path,
        "inference.constrained_json=true",
        "inference.max_new_tokens=160",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["candidates"]["slm"]["n"] == 4
