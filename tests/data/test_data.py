"""The shipped ticket data, and clear errors (file:line, what to fix) for bad data files."""

import ast
import json
import os
from collections import Counter

import pytest

from helpers.files import REPO, TICKETS, read_jsonl, write_jsonl
from slmtier.config import DataConfig
from slmtier.data import Example, load_splits
from slmtier.data.loading import load_records
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
    return load_records(
        str(path), id_field="id", text_field="text", target_field="label", check_target=TASK.check_target
    )


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


def load_with(path, **fields):
    options = {"id_field": "id", "text_field": "text", "target_field": "label", "check_target": TASK.check_target}
    return load_records(str(path), **{**options, **fields})


def test_csv_with_line_numbers_as_ids(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('text,category\n"Where, exactly, is my parcel?",shipping\nrefund me,refund\n', encoding="utf-8")
    examples = load_with(path, id_field=None, target_field="category")
    assert [(e.id, e.input, e.target) for e in examples] == [
        ("train-2", "Where, exactly, is my parcel?", "shipping"),
        ("train-3", "refund me", "refund"),
    ]
    path.write_text("text,category\nhi,nope\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train.csv:2: field 'category'"):
        load_with(path, id_field=None, target_field="category")


def test_csv_non_utf8_names_the_line(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"text,label\nok,refund\ncaf\xe9,refund\n")
    with pytest.raises(DataError, match=r"train.csv:3: not valid UTF-8"):
        load_with(path)


def test_dotted_fields_and_json_cells(tmp_path):
    rows = [{"userInput": {"text": "table for 2"}, "fields": {"people": "2"}}]
    examples = load_records(
        str(write_jsonl(tmp_path / "r.jsonl", rows)),
        id_field=None,
        text_field="userInput.text",
        target_field="fields",
        check_target=lambda value: None,
    )
    assert examples[0].input == "table for 2" and examples[0].target == {"people": "2"}
    csv_path = tmp_path / "r.csv"
    csv_path.write_text('id,text,fields\n1,hi,"{""people"": ""2""}"\n', encoding="utf-8")
    examples = load_records(
        str(csv_path),
        id_field="id",
        text_field="text",
        target_field="fields",
        check_target=lambda value: None if isinstance(value, dict) else "not a dict",
    )
    assert examples[0].target == {"people": "2"}


def test_query_field_is_optional_per_row(tmp_path):
    rows = [{"id": "a", "text": "t", "label": "refund", "q": "why?"}, {"id": "b", "text": "t", "label": "refund"}]
    examples = load_with(write_jsonl(tmp_path / "q.jsonl", rows), query_field="q")
    assert [e.query for e in examples] == ["why?", None]


def test_subsampling_is_seeded_random_and_keeps_file_order():
    from slmtier.data.loading import sample

    examples = [Example(str(i), "t", "a" if i < 50 else "b") for i in range(100)]
    picked = sample(examples, 10, seed=0)
    assert len(picked) == 10 and [int(e.id) for e in picked] == sorted(int(e.id) for e in picked)
    assert {e.target for e in picked} == {"a", "b"}  # not just the head of a label-sorted file
    assert picked == sample(examples, 10, seed=0) and picked != sample(examples, 10, seed=1)
    assert sample(examples, None, seed=0) is examples and sample(examples, 500, seed=0) is examples


def test_validation_held_out_of_train_when_none_ships():
    task = Classification("x", tuple(sorted({row["label"] for row in read_jsonl(TICKETS / "train.jsonl")})))
    base = {"train": str(TICKETS / "train.jsonl"), "test": str(TICKETS / "test.jsonl"), "validation": None}
    splits = load_splits(DataConfig(**base, validation_holdout=50), task.check_target)
    assert len(splits.validation) == 50 and len(splits.train) == 480 - 50
    assert not {e.id for e in splits.validation} & {e.id for e in splits.train}
    assert [e.id for e in splits.validation] == sorted(e.id for e in splits.validation)  # file order kept
    fraction = load_splits(DataConfig(**base, validation_holdout=0.25), task.check_target)
    assert len(fraction.validation) == 120 and len(fraction.train) == 360
    same = load_splits(DataConfig(**base, validation_holdout=50), task.check_target)
    assert same.validation == splits.validation  # fixed by sample_seed
    # max_train_examples samples what is left after the hold-out
    both = load_splits(DataConfig(**base, validation_holdout=50, max_train_examples=100), task.check_target)
    assert both.validation == splits.validation and len(both.train) == 100
    for bad in (0, 480, 2.5, -1):
        with pytest.raises(DataError, match="data.validation_holdout"):
            load_splits(DataConfig(**base, validation_holdout=bad), task.check_target)
    with pytest.raises(DataError, match="only when data.validation is null"):
        load_splits(DataConfig(**{**base, "validation": str(TICKETS / "validation.jsonl")}, validation_holdout=10),
                    task.check_target)  # fmt: skip


def test_hub_dataset_spec_errors_are_clear(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(DataError, match=r"hub:<owner>/<name>@<split>"):
        load_with("hub:PolyAI/banking77")
    with pytest.raises(DataError, match=r"could not load the hub dataset .*Offline\?"):
        load_with("hub:no-such-org/no-such-dataset@train")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "b", "text": "hi", "label": "refund", "label": "billing"}', "key 'label' appears twice"),
        ('{"id": "b", "text": "hi", "label": "refund", "meta": {"x": 1, "x": 2}}', "key 'x' appears twice"),
        ('{"id": "b", "text": "hi", "label": NaN}', "NaN is not JSON"),
        ('{"id": "b", "text": "hi", "label": "refund", "n": -Infinity}', "-Infinity is not JSON"),
        ('{"id": ' + "9" * 5000 + ', "text": "hi", "label": "refund"}', "write such a long number as a string"),
        ('{"id": "b", "text": ' + "[" * 5000 + "]" * 5000 + ', "label": "refund"}', "JSON nested deeper"),
        ('{"id": "b", "text": "caf\\u00e9 \\udc00", "label": "refund"}', r"field 'text' holds \\udc00"),
        ('{"id": "b", "text": "hi", "label": "refund", "tags": ["ok", "\\ud83d"]}', r"field 'tags' holds \\ud83d"),
        ('{"id": "b", "text": "\\u200b\\u00a0", "label": "refund"}', r"is empty \(it holds only invisible"),
        ("3", "expected a JSON object, got int"),
    ],
)
def test_json_that_python_accepts_or_crashes_on_is_a_row_problem(tmp_path, line, message):
    path = tmp_path / "train.jsonl"
    path.write_text(GOOD + line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=message) as err:
        load(path)
    assert f"{path}:2: " in str(err.value)


