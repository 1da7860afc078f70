"""slmtier's LoRA/QLoRA training against the plain reference on a CUDA GPU: useful tokens/s and peak memory,
with no network: random-weight models of the real architectures' sizes (Qwen2.5-0.5B and -7B by default),
random chat-like examples (lengths 64 to --seq tokens, the answer the last 8 tokens), slmtier's LoRA settings.

    python scripts/gpu_check.py                           # on a CUDA machine: 0.5B and 7B, every setting
    python scripts/gpu_check.py --sizes 0.5b --steps 20 --out bench/gpu.json
    python scripts/gpu_check.py --device cpu --tiny       # a seconds-long smoke run of the same code on a CPU

Settings, each on the same examples:
- reference: fp32 weights, every example padded to --seq, the LM head over every position (a plain
  transformers + peft loop);
- lora_bf16 (slmtier's default on a GPU): bf16, batches grouped by length and padded to their longest, the
  LM head over the answer positions only (what TRL's fused head does on CUDA);
- qlora: the same with the base in 4-bit NF4 (bitsandbytes).
Useful tokens are the examples' own (no padding). Weights are random, so losses mean nothing; speed and
memory are those of the real shapes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from slmtier.config import LoraConfig
from slmtier.training import build_peft_config

# Published configs of the real checkpoints (config.json on the hub), so nothing is downloaded.
SIZES = {
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936),
    "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, vocab_size=152064),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=512),
}  # fmt: skip
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SETTINGS = ["reference", "lora_bf16", "qlora"]


def build_model(size: str, setting: str, device: str, folder: Path):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, Qwen2Config

    config = Qwen2Config(**SIZES[size], max_position_embeddings=4096, tie_word_embeddings=size != "7b")
    torch.manual_seed(0)
    if setting != "qlora":
        dtype = torch.bfloat16 if setting == "lora_bf16" and device == "cuda" else torch.float32
        return AutoModelForCausalLM.from_config(config, dtype=dtype).to(device)
    # QLoRA loads through bitsandbytes, which quantises while loading: save the random model first.
    AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).save_pretrained(folder)
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                      bnb_4bit_compute_dtype=torch.bfloat16)  # fmt: skip
    return AutoModelForCausalLM.from_pretrained(folder, quantization_config=quantization, device_map={"": 0})


def build_batches(vocab: int, *, steps: int, batch: int, seq: int, grouped: bool) -> list[list[torch.Tensor]]:
    """steps + 2 batches of random examples (64..seq tokens, fixed by seed); grouped = sorted by length so
    each batch pads little (slmtier's group_by_length), else in drawn order."""
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(min(64, seq // 2), seq + 1, ((steps + 2) * batch,), generator=generator).tolist()
    examples = [torch.randint(0, vocab, (n,), generator=generator) for n in lengths]
    if grouped:
        examples.sort(key=len)
    return [examples[i : i + batch] for i in range(0, len(examples), batch)]


def step_loss(model, examples: list[torch.Tensor], *, pad_to: int | None, answer: int, device: str):
    """The loss on each example's last `answer` tokens. Padded to `pad_to` (reference: logits everywhere)
    or to the batch's longest (slmtier: the LM head over the answer positions only)."""
    width = pad_to or max(len(e) for e in examples)
    ids = torch.zeros((len(examples), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for row, example in enumerate(examples):
        ids[row, : len(example)], mask[row, : len(example)] = example, 1
        labels[row, len(example) - answer : len(example)] = example[-answer:]
    ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
    if pad_to:
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss
    hidden = model.get_base_model().model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    targets = labels[:, 1:]
    keep = targets != -100
    logits = model.get_base_model().lm_head(hidden[keep])
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep])


def measure(size: str, setting: str, *, device: str, steps: int, batch: int, seq: int) -> dict:
    from peft import get_peft_model, prepare_model_for_kbit_training

    with tempfile.TemporaryDirectory() as folder:
        model = build_model(size, setting, device, Path(folder))
        if setting == "qlora":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        model = get_peft_model(model, build_peft_config(LoraConfig(r=16, lora_alpha=32), TARGETS))
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        reference = setting == "reference"
        batches = build_batches(SIZES[size]["vocab_size"], steps=steps, batch=batch, seq=seq, grouped=not reference)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        timings, tokens = [], 0
        for step, examples in enumerate(batches):  # the first two are warm-up
            began = time.perf_counter()
            with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda" and not reference):
                loss = step_loss(model, examples, pad_to=seq if reference else None, answer=8, device=device)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device == "cuda":
                torch.cuda.synchronize()
            if step >= 2:
                timings.append(time.perf_counter() - began)
                tokens += sum(len(e) for e in examples)
    return {
        "size": size,
        "setting": setting,
        "useful_tokens_per_s": round(tokens / sum(timings), 1),
        "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None,
        "batch": batch,
        "max_length": seq,
        "steps": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["0.5b", "7b"], choices=sorted(SIZES))
    parser.add_argument("--settings", nargs="+", default=SETTINGS, choices=SETTINGS)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--tiny", action="store_true", help="the tiny shape only, no QLoRA (a smoke run)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=512, help="the longest example, and the reference's padding")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here; use --device cpu --tiny for a smoke run")
    sizes = ["tiny"] if args.tiny else args.sizes
    settings = [s for s in args.settings if not (args.tiny and s == "qlora")]
    results = []
    for size in sizes:
        rows = {}
        for setting in settings:
            rows[setting] = measure(size, setting, device=args.device, steps=args.steps, batch=args.batch, seq=args.seq)
            if "reference" in rows:
                rows[setting]["ratio_to_reference"] = round(
                    rows[setting]["useful_tokens_per_s"] / rows["reference"]["useful_tokens_per_s"], 2
                )
            print(json.dumps(rows[setting]), flush=True)
        results += rows.values()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        device = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
        args.out.write_text(json.dumps({"device": device, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
