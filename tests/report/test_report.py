"""Reports are rebuilt from run files alone; data shown in HTML is escaped; missing files are named."""

import functools
import json
import re

import pytest

from slmtier.cli.main import main as slmtier_main
from slmtier.errors import RunDirError
from slmtier.report import load_run, render_html, render_markdown, write_reports
from slmtier.run_dir import RunDir

LABELS = ("billing", "refund")
NASTY = '<script>alert("x")</script> | pipes & <b>tags</b>'


def make_run_dir(path):
    """Two tickets, the first one's text and the SLM's answer to it markup; both candidates named with markup."""
    from slmtier.config import TaskConfig
    from slmtier.tasks import build_task

    task = build_task(TaskConfig(kind="classification", instruction="Route it.", labels=list(LABELS)))
    outputs = ["<img src=x onerror=alert(1)>", "refund"]
    return write_benchmarked_run(path, task, {"slm": outputs, "baseline": outputs}, ["billing", "refund"],
                                 recipe="demo", inputs=[NASTY, "refund please"], model="tiny <model>",
                                 config_text="task:\n  instruction: <b>hi</b>\nbaseline:\n  kind: local\n",
                                 truncated_examples=3)  # fmt: skip


def test_html_escapes_everything_from_data(tmp_path):
    html = render_html(load_run(make_run_dir(tmp_path / "run")))
    # The figures are data: URIs made here, not data; nothing else may be an image.
    html = re.sub(r'<img class="plot" id="plot-[a-z]+" alt="[a-z ]+" src="data:image/png;base64,[A-Za-z0-9+/=]+">',
                  "", html)  # fmt: skip
    assert "<script>" not in html and "<img" not in html and "<b>tags" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x" in html and "tiny &lt;model&gt;" in html


def test_markdown_keeps_tables_intact(tmp_path):
    markdown = render_markdown(load_run(make_run_dir(tmp_path / "run")))
    assert "\\| pipes" in markdown  # a pipe in data does not split the table cell
    assert "**Verdict: `slm`**" in markdown
    assert "3 training examples were longer than max_length and cut" in markdown
    for line in markdown.splitlines():
        if line.startswith("| metric"):
            assert line.count("|") == 4  # metric, slm, baseline


def test_write_reports_and_cli(tmp_path, capsys):
    run = make_run_dir(tmp_path / "run")
    md, html, routing = write_reports(run)
    assert md.is_file() and html.is_file() and "tier: slm" in routing.read_text()
    md.unlink()
    slmtier_main(["report", str(run)])
    assert md.is_file() and str(md) in capsys.readouterr().out


def test_missing_files_are_named(tmp_path):
    run = make_run_dir(tmp_path / "run")
    (run / "predictions" / "baseline.jsonl").unlink()
    with pytest.raises(RunDirError, match="baseline.jsonl: missing"):
        load_run(run)
    (run / "metrics.json").unlink()
    with pytest.raises(RunDirError, match=r"missing \['metrics.json'\]"):
        load_run(run)
    with pytest.raises(RunDirError, match="not a directory"):
        load_run(tmp_path / "nope")


