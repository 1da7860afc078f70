"""The chat layout every task shares: system instruction, few-shot turns, then the example to answer."""

from __future__ import annotations


def build_chat(system: str, shots: list[tuple[str, str]], question: str) -> list[dict]:
    """Messages up to (not including) the answer; each shot is a (user text, assistant answer) pair."""
    messages = [{"role": "system", "content": system}]
    for user, assistant in shots:
        messages.append({"role": "user", "content": user})
        messages.append({"role": "assistant", "content": assistant})
    messages.append({"role": "user", "content": question})
    return messages


def build_plain_messages(task, example, few_shot) -> list[dict]:
    """The layout for tasks whose user turn is the example's text (cut at task.max_input_words)."""
    shots = [(truncate_words(s.input, task.max_input_words), task.format_target(s.target)) for s in few_shot]
    return build_chat(task.system_prompt(), shots, truncate_words(example.input, task.max_input_words))


def truncate_words(text: str, limit: int | None) -> str:
    """The first `limit` words of text (None = all), marked so the model sees the input was cut."""
    if limit is None:
        return text
    words = text.split()
    return text if len(words) <= limit else " ".join(words[:limit]) + " [...]"


def count_truncated(texts: list[str], limit: int | None) -> int:
    """How many texts truncate_words would cut."""
    return 0 if limit is None else sum(len(text.split()) > limit for text in texts)
