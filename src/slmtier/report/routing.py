"""routing.yaml: the decision as the artefact a platform team deploys from.

Schema (version 1):
    version: 1
    task: <recipe>                  # the task this route is for
    tier: encoder | slm | cascade | llm | undecided   # where requests go; undecided: no verdict was reached
                                    # (the LLM failed to answer too much of the test split): deploy nothing new
    decided_by: <the rule, in words> and reason: <the figures>
    slm:                            # when the generative SLM answers (tier slm, or a cascade through it)
      base_model: <hub id, local folder or embedded:NAME>
      adapter: <absolute path to the LoRA adapter folder (safetensors)>, or
      model: <absolute path to the fully fine-tuned model (lora=full)>
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
    llm:                            # the fallback (tier llm or cascade) or the tier kept
      kind: openai_compatible | predictions | local
      base_url / model              # for an endpoint
    expected:                       # measured on the test split
      metric, quality per tier, usd_per_1k per tier, p95_ms per tier, monthly_requests, monthly_usd per tier
Built from the run's files only (metrics.json, config.yaml), like the reports.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from slmtier.report.render import llm_name
from slmtier.run_dir import write_text_atomic

CONFIDENCE = {
    "classification": "probability of the generated label (exp of its summed token log-probabilities)",
    "extraction": "geometric-mean token probability of the answer; 0 when it is not valid JSON",
    "summarization": "geometric-mean token probability of the summary",
    "encoder": "the encoder's softmax probability of its label, logits divided by the fitted temperature",
}


def build_routing(metrics: dict, config: dict, run_dir: Path) -> dict:
    decision, candidates = metrics["decision"], metrics["candidates"]
    local = metrics["tiers"]
    llm = llm_name(metrics)
    tier, answering = decision["verdict"], decision["tier"]  # the local tier that answers (first), or None
    routing: dict = {
        "version": 1,
        "task": metrics["recipe"],
        "tier": tier,
        "decided_by": decision["rule"],
        "reason": decision["reason"],
    }
    if answering == "slm":
        full = bool(config.get("lora", {}).get("full_finetune"))
        weights = (Path(run_dir) / ("model" if full else "adapter")).resolve()
        routing["slm"] = {
            "base_model": config["model"]["source"],
            "model" if full else "adapter": str(weights),
            "served_name": metrics["recipe"],
            "serve": f"slmtier serve {Path(run_dir).resolve()}",
        }
    elif answering == "encoder":
        calibration = ((metrics.get("encoder") or {}).get("calibration") or {}).get("validation") or {}
        routing["encoder"] = {
            "model": str((Path(run_dir) / "encoder").resolve()),
            "base_model": config["encoder"]["source"],
            "loader": "transformers.AutoModelForSequenceClassification",
            "temperature": calibration.get("temperature", 1.0),
            "labels": list(config["task"]["labels"]),
        }
    cascade = metrics.get("cascade") or {}
    if tier == "cascade":
        routing["cascade"] = {
            "via": answering,
            "confidence": CONFIDENCE["encoder" if answering == "encoder" else metrics["task_kind"]],
            "escalate_below": cascade["fitted"]["threshold"],
            "expected_escalation_rate": round(cascade["test"]["escalation_rate"], 4),
        }
    if tier in ("llm", "cascade", "undecided"):
        routing["llm"] = _llm_entry(config.get("baseline", {}), candidates[llm])
    routing["expected"] = _expected(metrics, llm, list(local))
    return routing


def _llm_entry(baseline: dict, candidate: dict) -> dict:
    kind = baseline.get("kind", "local")
    if kind == "openai_compatible":
        endpoint = baseline["endpoint"]
        return {"kind": kind, "base_url": endpoint["base_url"], "model": endpoint["model"],
                "api_key_env": endpoint.get("api_key_env")}  # fmt: skip
    return {"kind": kind, "model": candidate["model"]}


def _expected(metrics: dict, llm_name: str, local: list[str]) -> dict:
    """Test-split figures per tier (every local tier, the LLM, and the cascade when one was fitted)."""
    comparison, economics = metrics.get("comparison") or {}, metrics.get("economics") or {}
    candidates, cascade = metrics["candidates"], (metrics.get("cascade") or {}).get("test")
    tiers = {**{name: candidates[name] for name in local}, "llm": candidates[llm_name]}
    per_tier = metrics["tiers"]
    expected = {
        "metric": comparison.get("metric", metrics["primary_metric"]),
        "quality": {tier: round(c["quality"]["value"], 4) for tier, c in tiers.items()},
        "usd_per_1k": {tier: c["cost"].get("per_1k_requests_usd") for tier, c in tiers.items()},
        "p95_ms": {tier: c["latency_ms"]["p95"] for tier, c in tiers.items()},
        "monthly_requests": economics.get("monthly_requests"),
        "monthly_usd": {
            **{name: (entry["economics"].get("local") or {}).get("usd") for name, entry in per_tier.items()},
            "llm": economics.get("llm_usd"),
        },
    }
    if cascade:
        expected["quality"]["cascade"] = round(cascade["quality"], 4)
        expected["usd_per_1k"]["cascade"] = cascade["usd_per_1k"]
        expected["p95_ms"]["cascade"] = cascade["latency_p95_ms"]
        expected["monthly_usd"]["cascade"] = economics.get("cascade_usd")
    return expected


def write_routing(metrics: dict, config_text: str, run_dir: Path) -> Path:
    path = Path(run_dir) / "routing.yaml"
    routing = build_routing(metrics, yaml.safe_load(config_text) or {}, run_dir)
    header = "# slmtier routing for one task; schema: slmtier.report.routing (docs/verdict.md: routing.yaml)\n"
    return write_text_atomic(path, header + yaml.safe_dump(routing, sort_keys=False, allow_unicode=True))
