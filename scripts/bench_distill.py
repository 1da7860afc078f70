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
- logs: per domain of the monitor benchmark (tickets, banking77), its router log of undrifted traffic
  (`--log-inputs`, half the local answers shadowed, every escalated one answered by the stand-in LLM) through
  `slmtier import-logs`, an encoder trained on the earlier answers and benchmarked on the latest ones against
  the LLM's logged answers (agreement, not accuracy).
`--page docs/distillation.md` puts the figures between that page's bench-distill markers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "tests"))

from bench_monitor import (  # noqa: E402
    BANKING77,
    StandInLLM,
    cascade_routing,
    point_at,
    read_csv,
    run_scenario,
    windows_of,
)
from bench_router import Process, free_port  # noqa: E402

from helpers.fault_server import FaultServer  # noqa: E402
from slmtier.data import load_splits  # noqa: E402
from slmtier.monitor.refit import refit  # noqa: E402
from slmtier.monitor.run import Settings  # noqa: E402
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
        taught = metrics.candidates[tier]["quality"]["interval"]
        gold_interval = gold.candidates[tier]["quality"]["interval"]
        result["students"][tier] = {
            "accuracy": taught["value"], "interval": [taught["low"], taught["high"]],
            "agreement_with_teacher": agreement(run, tier, metrics.llm),
            "gold_trained_accuracy": gold_interval["value"],
            "gold_trained_interval": [gold_interval["low"], gold_interval["high"]],
            "train_rows": metrics.data["train"]["n"],
        }  # fmt: skip
    return result


@contextlib.contextmanager
def stand_in():
    """The stand-in LLM on loopback (bench_monitor.StandInLLM: the gold answer, wrong on a fixed 2% of inputs),
    knowing the ticket splits and banking77: yields (the train.py overrides that benchmark against it, its URL)."""
    llm = StandInLLM()
    with FaultServer(lambda text, attempt: "ok", port=free_port(), answer=llm) as server:
        cfg = RunDir(REPO / "bench" / "work" / "demo").read_config()
        task = build_task(cfg.task)
        splits = load_splits(cfg.data, task.check_target)
        llm.learn([(e.input, e.target) for e in splits.train + splits.validation + splits.test], list(task.labels))
        rows = [row for name in ("train.csv", "test.csv") for row in read_csv(BANKING77 / name)]
        llm.learn([(row["text"], row["category"]) for row in rows], sorted({row["category"] for row in rows}))
        overrides = [*endpoint(server.base_url, "stand-in-2pct"), "baseline.endpoint.price_input_per_1m=0.15",
                     "baseline.endpoint.price_output_per_1m=0.6", "baseline.endpoint.max_concurrency=4"]  # fmt: skip
        yield overrides, server.base_url


def curve_part(work: Path) -> dict:
    result = {}
    with stand_in() as (overrides, _):
        for name, recipe, sizes in (
            ("ticket_classifier", ["recipe=ticket_classifier"], "50,100,200,null"),
            ("banking77", ["recipe=banking77", "tiers=[encoder]"], "250,1000,4000,null"),
        ):
            sweep = work / f"curve-{name}"
            if not (sweep / "report.json").is_file():
                train(*recipe, *overrides, "+curve=default", f"data.max_train_examples={sizes}",
                      f"hydra.sweep.dir={sweep}", multirun=True)  # fmt: skip
            [task_summary] = json.loads((sweep / "report.json").read_text())["tasks"].values()
            result[name] = task_summary["learning_curve"]
    return result


LOG_DOMAINS = {  # the monitor benchmark's domain -> (recipe, its tiers)
    "tickets": ("ticket_classifier", "[encoder]"),
    "banking77": ("banking77", "[encoder]"),
}


