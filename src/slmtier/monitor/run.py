"""`slmtier monitor`: a window of logged traffic per task, its figures, and the checks against the reference.

Per task (one routing.yaml each) and per window (`--window`, or the whole range as one), from the log records
served under that routing:
- figures: requests, tier mix, escalation rate, shadow agreement, estimated quality, p95 latency, cost per 1k;
- checks (slmtier.monitor.checks), each with its statistic and a sentence: shadow quality against the LLM,
  estimated quality from the confidences (CBPE), confidence drift, output drift (predicted labels and each one's
  share, or each extraction field's null share), input length drift, and with `--log-inputs` logs the domain
  classifier and the input script; the escalation rate against the routing's expectation; LLM answers that name
  no label; cost and p95 latency against the projection. The statistical checks of a window share its false-alarm budget
  (`family_alpha`, Bonferroni): on undrifted traffic a window alarms with chance at most 5% by default;
- human labels (`labels`: request id -> gold) turn the estimate into measured quality for those requests.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from slmtier.benchmark.summary import percentile
from slmtier.errors import SlmtierError
from slmtier.monitor import checks
from slmtier.monitor.logs import RequestLogs, decode
from slmtier.monitor.reference import Reference

WINDOW = re.compile(r"^(\d+)\s*(m|h|d)$")
SECONDS = {"m": 60, "h": 3600, "d": 86400}


@dataclass
class Settings:
    family_alpha: float = 0.05  # per window: the chance a healthy window raises any alarm
    window: str | None = None  # 30m, 1h, 1d; None = the whole range is one window
    min_n: int = 30  # a check with fewer examples a side is skipped, not fired
    cost_tolerance: float = 0.25  # cost per 1k may exceed the projection by this share before it alarms
    latency_slo_ms: dict[str, float] = field(default_factory=dict)  # task -> p95 SLO (no SLO: no latency check)
    seed: int = 0


def window_seconds(window: str | None) -> int | None:
    if window is None:
        return None
    found = WINDOW.match(window.strip())
    if not found or int(found.group(1)) == 0:
        raise SlmtierError(f"--window {window!r}: a length such as 30m, 1h or 1d")
    return int(found.group(1)) * SECONDS[found.group(2)]


def monitor_task(reference: Reference, records: pd.DataFrame, settings: Settings, labels: dict | None) -> dict:
    """Every window's figures and checks for one task (records already its own, served under its routing)."""
    requests = records[records["kind"] == "request"]
    shadows = records[records["kind"] == "shadow"]
    size = window_seconds(settings.window)
    windows = []
    if len(records):
        if size is None:
            edges = [(float(records["time"].min()), float(records["time"].max()) + 1e-6)]
        else:
            first = math.floor(records["time"].min() / size) * size
            last = records["time"].max()
            edges = [(start, start + size) for start in np.arange(first, last + 1e-9, size)]
        for start, end in edges:
            inside_requests = requests[(requests["time"] >= start) & (requests["time"] < end)]
            inside_shadows = shadows[(shadows["time"] >= start) & (shadows["time"] < end)]
            if len(inside_requests) == 0:
                continue
            windows.append(judge_window(reference, inside_requests, inside_shadows, settings, labels, start, end))
    return {
        "task": reference.name,
        "routing": str(reference.path),
        "routing_id": reference.routing_id,
        "tier": reference.tier,
        "local_tier": reference.local,
        "run_dir": str(reference.run.path),
        "reference_splits": list(reference.splits),
        "reference_n": len(reference.answers),
        "windows": windows,
        "fired": [f"{w['label']}: {c['sentence']}" for w in windows for c in w["checks"] if c["fired"]],
        "refit": None,  # a cascade's (slmtier.monitor.refit), and the proposed routing.yaml it wrote
        "proposed_routing": None,
        "proposed_diff": None,
    }


def judge_window(reference: Reference, requests: pd.DataFrame, shadows: pd.DataFrame, settings: Settings,
                 labels: dict | None, start: float, end: float) -> dict:  # fmt: skip
    figures = window_figures(reference, requests, shadows)
    statistical = statistical_checks(reference, requests, shadows, labels, settings)
    alpha = checks.per_check_alpha(settings.family_alpha, max(1, len(statistical)))
    results = [check(alpha) for check in statistical] + limit_checks(reference, figures, settings)
    return {
        "start": start,
        "end": end,
        "label": f"{pd.Timestamp(start, unit='s', tz='UTC'):%Y-%m-%d %H:%M}",
        **figures,
        "alpha_per_check": alpha,
        "checks": [result.to_dict() for result in results],
    }


