"""Render report.md and report.html from the files a run wrote; no model is loaded.

HTML is rendered with autoescaping on: ticket texts and model outputs are data, never markup. Markdown
escapes every value it prints the same way (slmtier.report.markdown).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jinja2

from slmtier.metrics import RunMetrics
from slmtier.report.markdown import code_span, escape_markdown
from slmtier.report.routing import trained_on
from slmtier.run_dir import RunDir, write_text_atomic
from slmtier.tasks.extraction import as_json_object

MAX_ERROR_EXAMPLES = 8
METRIC_LABELS = {"accuracy": "accuracy", "micro_f1": "micro-F1", "macro_f1": "macro-F1", "exact_match": "exact match",
                 "valid_json_rate": "valid JSON", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L",
                 "semantic_similarity": "semantic similarity"}  # fmt: skip
# The metrics table's rows after the primary metric's (which is not repeated), where a candidate has them.
METRIC_ROWS = ("accuracy", "micro_f1", "macro_f1", "exact_match", "valid_json_rate")


@dataclass(frozen=True)
class RunFiles:
    run_dir: Path
    metrics: RunMetrics
    config_text: str
    predictions: dict[str, list[dict]]  # candidate name -> rows


def load_run(run_dir: Path) -> RunFiles:
    """Everything a report needs, read from disk and checked whole; a missing or damaged file is a RunDirError
    naming it."""
    run = RunDir(run_dir)
    metrics = run.check_files()
    predictions = {name: run.read_predictions(name) for name in metrics.candidates}
    return RunFiles(run.path, metrics, run.read_config_text(), predictions)


def _context(run: RunFiles) -> dict:
    metrics = run.metrics
    errors = {
        name: [row for row in rows if row["correct"] < 1][:MAX_ERROR_EXAMPLES] for name, rows in run.predictions.items()
    }
    return {
        "m": metrics,
        "candidates": metrics.candidates,
        "errors": errors,
        "config_text": run.config_text,
        "lead": metrics.lead_tier,
        "tier_rows": tier_rows(metrics),
        "llm_failed": llm_failures(metrics),
        "metric_labels": METRIC_LABELS,
        "metric_rows": METRIC_ROWS,
        "trained_on": trained_on(metrics),
        **reference_words(metrics),
    }


def reference_words(metrics: RunMetrics) -> dict:
    """What the reports call the tier the local tiers are measured against: "LLM" for an endpoint or logged
    LLM answers; "baseline", with a sentence saying what it is, for the local stand-in (by default the SLM's
    own base model untuned), which is no LLM."""
    candidate = metrics.candidates[metrics.llm]
    if candidate["source"]["kind"] != "local":
        return {"ref": "LLM", "stand_in": None}
    stand_in = (
        f"The reference here is {candidate['model']}, a local stand-in, not an LLM: point the "
        "baseline at your LLM's endpoint (baseline=openai_compatible) or at its logged answers "
        "(baseline=predictions) for the comparison that matters."
    )
    return {"ref": "baseline", "stand_in": stand_in}


def llm_failures(metrics: RunMetrics) -> str | None:
    """ "N of M LLM answers failed", the reports' first line, when any did (a verdict against answers the LLM
    never gave would mean nothing: over decision.max_llm_failure_rate it is `undecided`)."""
    requests = metrics.candidates[metrics.llm]["requests"]
    if not requests["failed"]:
        return None
    share = requests["failed"] / (requests["failed"] + requests["answered"])
    return f"{requests['failed']} of {requests['failed'] + requests['answered']} LLM answers failed ({share:.1%})"


def tier_rows(metrics: RunMetrics) -> list[dict]:
    """The tiers side by side, one row each (local tiers, then the LLM): quality with its interval, the gap
    to the LLM with its paired interval, p95 latency, USD per 1k requests, the month at the projected
    volume, and whether the tier passed the policy on its own."""
    decision, rows = metrics.decision, []
    for name, tier in metrics.tiers.items():
        checks = [check for check in decision.checks if check["tier"] == name]
        monthly_usd = (tier.economics["local"] or {}).get("usd")
        rows.append(_tier_row(name, metrics.candidates[name], tier.comparison["gap"], monthly_usd,
                              passed=all(check["passed"] for check in checks) if checks else None,
                              chosen=decision.verdict == name))  # fmt: skip
    rows.append(_tier_row(metrics.llm, metrics.candidates[metrics.llm], None, metrics.lead.economics["llm_usd"],
                          passed=None, chosen=decision.verdict == "llm"))  # fmt: skip
    return rows


def _tier_row(name: str, candidate: dict, gap: dict | None, monthly_usd, *, passed, chosen) -> dict:
    interval = candidate["quality"]["interval"]
    return {"name": name, "model": candidate["model"], "quality": interval["value"], "low": interval["low"],
            "high": interval["high"], "gap": gap, "p95_ms": candidate["latency_ms"]["p95"],
            "usd_per_1k": candidate["cost"]["per_1k_requests_usd"], "monthly_usd": monthly_usd,
            "passed": passed, "chosen": chosen}  # fmt: skip


def _format_answer(parsed) -> str:
    """A parsed answer for a table cell: a label, an extraction's values as JSON, or "(unparseable)". Every
    declared field is shown, a null one as null (not left out: that would read as a missing key); values of the
    wrong type, which count as null, and undeclared keys are named after the JSON."""
    if parsed is None:
        return "(unparseable)"
    if isinstance(parsed, dict) and "values" in parsed:
        # The parser keeps each field as a list of canonical values: [] is null, one value is the value.
        values = as_json_object(parsed)
        notes = [f"{what}: {', '.join(parsed[key])}" for key, what in (("type_errors", "wrong type"),
                                                                          ("extra_keys", "undeclared keys"))
                 if parsed.get(key)]  # fmt: skip
        return " · ".join([json.dumps(values, ensure_ascii=False), *notes])
    return str(parsed)


def _usd(value: float | None) -> str:
    """Dollars to four decimals; six below a tenth of a cent (an encoder's cost per 1k requests)."""
    if value is None:
        return "not priced"
    return f"${value:,.4f}" if value == 0 or abs(value) >= 0.001 else f"${value:,.6f}"


def _environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("slmtier.report", "templates"),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # Markdown has no autoescape: every value printed is data, shown as the text it is.
        finalize=None if autoescape else escape_markdown,
    )
    # None (no answer, no price) prints as a dash rather than failing the report.
    env.filters["pct"] = lambda value: "–" if value is None else f"{100 * value:.1f}%"
    env.filters["num"] = lambda value, digits=1: "–" if value is None else f"{value:,.{digits}f}"
    env.filters["usd"] = _usd
    env.filters["clip"] = lambda text, limit=280: text if len(text) <= limit else text[: limit - 1] + "…"
    env.filters["answer"] = _format_answer
    env.filters["shown"] = lambda value: value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    env.filters["oneline"] = lambda text: " ".join(str(text).split())
    env.filters["cell"] = lambda text: " ".join(str(text).split()).replace("|", "\\|")
    if not autoescape:  # escaped already: one line, `|` as `\\|`; `code`: a code span
        env.filters.update(cell=escape_markdown, oneline=escape_markdown, code=code_span)
    return env