def logs_part(work: Path) -> dict:
    """Per domain of the monitor benchmark: its undrifted router log (the drifted ones hold other domains'
    inputs and a degraded LLM) -> `slmtier import-logs` -> an encoder trained on the earlier answers ->
    benchmarked on the latest ones against the LLM's logged answers, with the LLM's endpoint as its LLM tier ->
    the new cascade served by `slmtier route` on those later inputs, half of the local answers shadowed ->
    `slmtier monitor`'s checks and re-fit on its log."""
    result = {}
    with stand_in() as (overrides, base_url):
        for domain, (recipe, tiers) in LOG_DOMAINS.items():
            logs = REPO / "bench" / "work" / "monitor" / domain / "monitor-undrifted-log"
            if not logs.is_dir():
                print(f"no router log of {domain} from the monitor benchmark (scripts/bench_monitor.py): skipped")
                continue
            data = work / f"from-logs-{domain}"
            command = [sys.executable, "-m", "slmtier", "import-logs", *map(str, sorted(logs.glob("*.jsonl"))),
                       "--recipe", recipe, "--out", str(data)]  # fmt: skip
            began = time.perf_counter()
            done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"import-logs failed: {done.stderr[-2000:]}")
            import_s = time.perf_counter() - began
            card = json.loads((data / "data_card.json").read_text())
            run = work / f"from-logs-{domain}-run"
            if not (run / "metrics.json").is_file():
                train(f"recipe={recipe}", f"tiers={tiers}", f"hydra.run.dir={run}",
                      f"data.train={data / 'train.jsonl'}", f"data.validation={data / 'validation.jsonl'}",
                      f"data.test={data / 'test.jsonl'}", "data.id_field=id", "data.text_field=text",
                      "data.target_field=label", "data.query_field=null", "data.validation_holdout=null",
                      *overrides)  # fmt: skip
            point_at(run, base_url)  # a rerun of this script listens on another port
            metrics = RunDir(run).read_metrics()
            quality = metrics.candidates["encoder"]["quality"]["interval"]
            result[domain] = {
                "card": card, "import_s": round(import_s, 1), "run": str(run.relative_to(REPO)),
                "encoder_agreement": quality["value"], "interval": [quality["low"], quality["high"]],
                "llm_agreement": metrics.candidates[metrics.llm]["quality"]["value"],
                "verdict": metrics.verdict, "reason": metrics.decision.reason, "targets": metrics.targets,
                "redeployed": redeploy(run, data, work / "redeployed", domain),
            }  # fmt: skip
    return result


def redeploy(run: Path, data: Path, work: Path, domain: str, windows: int = 10) -> dict:
    """The run's encoder cascade behind `slmtier route` (half of the local answers shadowed), sent `windows`
    windows of the import's test inputs (the latest traffic); the monitor's per-window checks (against the
    run's validation predictions: no replayed input is in the reference) and its re-fit on the log."""
    work.mkdir(parents=True, exist_ok=True)
    routing = cascade_routing(run, work, f"{domain}-from-logs", shadow_rate=0.5)
    test = [json.loads(line) for line in (data / "test.jsonl").read_text().splitlines() if line.strip()]
    texts, labels = [row["text"] for row in test], [row["label"] for row in test]
    sent = list(windows_of(texts, labels, np.random.default_rng(0), windows, min(150, len(texts))))
    outcome = run_scenario(f"{domain}-from-logs", routing, work, sent, Settings(), ("validation",))
    records, reference = outcome.pop("records"), outcome.pop("reference")
    fitted = refit(reference, records, None)
    return {
        "routing": str(routing.relative_to(REPO)),
        "log": str((work / f"monitor-{domain}-from-logs-log").relative_to(REPO)),
        "threshold": reference.escalate_below, "windows": outcome,
        "refit": {"advice": fitted.get("sentence"), "next_step": fitted.get("next_step"), "pairs": fitted["pairs"],
                  "threshold_after": (fitted.get("fitted") or {}).get("threshold")},
    }  # fmt: skip


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def interval(point: float, low: float, high: float) -> str:
    return f"{pct(point)} [{100 * low:.1f}, {100 * high:.1f}]"


