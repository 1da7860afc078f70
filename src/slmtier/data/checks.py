"""Checks across a dataset's splits, once they are loaded: leakage between them and inputs too long to use.

Neither drops or changes a row: the data stays as the files hold it, and what is odd is reported.
"""

from __future__ import annotations

import logging

from slmtier.data.examples import Example, Splits
from slmtier.errors import DataError

log = logging.getLogger(__name__)

MAX_LISTED_IDS = 5  # ids a warning about many examples names
# ~5,000 tokens and more: past the context small models are tuned with, many times trainer.max_length's
# default, and slow to predict on. Worth a warning when nothing cuts such an input.
LONG_INPUT_CHARS = 20_000


def _normalised(text: str) -> str:
    return " ".join(text.casefold().split())


def find_leaks(train: list[Example], examples: list[Example]) -> list[tuple[str, str]]:
    """(id, train id) for each example whose text is also a train text, case and spacing aside."""
    train_ids = {_normalised(example.input): example.id for example in train}
    return [(e.id, train_ids[_normalised(e.input)]) for e in examples if _normalised(e.input) in train_ids]


def check_leakage(splits: Splits) -> None:
    """Warn about test and validation examples whose text the model was trained on; refuse a test split that
    is nothing but train texts.

    A warning rather than an error for a partial overlap: public datasets often repeat a few texts across
    splits, and refusing to run would block them over rows that barely move the interval, while the ids
    named let the user remove them. A test split made entirely of train texts is a mistake (the same file
    given twice), and its benchmark would measure memorisation only, so that one stops the run."""
    for split in ("test", "validation"):
        examples = getattr(splits, split)
        leaks = find_leaks(splits.train, examples)
        if not leaks:
            continue
        if split == "test" and len(leaks) == len(examples):
            raise DataError(
                f"every one of the {len(examples)} test examples has the same text as a train example (case and "
                "spacing aside), so the benchmark would measure memorisation; point data.test at held-out examples"
            )
        named = ", ".join(f"{example_id!r} (train {train_id!r})" for example_id, train_id in leaks[:MAX_LISTED_IDS])
        more = f" and {len(leaks) - MAX_LISTED_IDS} more" if len(leaks) > MAX_LISTED_IDS else ""
        log.warning(
            "%d of %d %s example(s) have the same text as a train example (case and spacing aside): %s%s. "
            "Their scores reward memorisation: remove them from data.%s",
            len(leaks), len(examples), split, named, more, split,
        )  # fmt: skip


def report_long_inputs(splits: Splits, max_input_words: int | None) -> None:
    """Log, per split, the inputs cut at `task.max_input_words` (metrics.json counts them too), and warn about
    inputs longer than LONG_INPUT_CHARS that reach the model anyway: no limit set, or words so long (encoded
    data) that the word limit keeps them whole. Nothing is dropped: the data stays as the files hold it."""
    for split in ("train", "validation", "test"):
        examples = getattr(splits, split)
        if max_input_words is not None:
            cut = sum(len(example.input.split()) > max_input_words for example in examples)
            if cut:
                log.info(
                    "%s: %d of %d input(s) are longer than task.max_input_words=%d words and are cut "
                    "(counted in metrics.json as data.%s.truncated_inputs)",
                    split, cut, len(examples), max_input_words, split,
                )  # fmt: skip
        lengths = {example.id: len(_as_prompted(example.input, max_input_words)) for example in examples}
        long = [(example_id, n) for example_id, n in lengths.items() if n > LONG_INPUT_CHARS]
        if long:
            named = ", ".join(f"{example_id!r} ({n:,} characters)" for example_id, n in long[:MAX_LISTED_IDS])
            if max_input_words is None:
                why = "task.max_input_words is not set"
                fix = "set task.max_input_words to cut every input (the cuts are counted in metrics.json)"
            else:
                why, fix = "words too long to cut at task.max_input_words", "clean or drop these rows"
            log.warning(
                "%s: %d input(s) longer than %s characters reach the model whole (%s): %s. Prediction on them is "
                "slow and may overflow the model's context; training cuts them at trainer.max_length tokens. "
                "To avoid it, %s",
                split, len(long), f"{LONG_INPUT_CHARS:,}", why, named, fix,
            )  # fmt: skip


def _as_prompted(text: str, max_input_words: int | None) -> str:
    """The text as the prompt holds it: cut at max_input_words, like tasks.chat.truncate_words."""
    return text if max_input_words is None else " ".join(text.split()[:max_input_words])
