"""Turn QMSum (Product domain) into slmtier summarization rows: one per query, with its transcript span.

    python scripts/convert_qmsum.py ../shared/data/qmsum_product build/data/qmsum_product

Reads <split>.queries.jsonl and <split>.meetings.jsonl (split: train, val, test) and writes
train/validation/test.jsonl rows {"id", "query", "text", "summary"}. `text` is the meeting turns the
annotators marked as relevant to the query ("Speaker: words" per line, {vocalsound}-style tags dropped),
which keeps inputs short enough for small models. General queries ("Summarize the whole meeting.") have
no span and a whole meeting is ~6,000 words, so they are skipped unless --general is given.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

SPLITS = {"train": "train", "val": "validation", "test": "test"}
_TAG = re.compile(r"\{[a-z_]+\}")


def render_turns(turns: list[dict], spans: list[list[str]] | None) -> str:
    """The transcript turns inside the spans (inclusive turn indices), or all turns when spans is None."""
    indices = (
        range(len(turns))
        if spans is None
        else sorted({i for start, end in spans for i in range(int(start), min(int(end), len(turns) - 1) + 1)})
    )
    lines = []
    for i in indices:
        text = " ".join(_TAG.sub("", turns[i]["content"]).split())
        if text:
            lines.append(f"{turns[i]['speaker']}: {text}")
    return "\n".join(lines)


def convert_split(source: Path, split: str, *, general: bool) -> list[dict]:
    meetings = {}
    with (source / f"{split}.meetings.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            meeting = json.loads(line)
            meetings[meeting["meeting_id"]] = meeting["meeting_transcripts"]
    rows = []
    with (source / f"{split}.queries.jsonl").open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            query = json.loads(line)
            if query["query_type"] == "general" and not general:
                continue
            text = render_turns(meetings[query["meeting_id"]], query.get("relevant_text_span"))
            if text:
                rows.append(
                    {
                        "id": f"{query['meeting_id']}-q{number}",
                        "query": query["query"],
                        "text": text,
                        "summary": query["answer"].strip(),
                    }
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="folder with <split>.queries.jsonl and <split>.meetings.jsonl")
    parser.add_argument("out", type=Path, help="folder to write train/validation/test.jsonl into")
    parser.add_argument("--general", action="store_true", help="also keep whole-meeting queries")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for split, name in SPLITS.items():
        rows = convert_split(args.source, split, general=args.general)
        with (args.out / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        words = sum(len(row["text"].split()) for row in rows) / max(len(rows), 1)
        print(f"{name}: {len(rows)} rows, {words:.0f} input words on average -> {args.out / f'{name}.jsonl'}")


if __name__ == "__main__":
    main()