def _render(run: RunFiles, template: str, *, autoescape: bool, plots: dict | None = None) -> str:
    # metrics.json was checked against its schema when it was read: a missing key here is a bug, not the file's.
    return _environment(autoescape).get_template(template).render(**_context(run), plots=plots or {})


def render_markdown(run: RunFiles) -> str:
    return _render(run, "report.md.j2", autoescape=False)


def render_html(run: RunFiles) -> str:
    return _render(run, "report.html.j2", autoescape=True, plots=_plots(run))


def _plots(run: RunFiles) -> dict[str, str]:
    """The HTML report's figures, as data: URIs."""
    from slmtier.report.plots import plot_cascade, plot_frontier, plot_latency, plot_reliability

    plots, lead = {}, run.metrics.lead
    if lead.cascade and lead.cascade["test"]:
        plots["cascade"] = plot_cascade(lead.cascade, lead.comparison["metric"], tier=run.metrics.lead_tier)
    priced = [row for row in tier_rows(run.metrics) if row["usd_per_1k"] is not None]
    if len(priced) > 2:  # two or more local tiers beside the LLM
        points = [{"label": f"{row['name']}: {row['model']}", "kind": row["name"] if row["gap"] else "llm",
                   "quality": row["quality"], "low": row["low"], "high": row["high"],
                   "usd_per_1k": row["usd_per_1k"]} for row in priced]  # fmt: skip
        plots["tiers"] = plot_frontier(points, lead.comparison["metric"])
    calibrated = [row for row in run.predictions.get("encoder", []) if row.get("confidence_uncalibrated") is not None]
    if calibrated:
        plots["reliability"] = plot_reliability([row["confidence_uncalibrated"] for row in calibrated],
                                                [row["confidence"] for row in calibrated],
                                                [row["correct"] for row in calibrated])  # fmt: skip
    # A local tier's own one-at-a-time requests (slmtier.benchmark.speed); an endpoint's rows, each a request.
    latencies = {
        name: run.metrics.candidates.get(name, {}).get("latency_ms", {}).get("samples")
        or [row["latency_ms"] for row in rows if row.get("latency_ms")]
        for name, rows in run.predictions.items()
    }
    if any(latencies.values()):
        plots["latency"] = plot_latency(latencies)
    return plots


