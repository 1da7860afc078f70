"""What counts as text: a value that shows nothing is empty, and a lone surrogate is no character at all.

Both come from tools rather than people: a copy from a web page or a PDF leaves only zero-width characters
(U+200B, U+2060, U+FEFF) where a ticket was, and a tool that cuts text by UTF-16 units leaves half an emoji,
which JSON writes as an escape (`"\\ud83d"`) but no file or tokenizer can hold as UTF-8.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

# Control and format characters (Cc, Cf: zero-width spaces and joiners, the byte-order mark, soft hyphens) and
# separators (Z*) draw nothing. The Hangul fillers are letters by category but blank by design (Unicode lists
# them as default-ignorable), so a text of them is as empty as one of spaces.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
_SURROGATE = re.compile("[\ud800-\udfff]")


def is_blank(text: str) -> bool:
    """True when the text shows nothing: empty, spaces, or only invisible characters such as U+200B."""
    return all(
        char.isspace() or char in _BLANK_LETTERS or unicodedata.category(char) in _INVISIBLE_CATEGORIES for char in text
    )


def describe_invisible(text: str) -> str:
    """The invisible characters of a blank text, named once each: 'U+200B ZERO WIDTH SPACE, U+2060 WORD JOINER'."""
    shown = dict.fromkeys(char for char in text if char not in " \t\n\r")
    return ", ".join(f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed')}" for char in shown)


def find_lone_surrogate(value: Any) -> tuple[str, str] | None:
    """(where, escape) of a lone surrogate in a decoded JSON value, e.g. ('text', '\\ud800'); None if
    there is none. `where` is the dotted key path ('fields.products'). Walked with a stack, not recursion: the
    value may be nested as deep as the JSON reader allows."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found:
                return where, f"\\u{ord(found.group()):04x}"
        elif isinstance(item, dict):
            stack.extend((f"{where}.{key}" if where else str(key), child) for key, child in item.items())
            stack.extend((where, key) for key in item)  # a key can hold one too
        elif isinstance(item, list):
            stack.extend((where, child) for child in item)
    return None
