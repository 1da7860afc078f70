"""The LLM tier: an OpenAI-compatible endpoint or a file of logged answers, as benchmark candidates
(slmtier.baselines.candidates), its settings, keys and cache."""
