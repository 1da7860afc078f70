"""routing.yaml: the decision as the artefact a platform team deploys from.

Schema (version 2):
    version: 2
    task: <recipe>                  # the task this route is for: the model name `slmtier route` serves it as
    run_dir: <absolute path>        # the run it was measured in: the router loads each tier from it, with the
                                    # task's prompt, parser and confidence (slmtier.tiers.<name>.load)
    input: last_user_message        # how the router finds the task input in a request: the last user
                                    # message, or {pattern: <regex with a group named input>} applied to it
    tier: encoder | slm | cascade | llm | undecided   # where requests go; undecided: no verdict was reached
                                    # (the LLM failed to answer too much of the test split): deploy nothing new
    decided_by: <the rule, in words> and reason: <the figures>
    slm:                            # when the generative SLM answers (tier slm, or a cascade through it)
      base_model: <hub id, local folder or embedded:NAME>
      adapter: <absolute path to the LoRA adapter folder (safetensors)>, or
      model: <absolute path to the fully fine-tuned model (trainer.finetune=full)>
      served_name: <model name to request from `slmtier serve` or vLLM>
      serve: <the command that serves it>
    encoder:                        # when the encoder answers (tier encoder, or a cascade through it)
      model: <absolute path to the fine-tuned encoder folder (safetensors; a LoRA adapter + head after
              encoder.finetune=lora, loaded onto base_model)>
      base_model: <the pretrained encoder: embedded:NAME, hub id or folder>
      loader: transformers.AutoModelForSequenceClassification
      temperature: <divide the logits by this before the softmax (calibrated on validation)>
      labels: <the labels, in the head's order>
    cascade:                        # present when tier is cascade
      via: encoder | slm            # the tier that answers first
      confidence: <how that tier's confidence is computed>
      escalate_below: <threshold>   # send the request to the LLM when confidence < this
      expected_escalation_rate: <share escalated on the test split>
    shadow:                         # when a local tier answers: the share of its requests the router also
      rate: 0.0                     # sends to the LLM after answering (hash of the request id), for the
      max_usd: null                 # monitor; the LLM's spend on them stops at max_usd (null: no cap)
    trained_on: <what the local tiers learnt from: gold answers, or the LLM's (teacher, labelled, dropped, USD)>
    llm:                            # the fallback (tier llm or cascade), the shadow's LLM, or the tier kept
      kind: openai_compatible | predictions | local
      base_url / model              # for an endpoint
    expected:                       # measured on the test split
      metric, quality per tier, usd_per_1k per tier, p95_ms per tier, monthly_requests, monthly_usd per tier
Built from the run's files only (metrics.json, config.yaml), like the reports.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from slmtier.metrics import RunMetrics
from slmtier.run_dir import RunDir, write_text_atomic

ROUTING_VERSION = 2
CONFIDENCE = {
    "classification": "probability of the generated label (exp of its summed token log-probabilities)",
    "extraction": "geometric-mean token probability of the answer; 0 when it is not valid JSON",
    "summarization": "geometric-mean token probability of the summary",
    "encoder": "the encoder's softmax probability of its label, logits divided by the fitted temperature",
}


def routing_id(routing: dict) -> str:
    """A routing's identity: a hash of its content (comments and key order aside). The router stamps it on every
    request it logs, so the monitor can tell which routing.yaml a record was served under."""
    canonical = json.dumps(routing, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def build_routing(metrics: RunMetrics, config: dict, run_dir: Path) -> dict:
    decision, candidates = metrics.decision, metrics.candidates
    tier, answering = decision.verdict, decision.tier  # the local tier that answers (first), or None
    routing: dict = {
        "version": ROUTING_VERSION,
        "task": metrics.recipe,
        "run_dir": str(Path(run_dir).resolve()),
        "input": "last_user_message",
        "tier": tier,
        "decided_by": decision.rule,
        "reason": decision.reason,
    }
    if answering is not None:  # the tier's own block, as its module recorded it (slmtier.tiers.<name>)
        folder = str(Path(run_dir).resolve())
        routing[answering] = {
            key: value.format(run_dir=folder, task=metrics.recipe) if isinstance(value, str) else value
            for key, value in metrics.tiers[answering].training["routing"].items()
        }
    if tier == "cascade":
        cascade = metrics.tiers[answering].cascade
        routing["cascade"] = {
            "via": answering,
            "confidence": CONFIDENCE["encoder" if answering == "encoder" else metrics.task_kind],
            "escalate_below": cascade["fitted"]["threshold"],
            "expected_escalation_rate": round(cascade["test"]["escalation_rate"], 4),
        }
    if tier in ("llm", "cascade", "undecided") or answering is not None:
        routing["llm"] = _llm_entry(config["baseline"], candidates[metrics.llm])
    if answering is not None:  # a share of the local answers also asked of the LLM, off the request path
        routing["shadow"] = {"rate": 0.0, "max_usd": None}
    routing["trained_on"] = trained_on(metrics)  # the local tiers, deployed or not: what the verdict weighed
    routing["expected"] = _expected(metrics)
    return routing


def trained_on(metrics: RunMetrics) -> str:
    """What the local tiers were taught by, in words: the report and routing.yaml both say it."""
    targets = metrics.targets
    if targets.get("source") == "logs":
        models = ", ".join(targets.get("models") or {}) or "model not logged"
        return (f"the LLM's logged answers ({models}; {metrics.data['train']['n']:,} train rows logged "
                f"{targets.get('first')} to {targets.get('last')})")  # fmt: skip
    if targets.get("source") != "llm":
        return f"gold answers ({metrics.data['train']['n']:,} train rows)"
    dropped = sum((targets.get("dropped") or {}).values())
    spent = targets.get("spent_usd")
    paid = f", {spent:.4f} USD paid" if spent else ""
    return (f"the LLM's answers: {targets['model']} labelled {targets['labelled']:,} of {targets['asked']:,} train and "
            f"validation inputs ({dropped:,} dropped{paid})")  # fmt: skip


def _llm_entry(baseline: dict, candidate: dict) -> dict:
    kind = baseline["kind"]
    if kind == "openai_compatible":
        endpoint = baseline["endpoint"]
        return {"kind": kind, "base_url": endpoint["base_url"], "model": endpoint["model"],
                "api_key_env": endpoint["api_key_env"]}  # fmt: skip
    return {"kind": kind, "model": candidate["model"]}


def _expected(metrics: RunMetrics) -> dict:
    """Test-split figures per tier (every local tier, the LLM, and the cascade when one was fitted); the
    monthly LLM bill and the cascade's are the lead tier's projection."""
    candidates, economics = metrics.candidates, metrics.lead.economics
    cascade = metrics.lead.cascade["test"] if metrics.lead.cascade else None
    tiers = {**{name: candidates[name] for name in metrics.tiers}, "llm": candidates[metrics.llm]}
    expected = {
        "metric": metrics.lead.comparison["metric"],
        "quality": {tier: round(c["quality"]["value"], 4) for tier, c in tiers.items()},
        "usd_per_1k": {tier: c["cost"]["per_1k_requests_usd"] for tier, c in tiers.items()},
        "p95_ms": {tier: c["latency_ms"]["p95"] for tier, c in tiers.items()},
        "monthly_requests": economics["monthly_requests"],
        "monthly_usd": {
            **{name: (entry.economics["local"] or {}).get("usd") for name, entry in metrics.tiers.items()},
            "llm": economics["llm_usd"],
        },
    }
    if cascade:
        expected["quality"]["cascade"] = round(cascade["quality"], 4)
        expected["usd_per_1k"]["cascade"] = cascade["usd_per_1k"]
        expected["p95_ms"]["cascade"] = cascade["latency_p95_ms"]
        expected["monthly_usd"]["cascade"] = economics.get("cascade_usd")
    return expected


def write_routing(metrics: RunMetrics, config_text: str, run_dir: RunDir) -> Path:
    routing = build_routing(metrics, yaml.safe_load(config_text), run_dir.path)
    header = "# slmtier routing for one task; schema: slmtier.report.routing (docs/verdict.md: routing.yaml)\n"
    return write_text_atomic(run_dir.report_file("routing.yaml"),
                             header + yaml.safe_dump(routing, sort_keys=False, allow_unicode=True))  # fmt: skip
