"""Data in Markdown reads as itself: escaped text and code spans, rendered by markdown-it, give back the value."""

import pytest
from markdown_it import MarkdownIt

from slmtier.report.markdown import Markdown, code_span, escape_markdown

PARSER = MarkdownIt("commonmark").enable("table")  # raw HTML on, as in most viewers
VALUES = [
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "a|b", "account_access", "_x_ y__z", "a*b*c",
    "`code` and ``two``", "~~struck~~", "[click](https://example.com) ![i](x.png) [a][b]", "R&D &amp; co",
    "C:\\data\\x.jsonl", "ends with \\", "\\*not emphasis\\*", "95% [-0.500, +0.250] (n=8)", "é_ü", "x > 1",
]  # fmt: skip


def shown_in_cell(markdown: str) -> str:
    """The text a viewer shows for `markdown` as the one body cell of a two-column table."""
    tokens = PARSER.parse(f"| h | k |\n|---|---|\n| {markdown} | k |\n")
    cells = [token for token in tokens if token.type == "inline"]
    assert len(cells) == 4, f"the row split into {len(cells) - 2} cells"
    return "".join(child.content for child in cells[2].children)


@pytest.mark.parametrize("value", VALUES)
def test_escaped_text_reads_as_itself(value):
    escaped = escape_markdown(value)
    assert shown_in_cell(escaped) == value
    html = PARSER.render(f"Label: {escaped}\n")
    assert "<script" not in html and "<img" not in html and "<a " not in html and "<em>" not in html


@pytest.mark.parametrize("value", VALUES)
def test_code_spans_read_as_themselves(value):
    assert shown_in_cell(code_span(value, cell=True)) == value
    assert "<script" not in PARSER.render(f"Path: {code_span(value)}\n")


def test_plain_words_stay_as_written():
    """What the reports mostly show is left alone, so report.md reads well as plain text too."""
    for value in ("account_access", "smollm2_135m + LoRA", "data/tickets/test.jsonl", "25.0% [0.0%, 50.0%]"):
        assert escape_markdown(value) == value


def test_one_line_and_escaped_once():
    assert escape_markdown("two\nlines\r\n  and  tabs\t") == "two lines and tabs"
    once = escape_markdown("a|b")
    assert escape_markdown(once) == once and isinstance(once, Markdown)
    assert code_span("a `` b") == "```a `` b```" and code_span("`x") == "`` `x ``"
    assert code_span("<b>") == "&lt;b&gt;"  # no `<` from data reaches the file, even in code
