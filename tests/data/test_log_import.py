"""`slmtier import-logs`: each log format read, bad lines named, duplicates removed, the split by time, and a run
trained on the files recording where its targets came from."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.files import TICKETS, read_jsonl
from helpers.processes import run_train_cli
from helpers.tiny import tiny_overrides
from slmtier.config import TaskConfig
from slmtier.data.log_import import import_logs, read_logged_answers
from slmtier.errors import DataError
from slmtier.tasks import build_task

LABELS = ["billing", "refund", "shipping", "account_access", "technical_issue", "product_question", "cancellation",
          "complaint"]  # fmt: skip
TASK = build_task(TaskConfig(kind="classification", instruction="Route: {labels}", labels=LABELS))
SYSTEM = {"role": "system", "content": "Route the ticket to one queue."}
T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z


def gateway_line(text: str, answer: str, when: float, *, prompt: str = "{text}") -> dict:
    """A chat-completions exchange as a gateway logs it: the request, the response object, its time."""
    return {
        "request": {"model": "gpt-4o-mini",
                    "messages": [SYSTEM, {"role": "user", "content": prompt.format(text=text)}]},
        "response": {"id": "chatcmpl-1", "object": "chat.completion", "created": int(when), "model": "gpt-4o-mini-2024",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}],
                     "usage": {"prompt_tokens": 40, "completion_tokens": 2}},
    }  # fmt: skip


def write(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return path


def test_each_format_is_read_and_what_is_not_usable_is_counted(tmp_path):
    gateway = write(tmp_path / "gateway.jsonl", [
        gateway_line("My card was charged twice", "refund", T0),
        gateway_line("Where is my parcel?", "Sorry, I am not sure what you mean.", T0 + 1),  # names no queue
        {"request": {"messages": [SYSTEM]}, "response": {"error": {"message": "rate limited"}}, "created": T0 + 2},
        '{"request": {"messages": [',  # cut short
    ])  # fmt: skip
    finetune = write(tmp_path / "finetune.jsonl", [
        {"messages": [SYSTEM, {"role": "user", "content": "I cannot log in"},
                      {"role": "assistant", "content": "account_access"}], "timestamp": "2026-09-21T10:00:00Z"},
    ])  # fmt: skip
    router = write(tmp_path / "requests-host-1-2026092110.jsonl", [
        {"time": T0 + 5, "request_id": "a", "task": "tickets", "tier": "llm", "escalated": True,
         "answer": "shipping", "input": "Parcel never came"},
        {"time": T0 + 6, "request_id": "b", "task": "tickets", "tier": "encoder", "answer": "billing",
         "input": "Invoice wrong"},
        {"time": T0 + 7, "request_id": "b", "task": "tickets", "kind": "shadow", "tier": "llm", "answer": "billing",
         "model": "gpt-4o (0-shot)", "error": None, "input": "Invoice wrong"},
        {"time": T0 + 8, "request_id": "c", "task": "tickets", "tier": "llm", "answer": "refund"},  # no input logged
    ])  # fmt: skip
    found = read_logged_answers([gateway, finetune, router], TASK)
    assert [(row.input, row.answer) for row in found.rows] == [
        ("My card was charged twice", "refund"), ("I cannot log in", "account_access"),
        ("Parcel never came", "shipping"), ("Invoice wrong", "billing"),
    ]  # fmt: skip
    assert found.rows[0].model == "gpt-4o-mini-2024" and found.rows[0].time == T0
    # A router record names its LLM (records written before it did: none).
    assert [row.model for row in found.rows[2:]] == [None, "gpt-4o (0-shot)"]
    assert found.rows[1].time == dt.datetime(2026, 9, 21, 10, tzinfo=dt.timezone.utc).timestamp()  # ISO, UTC
    assert found.dropped == {"the task's parser cannot read the answer": 1, "unreadable line": 1,
                             "no answer (an error response, or none logged)": 1,
                             "answered by a local tier (not the LLM)": 1,
                             "no input logged (route with --log-inputs)": 1}  # fmt: skip
    assert found.unreadable == [f"{gateway}:4: not a JSON object (a line cut short?)"]
    assert found.formats == {"chat-completions log": 3, "chat messages ending with the answer": 1,
                             "slmtier router log": 4}  # fmt: skip


def test_the_input_pattern_takes_the_input_out_of_the_prompt_template(tmp_path):
    prompt = "Ticket:\n<<{text}>>\nAnswer with the queue."
    log = write(tmp_path / "log.jsonl", [gateway_line("Refund me", "refund", T0, prompt=prompt),
                                         gateway_line("no brackets", "refund", T0)])  # fmt: skip
    found = read_logged_answers([log], TASK, input_pattern=r"<<(?P<input>.+?)>>")
    assert [row.input for row in found.rows] == ["Refund me"]
    assert found.dropped == {"input pattern not found in the last user message": 1}


def test_duplicates_go_the_earliest_stays_and_the_test_split_is_the_latest(tmp_path):
    tickets = read_jsonl(TICKETS / "train.jsonl")[:60]
    records = [gateway_line(row["text"], row["label"], T0 + 3600 * i) for i, row in enumerate(tickets)]
    # Logged in no particular order (two replicas' files concatenated), with repeats: the same ticket with
    # other digits and spacing, and the same ticket with one word changed, both later than the first.
    records = records[30:] + records[:30]
    retyped = re.sub(r"\d", "7", tickets[3]["text"].upper()).replace(" ", "  ")
    records.append(gateway_line(retyped, tickets[3]["label"], T0 + 3600 * 100))
    words = tickets[5]["text"].split()
    records.append(gateway_line(" ".join(words[:-1] + ["please"]), tickets[5]["label"], T0 + 3600 * 101))
    records.append(gateway_line(tickets[7]["text"] + " 999", tickets[7]["label"], T0 + 3600 * 102))
    log = write(tmp_path / "log.jsonl", records)
    card = import_logs([log], TASK, tmp_path / "out", near=0.8)
    assert card["dropped"] == {"exact duplicate": 1, "near duplicate": 2}
    assert card["kept"] == 60 and card["usable"] == 63
    splits = {name: read_jsonl(tmp_path / "out" / f"{name}.jsonl") for name in ("train", "validation", "test")}
    assert [len(rows) for rows in splits.values()] == [42, 6, 12]
    assert max(row["time"] for row in splits["train"]) < min(row["time"] for row in splits["validation"])
    assert max(row["time"] for row in splits["validation"]) < min(row["time"] for row in splits["test"])
    assert {row["text"] for row in splits["test"]} == {row["text"] for row in tickets[48:]}  # the originals kept
    assert card["splits"]["test"]["first"] == "2026-09-23T14:13:20+00:00"  # T0 + 48 hours


def test_a_batch_style_response_body_and_a_time_in_a_string_are_read(tmp_path):
    completion = gateway_line("Cancel my plan", "cancellation", T0)["response"] | {"created": str(int(T0 + 9))}
    log = write(tmp_path / "batch.jsonl", [{"custom_id": "r1", "request": {"messages": [{"role": "user",
                "content": "Cancel my plan"}]}, "response": {"status_code": 200, "body": completion}}])  # fmt: skip
    [row] = read_logged_answers([log], TASK).rows
    assert (row.input, row.answer, row.time, row.model) == ("Cancel my plan", "cancellation", T0 + 9,
                                                           "gpt-4o-mini-2024")  # fmt: skip


def test_inputs_that_differ_in_their_digits_stay_when_their_answers_differ(tmp_path):
    """An order number changes nothing; a quantity an extraction reads changes the answer: both rows stay."""
    log = write(tmp_path / "log.jsonl", [gateway_line("Order 1234 arrived broken, refund please", "refund", T0),
                                         gateway_line("Order 9876 arrived broken, refund please", "refund", T0 + 1),
                                         gateway_line("Order 5555 arrived broken, refund please", "complaint", T0 + 2),
                                         gateway_line("Please cancel", "cancellation", T0 + 3),
                                         gateway_line("Please cancel it", "cancellation", T0 + 4)])  # fmt: skip
    card = import_logs([log], TASK, tmp_path / "out", validation=0.0, test=0.25)
    assert card["dropped"] == {"exact duplicate": 1} and card["kept"] == 4
    assert not (tmp_path / "out" / "validation.jsonl").exists()  # --validation-share 0: no file


def test_answers_without_a_time_cannot_be_split_by_it(tmp_path):
    exchange = [{"role": "user", "content": "I cannot log in"}, {"role": "assistant", "content": "account_access"}]
    log = write(tmp_path / "log.jsonl", [{"messages": exchange}])
    with pytest.raises(DataError, match="1 of 1 answers carry no time"):
        import_logs([log], TASK, tmp_path / "out")


def test_a_run_on_imported_logs_says_it_was_taught_and_scored_by_the_llm(tiny_model_dir, tmp_path):
    tickets = read_jsonl(TICKETS / "train.jsonl")[:50]
    log = write(tmp_path / "gateway.jsonl", [gateway_line(row["text"], row["label"], T0 + 60 * i)
                                             for i, row in enumerate(tickets)] + ["{bad"])  # fmt: skip
    out = tmp_path / "data"
    command = [sys.executable, "-m", "slmtier", "import-logs", str(log), "--recipe", "ticket_classifier", "--out",
               str(out)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"skipped {log}:51: not a JSON object" in result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["kept"] == 50
    data = {split: out / f"{split}.jsonl" for split in ("train", "validation", "test")}
    run = run_train_cli(*tiny_overrides(tiny_model_dir, data, tmp_path / "run"))
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["targets"]["source"] == "logs" and metrics["targets"]["models"] == {"gpt-4o-mini-2024": 50}
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Taught by: the LLM's logged answers (gpt-4o-mini-2024; 35 train rows logged 2026-09-21" in report
    assert "**Scored against the LLM's logged answers, not gold:**" in report
