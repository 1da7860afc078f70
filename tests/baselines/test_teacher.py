"""Teacher labels (`data.train_targets=llm`): the LLM tier on loopback answers the train and validation inputs,
which carry no gold; every answer is asked once, unparseable ones are dropped and counted, the cap stops the
labelling before it could be exceeded, and the run's files say what the tiers were taught by."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers.fault_server import FaultServer
from helpers.files import TICKETS, read_jsonl, write_jsonl
from helpers.processes import run_train_cli
from helpers.tiny import tiny_overrides
from slmtier.run_dir import RunDir

SIZES = {"train": 24, "validation": 8, "test": 12}


def unlabelled_data(folder: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """The first rows of each ticket split; train and validation without their label (the test split keeps
    gold). Returns the files and every text's gold label, which the stand-in LLM answers with."""
    data, gold = {}, {}
    for split, n in SIZES.items():
        rows = read_jsonl(TICKETS / f"{split}.jsonl")[:n]
        gold |= {row["text"]: row["label"] for row in rows}
        if split != "test":
            rows = [{key: value for key, value in row.items() if key != "label"} for row in rows]
        if split == "validation":  # numbered like the train file's first rows: ids are unique per file only
            rows = [row | {"id": f"train-{i:03d}"} for i, row in enumerate(rows)]
        if split == "train":
            rows = [row | {"id": f"train-{i:03d}"} for i, row in enumerate(rows)]
        data[split] = write_jsonl(folder / f"{split}.jsonl", rows)
    return data, gold


def teacher_answers(gold: dict[str, str], unsure: set[str]):
    return lambda text: "I cannot tell from this message." if text in unsure else gold[text]


def distil(tiny_model_dir, folder: Path, server: FaultServer, data: dict, run: str, *extra: str):
    overrides = tiny_overrides(tiny_model_dir, data, folder / run)
    return run_train_cli(
        *overrides, "data.train_targets=llm", "baseline.few_shot_k=0", "baseline=openai_compatible",
        f"baseline.endpoint.base_url={server.base_url}", "baseline.endpoint.model=teacher",
        "baseline.endpoint.api_key_env=null", "baseline.endpoint.max_retries=0", "baseline.endpoint.max_concurrency=2",
        "baseline.endpoint.max_tokens=100", "baseline.endpoint.price_input_per_1m=0",
        "baseline.endpoint.price_output_per_1m=1000", *extra,
    )  # fmt: skip


def asked(server: FaultServer, texts) -> list[str]:
    texts = set(texts)
    return [text for text, _, _ in server.seen if text in texts]


def test_the_llm_teaches_the_local_tiers_once_and_the_run_says_so(tiny_model_dir, tmp_path):
    data, gold = unlabelled_data(tmp_path)
    taught_inputs = [row["text"] for split in ("train", "validation") for row in read_jsonl(data[split])]
    unsure = set(taught_inputs[::6])  # 6 of the 32 answered in words the parser cannot read
    with FaultServer(lambda text, attempt: "ok", answer=teacher_answers(gold, unsure)) as server:
        result = distil(tiny_model_dir, tmp_path, server, data, "run")
        assert result.returncode == 0, result.stderr[-3000:]
        assert sorted(asked(server, taught_inputs)) == sorted(taught_inputs)  # each input asked once
        metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
        targets = metrics["targets"]
        assert targets["source"] == "llm" and targets["asked"] == 32 and targets["labelled"] == 26
        assert targets["dropped"] == {"unparseable answer": 6} and targets["cached"] == 0
        assert targets["train"] == 24 - len(unsure & set(taught_inputs[:24])) == metrics["data"]["train"]["n"]
        assert targets["spent_usd"] == pytest.approx(26 * 3 * 1000 / 1e6 + 6 * 3 * 1000 / 1e6)  # 3 tokens each
        assert targets["estimated_usd"] <= targets["most_usd"]
        # Each input got its own answer as its target, though train and validation share ids: the validation
        # predictions hold the targets the tiers were checked and calibrated against.
        validation = RunDir(tmp_path / "run").read_predictions("slm", "validation")
        assert validation and all(row["gold"] == gold[row["input"]] for row in validation)
        report = (tmp_path / "run" / "report.md").read_text()
        assert "Taught by: the LLM's answers: teacher" in report and "26 of 32" in report
        routing = yaml.safe_load((tmp_path / "run" / "routing.yaml").read_text())
        assert routing["trained_on"].startswith("the LLM's answers: teacher")
        # A second run on the same inputs (a rerun, a sweep's next trial) pays for nothing again.
        before = len(server.seen)
        again = distil(tiny_model_dir, tmp_path, server, data, "run2")
        assert again.returncode == 0, again.stderr[-3000:]
        assert len(server.seen) == before
        assert json.loads((tmp_path / "run2" / "metrics.json").read_text())["targets"]["cached"] == 32


def test_the_cap_refuses_an_estimate_over_it_before_any_call(tiny_model_dir, tmp_path):
    data, gold = unlabelled_data(tmp_path)
    with FaultServer(lambda text, attempt: "ok", answer=teacher_answers(gold, set())) as server:
        result = distil(tiny_model_dir, tmp_path, server, data, "run", "data.teacher_max_usd=0.0001")
        assert result.returncode == 2
        assert "over data.teacher_max_usd=0.0001" in result.stderr and "nothing was asked" in result.stderr
        assert [text for text, _, _ in server.seen] == []


def test_the_cap_stops_before_a_step_that_could_pass_it_and_a_rerun_pays_only_the_rest(tiny_model_dir, tmp_path):
    """Steps of 8 answers (2 connections x 4); each answer may cost up to 100 tokens x 0.001 USD: 0.8 USD a step
    at most. A cap of 0.81 lets the first step go (0.024 USD spent: 3 tokens each) and stops the second."""
    data, gold = unlabelled_data(tmp_path)
    taught_inputs = [row["text"] for split in ("train", "validation") for row in read_jsonl(data[split])]
    with FaultServer(lambda text, attempt: "ok", answer=teacher_answers(gold, set())) as server:
        result = distil(tiny_model_dir, tmp_path, server, data, "run", "data.teacher_max_usd=0.81")
        assert result.returncode == 2, result.stderr[-3000:]
        assert "stopped at 8 of 32 inputs: 0.0240 USD spent" in result.stderr
        first = asked(server, taught_inputs)
        assert sorted(first) == sorted(taught_inputs[:8])
        again = distil(tiny_model_dir, tmp_path, server, data, "run2")
        assert again.returncode == 0, again.stderr[-3000:]
        assert sorted(asked(server, taught_inputs)[len(first) :]) == sorted(taught_inputs[8:])


def test_few_shot_turns_need_gold_rows(tiny_model_dir, tmp_path):
    data, gold = unlabelled_data(tmp_path)
    with FaultServer(lambda text, attempt: "ok", answer=teacher_answers(gold, set())) as server:
        result = distil(tiny_model_dir, tmp_path, server, data, "run", "baseline.few_shot_k=2")
        assert result.returncode == 2
        assert "baseline.few_shot_k=2 few-shot turns need as many train rows with a gold answer, and 0" in result.stderr
        assert [text for text, _, _ in server.seen if text in gold] == []


def test_the_local_stand_in_is_no_teacher(tiny_model_dir, tmp_path):
    data, _ = unlabelled_data(tmp_path)
    result = run_train_cli(*tiny_overrides(tiny_model_dir, data, tmp_path / "run"), "data.train_targets=llm")
    assert result.returncode == 2 and "baseline.kind=local is the SLM's own untuned base model" in result.stderr