def test_a_paired_surrogate_escape_is_an_emoji_not_a_problem(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(GOOD + '{"id": "b", "text": "love it \\ud83d\\ude00", "label": "refund"}\n', encoding="utf-8")
    assert load(path)[1].input == "love it \U0001f600"


def test_only_invisible_characters_are_blank():
    from slmtier.data.text import is_blank

    assert all(map(is_blank, ["", " \n", "\u200b", "\u2060\ufeff\u00ad", "\u3164", "\u00a0\u2028"]))
    assert not any(map(is_blank, ["a", "\u200ba", "\u0301", "\U0001f600", "\u4e00"]))


def test_csv_cells_longer_than_the_csv_default_limit_are_read(tmp_path):
    path = tmp_path / "train.csv"
    long_text, nested = "word " * 40_000, "[" * 5000  # 200,000 characters; nesting Python's JSON parser refuses
    path.write_text(f"id,text,label\na,{long_text},refund\nb,{nested},refund\n", encoding="utf-8")
    assert [example.input for example in load(path)] == [long_text, nested]


def test_a_csv_json_cell_with_a_lone_surrogate_is_refused(tmp_path):
    path = tmp_path / "train.csv"
    target = json.dumps({"people": "2\ud800"})  # ensure_ascii: the escape survives
    path.write_text(f'id,text,fields\n1,hi,"{target.replace(chr(34), chr(34) * 2)}"\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"train.csv:2: field 'fields.people' holds \\ud800"):
        load_with(path, target_field="fields", check_target=lambda value: None)


def test_a_data_path_that_leads_to_no_file_says_why(tmp_path):
    os.symlink("b.jsonl", tmp_path / "a.jsonl")
    os.symlink("a.jsonl", tmp_path / "b.jsonl")
    with pytest.raises(DataError, match=r"a.jsonl is a symbolic link loop \(.*a.jsonl -> b.jsonl -> a.jsonl\)"):
        load(tmp_path / "a.jsonl")
    os.symlink("moved/train.jsonl", tmp_path / "gone.jsonl")
    with pytest.raises(DataError, match=r"gone.jsonl is a symbolic link to moved/train.jsonl, which does not exist"):
        load(tmp_path / "gone.jsonl")
    os.mkfifo(tmp_path / "pipe.jsonl")
    with pytest.raises(DataError, match=r"pipe.jsonl is not a regular file \(a pipe or a device\?\)"):
        load(tmp_path / "pipe.jsonl")
    with pytest.raises(DataError, match="data file not found"):
        load(tmp_path / "missing.jsonl")


def test_csv_quote_left_open_is_named_where_it_opens(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text('id,text,label\na,"two\nlines",refund\nb,24" monitor,refund\n', encoding="utf-8")
    assert [example.input for example in load(path)] == ["two\nlines", '24" monitor']  # quoted line breaks are fine
    path.write_text('id,text,label\na,"never closed,refund\nb,hi,refund\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"train.csv:2: a quote \(\"\) opened on line 2 is never closed"):
        load(path)
    path.write_text('id,text,label\na,"open,refund\nb,hi,"refund\nc,hi,refund\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"train.csv:2: 2 cells .*lines 2-3 were read as one row"):
        load(path)


def test_rows_without_ids_say_once_per_file_to_number_them_by_line_in_every_split(tmp_path):
    """A file without an id field fails once per file with the fix (data.id_field: null), and the test split's
    same mistake is reported in the same run rather than after the train file is fixed."""
    rows = [{"text": f"where is parcel {i}", "label": "shipping"} for i in range(30)]
    train = write_jsonl(tmp_path / "train.jsonl", rows[:20])
    test = write_jsonl(tmp_path / "test.jsonl", rows[20:])
    config = DataConfig(train=str(train), test=str(test))
    with pytest.raises(DataError) as err:
        load_splits(config, TASK.check_target)
    message = str(err.value)
    for path, n in ((train, 20), (test, 10)):
        assert message.count(f"{path}: none of its {n} rows has the field 'id' (data.id_field)") == 1, message
    assert message.count("data.id_field: null") == 2 and "missing field" not in message
    by_line = load_splits(DataConfig(train=str(train), test=str(test), id_field=None), TASK.check_target)
    assert [e.id for e in by_line.test[:2]] == ["test-1", "test-2"]


def test_some_rows_without_ids_are_named_by_line_with_the_fix_once(tmp_path):
    rows = [{"id": "a", "text": "where is my parcel", "label": "shipping"}, {"text": "refund me", "label": "refund"}]
    path = write_jsonl(tmp_path / "train.jsonl", [*rows, {"text": "", "label": "refund"}])
    with pytest.raises(DataError) as err:
        load(path)
    message = str(err.value)
    assert "2 bad row(s)" in message and message.count("data.id_field: null") == 1, message
    assert f"{path}: 2 of its 3 rows have no field 'id' (data.id_field): lines 2, 3" in message
    assert f"{path}:3: field 'text' is empty" in message  # its other problems are still listed


def test_data_modules_import_no_cycle():
    """checks.py and loading.py imported each other (checks behind TYPE_CHECKING); the types they share live in
    data/examples.py, so the modules of slmtier.data form no import cycle, type-only imports included."""
    folder = REPO / "src" / "slmtier" / "data"
    imports = {}
    for path in folder.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("slmtier.data."):
                names.add(node.module.removeprefix("slmtier.data."))
        imports[path.stem] = names - {path.stem}

    def reaches(start: str, goal: str, seen: frozenset = frozenset()) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in imports.get(start, ()))

    cycles = sorted(name for name in imports if name != "__init__" and reaches(name, name))
    assert not cycles, f"slmtier.data modules in an import cycle: {cycles}"
