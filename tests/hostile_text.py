"""A spec whose texts are written to break outputs (tests/fixtures/hostile_text.json), and what every
output must show of them: text only (no control character), on the lines the layout gives, and in
Markdown no markup of the spec's own (no tag, link, code span or table cell)."""
from __future__ import annotations

import json
import re
from pathlib import Path

HOSTILE = Path(__file__).parent / "fixtures" / "hostile_text.json"
DOCUMENT = json.loads(HOSTILE.read_text())
NAME, TITLE = DOCUMENT["name"], DOCUMENT["title"]
BLOCK = next(iter(DOCUMENT["blocks"]))  # the Type of the `stem` row at depth 1

# As a terminal, a CSV file or an SVG shows them (before their own escapes), by hand:
TITLE_SHOWN = ("\\x1b]0;pwned\\x07\\x1b[31mred\\x1b[0m\\nsecond line <script>alert(1)</script> | `code` *em* _u_ "
               "[link](javascript:alert(3)) &lt; {: onclick=alert(4)} \\x9b2J \\0 \\x7f \\u2028 end")
BLOCK_SHOWN = '=HYPERLINK("http://x") \\x1b[31mred\\x1b[0m|<b>bold</b>`tick`\\nnext'

# C0 but the newline (the layout's own line breaks), DEL and C1 (\x9b is CSI to a terminal)
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def controls(text: str) -> list[str]:
    return _CONTROL.findall(text)


def unescaped(text: str, mark: str) -> int:
    """How often `mark` occurs in Markdown `text` not escaped by a backslash."""
    count, i = 0, 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        count += text.startswith(mark, i)
        i += 1
    return count


def pipe_cells(line: str) -> list[str]:
    """The cells of a Markdown table row: split at the pipes no backslash escapes."""
    cells, current, i = [], "", 0
    while i < len(line):
        if line[i] == "\\":
            current += line[i:i + 2]
            i += 2
            continue
        if line[i] == "|":
            cells.append(current)
            current = ""
        else:
            current += line[i]
        i += 1
    return [c.strip() for c in cells[1:]]


def tables(markdown: str) -> list[list[str]]:
    """The pipe tables of `markdown`, each as its lines."""
    found, current = [], []
    for line in markdown.split("\n"):
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found + ([current] if current else [])


def assert_plain_markdown(markdown: str) -> None:
    """No control character, no HTML tag, link or code span, and tables whose rows all have the
    header's cells (CommonMark, GitHub and Python-Markdown read the same)."""
    assert controls(markdown) == []
    assert not re.search(r"<[A-Za-z/!?]", markdown), "a raw HTML tag"
    assert unescaped(markdown, "](") == 0, "a link"
    for table in tables(markdown):
        widths = [len(pipe_cells(line)) for line in table]
        assert len(set(widths)) == 1, table
        assert all(unescaped(line, "`") == 0 for line in table), "a code span across cells"
