"""The shipped ticket data, and clear errors (file:line, what to fix) for bad data files."""

from collections import Counter

import pytest

from conftest import TICKETS, read_jsonl, write_jsonl
from slmtier.config import DataConfig
from slmtier.data import load_splits
from slmtier.data.jsonl import load_jsonl
from slmtier.errors import DataError
from slmtier.tasks.classification import Classification

LABELS = (
    "billing",
    "refund",
    "shipping",
    "account_access",
    "technical_issue",
    "product_question",
    "cancellation",
    "complaint",
)
TASK = Classification(instruction="{labels}", labels=LABELS)


def normalised(text: str) -> str:
    return " ".join(text.lower().split())


def test_ticket_splits_sizes_and_balance():
    sizes = {"train": 480, "validation": 80, "test": 160}
    for split, minimum in sizes.items():
        rows = read_jsonl(TICKETS / f"{split}.jsonl")
        assert len(rows) >= minimum
        counts = Counter(row["label"] for row in rows)
        assert set(counts) == set(LABELS)
        assert max(counts.values()) <= 1.5 * min(counts.values()), f"{split} is unbalanced: {counts}"


SAMPLE_SETS = {
    "tickets": ("text", (480, 80, 160)),
    "orders": ("text", (300, 60, 100)),
    "support_calls": ("dialogue", (200, 40, 60)),
}


@pytest.mark.parametrize("name", sorted(SAMPLE_SETS))
def test_sample_splits_do_not_overlap_and_have_no_duplicates(name):
    field, minimum = SAMPLE_SETS[name]
    folder = TICKETS.parent / name
    rows = {split: read_jsonl(folder / f"{split}.jsonl") for split in ("train", "validation", "test")}
    for (split, items), least in zip(rows.items(), minimum, strict=True):
        assert len(items) >= least, f"{name}/{split} has {len(items)} rows, fewer than {least}"
    texts = {split: [normalised(r[field]) for r in items] for split, items in rows.items()}
    for split, items in texts.items():
        assert len(items) == len(set(items)), f"duplicate texts inside {name}/{split}"
    assert not set(texts["train"]) & set(texts["test"])
    assert not set(texts["train"]) & set(texts["validation"])
    assert not set(texts["validation"]) & set(texts["test"])
    ids = [r["id"] for items in rows.values() for r in items]
    assert len(ids) == len(set(ids))


def test_ticket_data_loads_through_the_validator():
    splits = load_splits(
        DataConfig(
            train=str(TICKETS / "train.jsonl"),
            validation=str(TICKETS / "validation.jsonl"),
            test=str(TICKETS / "test.jsonl"),
        ),
        TASK.check_target,
    )
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (480, 80, 160)


def load(path):
    return load_jsonl(str(path), id_field="id", text_field="text", target_field="label", check_target=TASK.check_target)


GOOD = '{"id": "a", "text": "where is my parcel", "label": "shipping"}\n'


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (GOOD + '{"id": "b", "text": "hi", "label": \n', r":2: malformed JSON"),
        (
            GOOD + '{"id": "b", "text": "hi", "label": "refunds"}\n',
            r":2: field 'label': label 'refunds' is not one of",
        ),
        (GOOD + '{"id": "b", "text": "   ", "label": "refund"}\n', r":2: field 'text' is empty"),
        (GOOD + '{"id": "b", "text": 42, "label": "refund"}\n', r":2: field 'text' must be a string"),
        (GOOD + '{"id": "b", "label": "refund"}\n', r":2: missing field\(s\) \['text'\]"),
        (GOOD + '["b", "hi", "refund"]\n', r":2: expected a JSON object"),
        (GOOD + GOOD, r":2: duplicate id 'a' \(first on line 1\)"),
    ],
)
def test_bad_rows_name_file_line_and_fix(tmp_path, content, message):
    path = tmp_path / "train.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message) as err:
        load(path)
    assert str(path) in str(err.value)


def test_non_utf8_bytes_are_reported_with_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(GOOD.encode() + b'{"id": "b", "text": "caf\xe9", "label": "refund"}\n')
    with pytest.raises(DataError, match=r":2: not valid UTF-8"):
        load(path)


def test_all_bad_rows_are_listed_at_once(tmp_path):
    rows = [{"id": str(i), "text": "t", "label": "nope"} for i in range(30)]
    with pytest.raises(DataError, match=r"30 bad row\(s\)") as err:
        load(write_jsonl(tmp_path / "t.jsonl", rows))
    assert "and 10 more" in str(err.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        load(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="has no rows"):
        load(tmp_path / "empty.jsonl")
