"""No verdict against an LLM that did not answer (issue 15): with every LLM request failing (a 500 each time),
a run used to print "encoder ... non-inferior", exit 0 and write `tier: encoder`. Above
decision.max_llm_failure_rate the verdict is `undecided`, the command exits 3 with the reason, the reports' first
line counts the failures, and a rerun once the endpoint answers asks it again and reaches a verdict."""

from __future__ import annotations

import json

import yaml

from helpers.fault_server import FaultServer
from helpers.files import read_jsonl
from helpers.processes import run_train_cli
from helpers.tiny import tiny_overrides
from slmtier.benchmark.decide import TierEvidence, decide_tiers
from slmtier.config import DecisionConfig

PASSING_GAP = {"value": 0.0, "low": -0.01, "high": 0.01, "n": 100}


def decide(failed: int, n: int = 100, limit: float = 0.05):
    policy = DecisionConfig(max_llm_failure_rate=limit)
    tier = TierEvidence("encoder", PASSING_GAP, monthly_usd=1.0)
    return decide_tiers(metric="accuracy", policy=policy, tiers=[tier], llm_monthly_usd=100.0, llm_failed=(failed, n))


def test_a_verdict_needs_the_llm_to_have_answered():
    assert decide(0).verdict == "encoder" and all(check["tier"] != "llm" for check in decide(0).checks)
    within = decide(5)  # 5% is allowed, and said
    assert within.verdict == "encoder" and within.checks[0]["passed"] and "5 of 100" in within.checks[0]["detail"]
    above = decide(6)
    assert above.verdict == "undecided" and above.tier is None
    assert "6 of 100 LLM answers failed" in above.reason and "max_llm_failure_rate" in above.reason
    assert decide(100).verdict == "undecided" and decide(6, limit=0.1).verdict == "encoder"


def test_an_llm_that_never_answers_gives_no_verdict_until_it_does(tiny_model_dir, small_data, tmp_path):
    run_dir = tmp_path / "run"
    with FaultServer(lambda text, attempt: "500") as server:
        command = [
            *tiny_overrides(tiny_model_dir, small_data, run_dir),
            "baseline=openai_compatible", f"baseline.endpoint.base_url={server.base_url}",
            "baseline.endpoint.model=gpt-4o", "baseline.endpoint.api_key_env=SLMTIER_TEST_KEY",
            "baseline.endpoint.max_retries=0", f"baseline.endpoint.cache_path={tmp_path / 'cache.sqlite'}",
        ]  # fmt: skip
        env = {"SLMTIER_TEST_KEY": "sk-test-undecided-0123456789"}
        failed = run_train_cli(*command, env=env)
        assert failed.returncode == 3, failed.stderr[-3000:]
        assert "error:" in failed.stderr and "12 of 12 LLM answers failed" in failed.stderr
        assert "Traceback" not in failed.stderr
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["decision"]["verdict"] == "undecided"
        assert (run_dir / "report.md").read_text().splitlines()[0].endswith("12 of 12 LLM answers failed (100.0%)")
        assert "12 of 12 LLM answers failed" in (run_dir / "report.html").read_text()
        routing = yaml.safe_load((run_dir / "routing.yaml").read_text())
        assert routing["tier"] == "undecided" and "slm" not in routing and routing["llm"]["model"] == "gpt-4o"

        # The endpoint is mended: the same command asks the LLM again (training and the SLM's rows are kept).
        server.plan = lambda text, attempt: "ok"
        asked_before = len(server.seen)
        again = run_train_cli(*command, env=env)
        assert again.returncode == 0, again.stderr[-3000:]
        assert len(server.seen) - asked_before == 12 + 8  # the test and validation splits, each row once
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["decision"]["verdict"] != "undecided"
    assert metrics["candidates"]["llm"]["requests"]["failed"] == 0
    assert "LLM answers failed" not in (run_dir / "report.md").read_text().splitlines()[0]
    assert all(row["error"] is None for row in read_jsonl(run_dir / "predictions" / "llm.jsonl"))
    assert "training finished in an earlier attempt" in again.stdout + again.stderr
