"""Data in Markdown: a label, a file name, a model name or a model's answer is shown as the text it is.

Markdown has no autoescape. A `<script>` in a label is raw HTML that many Markdown viewers run, and a `|`
splits a table cell. Every value a Markdown template prints goes through `escape_markdown` (the Jinja
environment's `finalize`, slmtier.report.render), so a template line added later cannot forget it; a value
meant as a code span goes through `code_span` instead. Scripts that write Markdown tables call them too.

    escape_markdown("<img src=x onerror=alert(1)> | a*b")  ->  "&lt;img src=x onerror=alert(1)&gt; \\| a\\*b"
    escape_markdown("account_access")                      ->  "account_access"   (unchanged: reads as itself)
"""

from __future__ import annotations

import re

# Backslash-escaped wherever they occur: code spans, emphasis, strikethrough, table cells.
_ALWAYS = re.compile(r"[`*~|]")
# A backslash escapes the punctuation after it (and at the end of a value, whatever the template puts next).
_BACKSLASH = re.compile(r"\\(?=[!-/:-@\[-`{-~]|$)")
# `_` opens or closes emphasis only at a word's edge: `account_access` is left as it is.
_EDGE_UNDERSCORE = re.compile(r"_(?![^\W_])|(?<![^\W_])_")
# A link or an image needs `](` or `][`: escaping that `]` leaves brackets in text, such as intervals, as they are.
_LINK_BRACKET = re.compile(r"\](?=[(\[])")


class Markdown(str):
    """Text that is Markdown already (escaped, or a code span built here): printed as it is."""


def escape_markdown(value) -> Markdown:
    """`value` as inline Markdown that a viewer shows as the text it is, in a table cell or anywhere on a line:
    whitespace runs (newlines too) as one space; `<`, `>`, `&` as HTML entities (no raw HTML, no autolink);
    `` ` ``, `*`, `~`, `|`, a backslash before punctuation, a `]` that would close a link, and a `_` at a
    word's edge backslash-escaped. Idempotent on its own output."""
    if isinstance(value, Markdown):
        return value
    text = " ".join(str(value).split())
    text = _BACKSLASH.sub(r"\\\\", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _ALWAYS.sub(r"\\\g<0>", text)
    text = _EDGE_UNDERSCORE.sub(r"\\_", text)
    return Markdown(_LINK_BRACKET.sub(r"\\]", text))


def code_span(value, *, cell: bool = False) -> Markdown:
    """`value` as a code span, shown verbatim (`*`, `_`, `>` included: nothing is markup inside one), on one
    line: fenced by one backtick more than the longest run it holds, padded with a space where it starts or
    ends with a backtick. In a table cell (`cell=True`), `|` is written `\\|`, which tables read as a pipe even
    inside code. A value holding `<` is escaped text instead: a code span keeps it as it is, and no `<` from
    data reaches the file, for viewers that handle code spans loosely."""
    text = " ".join(str(value).split())
    if not text or "<" in text:
        return escape_markdown(text)
    fence = "`" * (1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    pad = " " if text[0] == "`" or text[-1] == "`" else ""
    if cell:
        text = text.replace("|", "\\|")
    return Markdown(f"{fence}{pad}{text}{pad}{fence}")