def window_figures(reference: Reference, requests: pd.DataFrame, shadows: pd.DataFrame) -> dict:
    n = len(requests)
    answered = requests[requests["tier"].notna()]
    tiers = Counter(answered["tier"])
    latencies = requests["latency_total_ms"].dropna().tolist()
    llm_usd = float(requests["cost_usd"].fillna(0).sum())
    shadow_usd = float(shadows["cost_usd"].fillna(0).sum())
    local_per_1k = (reference.expected.get("usd_per_1k") or {}).get(reference.local or "", 0.0) or 0.0
    # Serving cost, against the projection; the shadow sample's LLM calls are a monitoring cost, shown apart.
    per_1k = local_per_1k + 1000 * llm_usd / n
    agreeing = shadows["agrees"].dropna()
    return {
        "requests": n,
        "unanswered": int(n - len(answered)),
        "tier_mix": {tier: round(count / n, 4) for tier, count in sorted(tiers.items())},
        "escalation_rate": float(requests["escalated"].fillna(False).mean()) if reference.tier == "cascade" else None,
        "shadowed": int(len(shadows)),
        "shadow_agreement": float(agreeing.mean()) if len(agreeing) else None,
        "estimated_quality": float(requests["local_confidence"].dropna().mean())
        if requests["local_confidence"].notna().any()
        else None,
        "p50_ms": percentile(latencies, 50) if latencies else None,
        "p95_ms": percentile(latencies, 95) if latencies else None,
        "usd_per_1k": per_1k,
        "llm_usd": llm_usd,
        "shadow_usd": shadow_usd,
        "errors": dict(Counter(key for value in requests["errors"].dropna() for key in (decode(value) or {}))),
    }


def statistical_checks(reference: Reference, requests, shadows, labels: dict | None, settings: Settings) -> list:
    """The window's statistical checks, each a function of its alpha (known once they are counted)."""
    found, min_n, seed = [], settings.min_n, settings.seed
    local = requests[requests["local_confidence"].notna()] if reference.local else requests.iloc[0:0]
    if reference.local and len(shadows):
        scores = shadow_scores(reference, shadows)
        found.append(lambda a: checks.shadow_quality(scores, reference.agreement, alpha=a, min_n=min_n, seed=seed))
    if reference.local and reference.confidences:
        window_confidences = local["local_confidence"].astype(float).tolist()
        quality = (reference.expected.get("quality") or {}).get(reference.local)
        found.append(lambda a: checks.estimated_quality(window_confidences, reference.confidences, alpha=a,
                                                        reference_quality=quality, min_n=min_n))  # fmt: skip
        found.append(lambda a: checks.confidence_drift(reference.confidences, window_confidences, alpha=a, min_n=min_n))
    if reference.local:
        found += output_drift(reference, [decode(value) for value in local["local_answer"]], min_n)
    lengths = requests["input_chars"].dropna().astype(int).tolist()
    if lengths and reference.inputs:
        reference_lengths = [len(text) for text in reference.inputs]
        found.append(lambda a: checks.length_drift(reference_lengths, lengths, alpha=a, min_n=min_n))
    texts = requests["input"].dropna().tolist()
    if texts and reference.inputs:  # the router ran with --log-inputs
        found.append(lambda a: checks.input_drift(reference.inputs, texts, alpha=a, seed=seed, min_n=min_n,
                                                  n_permutations=max(99, math.ceil(1 / a))))  # fmt: skip
        scripts = [checks.script_of(text) for text in texts]
        reference_scripts = [checks.script_of(text) for text in reference.inputs]
        found.append(lambda a: checks.charset_drift(reference_scripts, scripts, alpha=a, min_n=min_n))
    if reference.tier == "cascade" and reference.expected_escalation_rate is not None:
        k, n = int(requests["escalated"].fillna(False).sum()), len(requests)
        expected = min(max(reference.expected_escalation_rate, 0.5 / max(n, 1)), 1 - 0.5 / max(n, 1))
        found.append(lambda a, k=k, n=n, e=expected: checks.rate_check(k, n, e, alpha=a, min_n=min_n))
    unparsed, answered = llm_unparsed(requests, shadows) if reference.llm_unparsed is not None else (0, 0)
    if answered:
        # Against the test split's count, not its rate taken as exact: 0 of 160 there is no promise of 0%.
        base_k, base_n = reference.llm_unparsed
        found.append(lambda a: checks.two_rate_check(unparsed, answered, base_k, base_n, alpha=a, min_n=min_n,
                                                     name="LLM answers the parser cannot read"))  # fmt: skip
    if labels:
        measured = labelled_scores(reference, requests, labels)
        benchmark = reference.gold_scores
        if measured and benchmark:
            found.append(lambda a: _renamed(checks.shadow_quality(measured, benchmark, alpha=a, min_n=min_n, seed=seed),
                                            "measured quality", "human labels"))  # fmt: skip
    return found


