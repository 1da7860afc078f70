"""The LLM tier: an OpenAI-compatible endpoint or a file of logged answers, as benchmark candidates."""

from slmtier.baselines.candidates import EndpointCandidate, PredictionsFileCandidate

__all__ = ["EndpointCandidate", "PredictionsFileCandidate"]
