"""Learning from the LLM, measured: students trained on a teacher's answers, learning curves, and a round trip
from a router's log to a trained tier.

    python scripts/bench_distill.py --run bench/work/demo --out bench/work/distill.json [--parts teacher curves logs]

- teacher: the demo's fine-tuned SLM served by `slmtier serve` on loopback is the teacher (an OpenAI-compatible
  endpoint, zero-shot, the prompt it was tuned on); `python train.py recipe=ticket_classifier
  data.train_targets=llm` trains the encoder and the SLM on its answers to the 480 train and 80 validation
  tickets (no gold read). Reported: each student's accuracy on the gold test split, its agreement with the
  teacher there, the teacher's own accuracy, the same students trained on gold (the demo run), and what the
  labelling would have cost at gpt-4o-mini's list price (the teacher's token counts).
- curves: `+curve=default`-style sweeps over nested train sizes against a stand-in LLM on loopback (the gold
  label, wrong on a fixed 2%, as in bench_monitor.py): ticket_classifier both tiers (50, 100, 200, 480 rows)
  and banking77's encoder (250, 1,000, 4,000, 9,503 rows); the smallest size at which each tier passes.
- logs: the monitor benchmark's router log of undrifted traffic (bench/work/monitor/tickets, `--log-inputs`, half
  the local answers shadowed, every escalated one answered by the stand-in LLM) through `slmtier import-logs`,
  an encoder trained on the result and benchmarked on its later split against the LLM's logged answers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

from bench_monitor import BANKING77, StandInLLM  # noqa: E402
from bench_router import Process, free_port  # noqa: E402

from helpers.fault_server import FaultServer  # noqa: E402
from slmtier.data import load_splits  # noqa: E402
from slmtier.run_dir import RunDir  # noqa: E402
from slmtier.tasks import build_task  # noqa: E402

PRICE = ["baseline.endpoint.price_model=gpt-4o-mini"]


def train(*overrides: str, multirun: bool = False) -> None:
    command = [sys.executable, "train.py", *(["-m"] if multirun else []), *overrides]
    print("$", " ".join(command), flush=True)
    began = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env={**os.environ, "TQDM_DISABLE": "1"})
    if done.returncode not in (0, 3):
        sys.exit(f"{' '.join(command[:4])} failed ({done.returncode})")
    print(f"  {time.perf_counter() - began:.0f} s", flush=True)


def endpoint(url: str, model: str) -> list[str]:
    return ["baseline=openai_compatible", f"baseline.endpoint.base_url={url}", f"baseline.endpoint.model={model}",
            "baseline.endpoint.api_key_env=null", "baseline.few_shot_k=0"]  # fmt: skip


def agreement(run: RunDir, student: str, teacher: str) -> float:
    mine = {row["id"]: row["parsed"] for row in run.read_predictions(student)}
    theirs = {row["id"]: row["parsed"] for row in run.read_predictions(teacher)}
    return sum(mine[key] == theirs[key] for key in mine) / len(mine)


def teacher_part(demo: Path, work: Path) -> dict:
    port = free_port()
    command = [sys.executable, "-m", "slmtier", "serve", str(demo), "--port", str(port), "--name", "teacher"]
    students = work / "students"
    with Process(command, "/health", work / "teacher.log", port, timeout_s=600):
        if not (students / "metrics.json").is_file():
            train("recipe=ticket_classifier", f"hydra.run.dir={students}", "data.train_targets=llm",
                  *endpoint(f"http://127.0.0.1:{port}/v1", "teacher"), *PRICE,
                  "baseline.endpoint.max_concurrency=8")  # fmt: skip
    run, gold = RunDir(students), RunDir(demo).read_metrics()
    metrics = run.read_metrics()
    result = {"targets": metrics.targets, "teacher_accuracy": metrics.candidates[metrics.llm]["accuracy"],
              "teacher": metrics.candidates[metrics.llm]["model"], "students": {}}  # fmt: skip
    for tier in metrics.tiers:
        interval = metrics.candidates[tier]["quality"]["interval"]
        gold_interval = gold.candidates[tier]["quality"]["interval"]
        result["students"][tier] = {
            "accuracy": interval["value"], "interval": [interval["low"], interval["high"]],
            "agreement_with_teacher": agreement(run, tier, metrics.llm),
            "gold_trained_accuracy": gold_interval["value"],
            "gold_trained_interval": [gold_interval["low"], gold_interval["high"]],
            "train_rows": metrics.data["train"]["n"],
        }  # fmt: skip
    return result


def curve_part(work: Path) -> dict:
    llm = StandInLLM()
    result = {}
    with FaultServer(lambda text, attempt: "ok", port=free_port(), answer=llm) as server:
        cfg = RunDir(REPO / "bench" / "work" / "demo").read_config()
        task = build_task(cfg.task)
        splits = load_splits(cfg.data, task.check_target)
        llm.learn([(e.input, e.target) for e in splits.train + splits.validation + splits.test], list(task.labels))
        import csv

        labels = None
        for name in ("train.csv", "test.csv"):
            with (BANKING77 / name).open(encoding="utf-8", newline="") as handle:
                rows = list(csv.DictReader(handle))
            labels = labels or sorted({row["category"] for row in rows})
            llm.learn([(row["text"], row["category"]) for row in rows], labels)
        stand_in = [*endpoint(server.base_url, "stand-in-2pct"), "baseline.endpoint.price_input_per_1m=0.15",
                    "baseline.endpoint.price_output_per_1m=0.6", "baseline.endpoint.max_concurrency=4"]  # fmt: skip
        for name, overrides, sizes in (
            ("ticket_classifier", ["recipe=ticket_classifier"], "50,100,200,null"),
            ("banking77", ["recipe=banking77", "tiers=[encoder]"], "250,1000,4000,null"),
        ):
            sweep = work / f"curve-{name}"
            if not (sweep / "report.json").is_file():
                train(*overrides, *stand_in, "+curve=default", f"data.max_train_examples={sizes}",
                      f"hydra.sweep.dir={sweep}", multirun=True)  # fmt: skip
            [task_summary] = json.loads((sweep / "report.json").read_text())["tasks"].values()
            result[name] = task_summary["learning_curve"]
    return result


def logs_part(work: Path) -> dict:
    # The undrifted scenario's log: the drifted ones hold other domains' inputs and a degraded LLM.
    logs = sorted((REPO / "bench" / "work" / "monitor" / "tickets").glob("monitor-undrifted-log"))
    if not logs:
        sys.exit("no router log from the monitor benchmark: run scripts/bench_monitor.py first")
    data = work / "from-logs"
    command = [sys.executable, "-m", "slmtier", "import-logs", *map(str, logs), "--recipe", "ticket_classifier",
               "--out", str(data)]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"import-logs failed: {done.stderr[-2000:]}")
    card = json.loads((data / "data_card.json").read_text())
    run = work / "from-logs-run"
    if not (run / "metrics.json").is_file():
        train("recipe=ticket_classifier", "tiers=[encoder]", f"hydra.run.dir={run}",
              f"data.train={data / 'train.jsonl'}", f"data.validation={data / 'validation.jsonl'}",
              f"data.test={data / 'test.jsonl'}",
              "baseline=predictions", f"baseline.predictions.path={data / 'test.jsonl'}",
              "baseline.predictions.output_field=label", "baseline.predictions.model=stand-in-2pct")  # fmt: skip
    metrics = RunDir(run).read_metrics()
    interval = metrics.candidates["encoder"]["quality"]["interval"]
    return {"card": card, "encoder_agreement": interval["value"], "interval": [interval["low"], interval["high"]],
            "verdict": metrics.verdict, "reason": metrics.decision.reason, "targets": metrics.targets}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=REPO / "bench" / "work" / "demo")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "distill")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "work" / "distill.json")
    parser.add_argument(
        "--parts", nargs="+", default=["teacher", "curves", "logs"], choices=["teacher", "curves", "logs"]
    )
    args = parser.parse_args()
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    result["date"] = time.strftime("%Y-%m-%d")
    for part in args.parts:
        began = time.perf_counter()
        parts = {"teacher": lambda: teacher_part(args.run.resolve(), args.work),
                 "curves": lambda: curve_part(args.work), "logs": lambda: logs_part(args.work)}  # fmt: skip
        result[part] = parts[part]()
        result[part]["wall_s"] = round(time.perf_counter() - began)
        args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
        print(part, json.dumps(result[part], default=str)[:2000], flush=True)


if __name__ == "__main__":
    main()