def output_drift(reference: Reference, answers: list, min_n: int) -> list:
    kind = reference.task.kind
    if kind == "classification":
        window = ["(none)" if answer is None else str(answer) for answer in answers]
        base = ["(none)" if answer is None else str(answer) for answer in reference.answers]
        return [lambda a: checks.category_drift(base, window, alpha=a, min_n=min_n),
                lambda a: checks.category_share(base, window, alpha=a, min_n=min_n)]  # fmt: skip
    if kind == "extraction":
        found = []
        for spec in reference.task.fields:
            window = [_null_or_set(answer, spec.name) for answer in answers]
            base = [_null_or_set(answer, spec.name) for answer in reference.answers]
            found.append(lambda a, w=window, b=base, name=spec.name: checks.category_drift(
                b, w, alpha=a, name=f"field {name} null share", min_n=min_n))  # fmt: skip
        return found
    return []


def llm_unparsed(requests: pd.DataFrame, shadows: pd.DataFrame) -> tuple[int, int]:
    """(answers of the LLM the task's parser could not read, answers of the LLM) in the window: the requests it
    answered and its shadow answers (a failed call is an error, not an answer, and counts in neither)."""
    served = requests[requests["tier"] == "llm"]
    unparsed = int((~served["parsed"].fillna(False).astype(bool)).sum())
    answered = shadows[shadows["error"].isna() | (shadows["error"] == "")]
    unread = sum(decode(answer) is None for answer in answered["answer"])
    return unparsed + unread, len(served) + len(answered)


def _null_or_set(answer, name: str) -> str:
    if not isinstance(answer, dict):
        return "no answer"
    return "null" if answer.get(name) in (None, [], "") else "set"


def shadow_scores(reference: Reference, shadows: pd.DataFrame) -> list[float]:
    """Each shadowed request's local answer scored against the LLM's (a failed shadow call scores nothing)."""
    scores = []
    for local, llm, error in zip(shadows["local_answer"], shadows["answer"], shadows["error"], strict=True):
        if isinstance(error, str) and error:
            continue
        score = reference.score(reference.parse(decode(local)), decode(llm))
        if score is not None:
            scores.append(score)
    return scores


def labelled_scores(reference: Reference, requests: pd.DataFrame, labels: dict) -> list[float]:
    """The served answers of the requests a human labelled, scored against those labels."""
    scores = []
    for request_id, answer in zip(requests["request_id"], requests["answer"], strict=True):
        if request_id in labels:
            scores.append(reference.score(reference.parse(decode(answer)), labels[request_id]))
    return [score for score in scores if score is not None]


def _renamed(check: checks.Check, name: str, against: str) -> checks.Check:
    check.name = name
    check.sentence = check.sentence.replace("Shadow quality", "Measured quality").replace("the LLM", against)
    return check


def limit_checks(reference: Reference, figures: dict, settings: Settings) -> list[checks.Check]:
    found = []
    key = "cascade" if reference.tier == "cascade" else (reference.local or "llm")
    projected = (reference.expected.get("usd_per_1k") or {}).get(key)
    if projected:
        found.append(checks.limit_check(figures["usd_per_1k"], projected, name="cost per 1k requests", unit="USD",
                                        tolerance=settings.cost_tolerance, n=figures["requests"]))  # fmt: skip
    # Latency only against an SLO the user states: the benchmark's p95 is one request at a time, which says
    # nothing about the same router under load (the figure is reported either way).
    slo = settings.latency_slo_ms.get(reference.name)
    if slo and figures["p95_ms"] is not None:
        found.append(checks.limit_check(figures["p95_ms"], slo, name="p95 latency", unit="ms", n=figures["requests"]))
    return found


def split_by_routing(logs: RequestLogs, references: list[Reference]) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Each routing's records (by routing id), and a sentence per kind of record that belongs to none (another
    routing.yaml of a task given, or a task not given)."""
    records, problems = logs.records, []
    names = {reference.name for reference in references}
    mine = pd.Series(False, index=records.index)
    own = {}
    for reference in references:
        match = (records["routing"] == reference.routing_id) & (records["task"] == reference.name)
        own[reference.routing_id], mine = records[match], mine | match
    stray = records[~mine]
    for (task, routing), group in stray.groupby(["task", "routing"], dropna=False):
        if task in names:
            problems.append(f"{len(group):,} records of task {task!r} were served under another routing.yaml "
                            f"(id {routing}): give that routing.yaml too (--routing) to include them")  # fmt: skip
        else:
            problems.append(f"{len(group):,} records of task {task!r}, which no --routing given covers: skipped")
    return own, problems
