"""The monitor's outputs: monitor.json (everything), monitor.md and a self-contained monitor.html (figures
embedded), and per cascade a proposed routing.yaml beside the deployed one, for review."""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
from pathlib import Path

import yaml

from slmtier.report.markdown import Markdown
from slmtier.report.plots import COLOURS, plt, to_data_uri
from slmtier.report.render import _environment
from slmtier.run_dir import write_text_atomic

PANELS = [  # (key in a window, title, unit)
    ("requests", "requests per window", ""),
    ("escalation_rate", "escalation rate", "share"),
    ("shadow_agreement", "shadow agreement with the LLM", "share"),
    ("estimated_quality", "estimated quality (mean confidence)", "share"),
    ("p95_ms", "p95 latency", "ms"),
    ("usd_per_1k", "cost per 1k requests", "USD"),
]


def plot_task(task: dict) -> str | None:
    """The task's time series, one panel per figure, with the reference (expected) value as a dashed line."""
    windows = task["windows"]
    if not windows:
        return None
    times = [dt.datetime.fromtimestamp(w["start"], dt.timezone.utc) for w in windows]
    figure, axes = plt.subplots(3, 2, figsize=(10, 7.5), sharex=True)
    for axis, (key, title, unit) in zip(axes.flat, PANELS, strict=True):
        values = [w[key] for w in windows]
        if all(value is None for value in values):
            axis.text(0.5, 0.5, "not measured", ha="center", va="center", transform=axis.transAxes, color="#888")
        else:
            axis.plot(times, [float("nan") if v is None else v for v in values], marker="o", markersize=3,
                      color=COLOURS["cascade"])  # fmt: skip
        expected = task["expected"].get(key)
        if expected is not None:
            axis.axhline(expected, color="#b3432f", linestyle="--", linewidth=1, label="expected")
            axis.legend(fontsize=7, loc="best")
        axis.set_title(title, fontsize=9)
        axis.set_ylabel(unit, fontsize=8)
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=7)
    figure.autofmt_xdate()
    return to_data_uri(figure)


def write_outputs(result: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_text_atomic(out / "monitor.json", json.dumps(result, indent=1, default=str) + "\n")]
    plots = {task["routing_id"]: plot_task(task) for task in result["tasks"]}
    environment = _environment(autoescape=False)
    environment.filters["fenced"] = fenced
    markdown = environment.get_template("monitor.md.j2").render(r=result)
    html = _environment(autoescape=True).get_template("monitor.html.j2").render(r=result, plots=plots)
    paths.append(write_text_atomic(out / "monitor.md", markdown))
    paths.append(write_text_atomic(out / "monitor.html", html))
    return paths


def fenced(text: str, language: str = "diff") -> Markdown:
    """`text` verbatim as a fenced code block (the fence longer than any backtick run in it)."""
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    return Markdown(f"{fence}{language}\n{text.rstrip()}\n{fence}")


def propose_routing(task: dict) -> Path | None:
    """The deployed routing.yaml with the re-fitted threshold, as `<name>.proposed.yaml` beside it, with where
    it came from; the router keeps serving the deployed one. None when nothing is re-fitted."""
    refit = task.get("refit") or {}
    fitted = refit.get("fitted")
    if not fitted or refit.get("next_step") not in ("refit", "retrain", "keep"):
        return None
    deployed = Path(task["routing"])
    routing = yaml.safe_load(deployed.read_text(encoding="utf-8"))
    if fitted["threshold"] == routing["cascade"]["escalate_below"]:
        return None
    routing["cascade"]["escalate_below"] = float(fitted["threshold"])
    routing["cascade"]["expected_escalation_rate"] = round(float(fitted["escalation_rate"]), 4)
    routing["refit"] = {
        "from_routing": str(deployed),
        "from_routing_id": task["routing_id"],
        "logs": task["logs_window"],
        "pairs": refit["pairs"],
        "reference": refit["reference"],
        "target_quality": round(refit["target_quality"], 4),
        "quality": round(fitted["quality"], 4),
        "quality_interval": [round(v, 4) for v in fitted["quality_interval"]],
        "escalation_rate_interval": [round(v, 4) for v in fitted["escalation_rate_interval"]],
        "advice": refit["sentence"],
    }
    routing["refit"] = json.loads(json.dumps(routing["refit"], default=float))  # numpy numbers as plain YAML
    header = "# slmtier routing, re-fitted by `slmtier monitor` from live traffic: a proposal, not deployed\n"
    text = header + yaml.safe_dump(routing, sort_keys=False, allow_unicode=True)
    proposed = deployed.with_name(deployed.stem + ".proposed.yaml")
    write_text_atomic(proposed, text)
    task["proposed_routing"] = str(proposed)
    task["proposed_diff"] = "".join(difflib.unified_diff(
        deployed.read_text(encoding="utf-8").splitlines(keepends=True), text.splitlines(keepends=True),
        fromfile=deployed.name, tofile=proposed.name))  # fmt: skip
    return proposed
