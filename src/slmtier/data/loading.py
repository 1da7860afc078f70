"""Read task data (JSONL or CSV) into `Example`s, checking every row first.

All problems in a file are collected and reported together, each as `file:line: what is wrong`, so a
hurried recipe author fixes them in one pass instead of one per run. Field names may be dotted paths into
nested JSON (`userInput.text`); a CSV cell holding a JSON object or list (a target of an extraction task)
is decoded; with `id_field: null` rows are numbered by line (`test-12`).

Once all splits are read, leakage between them is checked (slmtier.data.checks).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from slmtier.config import DataConfig
from slmtier.data.checks import check_leakage
from slmtier.data.examples import Example, Splits

# resolve_data_path and read_rows are imported from here by slmtier.baselines.predictions_file.
from slmtier.data.files import find_data_file, resolve_data_path  # noqa: F401
from slmtier.data.rows import check_csv_header, read_rows
from slmtier.data.text import describe_invisible, is_blank
from slmtier.errors import DataError

MAX_LISTED_PROBLEMS = 20
HUB_PREFIX = "hub:"


def load_records(
    path: str,
    *,
    id_field: str | None,
    text_field: str,
    target_field: str,
    query_field: str | None = None,
    check_target: Callable[[Any], str | None],
    key: str = "data.*",
    target_required: bool = True,
) -> list[Example]:
    """Examples from one JSONL or CSV file, or a hub dataset split (`hub:<repo>@<split>`); raises DataError
    listing every bad row as file:line (hub rows: `hub:<repo>@<split>:<row number>`). `key` is the config
    key that names the file (data.train), for messages."""
    if path.startswith(HUB_PREFIX):
        file, rows = Path(path), _read_hub_rows(path)
    else:
        file = find_data_file(path, key)
        fields = {"data.id_field": id_field, "data.text_field": text_field}
        if target_required:
            fields["data.target_field"] = target_field
        check_csv_header(file, fields)
        rows = read_rows(file)
    problems: list[str] = []
    bad_lines: set[int] = set()
    without_id: list[int] = []  # rows lacking the id field: one mistake for the whole file, said once
    readable = 0
    examples: list[Example] = []
    seen: dict[str, int] = {}
    for line_no, row, problem in rows:
        where = f"{file}:{line_no}"
        lacks_id = False
        if problem is None:
            readable += 1
            lacks_id = id_field is not None and _lookup(row, id_field) is _MISSING
            fields = (None if lacks_id else id_field, text_field, target_field, query_field)
            example, problem = _build_example(row, fields, check_target, default_id=f"{file.stem}-{line_no}",
                                              target_required=target_required)  # fmt: skip
        if lacks_id:
            without_id.append(line_no)
            bad_lines.add(line_no)
        if problem:
            problems.append(f"{where}: {problem}")
            bad_lines.add(line_no)
            continue
        if lacks_id:
            continue
        if example.id in seen:
            problems.append(f"{where}: duplicate id {example.id!r} (first on line {seen[example.id]})")
            bad_lines.add(line_no)
            continue
        seen[example.id] = line_no
        examples.append(example)
    if without_id:
        problems.insert(0, _describe_missing_ids(file, id_field, without_id, readable))
    if problems:
        listed = "\n  ".join(problems[:MAX_LISTED_PROBLEMS])
        more = f"\n  ... and {len(problems) - MAX_LISTED_PROBLEMS} more" if len(problems) > MAX_LISTED_PROBLEMS else ""
        raise DataError(f"{len(bad_lines)} bad row(s) in {file}:\n  {listed}{more}")
    if not examples:
        raise DataError(f"{key}: {file}: the file has no rows; every split needs at least one example")
    return examples


def _describe_missing_ids(file: Path, id_field: str | None, lines: list[int], readable: int) -> str:
    """Rows without the id field, as one problem for the file: the usual cause is a file that has no ids at all,
    whose fix is one config key, not an edit of every row."""
    by_line = f"data.id_field: null (data.id_field=null on the command line) numbers the rows by line ({file.stem}-1)"
    if len(lines) == readable:
        return f"{file}: none of its {readable} rows has the field {id_field!r} (data.id_field); {by_line}"
    shown = ", ".join(map(str, lines[:10])) + (f" and {len(lines) - 10} more" if len(lines) > 10 else "")
    return (
        f"{file}: {len(lines)} of its {readable} rows have no field {id_field!r} (data.id_field): lines {shown}; "
        f"give each an id, or {by_line}"
    )


def _read_hub_rows(spec: str) -> Iterator[tuple[int, dict | None, str | None]]:
    """Rows of a Hugging Face hub dataset split, `hub:<repo>@<split>` (e.g. hub:PolyAI/banking77@train)."""
    repo, _, split = spec.removeprefix(HUB_PREFIX).partition("@")
    if not repo or not split:
        raise DataError(f"{spec}: write a hub dataset as hub:<owner>/<name>@<split>, e.g. hub:PolyAI/banking77@train")
    from datasets import ClassLabel, load_dataset

    try:
        dataset = load_dataset(repo, split=split)
    except Exception as err:  # datasets raises many types (offline, missing split, auth); all mean "cannot load"
        raise DataError(
            f"{spec}: could not load the hub dataset ({type(err).__name__}: {err}). Offline? Download it once, "
            "or export it to JSONL/CSV and point data.* at the files."
        ) from err
    # Hub label columns are often integers with names in the features (ClassLabel): use the names.
    label_columns = {name: feature for name, feature in dataset.features.items() if isinstance(feature, ClassLabel)}
    for index, row in enumerate(dataset, start=1):
        yield index, {k: label_columns[k].int2str(v) if k in label_columns else v for k, v in row.items()}, None


_MISSING = object()


def _lookup(row: dict, dotted: str) -> Any:
    """row["a"]["b"] for "a.b"; _MISSING when any step is absent."""
    value: Any = row
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _build_example(
    row: dict,
    fields: tuple[str | None, str, str, str | None],
    check_target: Callable[[Any], str | None],
    *,
    default_id: str,
    target_required: bool = True,
) -> tuple[Example | None, str | None]:
    id_field, text_field, target_field, query_field = fields
    values = {name: _lookup(row, name) for name in fields if name}
    optional = {query_field} if target_required else {query_field, target_field}
    missing = [name for name, value in values.items() if value is _MISSING and name not in optional]
    if missing:
        keys = {id_field: "data.id_field", text_field: "data.text_field", target_field: "data.target_field"}
        named_by = ", ".join(keys[name] for name in missing)
        return None, f"missing field(s) {missing} ({named_by}); the row has {sorted(row)}"
    row_id = values[id_field] if id_field else default_id
    if not isinstance(row_id, (str, int)) or isinstance(row_id, bool) or is_blank(str(row_id)):
        return None, f"field {id_field!r} must be a non-empty string or integer, got {row_id!r}"
    text = values[text_field]
    problem = _text_problem(text_field, text, "data.text_field")
    if problem:
        return None, problem
    query = values.get(query_field) if query_field else None
    if query is _MISSING or isinstance(query, str) and is_blank(query):
        query = None
    if query is not None and not isinstance(query, str):
        return None, f"field {query_field!r} must be a string, got {type(query).__name__}"
    if values[target_field] in (None, _MISSING):
        if not target_required:
            return Example(id=str(row_id), input=text, target=None, query=query), None
        return None, f"field {target_field!r} is null; every row needs its gold answer"
    problem = check_target(values[target_field])
    if problem:
        return None, f"field {target_field!r}: {problem}"
    return Example(id=str(row_id), input=text, target=values[target_field], query=query), None


def _text_problem(name: str, text: Any, config_key: str) -> str | None:
    """Why a text field's value is no text to learn from, or None. Invisible characters alone (U+200B, left by a
    copy from a web page) are as empty as spaces."""
    if isinstance(text, dict):  # the text sits one level down: `{"message": {"body": "..."}}`
        inner = next((key for key, value in text.items() if isinstance(value, str)), next(iter(text), "key"))
        return (
            f"field {name!r} must be a string, got dict with keys {sorted(text)}; name the text inside it with "
            f"a dotted path, e.g. {config_key}={name}.{inner}"
        )
    if not isinstance(text, str):
        return f"field {name!r} must be a string, got {type(text).__name__}"
    if is_blank(text):
        invisible = describe_invisible(text)
        shown = f" (it holds only invisible characters: {invisible})" if invisible else ""
        return f"field {name!r} is empty{shown}; drop the row or fill in the text"
    return None


def load_splits(cfg: DataConfig, check_target: Callable[[Any], str | None]) -> Splits:
    """Train, validation (may be empty when not configured) and test, all validated, leakage checked."""
    for key, limit in (("max_train_examples", cfg.max_train_examples), ("max_test_examples", cfg.max_test_examples)):
        if limit is not None and limit < 1:
            raise DataError(f"data.{key} must be at least 1 (null = every row), got {limit}")

    if cfg.validation_holdout is not None and cfg.validation:
        raise DataError("data.validation_holdout applies only when data.validation is null; set one of them")
    # Every split is read before any error is raised: a mistake made in all files (no ids, a misnamed field) is
    # then reported for all of them in one run, not one file per run.
    if cfg.train_targets not in ("gold", "llm"):
        raise DataError(f"data.train_targets={cfg.train_targets!r}: gold (the rows' own answers) or llm (the LLM's)")
    loaded: dict[str, list[Example]] = {}
    errors: list[str] = []
    taught = cfg.train_targets == "llm"
    for split, path in (("train", cfg.train), ("validation", cfg.validation), ("test", cfg.test)):
        if not path:
            loaded[split] = []
            continue
        try:
            loaded[split] = load_records(
                path,
                id_field=cfg.id_field,
                text_field=cfg.text_field,
                target_field=cfg.target_field,
                query_field=cfg.query_field,
                check_target=check_target,
                key=f"data.{split}",
                target_required=not (taught and split != "test"),
            )
        except DataError as err:
            errors.append(str(err))
    if errors:
        raise DataError("\n".join(errors))
    train, validation = loaded["train"], loaded["validation"]
    if cfg.validation_holdout is not None:
        train, validation = hold_out(train, cfg.validation_holdout, seed=cfg.sample_seed, file=cfg.train)
    splits = Splits(
        train=sample(train, cfg.max_train_examples, seed=cfg.sample_seed),
        validation=validation,
        test=sample(loaded["test"], cfg.max_test_examples, seed=cfg.sample_seed),
    )
    check_leakage(splits)
    return splits


def sample(examples: list[Example], limit: int | None, *, seed: int) -> list[Example]:
    """A random subset of `limit` examples fixed by seed, in file order (files are often sorted by label).
    Nested: the first `limit` of one seeded permutation, so a smaller sample lies inside every larger one (the
    points of a learning curve differ only by the examples added)."""
    if limit is None or limit >= len(examples):
        return examples
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    keep = set(order[:limit])
    return [example for index, example in enumerate(examples) if index in keep]


def hold_out(examples: list[Example], size: float, *, seed: int, file: str) -> tuple[list[Example], list[Example]]:
    """(rest, held out): `size` rows (>= 1) or that fraction of them (< 1), a random choice fixed by seed;
    both parts keep file order."""
    count = int(size) if size >= 1 else round(size * len(examples))
    if size <= 0 or size != int(size) and size >= 1 or not 1 <= count < len(examples):
        raise DataError(
            f"data.validation_holdout={size:g} cannot be held out of the {len(examples)} rows of {file}: "
            "give a row count between 1 and the number of rows, or a fraction between 0 and 1"
        )
    chosen = set(random.Random(seed).sample(range(len(examples)), count))
    rest = [example for index, example in enumerate(examples) if index not in chosen]
    return rest, [example for index, example in enumerate(examples) if index in chosen]