REPORT_FILES = ("report.md", "report.html", "routing.yaml")


def write_reports(run_dir: Path) -> tuple[Path, ...]:
    """(Re)write report.md, report.html and routing.yaml from its files, each whole or not at all."""
    from slmtier.report.routing import write_routing

    run, folder = load_run(run_dir), RunDir(run_dir)
    md_path, html_path = folder.report_file("report.md"), folder.report_file("report.html")
    write_text_atomic(md_path, render_markdown(run))
    write_text_atomic(html_path, render_html(run))
    return md_path, html_path, write_routing(run.metrics, run.config_text, folder)


def complete_reports(run_dir: Path) -> list[str]:
    """A finished run's reports, rewritten from its files when one is missing or cut short (a disk that filled
    up while they were written); the names rewritten, [] when all were whole."""
    broken = [name for name in REPORT_FILES if not _whole(RunDir(run_dir).report_file(name))]
    if broken:
        write_reports(run_dir)
    return broken


def _whole(path: Path) -> bool:
    if not path.is_file():
        return False
    if path.suffix == ".html":  # written whole since writes are atomic; older runs' files may be cut
        return path.read_bytes().rstrip().endswith(b"</html>")
    return path.stat().st_size > 0


def render_aggregate(summary: dict) -> tuple[str, str]:
    """(report.md, report.html) of an aggregate summary (report/aggregate.py); figures only in the HTML."""
    from slmtier.report.plots import plot_cascade, plot_frontier, plot_latency, plot_learning_curve

    plots: dict[str, dict[str, str]] = {}
    for name, task in summary["tasks"].items():
        llm = task["candidates"][task["llm_name"]]
        points = [
            {"label": f"{p['tier']} {p['base_model']}", "kind": p["tier"], **p}
            for p in task["models"]
            if p["usd_per_1k"] is not None
        ]
        if llm["cost"].get("per_1k_requests_usd") is not None:
            interval = llm["quality"]["interval"]
            points.append({"label": f"LLM {llm['model']}", "kind": "llm", "quality": interval["value"],
                           "low": interval["low"], "high": interval["high"],
                           "usd_per_1k": llm["cost"]["per_1k_requests_usd"]})  # fmt: skip
        plots[name] = {"frontier": plot_frontier(points, task["metric"]) if points else ""}
        if task["cascade"] and task["cascade"].get("test"):
            plots[name]["cascade"] = plot_cascade(task["cascade"], task["metric"], tier=task["tier"])
        if any(task["latency_samples"].values()):
            plots[name]["latency"] = plot_latency(task["latency_samples"])
        if task["learning_curve"]:
            plots[name]["learning_curve"] = plot_learning_curve(task["learning_curve"], task["metric"])
    context = {"s": summary, "plots": plots}
    markdown = _environment(False).get_template("aggregate.md.j2").render(**context)
    html = _environment(True).get_template("aggregate.html.j2").render(**context)
    return markdown, html
