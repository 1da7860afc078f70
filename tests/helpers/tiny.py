"""The tiny random-weight chat model the tests train (2 layers, hidden 64, built here: no downloads), and the
overrides that run a recipe on it in seconds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from helpers.files import write_sample_splits
from helpers.processes import run_train_cli

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tiny_chat_model(folder: Path, texts: list[str]) -> Path:
    """A 2-layer, hidden-64 Llama with a byte-level BPE tokenizer trained on `texts`, saved as safetensors."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|im_start|>", "<|im_end|>", "<unk>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=600,
            special_tokens=specials,
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|im_end|>", unk_token="<unk>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@dataclass(frozen=True)
class TinyRun:
    """A finished `python train.py` run on the tiny model: its folder, its data files, what it printed."""

    run_dir: Path
    data: dict[str, Path]
    stdout: str


def tiny_overrides(model_dir: Path, data: dict[str, Path], run_dir: Path) -> list[str]:
    """The ticket recipe on the tiny model with the smoke trainer; the last override is hydra.run.dir."""
    return [
        "recipe=ticket_classifier",
        "tiers=[slm]",  # the generative tier alone; tests/tiers/test_encoder.py covers the encoder tier
        f"model.source={model_dir}",
        "model.name=tiny",
        "trainer=smoke",
        f"data.train={data['train']}",
        f"data.validation={data['validation']}",
        f"data.test={data['test']}",
        "inference.max_new_tokens=4",
        "baseline.few_shot_k=2",
        # The tiny test tokenizer (600 tokens) splits text far finer than a real one: room for whole examples.
        "trainer.max_length=4096",
        f"cache_dir={run_dir.parent / 'cache'}",
        f"hydra.run.dir={run_dir}",
    ]


def run_sample_recipe(recipe: str, dataset: str, sizes: tuple[int, int, int], model_dir: Path, tmp_path: Path, *extra):
    """Run a shipped recipe on the tiny model over the first rows of its sample dataset."""
    data = write_sample_splits(tmp_path, dataset, sizes)
    run_dir = tmp_path / "run"
    overrides = tiny_overrides(model_dir, data, run_dir)
    overrides[0] = f"recipe={recipe}"
    return run_dir, run_train_cli(*overrides, *extra)
