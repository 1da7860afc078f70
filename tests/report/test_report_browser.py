"""The architect report over several real (tiny) runs, opened in a real headless browser.

Needs Debian's `chromium` (.ci/run installs it); without it the browser test is skipped locally and fails in CI.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.files import TICKETS, read_jsonl, write_jsonl
from helpers.processes import run_train_cli
from helpers.tiny import tiny_overrides

NASTY = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes"'


@pytest.fixture(scope="module")
def sweep(tiny_model_dir, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`python train.py -m ... trainer.seed=1,2`: the ticket task trained twice in one Hydra sweep, with a hostile
    ticket text in the test split; (the sweep folder, the command's result)."""
    folder = tmp_path_factory.mktemp("agg")
    # In every ticket, so that whichever errors the report shows as the worst carry it.
    test_rows = [{**row, "text": f"{NASTY} {row['text']}"} for row in read_jsonl(TICKETS / "test.jsonl")[:12]]
    data = {
        "train": write_jsonl(folder / "train.jsonl", read_jsonl(TICKETS / "train.jsonl")[:24]),
        "validation": write_jsonl(folder / "validation.jsonl", read_jsonl(TICKETS / "validation.jsonl")[:8]),
        "test": write_jsonl(folder / "test.jsonl", test_rows),
    }
    overrides = tiny_overrides(tiny_model_dir, data, folder / "unused")[:-1]  # no hydra.run.dir in a sweep
    result = run_train_cli("-m", *overrides, "trainer.seed=1,2", f"hydra.sweep.dir={folder / 'sweep'}")
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "sweep", result


@pytest.fixture(scope="module")
def two_runs(sweep) -> list[Path]:
    """The sweep's two run directories (seeds 1 and 2)."""
    return sorted(path.parent for path in sweep[0].rglob("metrics.json"))


def test_aggregate_report_files(two_runs, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "slmtier", "report", *map(str, two_runs), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "report.json").read_text())
    task = summary["tasks"]["ticket_classifier"]
    assert summary["runs"] == 2 and len(task["models"]) == 2
    assert task["selected_by"] == "validation" and task["selected_run"] in map(str, two_runs)
    assert task["verdict"] in {"slm", "cascade", "llm"} and task["rule"].startswith("slm if the lower bound")
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "## Overview" in markdown and "## Methods" in markdown and "## Caveats" in markdown
    for run in two_runs:  # each run's own reports and routing artefact
        routing = (run / "routing.yaml").read_text()
        assert "version: 2" in routing and "tier: " in routing and "expected:" in routing


def test_several_runs_need_an_output_folder(two_runs):
    result = subprocess.run(
        [sys.executable, "-m", "slmtier", "report", *map(str, two_runs)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "--out" in result.stderr


def test_report_opens_cleanly_in_a_headless_browser(two_runs, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI; .ci/run installs it")
        pytest.skip("chromium not installed (apt-get install chromium)")
    out = tmp_path / "out"
    subprocess.run(
        [sys.executable, "-m", "slmtier", "report", *map(str, two_runs), "--out", str(out)], check=True, timeout=300
    )
    html_path = out / "report.html"
    html = html_path.read_text()
    assert "<script" not in html and "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")
    assert "&lt;script&gt;alert(" in html  # the hostile ticket is shown, as text
    for uri in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html):
        assert base64.b64decode(uri)[:8] == b"\x89PNG\r\n\x1a\n"

    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1300,2400",
    ]
    shot = subprocess.run(
        [chromium, *flags, f"--screenshot={tmp_path / 'report.png'}", html_path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", html_path.as_uri()], capture_output=True, text=True, timeout=120
    )
    console = [line for line in (shot.stderr + dom.stderr).splitlines() if "CONSOLE" in line]
    assert console == []  # no script errors, no failed loads: the page has no script and no external resource
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert 'id="overview"' in dom.stdout and dom.stdout.count("<tr>") >= 3
    assert dom.stdout.count('data-plot="frontier"') == 1 and dom.stdout.count('data-plot="latency"') == 1
    assert "<script>" not in dom.stdout  # the browser did not turn data into markup


def test_a_multirun_sweep_ends_with_one_combined_report(sweep):
    """`python train.py -m ...` (Hydra's sweep): one run directory per job, then the architect report."""
    folder, result = sweep
    jobs = sorted(path.parent for path in folder.rglob("metrics.json"))
    assert [job.relative_to(folder).as_posix() for job in jobs] == [
        "ticket_classifier/tiny/0",
        "ticket_classifier/tiny/1",
    ]
    summary = json.loads((folder / "report.json").read_text())
    assert summary["runs"] == 2 and len(summary["tasks"]["ticket_classifier"]["models"]) == 2
    assert (folder / "report.html").stat().st_size > 10_000 and "combined report over 2 run(s)" in result.stdout
