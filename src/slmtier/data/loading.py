"""Read task data (JSONL or CSV) into `Example`s, checking every row first.

All problems in a file are collected and reported together, each as `file:line: what is wrong`, so a
hurried recipe author fixes them in one pass instead of one per run. Field names may be dotted paths into
nested JSON (`userInput.text`); a CSV cell holding a JSON object or list (a target of an extraction task)
is decoded; with `id_field: null` rows are numbered by line (`test-12`).

Once all splits are read, leakage between them is checked (slmtier.data.checks).
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmtier.config import PROJECT_ROOT, DataConfig
from slmtier.data.checks import check_leakage
from slmtier.errors import DataError

MAX_LISTED_PROBLEMS = 20
HUB_PREFIX = "hub:"


@dataclass(frozen=True)
class Example:
    id: str
    input: str
    target: Any
    query: str | None = None  # summarization: the question or instruction this example's summary answers


@dataclass(frozen=True)
class Splits:
    train: list[Example]
    validation: list[Example]
    test: list[Example]


def resolve_data_path(path: str) -> Path:
    """A data path as given: absolute, relative to the current directory, or to the repo root."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return candidate
    in_project = PROJECT_ROOT / candidate
    return in_project if in_project.exists() else candidate


def load_records(
    path: str,
    *,
    id_field: str | None,
    text_field: str,
    target_field: str,
    query_field: str | None = None,
    check_target: Callable[[Any], str | None],
    key: str = "data.*",
) -> list[Example]:
    """Examples from one JSONL or CSV file, or a hub dataset split (`hub:<repo>@<split>`); raises DataError
    listing every bad row as file:line (hub rows: `hub:<repo>@<split>:<row number>`). `key` is the config
    key that names the file (data.train), for messages."""
    if path.startswith(HUB_PREFIX):
        file, rows = Path(path), _read_hub_rows(path)
    else:
        file = _find_file(path, key)
        fields = {"data.id_field": id_field, "data.text_field": text_field, "data.target_field": target_field}
        _check_csv_header(file, fields)
        rows = read_rows(file)
    fields = (id_field, text_field, target_field, query_field)
    problems: list[str] = []
    examples: list[Example] = []
    seen: dict[str, int] = {}
    for line_no, row, problem in rows:
        where = f"{file}:{line_no}"
        if problem is None:
            example, problem = _build_example(row, fields, check_target, default_id=f"{file.stem}-{line_no}")
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        if example.id in seen:
            problems.append(f"{where}: duplicate id {example.id!r} (first on line {seen[example.id]})")
            continue
        seen[example.id] = line_no
        examples.append(example)
    if problems:
        listed = "\n  ".join(problems[:MAX_LISTED_PROBLEMS])
        more = f"\n  ... and {len(problems) - MAX_LISTED_PROBLEMS} more" if len(problems) > MAX_LISTED_PROBLEMS else ""
        raise DataError(f"{len(problems)} bad row(s) in {file}:\n  {listed}{more}")
    if not examples:
        raise DataError(f"{key}: {file}: the file has no rows; every split needs at least one example")
    return examples


def _find_file(path: str, key: str) -> Path:
    if not path.strip():
        raise DataError(f"{key} is empty; set it to a .jsonl or .csv file")
    file = resolve_data_path(path)
    if file.is_dir():
        raise DataError(f"{key}: {path} is a folder; point {key} at one .jsonl or .csv file")
    if not file.is_file():
        raise DataError(f"{key}: {path}: data file not found (looked in {Path.cwd()} and {PROJECT_ROOT}); fix {key}")
    return file