def render(result: dict) -> str:
    """The figures as the markdown block of docs/distillation.md (between the bench-distill markers)."""
    lines = [f"Measured {result.get('date', '?')} with `python scripts/bench_distill.py` (2-core CPU, no GPU)."]
    teacher = result.get("teacher")
    if teacher:
        card = teacher["targets"]
        lines += [
            "",
            f"**Students of a served teacher.** The teacher: the demo's fine-tuned SLM behind `slmtier serve`, asked "
            f"zero-shot through the OpenAI-compatible client like any LLM; {pct(teacher['teacher_accuracy'])} on the "
            f"160 gold test tickets. It labelled {card['labelled']} of {card['asked']} train and validation tickets "
            f"(dropped: {', '.join(f'{k} {v}' for k, v in card['dropped'].items()) or 'none'}; "
            f"its labels match the gold ones, which the students never saw, on {pct(card.get('agreement_with_gold'))}: "
            "more than on test, since the teacher was tuned on these very tickets). At "
            f"gpt-4o-mini's list price those answers would have cost {card['spent_usd']:.4f} USD "
            f"(estimated before any call: {card['estimated_usd']:.4f}, at most {card['most_usd']:.4f}).",
            "",
            "| student | trained on | test accuracy vs gold [95% CI] | agreement with the teacher on test | "
            "the same tier trained on gold |",
            "|---|---|---|---|---|",
        ]
        for tier, row in teacher["students"].items():
            lines.append(
                f"| {tier} | {row['train_rows']} teacher labels | {interval(row['accuracy'], *row['interval'])} | "
                f"{pct(row['agreement_with_teacher'])} | "
                f"{interval(row['gold_trained_accuracy'], *row['gold_trained_interval'])} |"
            )
    for name, curve in (result.get("curves") or {}).items():
        if not isinstance(curve, dict) or "tiers" not in curve:
            continue
        lines += ["", f"**Learning curve, {name}** (test quality [95% CI] per train size; ✓ passes against the "
                  f"stand-in LLM at margin {curve['margin']}):", ""]  # fmt: skip
        sizes = curve["sizes"]
        lines += ["| tier | " + " | ".join(f"{n:,}" for n in sizes) + " | smallest passing |",
                  "|---|" + "---|" * (len(sizes) + 1)]  # fmt: skip
        for tier, points in curve["tiers"].items():
            by_n = {p["n"]: p for p in points}
            cells = [
                interval(by_n[n]["quality"], by_n[n]["low"], by_n[n]["high"]) + (" ✓" if by_n[n]["passes"] else "")
                if n in by_n
                else "–"
                for n in sizes
            ]
            smallest = curve["smallest_passing"].get(tier)
            lines.append(f"| {tier} | " + " | ".join(cells) + f" | {'none' if smallest is None else f'{smallest:,}'} |")
        llm = {p["n"]: p for p in curve["llm"]}
        lines.append(
            "| LLM (stand-in) | "
            + " | ".join(interval(llm[n]["quality"], llm[n]["low"], llm[n]["high"]) if n in llm else "–" for n in sizes)
            + " | |"
        )
    for domain, logs in (result.get("logs") or {}).items():
        if not isinstance(logs, dict) or "card" not in logs:
            continue
        lines += [
            "",
            f"**From the router's log back to a served tier, {domain}.** (1) {card_summary(logs['card'])} "
            f"(2) An encoder trained on the import's train split agrees with the LLM's logged answers on "
            f"{interval(logs['encoder_agreement'], *logs['interval'])} of the later test split (the LLM with "
            f"itself: {pct(logs['llm_agreement'])}; `{logs['run']}`); verdict `{logs['verdict']}`: {logs['reason']}.",
        ]
        deployed = logs.get("redeployed")
        if deployed:
            windows, fit = deployed["windows"], deployed["refit"]
            after = "none fitted" if fit["threshold_after"] is None else f"{fit['threshold_after']:.4f}"
            lines[-1] += (
                f" (3) Its cascade (escalating below {deployed['threshold']:.4f}) served by `slmtier route` on "
                f"{windows['windows']} windows of {windows['window_size']} of those later inputs, half of the local "
                f"answers shadowed (`{deployed['log']}`): {windows['alarms']} of {windows['windows']} windows "
                f"alarmed. (4) `slmtier monitor`'s re-fit on {fit['pairs']:,} logged pairs: threshold "
                f'{deployed["threshold"]:.4f} -> {after}, advice `{fit["next_step"]}`: "{fit["advice"]}"'
            )
    return "\n".join(lines)


def card_summary(card: dict) -> str:
    splits = ", ".join(f"{name} {card['splits'][name]['rows']:,}" for name in ("train", "validation", "test")
                       if name in card.get("splits", {}))  # fmt: skip
    dropped = ", ".join(f"{reason} {count:,}" for reason, count in card.get("dropped", {}).items()) or "none"
    models = ", ".join(f"{model} {count:,}" for model, count in card.get("models", {}).items())
    return (
        f"`slmtier import-logs` read {card['read_lines']:,} log lines, kept {card['kept']:,} of "
        f"{card['usable']:,} usable LLM answers (dropped: {dropped}; answered by: {models}) and split them by "
        f"time ({splits})."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=REPO / "bench" / "work" / "demo")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "distill")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "work" / "distill.json")
    parser.add_argument(
        "--parts", nargs="*", default=["teacher", "curves", "logs"], choices=["teacher", "curves", "logs"]
    )
    parser.add_argument("--page", type=Path, help="put the figures between this page's bench-distill markers")
    args = parser.parse_args()
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if args.parts:  # a render alone (--parts with no names) keeps the date the figures were measured
        result["date"] = time.strftime("%Y-%m-%d")
    for part in args.parts:
        began = time.perf_counter()
        parts = {"teacher": lambda: teacher_part(args.run.resolve(), args.work),
                 "curves": lambda: curve_part(args.work), "logs": lambda: logs_part(args.work)}  # fmt: skip
        result[part] = parts[part]()
        result[part]["wall_s"] = round(time.perf_counter() - began)
        args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
        print(part, json.dumps(result[part], default=str)[:2000], flush=True)
    if args.page:
        from bench import replace_block

        replace_block(args.page, render(result), "bench-distill")


if __name__ == "__main__":
    main()
