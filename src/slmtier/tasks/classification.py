"""Classification: text in, one label out of a fixed set.

One row of data/tickets/train.jsonl:
    {"id": "train-0007", "text": "hi, the app keeps saying 'device offline' since the update ...",
     "label": "technical_issue"}
The system message carries the instruction with the label list, the user message the text, and the
model answers with the label alone (`technical_issue`). Parsing never raises: an answer that names
no label, or several, is unparseable (`None`), counted as wrong and reported as invalid output.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slmtier.data import Example
from slmtier.errors import SlmtierError
from slmtier.tasks.chat import build_plain_messages

INVALID_COLUMN = "<invalid>"  # confusion-matrix column for unparseable outputs
# What YAML reads as a boolean when unquoted: `labels: [yes, no]` becomes ['True', 'False'] in the config.
_YAML_BOOLEANS = frozenset({"yes", "no", "on", "off", "true", "false"})


def _normalise(text: str) -> str:
    """Lower-case, `_`/`-` as spaces, punctuation and repeated spaces gone: 'Account-Access.' -> 'account access'."""
    text = re.sub(r"[_\-]+", " ", text.lower())
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def check_labels(labels: Sequence[str]) -> None:
    """Refuse, at start-up, labels the answer parser cannot tell apart: it matches answers to labels by their
    words (`_normalise`), so `billing` and `Billing` are one label to it (an exact answer `billing` would be
    scored as `Billing`), and a label without letters or digits (`''`, `?`) matches every answer."""
    repeated = [label for label, count in Counter(labels).items() if count > 1]
    if repeated:
        raise SlmtierError(f"task.labels lists {repeated} more than once; list each label once")
    nameless = [label for label in labels if not _normalise(label)]
    if nameless:
        raise SlmtierError(
            f"task.labels: {nameless} hold no letters or digits, and answers are matched to labels by their words, "
            "so such a label would match every answer; give each class a name, such as 'none' or 'other'"
        )
    readings: dict[str, list[str]] = {}
    for label in labels:
        readings.setdefault(_normalise(label), []).append(label)
    clashes = [
        f"{' and '.join(map(repr, same))} read as {reading!r}" for reading, same in readings.items() if len(same) > 1
    ]
    if clashes:
        raise SlmtierError(
            f"task.labels: {'; '.join(clashes)}. The answer parser ignores case, '_', '-' and punctuation, so each "
            "group is one label to it; rename them to differ in letters or digits"
        )


def _label_hint(value: Any, labels: tuple[str, ...]) -> str:
    """What a gold label the recipe lacks most likely is, for the message that refuses it ('' if no guess)."""
    if isinstance(value, (bool, int, float)) and str(value) in labels:
        kind = "boolean" if isinstance(value, bool) else "number"
        return f': it is a JSON {kind} and labels are text; write it in quotes ("{value}")'
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ": it is a JSON number; if the numbers are class indices, write each row's label name instead"
    if not isinstance(value, str):
        return ""
    if value.lower() in _YAML_BOOLEANS and {"True", "False"} & set(labels):
        return (
            "; YAML reads unquoted yes/no/on/off as booleans, so the recipe's labels became 'True'/'False': "
            "quote them in the recipe (labels: ['yes', 'no'])"
        )
    close = [label for label in labels if _normalise(label) == _normalise(value)]
    return f"; labels are matched exactly: did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class Classification:
    instruction: str
    labels: tuple[str, ...]
    metric: str = "accuracy"
    kind: str = "classification"
    metrics: tuple[str, ...] = ("accuracy", "macro_f1")
    max_input_words: int | None = None

    def system_prompt(self) -> str:
        return self.instruction.replace("{labels}", ", ".join(self.labels))

    def build_messages(self, example: Example, *, few_shot: Sequence[Example] = ()) -> list[dict]:
        """Chat messages up to (not including) the answer; few-shot examples become earlier turns."""
        return build_plain_messages(self, example, few_shot)

    def format_target(self, target: Any) -> str:
        return str(target)

    def check_target(self, value: Any) -> str | None:
        """Why a gold value is unusable, or None if it is fine."""
        if isinstance(value, str) and value in self.labels:
            return None
        return f"label {value!r} is not one of the recipe's labels {list(self.labels)}{_label_hint(value, self.labels)}"

    def parse(self, raw_output: str) -> str | None:
        """The label the output names: the whole first line, else the one label mentioned. None if unclear."""
        by_key = {_normalise(label): label for label in self.labels}
        lines = [line for line in raw_output.strip().splitlines() if line.strip()]
        if not lines:
            return None
        first = _normalise(lines[0])
        if first in by_key:
            return by_key[first]
        for text in (first, _normalise(raw_output)):
            found = {label for key, label in by_key.items() if re.search(rf"\b{re.escape(key)}\b", text)}
            if len(found) == 1:
                return found.pop()
            if found:  # several labels named: the model did not choose
                return None
        return None

    def score_example(self, parsed: str | None, gold: str) -> float:
        return float(parsed is not None and parsed == gold)

    # The per-example (numerator, denominator) whose sums give `parts_metric`: what intervals resample.
    parts_metric = "accuracy"

    def score_parts(self, parsed: str | None, gold: str) -> tuple[float, float]:
        return self.score_example(parsed, gold), 1.0

    def score(self, parsed: list[str | None], gold: list[str], *, inputs: list[str] | None = None) -> dict:
        return score_classification(parsed, gold, self.labels)


def score_classification(parsed: list[str | None], gold: list[str], labels: tuple[str, ...]) -> dict:
    """Accuracy, macro-F1, per-label precision/recall/F1, confusion matrix and invalid-output rate.

    Unparseable outputs count as wrong and as a prediction of no label. Macro-F1 averages over the
    labels that occur in gold or predictions (a label absent from both says nothing about the model).
    """
    n = len(gold)
    columns = [*labels, INVALID_COLUMN]
    index = {label: i for i, label in enumerate(columns)}
    matrix = [[0] * len(columns) for _ in labels]
    for p, g in zip(parsed, gold, strict=True):
        matrix[index[g]][index[p if p is not None else INVALID_COLUMN]] += 1
    per_label, f1s = {}, []
    for i, label in enumerate(labels):
        tp = matrix[i][i]
        predicted = sum(row[i] for row in matrix)
        support = sum(matrix[i])
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
        if support or predicted:
            f1s.append(f1)
    correct = sum(matrix[i][i] for i in range(len(labels)))
    invalid = sum(row[-1] for row in matrix)
    return {
        "n": n,
        "accuracy": correct / n if n else 0.0,
        "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0,
        "invalid_count": invalid,
        "invalid_rate": invalid / n if n else 0.0,
        "per_label": per_label,
        "confusion": {"labels": list(labels), "columns": columns, "matrix": matrix},
    }
