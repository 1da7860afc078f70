"""How sure a local model is of each answer: the cascade escalates the least sure ones to the LLM.

From the log-probabilities of the answer's tokens under greedy decoding:
- classification: the probability of the whole label (exp of the summed token log-probabilities);
- extraction: the geometric-mean token probability, 0 when the answer is not valid JSON;
- summarization: the geometric-mean token probability.
An unparseable answer has confidence 0: it is always escalated.
"""

from __future__ import annotations

import math


def confidence_of(kind: str, parsed, token_logprobs: tuple[float, ...] | None) -> float | None:
    """A number in [0, 1]; None when the candidate gives no log-probabilities (an endpoint, a log file)."""
    if token_logprobs is None:
        return None
    if parsed is None or not token_logprobs:
        return 0.0
    total = sum(token_logprobs)
    if kind == "classification":
        return math.exp(total)
    return math.exp(total / len(token_logprobs))
