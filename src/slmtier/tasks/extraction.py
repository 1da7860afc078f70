"""Extraction: text in, one JSON object holding the recipe's declared fields out.

One row of data/orders/train.jsonl:
    {"id": "orders-train-0042", "text": "pls cancel order nw482913, the 2 lumo bulbs. thx, Dana",
     "fields": {"order_id": "NW-482913", "customer_name": "Dana", "products": ["Lumo Bulb"], "quantity": 2,
                "requested_action": "cancel", "delivery_date": null}}
The model answers with one JSON object with exactly the declared keys, in the declared order.

Parsing never raises. The first JSON object in the output is taken, and each declared field is
normalised by its type: strings trimmed, inner spaces collapsed and case-folded (unless the field is
case_sensitive); numbers as numbers ("3", "3.0" and "three" are 3); dates to ISO YYYY-MM-DD from common
spellings ("3 December 2026", "Dec 3rd, 2026"); enum values must be declared ones; lists are lists of
strings, a lone string is a one-item list. A value that fails its type is scored as null and counted as a
type error; undeclared keys are ignored and counted; an output with no JSON object is invalid.

Scoring rules, per example and declared field, on normalised values:
- A value is a set: null, a missing key, "" and [] are the empty set; a scalar v is {v}; a list is the set
  of its items (order and repeats do not matter).
- True positives |gold ∩ predicted|, false positives |predicted − gold|, false negatives |gold − predicted|.
  So both null counts nothing; gold v and predicted null is one FN; gold null and predicted v is one FP;
  gold v and predicted w ≠ v is one FP and one FN.
- An invalid output predicts the empty set for every field: each gold value becomes a FN.
- Per-field precision/recall/F1 come from the counts summed over examples; micro-F1 from the counts of
  all fields together; macro-F1 is the mean per-field F1 over fields with any gold or predicted value.
- Exact match: every declared field's set equals the gold one.
- The per-example score is the example's own micro-F1 (1.0 when gold and prediction are both empty).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slmtier.config import FieldSpec
from slmtier.data import Example
from slmtier.tasks.chat import build_plain_messages

FIELD_TYPES = ("string", "number", "date", "enum", "list")
NUMBER_WORDS = {
    word: index
    for index, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split()
    )
}
DATE_FORMATS = ("%Y-%m-%d", "%d %B %Y", "%B %d %Y", "%d %b %Y", "%b %d %Y", "%Y/%m/%d", "%d.%m.%Y")
_ORDINAL = re.compile(r"(?<=\d)(st|nd|rd|th)\b", re.IGNORECASE)
# Words around a date that carry no date: weekdays ("Thursday 3 Dec"), "the 3rd of December".
_NOISE = re.compile(r"\b((mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)[a-z]*\.?|the|of)\b", re.IGNORECASE)


def _canonical_text(value: Any, spec: FieldSpec) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = " ".join(str(value).split())
    return text if spec.case_sensitive else text.casefold()


def _normalise_string(value: Any, spec: FieldSpec) -> tuple[str | None, str | None]:
    text = _canonical_text(value, spec)
    return (text or None, None) if text is not None else (None, f"expected text, got {type(value).__name__}")


def _normalise_number(value: Any, spec: FieldSpec) -> tuple[str | None, str | None]:
    if isinstance(value, bool):
        return None, "expected a number, got a boolean"
    if isinstance(value, str):
        word = value.strip().casefold()
        if word in NUMBER_WORDS:
            value = NUMBER_WORDS[word]
        else:
            try:
                value = float(word.replace(",", ""))
            except ValueError:
                return None, f"expected a number, got {value!r}"
    if not isinstance(value, (int, float)):
        return None, f"expected a number, got {type(value).__name__}"
    return format(float(value), "g"), None


def _normalise_date(value: Any, spec: FieldSpec) -> tuple[str | None, str | None]:
    if not isinstance(value, str):
        return None, f"expected a date string, got {type(value).__name__}"
    text = _NOISE.sub(" ", _ORDINAL.sub("", value)).replace(",", " ")
    text = " ".join(text.split())
    for pattern in DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, pattern).date().isoformat(), None
        except ValueError:
            continue
    return None, f"expected a date (YYYY-MM-DD), got {value!r}"


def check_enum_values(spec: FieldSpec) -> str | None:
    """Why an enum's values cannot all be told apart once read like answers (spacing, and case unless the field is
    case_sensitive), or None: two values that read the same would score as one."""
    readings: dict[str, str] = {}
    for value in spec.values:
        reading = _canonical_text(value, spec)
        if not reading:
            return f"the value {value!r} is empty; an enum value is a word the model can answer with"
        if reading in readings:
            return (
                f"the values {readings[reading]!r} and {value!r} read as the same answer ({reading!r}: spacing"
                f"{'' if spec.case_sensitive else ' and case'} are ignored); list each value once"
            )
        readings[reading] = value
    return None


def _normalise_enum(value: Any, spec: FieldSpec) -> tuple[str | None, str | None]:
    text = _canonical_text(value, spec)
    by_key = {_canonical_text(v, spec): v for v in spec.values}
    if text in by_key:
        return by_key[text], None
    return None, f"{value!r} is not one of {list(spec.values)}"


NORMALISERS = {
    "string": _normalise_string,
    "number": _normalise_number,
    "date": _normalise_date,
    "enum": _normalise_enum,
    "list": _normalise_string,  # applied to each item
}


def normalise_value(value: Any, spec: FieldSpec) -> tuple[list[str], str | None]:
    """The value as a sorted list of canonical strings (empty = null), or ([], why it is not of the field's type)."""
    if value is None:
        return [], None
    if spec.type == "list" and not isinstance(value, (list, str)):
        return [], f"expected a list of strings, got {type(value).__name__}"
    # Scalar fields accept a list too: a slot mentioned twice (e.g. two times in one booking) is a set of values.
    items = value if isinstance(value, list) else [value]
    canonical = []
    for item in items:
        text, error = NORMALISERS[spec.type](item, spec)
        if error:
            return [], error
        if text is not None:
            canonical.append(text)
    return sorted(set(canonical)), None


def as_json_object(parsed: dict) -> dict:
    """A parsed extraction as the JSON object an application reads: a field with one canonical value holds
    it, a field with several holds their list, a field with none is null."""
    return {key: (items[0] if len(items) == 1 else items or None) for key, items in parsed["values"].items()}


def find_json_object(text: str) -> dict | None:
    """The first JSON object in text (code fences and chatter around it are fine), or None."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _encoded_twice(value: Any) -> str:
    """A hint when a target is a string that holds a JSON object: json.dumps applied to text already JSON."""
    if not isinstance(value, str) or not value.lstrip().startswith("{"):
        return ""
    try:
        inner = json.loads(value)
    except (ValueError, RecursionError):
        return " that starts with '{' but is no valid JSON object"
    if not isinstance(inner, dict):
        return ""
    return " holding a JSON object: the object was encoded twice (a JSON string of JSON); write the object itself"


@dataclass(frozen=True)
class Extraction:
    instruction: str
    fields: tuple[FieldSpec, ...]
    metric: str = "micro_f1"
    kind: str = "extraction"
    metrics: tuple[str, ...] = ("micro_f1", "macro_f1", "exact_match", "valid_json_rate")
    max_input_words: int | None = None

    def describe_fields(self) -> str:
        lines = []
        for spec in self.fields:
            kind = {
                "string": "text",
                "number": "number",
                "date": "date as YYYY-MM-DD",
                "enum": "one of " + ", ".join(f'"{v}"' for v in spec.values),
                "list": "list of strings, [] if none",
            }[spec.type]
            nullable = " or null" if spec.nullable and spec.type != "list" else ""
            lines.append(f"- {spec.name}: {kind}{nullable}" + (f"; {spec.description}" if spec.description else ""))
        return "\n".join(lines)

    def system_prompt(self) -> str:
        fields = self.describe_fields()
        if "{fields}" in self.instruction:
            return self.instruction.replace("{fields}", fields)
        return f"{self.instruction}\n{fields}"

    def build_messages(self, example: Example, *, few_shot: Sequence[Example] = ()) -> list[dict]:
        """Chat messages up to (not including) the answer; few-shot examples become earlier turns."""
        return build_plain_messages(self, example, few_shot)

    def format_target(self, target: dict) -> str:
        """The gold answer as the model should write it: one JSON object, declared keys in declared order."""
        return json.dumps({spec.name: target.get(spec.name) for spec in self.fields}, ensure_ascii=False)

    def check_target(self, value: Any) -> str | None:
        if not isinstance(value, dict):
            return f"expected a JSON object of fields, got {type(value).__name__}{_encoded_twice(value)}"
        declared = {spec.name for spec in self.fields}
        unknown = sorted(set(value) - declared)
        if unknown:
            return f"field(s) {unknown} are not declared in the recipe's task.fields {sorted(declared)}"
        for spec in self.fields:
            items, error = normalise_value(value.get(spec.name), spec)
            if error:
                return f"{spec.name}: {error}"
            if not items and not spec.nullable:
                return f"{spec.name} is empty but the field is not nullable"
        return None

    def parse(self, raw_output: str) -> dict | None:
        """{"values": {field: [canonical values]}, "type_errors": [...], "extra_keys": [...]}, or None if no JSON."""
        found = find_json_object(raw_output)
        if found is None:
            return None
        values, type_errors = {}, []
        for spec in self.fields:
            items, error = normalise_value(found.get(spec.name), spec)
            values[spec.name] = items
            if error:
                type_errors.append(spec.name)
        declared = {spec.name for spec in self.fields}
        return {"values": values, "type_errors": type_errors, "extra_keys": sorted(set(found) - declared)}

    def _counts(self, parsed: dict | None, gold: dict) -> dict[str, tuple[int, int, int]]:
        counts = {}
        for spec in self.fields:
            gold_set = set(normalise_value(gold.get(spec.name), spec)[0])
            predicted = set(parsed["values"][spec.name]) if parsed else set()
            counts[spec.name] = (len(gold_set & predicted), len(predicted - gold_set), len(gold_set - predicted))
        return counts

    def score_example(self, parsed: dict | None, gold: dict) -> float:
        tp, fp, fn = (sum(c[i] for c in self._counts(parsed, gold).values()) for i in range(3))
        return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)

    # The per-example (numerator, denominator) whose sums give `parts_metric`: what intervals resample.
    parts_metric = "micro_f1"

    def score_parts(self, parsed: dict | None, gold: dict) -> tuple[float, float]:
        tp, fp, fn = (sum(c[i] for c in self._counts(parsed, gold).values()) for i in range(3))
        return 2.0 * tp, 2.0 * tp + fp + fn

    def score(self, parsed: list[dict | None], gold: list[dict], *, inputs: list[str] | None = None) -> dict:
        return score_extraction(self, parsed, gold)


def _prf(tp: int, fp: int, fn: int) -> dict:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def score_extraction(task: Extraction, parsed: list[dict | None], gold: list[dict]) -> dict:
    """Valid-JSON rate, exact match, per-field and micro/macro F1, type errors and extra keys (rules: module doc)."""
    n = len(gold)
    totals = {spec.name: [0, 0, 0] for spec in task.fields}
    exact = 0
    for p, g in zip(parsed, gold, strict=True):
        counts = task._counts(p, g)
        exact += p is not None and all(fp == 0 and fn == 0 for _, fp, fn in counts.values())
        for name, triple in counts.items():
            for i in range(3):
                totals[name][i] += triple[i]
    per_field = {name: _prf(*triple) for name, triple in totals.items()}
    active = [scores["f1"] for scores in per_field.values() if scores["tp"] + scores["fp"] + scores["fn"]]
    micro = _prf(*(sum(t[i] for t in totals.values()) for i in range(3)))
    invalid = sum(p is None for p in parsed)
    return {
        "n": n,
        "micro_f1": micro["f1"],
        "micro_precision": micro["precision"],
        "micro_recall": micro["recall"],
        "macro_f1": sum(active) / len(active) if active else 0.0,
        "exact_match": exact / n if n else 0.0,
        "valid_json_rate": (n - invalid) / n if n else 0.0,
        "invalid_count": invalid,
        "invalid_rate": invalid / n if n else 0.0,
        "type_error_count": sum(len(p["type_errors"]) for p in parsed if p),
        "extra_key_count": sum(len(p["extra_keys"]) for p in parsed if p),
        "per_field": per_field,
    }
