"""`slmtier monitor`: windows of crafted logs with a known answer, the re-fit against a hand-computed case, and the
command end to end over the log a real router wrote, bad logs included."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import openai
import pandas as pd
import pytest
import yaml

from helpers.fault_server import FaultServer
from helpers.servers import Router, benchmark_tiny_run, routing_as
from slmtier.benchmark.cascade import build_curve
from slmtier.config import TaskConfig
from slmtier.monitor.reference import Reference
from slmtier.monitor.refit import Pairs, _advice, refit, weighted_curve
from slmtier.monitor.run import Settings, monitor_task
from slmtier.report.routing import routing_id
from slmtier.run_dir import RunDir
from slmtier.serve.request_log import RequestLog, read_request_log
from slmtier.serve.router import build_router
from slmtier.serve.routes import load_route
from slmtier.tasks import build_task

LABELS = ["billing", "refund", "shipping", "complaint"]
SHARES = [0.4, 0.3, 0.2, 0.1]


def crafted_reference(tmp_path: Path, rng: np.random.Generator, **overrides) -> Reference:
    """A cascade whose validation confidences are Beta(8, 2), answers in SHARES, agreement with the LLM 90%."""
    confidences = rng.beta(8, 2, 400).tolist()
    fields = dict(
        path=tmp_path / "routing.yaml", routing={"task": "tickets"}, routing_id="r1", run=RunDir(tmp_path),
        task=build_task(TaskConfig(kind="classification", instruction="{labels}", labels=LABELS)), tier="cascade",
        local="encoder", llm="baseline", margin=0.02, escalate_below=0.6,
        expected_escalation_rate=float(np.mean(np.array(confidences) < 0.6)), shadow_rate=0.5,
        confidences=confidences, answers=rng.choice(LABELS, 400, p=SHARES).tolist(),
        inputs=[f"ticket {'x' * int(n)}" for n in rng.integers(20, 80, 400)],
        agreement=(rng.random(400) < 0.9).astype(float).tolist(),
        expected={"usd_per_1k": {"encoder": 0.01, "llm": 3.0, "cascade": 0.5}, "p95_ms": {"cascade": 50.0}},
    )  # fmt: skip
    return Reference(**{**fields, **overrides})


def crafted_records(rng: np.random.Generator, n: int, *, alpha: float = 8, beta: float = 2, shares=SHARES,
                    agreement: float = 0.9, threshold: float = 0.6, start: float = 1.8e9) -> pd.DataFrame:  # fmt: skip
    """n logged requests (and a shadow answer for every second locally answered one), as the log reader gives."""
    rows = []
    for i in range(n):
        confidence = float(rng.beta(alpha, beta))
        local = str(rng.choice(LABELS, p=shares))
        escalated = confidence < threshold
        answer = local if not escalated or rng.random() < agreement else "complaint"
        rows.append({"time": start + i, "request_id": f"q{i}", "task": "tickets", "routing": "r1", "kind": "request",
                     "tier": "llm" if escalated else "encoder", "escalated": escalated, "confidence": confidence,
                     "local_confidence": confidence, "answer": json.dumps(answer), "local_answer": json.dumps(local),
                     "cost_usd": 0.003 if escalated else None, "error": None, "input_chars": int(rng.integers(25, 85)),
                     "input": None, "latency_total_ms": 10.0, "errors": "{}", "parsed": True})  # fmt: skip
        if not escalated and i % 2 == 0:
            agrees = rng.random() < agreement
            llm = local if agrees else next(label for label in LABELS if label != local)
            rows.append({"time": start + i + 0.5, "request_id": f"q{i}", "task": "tickets", "routing": "r1",
                         "kind": "shadow", "tier": "llm", "answer": json.dumps(llm), "local_answer": json.dumps(local),
                         "agrees": agrees, "cost_usd": 0.003, "error": None})  # fmt: skip
    return pd.DataFrame(rows)


def fired(task: dict) -> set[str]:
    return {check["name"] for window in task["windows"] for check in window["checks"] if check["fired"]}


def test_an_undrifted_window_raises_no_alarm_and_a_drifted_one_says_what_moved(tmp_path):
    reference = crafted_reference(tmp_path, np.random.default_rng(1))
    calm = monitor_task(reference, crafted_records(np.random.default_rng(2), 400), Settings(), labels=None)
    assert fired(calm) == set() and calm["fired"] == []
    [window] = calm["windows"]
    assert window["requests"] == 400 and window["shadowed"] > 100
    # shadow, CBPE, confidence, labels, one label's share, length, escalation rate
    assert window["alpha_per_check"] == pytest.approx(0.05 / 7)
    drifted = crafted_records(np.random.default_rng(3), 400, alpha=3, beta=3, shares=[0.1, 0.1, 0.1, 0.7],
                              agreement=0.6)  # fmt: skip
    alarm = monitor_task(reference, drifted, Settings(), labels=None)
    assert {"shadow quality", "estimated accuracy", "confidence", "predicted label", "escalation rate"} <= fired(alarm)
    assert "label share" in fired(alarm)
    assert any("'complaint' rose from" in sentence for sentence in alarm["fired"])  # the label whose share moved


def test_llm_answers_the_parser_cannot_read_are_counted_against_the_benchmarks_share(tmp_path):
    """The LLM changing its wording (a model update naming labels its own way) shows as unreadable answers."""
    reference = crafted_reference(tmp_path, np.random.default_rng(1), llm_unparsed=(2, 200))
    calm = monitor_task(reference, crafted_records(np.random.default_rng(2), 400), Settings(), labels=None)
    [check] = [c for c in calm["windows"][0]["checks"] if c["name"] == "LLM answers the parser cannot read"]
    records = crafted_records(np.random.default_rng(2), 400)
    # The LLM's answers as a request log holds them: escalated requests parsed or not, shadow answers or null.
    assert check["n"] == int((records["tier"] == "llm").sum()) and not check["fired"]
    changed = records.copy()
    unreadable = changed.index[(changed["kind"] == "shadow")][::4]
    changed.loc[unreadable, "answer"] = "null"
    escalated = changed.index[(changed["kind"] == "request") & (changed["tier"] == "llm")][::4]
    changed.loc[escalated, "parsed"] = False
    result = monitor_task(reference, changed, Settings(), labels=None)
    [check] = [c for c in result["windows"][0]["checks"] if c["name"] == "LLM answers the parser cannot read"]
    assert check["fired"] and check["details"]["k"] == len(unreadable) + len(escalated)
    assert check["sentence"].startswith("LLM answers the parser cannot read: ")
    assert "against 1.0% (2 of 200) on the benchmark split" in check["sentence"]
    # The escalation check keeps its own expected rate beside this one (each check binds its own figures).
    [escalation] = [c for c in result["windows"][0]["checks"] if c["name"] == "escalation rate"]
    assert escalation["reference"] == pytest.approx(reference.expected_escalation_rate) and not escalation["fired"]


def test_windows_are_judged_apart(tmp_path):
    reference = crafted_reference(tmp_path, np.random.default_rng(1))
    calm = crafted_records(np.random.default_rng(2), 300, start=1.8e9)
    drifted = crafted_records(np.random.default_rng(3), 300, alpha=3, beta=3, start=1.8e9 + 3600)
    result = monitor_task(reference, pd.concat([calm, drifted]), Settings(window="1h"), labels=None)
    assert [window["requests"] for window in result["windows"]] == [300, 300]
    assert not any(check["fired"] for check in result["windows"][0]["checks"])
    assert any(check["fired"] for check in result["windows"][1]["checks"])


def hand_case() -> pd.DataFrame:
    """Threshold 0.5, shadow rate 0.5: two escalated requests (local answer wrong at 0.2, right at 0.4) and three
    shadowed local answers (wrong at 0.6, right at 0.8 and 0.9), each standing for two requests."""
    rows = []
    for rid, confidence, local, llm, kind in [("e1", 0.2, "refund", "billing", "escalated"),
                                               ("e2", 0.4, "billing", "billing", "escalated"),
                                               ("s1", 0.6, "refund", "billing", "shadowed"),
                                               ("s2", 0.8, "billing", "billing", "shadowed"),
                                               ("s3", 0.9, "shipping", "shipping", "shadowed")]:  # fmt: skip
        escalated = kind == "escalated"
        rows.append({"time": 1.0, "request_id": rid, "kind": "request", "tier": "llm" if escalated else "encoder",
                     "escalated": escalated, "local_confidence": confidence, "local_answer": json.dumps(local),
                     "answer": json.dumps(llm if escalated else local), "error": None})  # fmt: skip
        if not escalated:
            rows.append({"time": 2.0, "request_id": rid, "kind": "shadow", "tier": "llm", "answer": json.dumps(llm),
                         "local_answer": json.dumps(local), "error": None, "local_confidence": None,
                         "escalated": None})  # fmt: skip
    return pd.DataFrame(rows)


def test_the_refit_picks_the_cheapest_threshold_that_reaches_the_target_by_hand(tmp_path):
    reference = crafted_reference(tmp_path, np.random.default_rng(1), escalate_below=0.5, margin=0.1,
                                  expected={"usd_per_1k": {"encoder": 0.1, "llm": 1.0}})  # fmt: skip
    result = refit(reference, hand_case(), None, min_pairs=1)
    # Weights 1, 1, 2, 2, 2 (8 in all). At 0.5: e1 and e2 escalate (rate 2/8), right: e1 (the LLM), e2, s2, s3
    # = 6/8. The target is 1 - 0.1: escalating s1 too (below 0.8: rate 4/8) makes every answer the LLM's.
    assert result["current"]["escalation_rate"] == pytest.approx(2 / 8)
    assert result["current"]["quality"] == pytest.approx(6 / 8)
    assert result["target_quality"] == pytest.approx(0.9)
    assert result["fitted"]["threshold"] == pytest.approx(0.8) and result["fitted"]["quality"] == pytest.approx(1.0)
    assert result["fitted"]["escalation_rate"] == pytest.approx(4 / 8)
    assert result["fitted"]["usd_per_1k"] == pytest.approx(0.1 + 0.5 * 1.0)
    assert result["holds"] is False and result["next_step"] == "refit"
    # With human labels the target is the LLM's own quality on them minus the margin.
    labels = {"e1": "refund", "e2": "billing", "s1": "refund", "s2": "billing", "s3": "shipping"}
    gold = refit(reference, hand_case(), labels, min_pairs=1)
    assert gold["reference"] == "human labels"
    assert gold["target_quality"] == pytest.approx((0 + 1 + 0 + 2 + 2) / 8 - 0.1)  # the LLM was wrong on e1 and s1


@pytest.mark.parametrize(
    ("current_interval", "fitted_interval", "step", "confirmed"),
    [
        ((0.90, 0.97), (0.980, 0.990), "refit", True),  # the deployed one shown to miss, the re-fit to reach
        ((0.90, 0.97), (0.975, 0.990), "refit", False),  # shown to miss; the re-fit not shown to reach
        ((0.97, 0.99), (0.975, 0.990), "more_data", False),  # neither shown either way
        ((0.98, 0.99), (0.975, 0.990), "keep", True),  # the deployed one still shown to reach
    ],
)
def test_the_advice_reads_both_intervals(current_interval, fitted_interval, step, confirmed):
    target = 0.98
    current = {"threshold": 0.5, "quality": 0.975, "quality_interval": list(current_interval), "escalation_rate": 0.3}
    fitted = {"threshold": 0.6, "quality": 0.981, "quality_interval": list(fitted_interval), "escalation_rate": 0.35,
              "usd_per_1k": 0.5}  # fmt: skip
    holds = current_interval[0] >= target
    got, sentence = _advice(holds, current, fitted, target, {"local_usd": 0.1, "llm_usd": 1.0})
    assert got == step
    assert ("reaches below the target too" in sentence) == (step == "refit" and not confirmed)
    assert ("not confirmed" in sentence) == (step == "more_data")


# ---------------------------------------------------------------- end to end, over a real router's log


@pytest.fixture(scope="module")
def served(tiny_model_dir, tmp_path_factory):
    """A tiny run benchmarked against the fault server, routed as a cascade with half its local answers
    shadowed; the test split sent four times over through the official client. The router keeps running."""
    folder = tmp_path_factory.mktemp("monitor")
    with FaultServer(lambda text, attempt: "ok") as llm:
        run = benchmark_tiny_run(tiny_model_dir, llm, folder, sizes=(24, 40, 40))
        rows = RunDir(run).read_predictions("slm")
        threshold = statistics.median(row["confidence"] for row in rows)
        expected = sum(row["confidence"] < threshold for row in rows) / len(rows)
        routing = routing_as(run, folder, "tickets", "cascade", shadow_rate=0.5, escalate_below=threshold,
                             expected_escalation_rate=expected)  # fmt: skip
        log = folder / "log"
        app = build_router({"tickets": load_route(routing)}, api_key=None, request_log=RequestLog(log))
        with Router(app) as base_url:
            client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
            for repeat in range(4):
                for row in rows:
                    message = {"role": "user", "content": row["input"]}
                    client.chat.completions.create(model="tickets", messages=[message],
                                                   extra_headers={"x-request-id": f"{row['id']}-{repeat}"})  # fmt: skip
            deadline = time.monotonic() + 30  # shadow answers land after the responses
            while len([r for r in read_request_log(log) if r.get("kind") == "shadow"]) < 1:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            yield {"run": run, "routing": routing, "log": log, "folder": folder, "n": 4 * len(rows), "url": base_url}


def run_monitor(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "slmtier", "monitor", *map(str, args)], capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_monitor_over_a_real_routers_log(served, tmp_path):
    out = tmp_path / "out"
    result = run_monitor(served["log"], "--routing", served["routing"], "--out", out)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    report = json.loads((out / "monitor.json").read_text())
    assert report["exit_code"] == result.returncode and report["problems"] == []
    [task] = report["tasks"]
    [window] = task["windows"]
    records = [r for r in read_request_log(served["log"]) if r.get("kind") != "shadow"]
    assert window["requests"] == len(records) == served["n"]
    assert window["escalation_rate"] == pytest.approx(sum(r["escalated"] for r in records) / len(records))
    assert task["routing_id"] == routing_id(yaml.safe_load(served["routing"].read_text()))
    names = {check["name"] for check in window["checks"]}
    assert {"estimated accuracy", "confidence", "predicted label", "escalation rate", "input length"} <= names
    assert (result.returncode == 1) == bool(report["fired"])
    for sentence in report["fired"]:
        assert sentence.split(": ", 1)[1][:40] in result.stderr
    html = (out / "monitor.html").read_text()
    assert "<img" in html and "data:image/png;base64," in html and "tickets" in (out / "monitor.md").read_text()
    # The reference: the local tier on every held-out example of the run (40 validation + 40 test).
    assert task["reference_splits"] == ["validation", "test"] and task["reference_n"] == 80
    assert "the local tier on 80 examples of its validation and test split(s)" in (out / "monitor.md").read_text()


def test_the_reference_splits_can_be_chosen(served, tmp_path):
    out = tmp_path / "out"
    result = run_monitor(
        served["log"], "--routing", served["routing"], "--out", out, "--reference-splits", "validation"
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    [task] = json.loads((out / "monitor.json").read_text())["tasks"]
    assert task["reference_splits"] == ["validation"] and task["reference_n"] == 40
    [window] = task["windows"]
    [labels] = [check for check in window["checks"] if check["name"] == "predicted label"]
    assert labels["details"]["reference_n"] == 40
    bad = run_monitor(served["log"], "--routing", served["routing"], "--out", out, "--reference-splits", "train")
    assert bad.returncode == 2 and "reference splits ['train']: choose from validation, test" in bad.stderr


def test_human_labels_turn_the_estimate_into_measured_quality(served, tmp_path):
    gold = {row["id"]: row["gold"] for row in RunDir(served["run"]).read_predictions("slm")}
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"request_id": f"{i}-{k}", "label": g}) + "\n"
                              for i, g in gold.items() for k in range(4)))  # fmt: skip
    result = run_monitor(served["log"], "--routing", served["routing"], "--out", tmp_path / "out", "--labels", labels)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    [window] = json.loads((tmp_path / "out" / "monitor.json").read_text())["tasks"][0]["windows"]
    [measured] = [check for check in window["checks"] if check["name"] == "measured quality"]
    assert measured["n"] == served["n"]


def test_bad_logs_are_named_and_every_readable_record_is_still_used(served, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    good = sorted(served["log"].glob("requests-*.jsonl"))
    lines = [line for path in good for line in path.read_text().splitlines()]
    stray = json.loads(lines[0]) | {"task": "unknown-task", "request_id": "stray"}
    other = json.loads(lines[0]) | {"routing": "0000000000000000", "request_id": "other"}
    text = "\n".join(lines[:10]) + "\n" + json.dumps(stray) + "\n" + json.dumps(other) + "\n{not json\n" + lines[10]
    bad = logs / "requests-host-1-2026120700.jsonl"
    bad.write_text(text + "\n" + lines[11][:25])  # the last line cut short
    (logs / "requests-host-2-2026120700.jsonl").write_text("\n".join(lines[12:]) + "\n")
    result = run_monitor(logs, "--routing", served["routing"], "--out", tmp_path / "out")
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"{bad}:13: not a JSON record" in result.stderr
    assert f"{bad}:15: the last line is cut short" in result.stderr
    assert "'unknown-task', which no --routing given covers" in result.stderr
    assert "served under another routing.yaml" in result.stderr
    report = json.loads((tmp_path / "out" / "monitor.json").read_text())
    readable = [json.loads(line) for line in lines[:11] + lines[12:]]
    requests = [r for r in readable if r.get("kind") != "shadow"]
    assert report["tasks"][0]["windows"][0]["requests"] == len(requests)


def test_bad_options_exit_2_before_reading(served, tmp_path):
    result = run_monitor(served["log"], "--routing", served["routing"], "--out", tmp_path, "--window", "1 week")
    assert result.returncode == 2 and "--window '1 week'" in result.stderr


def test_replay_sends_a_split_as_an_application_would_with_the_drift_asked(served, tmp_path):
    split = served["folder"] / "test.jsonl"
    labels = tmp_path / "labels.jsonl"
    command = [sys.executable, "-m", "slmtier", "replay", split, "--router", served["url"], "--model", "tickets",
               "--rate", "200", "--repeat", "2", "--label-shift", "refund=4", "--id-prefix", "shifted",
               "--write-labels", labels]  # fmt: skip
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["sent"] == 80 and summary["statuses"] == {"200": 80}
    logged = {r["request_id"] for r in read_request_log(served["log"]) if r["request_id"].startswith("shifted-")}
    assert logged == {f"shifted-{i}" for i in range(80)}
    sent = [json.loads(line)["label"] for line in labels.read_text().splitlines()]
    split_rows = [json.loads(line) for line in split.read_text().splitlines()]
    share_in_split = sum(row["label"] == "refund" for row in split_rows) / len(split_rows)
    assert sum(label == "refund" for label in sent) / len(sent) > 2 * share_in_split


def test_replay_refuses_a_label_the_split_does_not_have(served):
    command = [sys.executable, "-m", "slmtier", "replay", served["folder"] / "test.jsonl", "--router", served["url"],
               "--model", "tickets", "--label-shift", "no_such_label=4"]  # fmt: skip
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no_such_label" in result.stderr


def test_the_monitor_logs_its_figures_to_wandb(served, tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wb"), "WANDB_SILENT": "true"}
    command = [sys.executable, "-m", "slmtier", "monitor", served["log"], "--routing", served["routing"], "--out",
               tmp_path / "out", "--tracking", "wandb"]  # fmt: skip
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    [run] = list((tmp_path / "out").rglob("offline-run-*"))
    records = b"".join(path.read_bytes() for path in run.rglob("*.wandb"))
    for expected in (b"monitor/tickets/escalation_rate", b"monitor/tickets/checks_fired", b"slmtier-monitor-out"):
        assert expected in records, expected


def test_the_live_curve_is_the_benchmarks_curve_when_every_pair_weighs_one():
    rng = np.random.default_rng(4)
    n = 300
    confidence = np.round(rng.random(n), 2)  # ties, as real confidences have
    local = np.column_stack([rng.integers(0, 3, n), np.full(n, 2.0)]).astype(float)
    llm = np.column_stack([rng.integers(1, 3, n), np.full(n, 2.0)]).astype(float)
    pairs = Pairs(confidence, local, llm, np.ones(n), np.zeros(n, bool))
    live = weighted_curve(pairs, local_usd=0.1, llm_usd=2.0)
    benchmark = build_curve(confidence, local, llm, local_usd_per_1k=0.1, llm_usd_per_1k=2.0)
    assert live["threshold"].tolist() == [point["threshold"] for point in benchmark]
    for key in ("quality", "escalation_rate", "usd_per_1k"):
        assert live[key] == pytest.approx([point[key] for point in benchmark])


def test_latency_is_checked_against_the_slo_given(served, tmp_path):
    result = run_monitor(served["log"], "--routing", served["routing"], "--out", tmp_path, "--latency-slo-ms",
                         "tickets=0.001")  # fmt: skip
    assert result.returncode == 1 and "P95 latency" in result.stderr
    [window] = json.loads((tmp_path / "monitor.json").read_text())["tasks"][0]["windows"]
    [latency] = [check for check in window["checks"] if check["name"] == "p95 latency"]
    assert latency["fired"] and latency["reference"] == 0.001
