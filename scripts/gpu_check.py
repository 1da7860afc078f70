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

Then, for the same sizes (`--parts` picks): label scoring (slmtier.label_scoring, batches of 16, the shared
instruction run once) against generate() one example at a time (the plain way, 6 new tokens), on prompts of a
shared 8-label instruction and a ticket-length text each; and the encoder tier's shape (BERT-base, random
weights): training examples/s grouped by length and padded per batch under bf16 autocast against fp32 padded to
128 tokens, and per-request latency one at a time against examples/s in batches of 32.
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
PARTS = ["train", "label_scoring", "encoder"]
LABELS = ["billing", "refund", "shipping", "account_access", "technical_issue", "product_question", "cancellation",
          "complaint"]  # fmt: skip
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


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


def random_texts(n: int, words: int, seed: int) -> list[str]:
    generator = torch.Generator().manual_seed(seed)
    vocabulary = [f"w{i}" for i in range(500)] + LABELS
    return [" ".join(vocabulary[j] for j in torch.randint(0, len(vocabulary), (words,), generator=generator).tolist())
            for _ in range(n)]  # fmt: skip


def build_tokenizer(folder: Path, vocab: int):
    """A byte-level BPE with a ChatML template, trained here on the words the prompts use (nothing downloaded)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer, bpe.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    specials = ["<|im_start|>", "<|im_end|>", "<unk>"]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=min(2000, vocab), special_tokens=specials, initial_alphabet=alphabet, show_progress=False
    )
    bpe.train_from_iterator(random_texts(400, 40, seed=1), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|im_end|>",
                                        unk_token="<unk>")  # fmt: skip
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    return tokenizer


def measure_label_scoring(size: str, *, device: str, n: int) -> dict:
    from slmtier.inference import generate_batched
    from slmtier.label_scoring import score_labels

    with tempfile.TemporaryDirectory() as folder:
        tokenizer = build_tokenizer(Path(folder), SIZES[size]["vocab_size"])
        model = build_model(size, "reference", device, Path(folder))
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        instruction = "Classify the ticket into one of: " + ", ".join(LABELS) + ". " + random_texts(1, 120, seed=2)[0]
        conversations = [[{"role": "system", "content": instruction}, {"role": "user", "content": text}]
                         for text in random_texts(n, 40, seed=3)]  # fmt: skip
        bf16 = device == "cuda"
        timings = {}
        methods = {
            "generate_per_example": lambda: generate_batched(model, tokenizer, conversations, batch_size=1,
                                                             max_new_tokens=6, bf16=bf16),
            "label_scoring": lambda: score_labels(model, tokenizer, conversations, LABELS, batch_size=16, bf16=bf16),
        }  # fmt: skip
        for name, predict in methods.items():
            predict()  # warm-up (kernels, allocator)
            synchronize(device)
            began = time.perf_counter()
            predict()
            synchronize(device)
            timings[name] = round(n / (time.perf_counter() - began), 2)
    ratio = timings["label_scoring"] / timings["generate_per_example"]
    return {"size": size, "part": "label_scoring", "examples": n, "examples_per_s": timings, "ratio": round(ratio, 1)}


def measure_encoder(*, device: str, steps: int, tiny: bool) -> dict:
    """BERT-base's shape (random weights): training examples/s and per-request vs batched prediction."""
    from transformers import BertConfig, BertForSequenceClassification

    from slmtier.benchmark.summary import percentile

    shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128) if tiny else {}
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(num_labels=77, **shape)).to(device)
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(6, 60, (32 * (steps + 2),), generator=generator).tolist()  # banking77-like lengths
    examples = [torch.randint(1000, 30000, (n,), generator=generator) for n in lengths]
    labels = torch.randint(0, 77, (len(examples),), generator=generator)

    def batch_of(rows: list[int], pad_to: int | None):
        width = pad_to or max(len(examples[i]) for i in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for position, i in enumerate(rows):
            ids[position, : len(examples[i])], mask[position, : len(examples[i])] = examples[i], 1
        return ids.to(device), mask.to(device), labels[rows].to(device)

    result = {"part": "encoder", "model": "bert-base shape" if not tiny else "tiny"}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    for setting, grouped, pad_to, bf16 in (("reference_fp32_padded_128", False, 128, False),
                                           ("grouped_bf16", True, None, device == "cuda")):  # fmt: skip
        order = sorted(range(len(examples)), key=lambda i: lengths[i]) if grouped else list(range(len(examples)))
        batches = [order[i : i + 32] for i in range(0, len(order), 32)]
        model.train()
        timings = []
        for step, rows in enumerate(batches):
            began = time.perf_counter()
            ids, mask, gold = batch_of(rows, pad_to)
            with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                loss = model(input_ids=ids, attention_mask=mask, labels=gold).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            synchronize(device)
            if step >= 2:
                timings.append(time.perf_counter() - began)
        result[f"train_{setting}_examples_per_s"] = round(32 * len(timings) / sum(timings), 1)
    result["train_ratio"] = round(result["train_grouped_bf16_examples_per_s"]
                                  / result["train_reference_fp32_padded_128_examples_per_s"], 2)  # fmt: skip
    model.eval()
    single = []
    with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        for i in range(min(200, len(examples))):
            began = time.perf_counter()
            model(*batch_of([i], None)[:2])
            synchronize(device)
            single.append((time.perf_counter() - began) * 1000)
        rows = sorted(range(len(examples)), key=lambda i: lengths[i])
        began = time.perf_counter()
        for start in range(0, len(rows), 32):
            model(*batch_of(rows[start : start + 32], None)[:2])
        synchronize(device)
        batched = len(rows) / (time.perf_counter() - began)
    result["per_request_p50_ms"] = round(percentile(single, 50), 2)
    result["per_request_p95_ms"] = round(percentile(single, 95), 2)
    result["batched_examples_per_s"] = round(batched, 1)
    return result


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["0.5b", "7b"], choices=sorted(SIZES))
    parser.add_argument("--settings", nargs="+", default=SETTINGS, choices=SETTINGS)
    parser.add_argument("--parts", nargs="+", default=PARTS, choices=PARTS)
    parser.add_argument("--prompts", type=int, default=64, help="examples of the label scoring part")
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
    for size in sizes if "train" in args.parts else []:
        rows = {}
        for setting in settings:
            rows[setting] = measure(size, setting, device=args.device, steps=args.steps, batch=args.batch, seq=args.seq)
            if "reference" in rows:
                rows[setting]["ratio_to_reference"] = round(
                    rows[setting]["useful_tokens_per_s"] / rows["reference"]["useful_tokens_per_s"], 2
                )
            print(json.dumps(rows[setting]), flush=True)
        results += rows.values()
    if "label_scoring" in args.parts:
        for size in sizes:
            results.append(measure_label_scoring(size, device=args.device, n=args.prompts))
            print(json.dumps(results[-1]), flush=True)
    if "encoder" in args.parts:
        results.append(measure_encoder(device=args.device, steps=args.steps, tiny=args.tiny))
        print(json.dumps(results[-1]), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        device = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
        args.out.write_text(json.dumps({"device": device, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
