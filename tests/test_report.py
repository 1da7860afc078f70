"""Reports are rebuilt from run files alone; data shown in HTML is escaped; missing files are named."""

import json
import re

import pytest

from slmtier.cli.main import main as slmtier_main
from slmtier.errors import RunDirError
from slmtier.report import load_run, render_html, render_markdown, write_reports
from slmtier.run_dir import write_metrics
from slmtier.tasks.classification import score_classification

LABELS = ("billing", "refund")
NASTY = '<script>alert("x")</script> | pipes & <b>tags</b>'


def make_run_dir(path):
    rows = [
        {
            "id": "t1",
            "input": NASTY,
            "raw_output": "<img src=x onerror=alert(1)>",
            "parsed": None,
            "gold": "billing",
            "correct": 0.0,
            "latency_ms": 12.0,
            "input_tokens": 50,
            "output_tokens": 3,
        },
        {
            "id": "t2",
            "input": "refund please",
            "raw_output": "refund",
            "parsed": "refund",
            "gold": "refund",
            "correct": 1.0,
            "latency_ms": 14.0,
            "input_tokens": 40,
            "output_tokens": 2,
        },
    ]
    (path / "predictions").mkdir(parents=True)
    candidate = {
        "model": "tiny <model>",
        "n": 2,
        "quality": {"metric": "accuracy", "value": 0.5},
        **score_classification([r["parsed"] for r in rows], [r["gold"] for r in rows], LABELS),
        "latency_ms": {"mean": 13.0, "p50": 13.0, "p95": 13.9},
        "tokens_per_request": {"input": 45.0, "output": 2.5},
    }
    for name in ("slm", "baseline"):
        (path / "predictions" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    write_metrics(
        {
            "recipe": "demo",
            "task_kind": "classification",
            "primary_metric": "accuracy",
            "created": "2026-11-28T00:00:00+00:00",
            "data": {s: {"path": f"{s}.jsonl", "n": 2} for s in ("train", "validation", "test")},
            "training": {
                "base_model": "tiny",
                "lora": {"r": 4},
                "steps": 1,
                "examples": 2,
                "train_loss": 1.0,
                "runtime_s": 1.0,
                "tokens_per_s": 10.0,
                "truncated_examples": 3,
            },
            "candidates": {"slm": candidate, "baseline": candidate},
            "decision": {"verdict": "slm", "reason": "good enough", "rule": "accuracy(slm) >= ..."},
        },
        path,
    )
    (path / "config.yaml").write_text("task:\n  instruction: <b>hi</b>\n")
    return path


def test_html_escapes_everything_from_data(tmp_path):
    html = render_html(load_run(make_run_dir(tmp_path / "run")))
    assert html.count('<img class="plot"') == 1  # the latency figure: a data: URI made here, not data
    html = re.sub(
        r'<img class="plot" id="plot-latency" alt="latency distribution" src="data:image/png;base64,[A-Za-z0-9+/=]+">',
        "",
        html,
    )
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
    md, html = write_reports(run)
    assert md.is_file() and html.is_file()
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


def test_metrics_missing_keys_is_a_run_dir_error(tmp_path):
    run = make_run_dir(tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    del metrics["candidates"]["slm"]["latency_ms"]
    del metrics["training"]["truncated_examples"]  # optional: older runs lack it
    write_metrics(metrics, run)
    with pytest.raises(RunDirError, match="lacks what the report needs"):
        render_markdown(load_run(run))


def test_remote_code_is_named_only_when_it_ran(tmp_path):
    run = make_run_dir(tmp_path / "run")
    assert "Remote code ran" not in render_markdown(load_run(run)) + render_html(load_run(run))
    metrics_path = run / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["training"]["trust_remote_code"] = True
    metrics_path.write_text(json.dumps(metrics))
    markdown, html = render_markdown(load_run(run)), render_html(load_run(run))
    assert "**Remote code ran**" in markdown and "<b>Remote code ran</b>" in html
