"""The router's request log: one JSON line per request, appended as each request ends.

Files are `requests-<host>-<pid>-<YYYYMMDDHH>.jsonl` (UTC hour): one per process and hour, so several router
replicas write side by side into one folder without sharing a file, and a reader (DuckDB's read_json_auto,
pandas.read_json(lines=True)) takes the folder's `*.jsonl`. A record goes to the kernel in one write(2) on
a file opened for appending as soon as the request ends: a killed router (kill -9 included) loses nothing
written, and a record is whole or absent; a reader skips a last line without its newline (a machine that
lost power mid-write). The input text itself is kept only when asked (`--log-inputs`); by default a record
holds its SHA-256 and its length in characters.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
from pathlib import Path


class RequestLog:
    def __init__(self, folder: Path | None, *, keep_inputs: bool = False):
        self.folder, self.keep_inputs = (Path(folder) if folder else None), keep_inputs
        self._fd: int | None = None
        self._name: str | None = None
        self.host = socket.gethostname().split(".")[0] or "host"
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def record(self, record: dict, *, input_text: str) -> None:
        if self.folder is None:
            return
        digest = hashlib.sha256(input_text.encode("utf-8")).hexdigest()
        record = {**record, "input_sha256": digest, "input_chars": len(input_text)}  # the monitor's length drift
        if self.keep_inputs:
            record["input"] = input_text
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        fd = self._file()
        while data:  # one write(2) in practice; the loop covers a short write
            data = data[os.write(fd, data) :]

    def _file(self) -> int:
        name = f"requests-{self.host}-{os.getpid()}-{dt.datetime.now(dt.timezone.utc):%Y%m%d%H}.jsonl"
        if name != self._name:
            self.close()
            self._fd = os.open(self.folder / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._name = name
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_request_log(folder: Path) -> list[dict]:
    """Every whole record under `folder`, file by file (a last line without its newline is skipped)."""
    records = []
    for path in sorted(Path(folder).glob("requests-*.jsonl")):
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        records += [json.loads(line) for line in lines[:-1] if line]
    return records
