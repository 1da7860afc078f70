"""Read a data file into rows, JSON Lines or CSV, as (line number, row, problem): nothing here raises on a bad row.

What a tool other than a text editor leaves in a data file is named with its line and its fix, not a traceback:
a file that is not text (gzip, an Excel workbook, Parquet, UTF-16), a pretty-printed JSON file, JSON nested too
deep for Python's parser, a key given twice (JSON keeps the last silently), NaN (Python's json.dumps writes it;
JSON has no such value), a lone surrogate, a CSV quote left open. CSV cells over the csv module's 128 KB default
are read: a long text is kept, and report_long_inputs counts and reports it like a long JSON text.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import reprlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slmtier.data.text import find_lone_surrogate
from slmtier.errors import DataError

Row = tuple[int, dict | None, str | None]  # (line number, row, problem); the row is None when the problem is set

_UTF16 = (
    "UTF-16 text (Windows 'Unicode'; PowerShell's `>` writes it)",
    "re-save it as UTF-8: iconv -f UTF-16 -t UTF-8 {name} > utf8-{name}",
)
_EXPORT = "export the sheet as 'CSV UTF-8 (Comma delimited)' or as JSON Lines"
# Files that are not UTF-8 text, by their first bytes: what the file is, and how to make it one.
_NOT_TEXT = {
    codecs.BOM_UTF16_LE: _UTF16,
    codecs.BOM_UTF16_BE: _UTF16,
    b"\x1f\x8b": ("a gzip archive", "decompress it (gunzip -k {name}) and point at the plain file"),
    b"PK\x03\x04": ("a ZIP archive (an Excel .xlsx workbook is one)", _EXPORT),
    b"\xd0\xcf\x11\xe0": ("an Excel .xls workbook (or another Office file)", _EXPORT),
    b"PAR1": ("a Parquet file", "convert it: pandas.read_parquet(path).to_json(out, orient='records', lines=True)"),
}
# Why a JSON line fails to parse, for the mistakes that writing JSON by hand (or by string formatting) makes.
_JSON_HINTS = {
    "Unterminated string starting at": "a line break inside a text? write it as \\n",
    "Invalid control character at": "a raw tab or other control character inside a text? write a tab as \\t",
    "Extra data": "two rows on one line? put each JSON object on a line of its own",
}


class _NotJson(ValueError):
    """Valid to Python's json module, but not data: a duplicate key, NaN."""


def read_rows(file: Path) -> Iterator[Row]:
    """(line number, row, problem) for each non-blank row; raises DataError only when the file cannot be read."""
    try:
        raw = file.read_bytes()
    except OSError as err:
        raise DataError(f"{file}: cannot read the file ({err.strerror}); check that it is readable") from err
    for magic, (what, fix) in _NOT_TEXT.items():
        if raw.startswith(magic):
            yield 1, None, f"the file is {what}, not UTF-8 text; {fix.format(name=file.name)}"
            return
    if file.suffix.lower() == ".csv":
        yield from _read_csv_rows(raw)
    else:
        yield from _read_jsonl_rows(raw, file)


def _read_jsonl_rows(raw: bytes, file: Path) -> Iterator[Row]:
    text_start = raw.removeprefix(codecs.BOM_UTF8).lstrip()
    lines_name = f"{file.stem}.jsonl" if file.suffix.lower() != ".jsonl" else f"{file.stem}.lines.jsonl"
    if text_start[:1] == b"[" and _is_json_array(raw):
        convert = f"jq -c '.[]' {file.name} > {lines_name}"
        yield 1, None, f"the file is one JSON array, not JSON Lines (one object per line); convert it: {convert}"
        return
    if text_start.split(b"\n", 1)[0].strip() == b"{":
        convert = f"jq -c . {file.name} > {lines_name}"
        spread = "the file holds JSON objects spread over several lines (pretty-printed)"
        yield 1, None, f"{spread}, not JSON Lines (one object per line); convert it: {convert}"
        return
    for line_no, line in enumerate(raw.split(b"\n"), start=1):
        try:
            # utf-8-sig on line 1: a byte-order mark (saved by a Windows editor) is not part of the data.
            decoded = line.decode("utf-8-sig" if line_no == 1 else "utf-8")
        except UnicodeDecodeError as err:
            yield line_no, None, _not_utf8(err, err.start + 1)
            continue
        if decoded.strip():
            yield line_no, *decode_json_row(decoded)


