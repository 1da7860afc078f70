"""Figures for the HTML reports, rendered with matplotlib (Agg, no display) and embedded as data: URIs,
so a report is one self-contained file that opens with no network."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend

COLOURS = {
    "slm": "#2f6fb3",
    "encoder": "#7a4fb3",
    "llm": "#b3432f",
    "baseline": "#b3432f",
    "cascade": "#3d8f4f",
    "random": "#999999",
    "local": "#555555",  # a local tier without a colour of its own
}


def to_data_uri(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def plot_cascade(cascade: dict, metric: str, *, tier: str) -> str:
    """Quality against escalation rate on the test split, with random routing, both pure tiers (`tier`: the
    local one) and the threshold fitted on validation."""
    curve = cascade["test_curve"]
    rates = [point["escalation_rate"] for point in curve]
    figure, axis = plt.subplots(figsize=(6, 3.6))
    axis.plot(rates, [p["quality"] for p in curve], color=COLOURS["cascade"], label="cascade (by confidence)")
    axis.plot(
        rates, [p["random_routing_quality"] for p in curve], "--", color=COLOURS["random"], label="random routing"
    )
    axis.scatter(
        [0], [curve[0]["quality"]], color=COLOURS.get(tier, COLOURS["local"]), zorder=3, label=f"always {tier}"
    )
    axis.scatter([1], [curve[-1]["quality"]], color=COLOURS["llm"], zorder=3, label="always LLM")
    fitted = cascade["test"]
    axis.scatter([fitted["escalation_rate"]], [fitted["quality"]], marker="*", s=160, color="black", zorder=4,
                 label=f"fitted threshold {fitted['threshold']:.3g}")  # fmt: skip
    axis.axhline(cascade["target_quality"], color="#cccccc", linewidth=1)
    axis.set_xlabel("share of requests escalated to the LLM")
    axis.set_ylabel(f"{metric} (test)")
    axis.legend(fontsize=8, loc="lower right")
    axis.grid(alpha=0.3)
    return to_data_uri(figure)


def plot_latency(latencies: dict[str, list[float]]) -> str:
    """Per-request latency distribution of every candidate (log scale: tiers differ by orders of magnitude)."""
    names = [name for name, values in latencies.items() if values]
    figure, axis = plt.subplots(figsize=(6, 0.6 + 0.55 * max(1, len(names))))
    axis.boxplot([latencies[name] for name in names], vert=False, tick_labels=names, showfliers=True)
    axis.set_xscale("log")
    axis.set_xlabel("latency per request (ms, log scale)")
    axis.grid(alpha=0.3, axis="x")
    return to_data_uri(figure)


def plot_frontier(points: list[dict], metric: str) -> str:
    """Quality against USD per 1,000 requests, one point per tier/model (with its interval)."""
    figure, axis = plt.subplots(figsize=(6, 3.6))
    for point in points:
        error = [[point["quality"] - point["low"]], [point["high"] - point["quality"]]]
        colour = COLOURS.get(point["kind"], COLOURS["local"])
        axis.errorbar([point["usd_per_1k"]], [point["quality"]], yerr=error, fmt="o", color=colour, capsize=3)
        axis.annotate(point["label"], (point["usd_per_1k"], point["quality"]), fontsize=8,
                      xytext=(4, 4), textcoords="offset points")  # fmt: skip
    if all(point["usd_per_1k"] > 0 for point in points):
        axis.set_xscale("log")  # tiers differ by orders of magnitude in cost
    axis.set_xlabel("USD per 1,000 requests")
    axis.set_ylabel(metric)
    axis.grid(alpha=0.3)
    return to_data_uri(figure)


def plot_reliability(confidence_before: list[float], confidence_after: list[float], correct: list[float],
                     *, bins: int = 10) -> str:  # fmt: skip
    """Reliability diagram: accuracy against stated confidence in equal-width bins, before and after
    temperature scaling; a calibrated tier lies on the diagonal."""
    import numpy as np

    figure, axis = plt.subplots(figsize=(4.8, 4))
    edges = np.linspace(0, 1, bins + 1)
    hits = np.asarray(correct, dtype=float)
    for label, values, colour in (("before calibration", confidence_before, "#999999"),
                                  ("after (temperature scaling)", confidence_after, COLOURS["encoder"])):  # fmt: skip
        values = np.asarray(values, dtype=float)
        which = np.clip(np.digitize(values, edges[1:-1], right=True), 0, bins - 1)
        xs = [values[which == b].mean() for b in range(bins) if (which == b).any()]
        ys = [hits[which == b].mean() for b in range(bins) if (which == b).any()]
        axis.plot(xs, ys, "o-", color=colour, label=label)
    axis.plot([0, 1], [0, 1], color="#cccccc", linewidth=1)
    axis.set_xlabel("stated confidence (mean per bin)")
    axis.set_ylabel("accuracy (test)")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.legend(fontsize=8, loc="upper left")
    axis.grid(alpha=0.3)
    return to_data_uri(figure)


def plot_learning_curve(curve: dict, metric: str) -> str:
    """Test quality against train size per local tier, its 95% interval as a band, and the LLM's quality with
    its interval: where each tier's band reaches the LLM's line (less the margin) is the data the task needs."""
    figure, axis = plt.subplots(figsize=(6, 3.6))
    llm = curve["llm"]
    sizes = [point["n"] for point in llm]
    axis.plot(sizes, [p["quality"] for p in llm], "--", color=COLOURS["llm"], label="LLM")
    axis.fill_between(sizes, [p["low"] for p in llm], [p["high"] for p in llm], color=COLOURS["llm"], alpha=0.1)
    for key, points in curve["tiers"].items():
        colour = COLOURS.get(key.split(" ")[0], COLOURS["local"])
        ns = [p["n"] for p in points]
        axis.plot(ns, [p["quality"] for p in points], "o-", color=colour, label=key)
        axis.fill_between(ns, [p["low"] for p in points], [p["high"] for p in points], color=colour, alpha=0.15)
    axis.set_xscale("log")
    axis.set_xlabel("train examples (log scale)")
    axis.set_ylabel(f"{metric} on the test split (95% CI)")
    axis.legend(fontsize=8, loc="lower right")
    axis.grid(alpha=0.3)
    return to_data_uri(figure)
