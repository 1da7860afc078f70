"""Free vs schema-constrained (xgrammar) generation on the order_extractor test split, in one run.

    python scripts/bench_constrained.py --n 40                                   # untuned embedded model, 3-shot
    python scripts/bench_constrained.py --n 40 --adapter results/runs/order_extractor/adapter   # fine-tuned

For each mode: wall time (and its ratio to free generation), valid-JSON rate, type errors, micro-F1.
"""

from __future__ import annotations

import argparse
import json
import time

from slmtier.benchmark.candidates import LocalCandidate, select_few_shot
from slmtier.config import compose_config, to_run_config
from slmtier.data import load_splits
from slmtier.models import resolve_bf16
from slmtier.tasks import build_task
from slmtier.tiers.slm import fit_generation_budget, load_base_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40, help="test examples (a seeded random sample)")
    parser.add_argument("--adapter", help="a run's adapter folder; without it the untuned model is prompted few-shot")
    parser.add_argument("--out", help="also write the results here as JSON")
    args = parser.parse_args()
    cfg = to_run_config(compose_config(["recipe=order_extractor", f"data.max_test_examples={args.n}"]))
    task = build_task(cfg.task)
    splits = load_splits(cfg.data, task.check_target)
    cfg, _ = fit_generation_budget(cfg, task, splits)  # the budget a run of this recipe generates with
    model, tokenizer = load_base_model(cfg)
    few_shot = []
    if args.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.adapter)
    else:
        few_shot = select_few_shot(splits.train, cfg.baseline.few_shot_k, seed=cfg.baseline.seed)
    results = {}
    for mode in ("free", "constrained"):
        candidate = LocalCandidate(
            mode,
            cfg.model.name,
            model,
            tokenizer,
            few_shot,
            batch_size=cfg.inference.batch_size,
            max_new_tokens=cfg.inference.max_new_tokens,
            bf16=resolve_bf16(cfg.inference.bf16),
            constrained_json=mode == "constrained",
        )
        began = time.perf_counter()
        generations = candidate.predict(task, splits.test)
        wall = time.perf_counter() - began
        parsed = [task.parse(g.raw_output) for g in generations]
        metrics = task.score(parsed, [e.target for e in splits.test])
        results[mode] = {
            "wall_s": round(wall, 1),
            "valid_json_rate": metrics["valid_json_rate"],
            "type_errors": metrics["type_error_count"],
            "micro_f1": round(metrics["micro_f1"], 4),
            "exact_match": round(metrics["exact_match"], 4),
        }
    results["constrained"]["time_ratio"] = round(results["constrained"]["wall_s"] / results["free"]["wall_s"], 3)
    text = json.dumps({"n": len(splits.test), "adapter": args.adapter, "results": results}, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
