"""The generation budget fits the task: inference.max_new_tokens null = the longest train answer in the SLM's
tokens plus a margin; a recipe's number is kept; answers stopped by the limit are counted and reported."""

import json
import logging

from transformers import AutoModelForCausalLM, AutoTokenizer

from helpers.processes import run_train_cli
from slmtier.config import compose_config, to_run_config
from slmtier.data import load_splits
from slmtier.inference import derive_max_new_tokens, generate_batched
from slmtier.tasks import build_task
from slmtier.tiers.slm import fit_generation_budget, recorded_max_new_tokens


class WordTokenizer:
    """One token per word: lengths that can be read off the test."""

    def __call__(self, texts, add_special_tokens=False):
        return type("Encoding", (), {"input_ids": [text.split() for text in texts]})()


def test_budget_is_the_longest_answer_plus_its_end_and_a_margin():
    tokenizer = WordTokenizer()
    # longest 3 words + end of turn = 4; a quarter more is 5, so the floor of + 8 decides: 12
    assert derive_max_new_tokens(tokenizer, ["billing", "account access", "one two three"]) == (12, 3)
    # 47 + 1 = 48 tokens; + 25% = 60 beats + 8 = 56
    assert derive_max_new_tokens(tokenizer, ["w " * 47, "short"]) == (60, 47)
    assert derive_max_new_tokens(tokenizer, []) == (9, 0)


def compose_tiny(tiny_model_dir, small_data, *overrides):
    return to_run_config(compose_config([
        "recipe=ticket_classifier", f"model.source={tiny_model_dir}", "model.name=tiny",
        *(f"data.{split}={path}" for split, path in small_data.items()), *overrides,
    ]))  # fmt: skip


def test_fitted_once_from_the_train_answers_unless_the_recipe_sets_it(tiny_model_dir, small_data, caplog):
    cfg = compose_tiny(tiny_model_dir, small_data)
    assert cfg.inference.max_new_tokens is None  # the default
    task = build_task(cfg.task)
    splits = load_splits(cfg.data, task.check_target)
    targets = [task.format_target(example.target) for example in splits.train]
    budget, longest = derive_max_new_tokens(AutoTokenizer.from_pretrained(tiny_model_dir), targets)

    fitted, record = fit_generation_budget(cfg, task, splits)
    assert fitted.inference.max_new_tokens == budget == record["max_new_tokens"]
    assert record == {"max_new_tokens": budget, "derived": True, "longest_train_target_tokens": longest}

    caplog.set_level(logging.WARNING)
    kept, record = fit_generation_budget(compose_tiny(tiny_model_dir, small_data, "inference.max_new_tokens=2"),
                                         task, splits)  # fmt: skip
    assert kept.inference.max_new_tokens == 2 and record["derived"] is False
    assert "shorter than the longest train answer" in caplog.text  # the tiny tokenizer spells labels out


def test_hit_limit_marks_answers_stopped_by_the_budget(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    conversations = [[{"role": "user", "content": f"ticket {i}"}] for i in range(4)]
    generations = generate_batched(model, tokenizer, conversations, max_new_tokens=1)
    assert any(generation.hit_limit for generation in generations)  # a random model rarely ends in one token
    for limit in (1, 3):
        for generation in generate_batched(model, tokenizer, conversations, max_new_tokens=limit):
            ended = len(generation.token_logprobs) < generation.output_tokens  # the end-of-turn token has none
            assert generation.output_tokens <= limit
            assert generation.hit_limit == (generation.output_tokens == limit and not ended)


def test_answers_that_hit_a_low_limit_are_counted_and_reported(tiny_model_dir, small_data, tmp_path):
    """Generation (no label scoring) with room for two tokens: the random model's answers run on, and each one
    stopped at the limit is flagged in its row, counted per candidate and named in both reports."""
    run_dir = tmp_path / "run"
    result = run_train_cli(
        "recipe=ticket_classifier", "tiers=[slm]", f"model.source={tiny_model_dir}", "model.name=tiny",
        "trainer=smoke", "trainer.max_length=4096", "baseline.few_shot_k=2", "decision.cascade=false",
        *(f"data.{split}={path}" for split, path in small_data.items()),
        "inference.label_scoring=false", "inference.max_new_tokens=2",
        f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["generation"]["max_new_tokens"] == 2 and metrics["generation"]["derived"] is False
    assert recorded_max_new_tokens(run_dir, compose_tiny(tiny_model_dir, small_data)) == 2  # what serve uses
    markdown, html = (run_dir / "report.md").read_text(), (run_dir / "report.html").read_text()
    for name, candidate in metrics["candidates"].items():
        rows = [json.loads(line) for line in (run_dir / "predictions" / f"{name}.jsonl").read_text().splitlines()]
        flagged = [row for row in rows if row.get("hit_limit")]
        assert candidate["hit_limit"] == len(flagged) > 0, name
        assert all(row["output_tokens"] == 2 for row in flagged)
        assert f"{name}: {len(flagged)} answers hit the limit" in markdown
        assert f"{name}: {len(flagged)} answers hit the limit" in html
    assert "| answers that hit the 2-token limit |" in markdown
