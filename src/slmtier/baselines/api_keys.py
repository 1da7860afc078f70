"""API keys: slmtier reads them from the environment only, and these two guards keep them out of
everything it prints, logs or writes.

- `check_command_line`: a key pasted into a command-line override is refused before Hydra reads the
  command line. Hydra saves a sweep's overrides to multirun.yaml before any job starts, and repeats an
  override in its own error messages, so a check inside the job would come too late.
- `build_key_mask`: everything an endpoint sends back (answers, error bodies, a redirect's target) passes
  through it before it is printed, cached or stored. A server that echoes the key rarely echoes it as is:
  the mask also covers other cases, base64 (alone, or inside `user:key` or `Bearer key`), URL-encoding,
  hex and JSON escapes.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import urllib.parse
from collections.abc import Callable

from slmtier.errors import SlmtierError

MASK = "***"
# Encoded forms shorter than this are not masked: they would match ordinary words in an answer.
MIN_MASKED_CHARS = 8
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# What a pasted secret looks like on a command line, by the words the error uses for it. Prefixes are the
# providers' documented key formats; the tails are long enough that ordinary names and paths do not match.
KEY_LIKE = {
    "an API key": re.compile(
        r"\bsk-[A-Za-z0-9_-]{20,}"  # OpenAI, Anthropic (sk-ant-), DeepSeek, OpenRouter (sk-or-)
        r"|\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"  # Stripe-style
        r"|\b(?:hf|gsk|ghp|gho|ghs|r8)_[A-Za-z0-9]{20,}|\bgithub_pat_\w{20,}"  # HF, Groq, GitHub, Replicate
        r"|\b(?:xai|nvapi|pplx)-[A-Za-z0-9_-]{20,}"  # xAI, NVIDIA, Perplexity
        r"|\bAIza[A-Za-z0-9_-]{30,}|\bAKIA[A-Z0-9]{16}\b"  # Google, AWS
        r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}"  # a JWT
    ),
    "a key or token in a URL": re.compile(
        r"[?&](?i:api[-_]?key|key|token|access[-_]?token|auth|secret|password|sig)=[^&#\s]"
    ),
    "a password in a URL": re.compile(r"://[^/\s:@]+:[^/\s@]+@"),
    "an Authorization header value": re.compile(r"(?i:bearer|basic)\s+(?=[\w.~+/=-]*\d)[\w.~+/=-]{12,}"),
}
HOW_TO_PASS_A_KEY = (
    "slmtier takes API keys from the environment only: export the key (export OPENAI_API_KEY=...) and name "
    "its variable in baseline.endpoint.api_key_env (baseline.endpoint.api_key_header for a header other than "
    "Authorization)"
)


def check_command_line(args: list[str]) -> None:
    """Refuse an argument holding what looks like a secret, naming the argument but never repeating it."""
    for position, arg in enumerate(args, start=1):
        name, _, value = arg.partition("=")
        shown = f"argument {position}" if find_key_like(name) else f"argument {position} ({name.lstrip('+~')})"
        kind = find_key_like(arg)
        if kind is not None:
            raise SlmtierError(f"{shown} holds what looks like {kind}; nothing was run. {HOW_TO_PASS_A_KEY}")
        if value and name.endswith("api_key_env") and not _names_variables(value):
            raise SlmtierError(
                f"{shown} must be the NAME of an environment variable (letters, digits, _), such as "
                f"OPENAI_API_KEY, not the key itself; nothing was run. {HOW_TO_PASS_A_KEY}"
            )


def find_key_like(text: str) -> str | None:
    """What kind of secret `text` seems to hold (KEY_LIKE's words), or None."""
    return next((kind for kind, pattern in KEY_LIKE.items() if pattern.search(text)), None)


def is_variable_name(word: str) -> bool:
    """An environment variable's name, not a key: letters, digits and _, and not 16 or more letters and
    digits without an underscore (a key with no prefix, such as Azure's 32 hex digits)."""
    random_looking = len(word) >= 16 and "_" not in word and any(char.isdigit() for char in word)
    return bool(ENV_NAME.match(word)) and not random_looking


def _names_variables(value: str) -> bool:
    """Every word of an api_key_env value (a sweep: `A,B`, `choice(A,B)`) is a variable name (or null)."""
    return all(is_variable_name(word) for word in re.findall(r"[^\s,()\[\]'\"]+", value))


def build_key_mask(key: str | None) -> Callable[[str], str]:
    """A function that replaces the key, in every form `key_forms` lists, with ***. No key: text unchanged."""
    if not key:
        return _unchanged
    forms = sorted(key_forms(key), key=len, reverse=True)  # longest first: a form inside another is masked whole
    return functools.partial(re.compile("|".join(map(re.escape, forms)), re.IGNORECASE).sub, MASK)


def key_forms(key: str) -> set[str]:
    """The key as a server may echo it. Matched case-insensitively, so other cases (and upper-case hex and
    %-escapes) are covered too."""
    raw = key.encode()
    forms = {key, raw.hex(), json.dumps(key)[1:-1], key.replace("/", "\\/")}
    for offset in range(3):
        forms |= _base64_cores(raw, offset)
    forms |= {urllib.parse.quote(form, safe="") for form in forms} | {urllib.parse.quote_plus(key)}
    return {form for form in forms if len(form) >= MIN_MASKED_CHARS} | {key}


def _base64_cores(raw: bytes, offset: int) -> set[str]:
    """The base64 characters that depend on the key's bytes alone when the key starts `offset` bytes (mod 3)
    into the encoded data, as in base64(b"user:" + key): they appear whatever comes before and after it.
    Standard and URL-safe alphabets."""
    encoded = base64.b64encode(bytes(offset) + raw).decode()
    first = -(-offset * 8 // 6)  # the first character made of key bits only
    end = (offset + len(raw)) * 8 // 6  # past the last character made of key bits only
    core = encoded[first:end]
    return {core, core.translate(str.maketrans("+/", "-_"))}


def _unchanged(text: str) -> str:
    return text