def test_cli_user_error_exits_2_without_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        slmtier_main(["report", str(tmp_path / "nope")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_metrics_of_another_schema_is_a_run_dir_error(tmp_path):
    run = make_run_dir(tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "schema_version": 1}))
    with pytest.raises(RunDirError, match=r"metrics.json: schema_version 1, and this slmtier reads 2"):
        load_run(run)
    del metrics["tiers"]
    (run / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(RunDirError, match=r"metrics.json: fields missing \['tiers'\]"):
        load_run(run)


def test_remote_code_is_named_only_when_it_ran(tmp_path):
    run = make_run_dir(tmp_path / "run")
    assert "Remote code ran" not in render_markdown(load_run(run)) + render_html(load_run(run))
    metrics_path = run / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["tiers"]["slm"]["training"]["trust_remote_code"] = True
    metrics_path.write_text(json.dumps(metrics))
    markdown, html = render_markdown(load_run(run)), render_html(load_run(run))
    assert "**Remote code ran**" in markdown and "<b>Remote code ran</b>" in html


# --- Runs built in-process from prediction rows: the real benchmark code (summarise_candidate, assess) writes
# metrics.json, so its shape is a real run's, with no model trained.

TICKET_LABELS = ("billing", "refund", "shipping")
GOLD = [TICKET_LABELS[i % 3] for i in range(12)]


def answers(right: int) -> list[str]:
    """The first `right` answers are the gold label, the rest the next label."""
    return [label if i < right else TICKET_LABELS[(i + 1) % 3] for i, label in enumerate(GOLD)]


def prediction_rows(task, golds, outputs, *, latency_ms: float, inputs=None) -> list[dict]:
    rows = []
    inputs = inputs or [f"ticket {i}" for i in range(len(golds))]
    for i, (gold, output) in enumerate(zip(golds, outputs, strict=True)):
        parsed = task.parse(output)
        numerator, denominator = task.score_parts(parsed, gold)
        correct = task.score_example(parsed, gold)
        rows.append({"id": f"t{i}", "input": inputs[i], "raw_output": output, "parsed": parsed, "gold": gold,
                     "correct": correct, "latency_ms": latency_ms, "input_tokens": 40, "output_tokens": 2,
                     "confidence": 0.9 if correct == 1 else 0.4, "score_parts": [numerator, denominator]})  # fmt: skip
    return rows


# Per candidate: its model, requests/s (prices it on the hardware profile) and latency.
CANDIDATES = {
    "encoder": ("minilm_l6 (fine-tuned encoder)", 400.0, 5.0),
    "slm": ("smollm2_135m + LoRA", 12.0, 700.0),
    "baseline": ("smollm2_135m (8-shot, untuned)", 8.0, 900.0),
}


def write_benchmarked_run(path, task, outputs: dict[str, list[str]], golds: list, *, recipe: str, inputs=None,
                          model: str | None = None, config_text: str | None = None,
                          truncated_examples: int = 0):  # fmt: skip
    """A run directory whose metrics.json is what the benchmark writes (slmtier.benchmark.run.assemble_metrics)
    when each candidate (name -> its raw outputs) answers so on the test split and again on a validation split
    of the same examples."""
    from slmtier.benchmark.run import BenchmarkRun, assemble_metrics
    from slmtier.benchmark.summary import summarise_candidate
    from slmtier.config import DecisionConfig, HardwareConfig
    from slmtier.tiers import TIERS

    run = BenchmarkRun({}, {}, {})
    for name, answered in outputs.items():
        default_model, requests_per_s, latency_ms = CANDIDATES[name]
        rows = prediction_rows(task, golds, answered, latency_ms=latency_ms, inputs=inputs)
        run.test_rows[name], run.validation_rows[name] = rows, [dict(row) for row in rows]
        run.results[name] = summarise_candidate(task, rows, model=model or default_model)
        run.results[name]["source"] = {"kind": "local"}
        run.results[name]["throughput"] = {"requests_per_s": requests_per_s, "concurrency": 8}
    folder = RunDir(path)
    folder.predictions.mkdir(parents=True)
    for name in outputs:
        for split, rows in (("test", run.test_rows[name]), ("validation", run.validation_rows[name])):
            folder.predictions_file(name, split).write_text("".join(json.dumps(r) + "\n" for r in rows))
    hardware = HardwareConfig(as_of="2026-11")
    tiers = [name for name in TIERS if name in outputs]
    metrics = assemble_metrics(
        task, run, recipe=recipe, llm="baseline", policy=DecisionConfig(), hardware=hardware,
        data={split: {"path": f"{split}.jsonl", "n": len(golds), "truncated_inputs": 0}
              for split in ("train", "validation", "test")},
        entries={name: TRAINING[name] | ({"truncated_examples": truncated_examples} if name == "slm" else {})
                 for name in tiers},
        prices={name: functools.partial(TIERS[name].price, hardware) for name in tiers},
    )  # fmt: skip
    folder.write_metrics(metrics)
    folder.config_file.write_text(config_text or f"task:\n  kind: {task.kind}\nbaseline:\n  kind: local\n")
    return path


# Each tier's training block as its module records it (slmtier.tiers.<name>.prepare).
TRAINING = {
    "slm": {"base_model": "smollm2_135m", "source": "embedded:smollm2-135m-instruct", "trust_remote_code": False,
            "lora": {"r": 16}, "trainer": {"finetune": "lora"}, "steps": 4, "examples": 24, "train_loss": 2.4,
            "runtime_s": 3.0, "tokens_per_s": 450.0, "truncated_examples": 0,
            "routing": {"base_model": "embedded:smollm2-135m-instruct", "adapter": "{run_dir}/adapter",
                        "served_name": "{task}", "serve": "slmtier serve {run_dir}"}},
    "encoder": {"base_model": "minilm_l6", "source": "embedded:all-minilm-l6-v2", "trust_remote_code": False,
                "max_length": 128,
                "training": {"train_loss": 1.9, "runtime_s": 1.2, "steps": 4, "epochs": 4.0, "examples": 24,
                             "examples_per_s": 100.0, "truncated_examples": 0, "finetune": "full",
                             "trainable_params": 22716296, "total_params": 22716296, "class_weights": None},
                "calibration": {"validation": {"temperature": 2.0, "ece_before": 0.06, "ece_after": 0.03, "n": 12,
                                               "errors": 1, "fitted": True}, "bins": 15, "test": None},
                "routing": {"model": "{run_dir}/encoder", "base_model": "embedded:all-minilm-l6-v2",
                            "loader": "transformers.AutoModelForSequenceClassification", "temperature": 2.0,
                            "labels": ["billing", "refund", "shipping"]}},
}  # fmt: skip


def ticket_task():
    from slmtier.config import TaskConfig
    from slmtier.tasks import build_task

    return build_task(TaskConfig(kind="classification", instruction="Route the ticket.", labels=list(TICKET_LABELS)))


def write_three_tier_run(path, *, encoder_right: int, slm_right: int):
    """Encoder, SLM and the reference on 12 tickets; the reference gets right only what both local tiers do, so
    both pass non-inferiority and the verdict is the cheaper one, the encoder."""
    outputs = {"encoder": answers(encoder_right), "slm": answers(slm_right), "baseline": answers(6)}
    return write_benchmarked_run(path, ticket_task(), outputs, GOLD, recipe="tickets")


def markdown_problems(markdown: str) -> list[str]:
    """What a Markdown parser (markdown-it, CommonMark + tables) reads differently from how the text looks:
    a `|` line that is not part of a table, a table row with more cells than its header, a `- ` line that
    does not start its own list item."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    lines = markdown.splitlines()
    in_table, item_starts, problems = set(), set(), []
    for token in tokens:
        if token.type == "table_open":
            in_table.update(range(*token.map))
            cells = [len(re.findall(r"(?<!\\)\|", lines[i])) for i in range(*token.map)]
            if len(set(cells)) > 1:
                problems.append(f"line {token.map[0] + 1}: rows with {sorted(set(cells))} separators")
        if token.type == "list_item_open":
            item_starts.add(token.map[0])
    for number, line in enumerate(lines):
        if line.startswith("|") and number not in in_table:
            problems.append(f"line {number + 1}: not in a table: {line[:80]}")
        if line.startswith("- ") and number not in item_starts:
            problems.append(f"line {number + 1}: not a list item of its own: {line[:80]}")
    return problems


def list_items(markdown: str) -> list[str]:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    return [tokens[i + 2].content for i, token in enumerate(tokens) if token.type == "list_item_open"]


def test_report_md_parses_as_it_reads(tmp_path):
    markdown = render_markdown(load_run(write_three_tier_run(tmp_path / "run", encoder_right=11, slm_right=8)))
    assert markdown_problems(markdown) == []
    items = list_items(markdown)
    for start in ("Task:", "Data:", "Fine-tuning:", "Encoder tier:", "Encoder calibration:"):
        assert sum(item.startswith(start) for item in items) == 1, (start, items)
    assert all(" - Encoder" not in item and ")- " not in item for item in items)


def invoice_task():
    from slmtier.config import FieldSpec, TaskConfig
    from slmtier.tasks import build_task

    fields = [
        FieldSpec(name="invoice"),
        FieldSpec(name="due_date", type="date"),
        FieldSpec(name="total", type="number"),
    ]
    return build_task(TaskConfig(kind="extraction", instruction="Read the invoice.", fields=fields))


def write_invoice_run(path):
    gold = [{"invoice": f"INV-{i}", "due_date": "2026-01-02", "total": i} for i in range(4)]
    slm = [json.dumps({"invoice": f"INV-{i}", "due_date": None, "total": 0}) for i in range(4)]
    reference = [json.dumps(row) for row in gold]
    return write_benchmarked_run(path, invoice_task(), {"slm": slm, "baseline": reference}, gold, recipe="invoices")


def test_metrics_table_lists_each_metric_once(tmp_path):
    markdown = render_markdown(load_run(write_invoice_run(tmp_path / "run")))
    assert markdown_problems(markdown) == []
    metrics_table = markdown.split("## Metrics (test split)")[1].strip().split("\n\n")[0]
    labels = [line.split(" | ")[0] for line in metrics_table.splitlines()[2:]]
    assert labels[:5] == [
        "| **micro-F1** (primary)",
        "| macro-F1",
        "| exact match",
        "| valid JSON",
        "| type errors / extra keys",
    ]
    assert len(labels) == len(set(labels))


def test_error_table_shows_null_fields(tmp_path):
    markdown = render_markdown(load_run(write_invoice_run(tmp_path / "run")))
    # The parsed column shows every field the SLM answered, a null too: not a missing key.
    errors = markdown.split("## Errors: slm")[1].split("\n\n")[0].splitlines()
    assert errors[1] == "| id | gold | parsed | raw output | input |"
    parsed = {line.split(" | ")[0]: line.split(" | ")[2] for line in errors[3:]}
    assert parsed["| t1"] == '{"invoice": "inv-1", "due_date": null, "total": "0"}'


def test_aggregate_reports_the_verdicts_tier_and_every_tier(tmp_path):
    from slmtier.report.aggregate import write_aggregate

    runs = [write_three_tier_run(tmp_path / "seed-1", encoder_right=11, slm_right=8),
            write_three_tier_run(tmp_path / "seed-2", encoder_right=10, slm_right=7)]  # fmt: skip
    assert [json.loads((run / "metrics.json").read_text())["decision"]["verdict"] for run in runs] == ["encoder"] * 2
    summary_path, md_path, html_path = write_aggregate(runs, tmp_path / "out")
    task = json.loads(summary_path.read_text())["tasks"]["tickets"]
    assert task["tier"] == "encoder" and task["base_model"] == "minilm_l6"
    assert task["selected_run"] == str(runs[0]) and task["verdict"] == "encoder"
    # Every local tier of every run, each with its own figures.
    assert {(p["run"], p["tier"], round(p["quality"], 3)) for p in task["models"]} == {
        (str(runs[0]), "encoder", 0.917), (str(runs[0]), "slm", 0.667),
        (str(runs[1]), "encoder", 0.833), (str(runs[1]), "slm", 0.583),
    }  # fmt: skip
    markdown = md_path.read_text()
    assert markdown_problems(markdown) == []
    overview = markdown.split("## Overview")[1].split("\n\n")[0]
    assert "minilm_l6" in overview and "91.7% vs 50.0%" in overview and "slm 66.7%" in overview
    section = markdown.split("## tickets")[1]
    side_by_side = [line for line in section.splitlines() if line.startswith(("| **encoder**", "| slm", "| baseline"))]
    assert [line.split(" | ")[2] for line in side_by_side[:3]] == ["91.7% [75.0%, 100.0%]", "66.7% [41.7%, 91.7%]",
                                                                   "50.0% [25.0%, 75.0%]"]  # fmt: skip
    assert "| label | F1 encoder | F1 slm | F1 baseline |" in section
    assert "Worst encoder errors" in section and "Cascade (encoder first)" in section
    html = html_path.read_text()
    assert "91.7%" in html and "F1 encoder" in html


def test_a_local_stand_in_is_not_called_the_llm(tmp_path):
    """The default reference is the SLM's base model untuned: the report says so, and calls it the baseline."""
    from slmtier.report import load_run, render_html, render_markdown

    run_dir = write_three_tier_run(tmp_path / "run", encoder_right=11, slm_right=10)
    markdown = render_markdown(load_run(run_dir))
    assert "gap to the baseline" in markdown and "a local stand-in, not an LLM" in markdown
    assert "only the baseline;" in markdown and "the baseline tier **" in markdown  # McNemar, the monthly cost
    assert "gap to the LLM" not in markdown and "the LLM tier" not in markdown
    assert "a local stand-in, not an LLM" in render_html(load_run(run_dir))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["candidates"]["baseline"]["source"] = {
        "kind": "openai_compatible", "endpoint_model": "gpt-4o", "base_url": "https://llm.example/v1", "price": None,
        "cache": {"hits": 0, "misses": 12}, "http_requests": 12, "spent_usd": 0.01,
    }  # fmt: skip
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    markdown = render_markdown(load_run(run_dir))
    assert "gap to the LLM" in markdown and "stand-in" not in markdown