def decode_json_row(line: str) -> tuple[dict | None, str | None]:
    """(row, None) for a line holding one JSON object, else (None, what is wrong with it)."""
    try:
        row = json.loads(line, object_pairs_hook=_object_without_duplicates, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        hint = _JSON_HINTS.get(err.msg)
        where = f"{err.msg.removesuffix(' at')} at column {err.colno}" + (f"; {hint}" if hint else "")
        return None, f"malformed JSON ({where}); each line must be one JSON object"
    except _NotJson as err:
        return None, str(err)
    except RecursionError:
        depth = f"about {sys.getrecursionlimit():,} levels of [ or {{"
        return None, f"JSON nested deeper than Python's parser follows ({depth}); each line must be one JSON object"
    except ValueError as err:  # valid JSON that Python will not read: an integer of more than 4,300 digits
        return None, f"unreadable JSON ({str(err).split(':')[0]}); write such a long number as a string"
    if not isinstance(row, dict):
        return None, f"expected a JSON object, got {type(row).__name__}"
    return (row, None) if "\\u" not in line else _without_lone_surrogate(row)


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object whose keys are unique: with a key given twice, json.loads would keep the last value silently."""
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            values = f"{reprlib.repr(seen[key])}, then {reprlib.repr(value)}"
            raise _NotJson(
                f"key {key!r} appears twice in one JSON object ({values}); JSON readers keep only the last, "
                "so remove the one you do not mean"
            )
        seen[key] = value
    return seen


def _refuse_constant(name: str) -> None:
    raise _NotJson(
        f"{name} is not JSON (Python's json.dumps writes it for a float such as pandas' missing value); "
        "write null for a missing value"
    )


def _without_lone_surrogate(row: dict) -> tuple[dict | None, str | None]:
    """Only a JSON escape (`\\ud83d`) can put a surrogate into a decoded row; UTF-8 itself cannot hold one."""
    found = find_lone_surrogate(row)
    if found is None:
        return row, None
    where, escape = found
    holder = f"field {where!r}" if where else "a key"
    return None, (
        f"{holder} holds {escape}, half of a UTF-16 surrogate pair without its other half (a text cut inside an "
        "emoji?): it is no character, and no UTF-8 file or tokenizer can hold it; fix or drop the row"
    )


def _read_csv_rows(raw: bytes) -> Iterator[Row]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line_no = raw.count(b"\n", 0, err.start) + 1
        yield line_no, None, _not_utf8(err, err.start - raw.rfind(b"\n", 0, err.start))
        return
    allow_csv_cells_up_to(len(text))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    lines: list[str] = []  # the file's lines, split only once a row spans several
    end = reader.line_num
    for row in reader:
        start, end = end + 1, reader.line_num
        if start < end:
            lines = lines or list(io.StringIO(text, newline=""))
            start = _first_filled_line(lines, start, end)
        yield _check_csv_row(row, len(header), lines[start - 1 : end] if start < end else [], start, end)


def _first_filled_line(lines: list[str], start: int, end: int) -> int:
    """Where a row that the csv reader ended on line `end` begins: blank lines before it are skipped."""
    return next((n for n in range(start, end) if lines[n - 1].strip()), end)


def _check_csv_row(row: dict, header: int, spanned: list[str], start: int, end: int) -> Row:
    """The row read from lines start..end (`spanned`: their text when they are several)."""
    if spanned and _ends_inside_quotes(spanned):
        open_quote = f'a quote (") opened on line {start} is never closed, so lines {start}-{end} were read as one cell'
        return start, None, f'{open_quote}; close it, and write a quote inside a cell as ""'
    # DictReader files extra cells under None and fills missing ones with None: both are a broken row.
    extra, missing = row.pop(None, []), [key for key, value in row.items() if value is None]
    if extra or missing:
        cells = len(row) + len(extra) - len(missing)
        spans = f" (lines {start}-{end} were read as one row: a quote left open on line {start}?)" if spanned else ""
        return start, None, f"{cells} cells where the header has {header}{spans}; quote a cell that holds a comma"
    # A good row keeps the number of its last line: with `id_field: null` it is the row's id (`train-12`).
    return end, *_without_lone_surrogate({key: _maybe_json(value) for key, value in row.items()})


def _ends_inside_quotes(lines: list[str]) -> bool:
    """Whether the lines end inside a quoted cell: the lenient reader then ran on to the end of the file. The
    strict reader says so ("unexpected end of data"); its other complaints are about text the lenient one keeps."""
    try:
        for _ in csv.reader(lines, strict=True):
            pass
    except csv.Error as err:
        return "unexpected end of data" in str(err)
    return False


def check_csv_header(file: Path, fields: dict[str, str | None]) -> None:
    """A header mistake is one mistake, said once rather than on every row: a column the recipe names is missing,
    or given twice (a CSV reader keeps the last), or the file is separated by something other than commas.
    `fields`: config key -> the column it names (dotted paths name their first part)."""
    header = _read_csv_header(file) if file.suffix.lower() == ".csv" else None
    if header is None:
        return
    separator = next((char for char in ";\t|" if len(header) == 1 and char in header[0]), None)
    if separator:
        raise DataError(
            f"{file}:1: the header {header} is one column: the file is separated by {separator!r}, not by commas; "
            "save it as comma-separated CSV (Excel: 'CSV UTF-8 (Comma delimited)')"
        )
    for config_key, name in fields.items():
        column = name.split(".")[0] if name else None
        if column and header.count(column) > 1:
            raise DataError(
                f"{file}:1: the header {header} has the column {column!r} ({config_key}) {header.count(column)} "
                "times, and a CSV reader keeps only the last; rename or remove the others"
            )
        if column and column not in header:
            by_line = " (null = number the rows by line)" if config_key == "data.id_field" else ""
            raise DataError(
                f"{file}:1: no column {name!r} ({config_key}) in the header {header}; "
                f"rename the column or set {config_key}{by_line}"
            )


def _read_csv_header(file: Path) -> list[str] | None:
    """The first CSV record; None when the file cannot be read as CSV (read_rows names the line)."""
    try:
        allow_csv_cells_up_to(file.stat().st_size)
        with file.open(encoding="utf-8-sig", newline="") as handle:
            return next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def allow_csv_cells_up_to(size: int) -> None:
    """Raise the csv module's cell limit (128 KB by default, process-wide) to `size` characters: a cell cannot be
    longer than its file, so with the file's size no cell is refused."""
    csv.field_size_limit(max(csv.field_size_limit(), size))


def _not_utf8(err: UnicodeDecodeError, column: int) -> str:
    """`column`: the bad byte's place in its line, counted from 1."""
    return f"not valid UTF-8 ({err.reason} at byte {column} of the line); re-save as UTF-8"


def _is_json_array(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), list)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return False


def _maybe_json(cell: str | None) -> Any:
    """A CSV cell; one that holds a JSON object or list (an extraction target) is decoded, any other kept as text."""
    if cell and cell.lstrip()[:1] in "{[":
        try:
            return json.loads(cell)
        except (ValueError, RecursionError):
            return cell
    return cell