def _check_csv_header(file: Path, fields: dict[str, str | None]) -> None:
    """A column the recipe names but the CSV header lacks is one mistake, said once rather than on every row."""
    if file.suffix.lower() != ".csv":
        return
    try:
        with file.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), [])
    except UnicodeDecodeError:
        return  # read_rows names the line
    for config_key, name in fields.items():
        if name and name.split(".")[0] not in header:
            raise DataError(
                f"{file}:1: no column {name!r} ({config_key}) in the header {header}; "
                f"rename the column or set {config_key}"
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


def read_rows(file: Path) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line number, row, problem) for each non-blank row; the row is None when the problem is set."""
    raw = file.read_bytes()
    if file.suffix.lower() == ".csv":
        yield from _read_csv_rows(raw)
        return
    if raw.lstrip()[:1] == b"[" and _is_json_array(raw):
        convert = f"jq -c '.[]' {file.name} > {file.stem}.jsonl"
        yield 1, None, f"the file is one JSON array, not JSON Lines (one object per line); convert it: {convert}"
        return
    for line_no, line in enumerate(raw.split(b"\n"), start=1):
        try:
            # utf-8-sig on line 1: a byte-order mark (saved by a Windows editor) is not part of the data.
            decoded = line.decode("utf-8-sig" if line_no == 1 else "utf-8")
        except UnicodeDecodeError as err:
            yield line_no, None, _not_utf8(err, err.start + 1)
            continue
        if not decoded.strip():
            continue
        try:
            row = json.loads(decoded)
        except json.JSONDecodeError as err:
            yield line_no, None, f"malformed JSON ({err.msg} at column {err.colno}); each line must be one JSON object"
            continue
        if not isinstance(row, dict):
            yield line_no, None, f"expected a JSON object, got {type(row).__name__}"
            continue
        yield line_no, row, None


def _read_csv_rows(raw: bytes) -> Iterator[tuple[int, dict | None, str | None]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line_no = raw.count(b"\n", 0, err.start) + 1
        yield line_no, None, _not_utf8(err, err.start - raw.rfind(b"\n", 0, err.start))
        return
    reader = csv.DictReader(io.StringIO(text, newline=""))
    for row in reader:
        # DictReader files extra cells under None and fills missing ones with None: both are a broken row.
        extra, missing = row.pop(None, []), [key for key, value in row.items() if value is None]
        if extra or missing:
            cells, header = len(row) + len(extra) - len(missing), len(reader.fieldnames)
            yield reader.line_num, None, f"{cells} cells where the header has {header}; quote a cell that holds a comma"
            continue
        yield reader.line_num, {key: _maybe_json(value) for key, value in row.items()}, None


def _not_utf8(err: UnicodeDecodeError, column: int) -> str:
    """`column`: the bad byte's place in its line, counted from 1."""
    return f"not valid UTF-8 ({err.reason} at byte {column} of the line); re-save as UTF-8"


def _is_json_array(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), list)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def _maybe_json(cell: str | None) -> Any:
    """A CSV cell; one that holds a JSON object or list (an extraction target) is decoded."""
    if cell and cell.lstrip()[:1] in "{[":
        try:
            return json.loads(cell)
        except json.JSONDecodeError:
            return cell
    return cell


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
) -> tuple[Example | None, str | None]:
    id_field, text_field, target_field, query_field = fields
    values = {name: _lookup(row, name) for name in fields if name}
    missing = [name for name, value in values.items() if value is _MISSING and name != query_field]
    if missing:
        keys = {id_field: "data.id_field", text_field: "data.text_field", target_field: "data.target_field"}
        named_by = ", ".join(keys[name] for name in missing)
        return None, f"missing field(s) {missing} ({named_by}); the row has {sorted(row)}"
    row_id = values[id_field] if id_field else default_id
    if not isinstance(row_id, (str, int)) or isinstance(row_id, bool) or str(row_id).strip() == "":
        return None, f"field {id_field!r} must be a non-empty string or integer, got {row_id!r}"
    text = values[text_field]
    if not isinstance(text, str):
        return None, f"field {text_field!r} must be a string, got {type(text).__name__}"
    if not text.strip():
        return None, f"field {text_field!r} is empty; drop the row or fill in the text"
    query = values.get(query_field) if query_field else None
    if query is _MISSING or query == "":
        query = None
    if query is not None and not isinstance(query, str):
        return None, f"field {query_field!r} must be a string, got {type(query).__name__}"
    if values[target_field] is None:
        return None, f"field {target_field!r} is null; every row needs its gold answer"
    problem = check_target(values[target_field])
    if problem:
        return None, f"field {target_field!r}: {problem}"
    return Example(id=str(row_id), input=text, target=values[target_field], query=query), None


def load_splits(cfg: DataConfig, check_target: Callable[[Any], str | None]) -> Splits:
    """Train, validation (may be empty when not configured) and test, all validated, leakage checked."""
    for key, limit in (("max_train_examples", cfg.max_train_examples), ("max_test_examples", cfg.max_test_examples)):
        if limit is not None and limit < 1:
            raise DataError(f"data.{key} must be at least 1 (null = every row), got {limit}")

    def load(path: str, key: str) -> list[Example]:
        return load_records(
            path,
            id_field=cfg.id_field,
            text_field=cfg.text_field,
            target_field=cfg.target_field,
            query_field=cfg.query_field,
            check_target=check_target,
            key=key,
        )

    train = load(cfg.train, "data.train")
    validation = load(cfg.validation, "data.validation") if cfg.validation else []
    if cfg.validation_holdout is not None:
        if cfg.validation:
            raise DataError("data.validation_holdout applies only when data.validation is null; set one of them")
        train, validation = hold_out(train, cfg.validation_holdout, seed=cfg.sample_seed, file=cfg.train)
    splits = Splits(
        train=sample(train, cfg.max_train_examples, seed=cfg.sample_seed),
        validation=validation,
        test=sample(load(cfg.test, "data.test"), cfg.max_test_examples, seed=cfg.sample_seed),
    )
    check_leakage(splits)
    return splits


def sample(examples: list[Example], limit: int | None, *, seed: int) -> list[Example]:
    """A random subset of `limit` examples fixed by seed, in file order (files are often sorted by label)."""
    if limit is None or limit >= len(examples):
        return examples
    keep = set(random.Random(seed).sample(range(len(examples)), limit))
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
