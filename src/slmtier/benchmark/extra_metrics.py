"""A recipe's own metrics, as Hugging Face `evaluate` modules loaded from local paths.

This is what slmtier uses `evaluate` for: a standard way for users to bring a metric they already have
(`task.extra_metrics: [metrics/my_bleu]`). Built-in metrics do not go through `evaluate.load("name")`,
which downloads the metric's script from the hub: that fails offline, and runs code fetched at run time.
A local module is the user's own code, loaded from disk with no network.
"""

from __future__ import annotations

from pathlib import Path

from slmtier.errors import SlmtierError


def check_metric_paths(paths: list[str]) -> None:
    """Fail at start-up, not after training, when a metric module is not where the recipe says."""
    for path in paths:
        if not Path(path).expanduser().exists():
            raise SlmtierError(f"task.extra_metrics: {path!r} not found; give a local evaluate module (folder or .py)")


def compute_extra_metrics(paths: list[str], predictions: list[str], references: list[str]) -> dict[str, dict]:
    """{module name: its numeric results} for each evaluate module, on output and reference texts."""
    import evaluate

    results = {}
    for path in paths:
        module = evaluate.load(str(Path(path).expanduser()))
        values = module.compute(predictions=predictions, references=references)
        results[module.name] = {key: value for key, value in values.items() if isinstance(value, (int, float))}
    return results
