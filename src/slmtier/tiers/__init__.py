"""The local tiers, one module each, all with the same contract:

    NAME                                        the candidate's name (predictions/<NAME>.jsonl, metrics.json
                                                tiers.<NAME>, routing.yaml's block for it)
    check(cfg)                                  start-up checks, before any data or model is loaded
    prepare(cfg, task, splits, run_dir, *, base) -> Prepared
                                                train it (or resume, or load a finished training): its
                                                candidate and its training block for metrics.json, which
                                                holds at least `base_model`, `source`, `trust_remote_code`
                                                and `routing` (its routing.yaml block; "{run_dir}" and
                                                "{task}" in its strings are filled in when it is written);
                                                `base()` loads the SLM's base model once, for the tiers
                                                that need it
    load(run_dir, cfg) -> Candidate             a finished run's tier, answering as the benchmark did
    complete_entry(entry, test_rows) -> dict    its training block, with what the test split adds
    price(hardware, measured_requests_per_s) -> dict
                                                USD per 1k requests on the hardware profile
                                                (slmtier.benchmark.cost.price_local's shape)

Its files in the run directory are its own (named in its docstring). The reports show a tier's training
block through templates/tiers/<NAME>.{md,html}.j2 when it has them, else a generic line.

Every candidate answers through slmtier.candidate.answer (prompt, parser, confidence), as does the LLM tier
(slmtier.baselines). A new tier is one module here and one line in TIERS (tests/tiers/test_third_tier.py registers
one from a test).
"""

from __future__ import annotations

from slmtier.config import RunConfig
from slmtier.errors import SlmtierError
from slmtier.tiers import encoder, slm
from slmtier.tiers.prepared import Prepared

# Cheapest kind first: the order tiers train in (the encoder in a fresh process, at full speed) and the order
# the verdict breaks ties in.
TIERS = {encoder.NAME: encoder, slm.NAME: slm}

__all__ = ["TIERS", "Prepared", "check_tiers", "requested"]


def requested(cfg: RunConfig) -> list[str]:
    """The tiers the run asks for, in TIERS' order."""
    return [name for name in TIERS if name in cfg.tiers]


def check_tiers(cfg: RunConfig) -> None:
    unknown = sorted(set(cfg.tiers) - set(TIERS))
    if unknown or not cfg.tiers or len(set(cfg.tiers)) != len(cfg.tiers):
        raise SlmtierError(f"tiers {list(cfg.tiers)}: list one or more of {list(TIERS)}, each once")
    if cfg.baseline.name in TIERS:
        raise SlmtierError(f"baseline.name must differ from {list(TIERS)}, the local tiers' candidate names")
    for name in requested(cfg):
        TIERS[name].check(cfg)
