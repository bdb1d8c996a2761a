"""The reports as pages a browser opens: reports/html/index.html lists every network of the zoo with its
figure and links to its page, and zoo.html, claims.html and tricks.html are the Markdown pages of the
same names rendered as HTML (archcalc.report.pages writes both). Self-contained and deterministic, as
the network pages are: inline CSS, no script, nothing fetched; the figures are the report's own SVGs.

The Markdown is what archcalc writes (archcalc.fmt: headings, paragraphs, lists, pipe tables, links,
images, code spans, emphasis, footnotes, backslash escapes), so a small converter for that subset
suffices, and no Markdown library becomes a dependency.
"""
from __future__ import annotations

import posixpath
import re
from html import escape
from typing import Callable, Mapping, Sequence

from .. import fmt
from ..core.calc import Analysis

PAGES = {"zoo": "The zoo", "claims": "Lecture claims, recomputed", "tricks": "Tricks, computed"}
HERE = "html"  # the folder of the pages, in the report folder

CSS = """
body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1400px;padding:8px 16px;color:#000;
background:#fff;font-size:15px;line-height:1.45}
nav{padding:6px 0;border-bottom:1px solid #ccc;margin-bottom:8px}nav a{margin-right:14px}
h1{font-size:24px}h2{font-size:19px;margin-top:26px}h3{font-size:16px}
a{color:#0060A0}code{font-family:DejaVu Sans Mono,monospace;font-size:0.92em;background:#F4F4F4;padding:0 2px}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:8px 0;font-size:13px}td,th{padding:3px 7px;border:1px solid #ddd;vertical-align:top}
th{background:#F4F4F4}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
img{max-width:100%}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:12px}
.card{margin:0;border:1px solid #ddd;padding:6px;display:flex;flex-direction:column}
.card img{height:240px;width:100%;object-fit:contain;object-position:top;background:#fff}
.card figcaption{font-size:13px;margin-top:4px}.card figcaption a{font-weight:bold}
.footnote{font-size:13px;color:#333}
"""


def files(families: Mapping[str, Sequence[Analysis]], pages: dict[str, str]) -> dict[str, bytes]:
    """Relative path in the report folder -> content: html/index.html and the pages of PAGES that `pages`
    (relative path -> Markdown) holds."""
    built = {f"{HERE}/index.html": index(families, [name for name in PAGES if f"{name}.md" in pages])}
    for name, title in PAGES.items():
        if f"{name}.md" in pages:
            built[f"{HERE}/{name}.html"] = document(title, markdown_html(pages[f"{name}.md"], report_link))
    return {path: text.encode() for path, text in built.items()}


def document(title: str, body: str) -> str:
    links = "".join(f'<a href="{name}.html">{escape(label)}</a>' for name, label in [("index", "All networks"),
                                                                                     *PAGES.items()])
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · archcalc</title>
<link rel="icon" href="data:,">
<style>{CSS}</style>
</head>
<body>
<nav aria-label="Reports">{links}</nav>
<main>
{body}</main>
</body>
</html>
"""


def index(families: Mapping[str, Sequence[Analysis]], pages: Sequence[str]) -> str:
    """Every network, family by family: its figure (reports/diagrams/NAME.svg), name, title and totals, each
    linked to its interactive page (NAME.html) and its Markdown page."""
    count = sum(len(members) for members in families.values())
    contents = "".join(f'<li><a href="#{fmt.anchor(family)}">{escape(family)}</a> ({len(members)})</li>'
                       for family, members in families.items())
    parts = [
        "<h1>archcalc reports</h1>",
        f"<p>{count} networks of the zoo, family by family: click a figure for the network's interactive page (the "
        "figure, a foldable and sortable layer table and the working of each layer). "
        + " ".join(f'<a href="{name}.html">{escape(PAGES[name])}</a>.' for name in pages)
        + ' The same reports as Markdown are in the folder above (<a href="../README.md">README.md</a>).</p>',
        f'<ul class="families">{contents}</ul>',
    ]
    for family, members in families.items():
        parts.append(f'<h2 id="{fmt.anchor(family)}">{escape(family)}</h2>\n<div class="cards">')
        parts += [_card(a) for a in members]
        parts.append("</div>")
    return document("archcalc reports", "\n".join(parts) + "\n")


def _card(analysis: Analysis) -> str:
    network, totals = analysis.network, analysis.totals
    name = escape(network.name)
    return (f'<figure class="card" id="{name}"><a href="{name}.html"><img src="../diagrams/{name}.svg" loading="lazy" '
            f'alt="Architecture of {name}"></a>\n<figcaption><a href="{name}.html">{name}</a>: {escape(network.title)}'
            f"<br>{fmt.scaled(totals.params)} params, {fmt.scaled(totals.macs)} MACs, input "
            f'{fmt.shape(analysis.input_shape)}; <a href="../networks/{name}.md">Markdown page</a></figcaption></figure>')


def report_link(href: str) -> str:
    """A link of a Markdown page of the report folder, from html/: its pages of PAGES as HTML, the network
    pages' HTML beside it, anything else one folder up."""
    if "://" in href or href.startswith(("#", "mailto:")):
        return href
    path, _, fragment = href.partition("#")
    stem = path[:-3] if path.endswith(".md") else None
    if stem in PAGES:
        target = f"{stem}.html"
    elif path == "README.md":
        target = "index.html"
    elif path.startswith(f"{HERE}/"):
        target = path[len(HERE) + 1:]
    else:
        target = posixpath.join("..", path)
    return target + (f"#{fragment}" if fragment else "")


# ---- the Markdown archcalc writes, as HTML ---------------------------------------------------------------

_INLINE = re.compile(
    r"(?P<code>(?P<ticks>`+)(?P<coded>.+?)(?P=ticks))"
    r"|\\(?P<escaped>[!-/:-@\[-`{-~])"
    r"|!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)"
    r"|\[\^(?P<note>[^\]]+)\]"
    r"|\[(?P<label>(?:\\.|[^\]\\])+)\]\((?P<href>[^)\s]+)\)"
    r"|\*\*(?P<strong>.+?)\*\*"
    r"|(?<![\w*])\*(?P<em>[^*\s](?:[^*]*[^*\s])?)\*(?![\w*])"
)
_HEADING = re.compile(r"(#{1,6}) +(.*?) *#* *$")
_LIST = re.compile(r"(?:[-*]|(\d+)\.) +(.*)")
_FOOTNOTE = re.compile(r"\[\^([^\]]+)\]: *(.*)")
_SEPARATOR = re.compile(r"\|? *:?-+:? *(\| *:?-+:? *)*\|? *$")


def inline(text: str, link: Callable[[str], str]) -> str:
    """One line of Markdown as HTML: code spans, escapes, images, links, footnote marks, emphasis."""
    out = []
    at = 0
    for match in _INLINE.finditer(text):
        out.append(escape(text[at:match.start()], quote=False))
        at = match.end()
        kind = match.lastgroup if match.group("code") is None else "code"
        if kind == "code":
            out.append(f"<code>{escape(match.group('coded').strip(), quote=False)}</code>")
        elif match.group("escaped") is not None:
            out.append(escape(match.group("escaped"), quote=False))
        elif match.group("src") is not None:
            out.append(f'<img src="{escape(link(match.group("src")))}" alt="{escape(_plain(match.group("alt")))}">')
        elif match.group("note") is not None:
            note = escape(match.group("note"))
            out.append(f'<sup><a href="#fn-{note}" id="ref-{note}">{note}</a></sup>')
        elif match.group("href") is not None:
            out.append(f'<a href="{escape(link(match.group("href")))}">{inline(match.group("label"), link)}</a>')
        elif match.group("strong") is not None:
            out.append(f"<strong>{inline(match.group('strong'), link)}</strong>")
        else:
            out.append(f"<em>{inline(match.group('em'), link)}</em>")
    out.append(escape(text[at:], quote=False))
    return "".join(out)


def _plain(text: str) -> str:
    """The text a heading or an alt shows: without link targets, code ticks, emphasis and escapes."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"\\(.)", r"\1", text.replace("`", "").replace("**", ""))


def _cells(line: str) -> list[str]:
    """The cells of a pipe-table row: split at the pipes that no backslash escapes."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [c.strip() for c in re.split(r"(?<!\\)\|", inner)]


def _table(lines: list[str], link: Callable[[str], str]) -> str:
    right = [c.endswith(":") for c in _cells(lines[1])]

    def row(line: str, tag: str) -> str:
        cells = _cells(line)
        return "<tr>" + "".join(f'<{tag}{" class=num" if i < len(right) and right[i] else ""}>{inline(c, link)}</{tag}>'
                                for i, c in enumerate(cells)) + "</tr>"

    body = "\n".join(row(line, "td") for line in lines[2:])
    return f'<div class="scroll"><table>\n<thead>{row(lines[0], "th")}</thead>\n<tbody>\n{body}\n</tbody></table></div>'


def markdown_html(text: str, link: Callable[[str], str] = lambda href: href) -> str:
    """A page of Markdown as archcalc writes it, as HTML (headings get GitHub's anchors, fmt.anchor);
    `link` rewrites each link and image target."""
    lines = text.splitlines()
    out: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    ordered = False

    def flush() -> None:
        nonlocal items
        if paragraph:
            out.append(f"<p>{inline(' '.join(paragraph), link)}</p>")
            paragraph.clear()
        if items:
            tag = "ol" if ordered else "ul"
            out.append(f"<{tag}>" + "".join(f"<li>{inline(item, link)}</li>" for item in items) + f"</{tag}>")
            items = []

    i = 0
    while i < len(lines):
        line = lines[i]
        heading, listed, footnote = _HEADING.match(line), _LIST.match(line), _FOOTNOTE.match(line)
        if not line.strip():
            flush()
        elif line.lstrip().startswith("|") and i + 1 < len(lines) and _SEPARATOR.match(lines[i + 1].strip()):
            flush()
            end = i + 2
            while end < len(lines) and lines[end].lstrip().startswith("|"):
                end += 1
            out.append(_table(lines[i:end], link))
            i = end
            continue
        elif heading:
            flush()
            level, title = len(heading.group(1)), heading.group(2)
            out.append(f'<h{level} id="{escape(fmt.anchor(_plain(title)))}">{inline(title, link)}</h{level}>')
        elif footnote:
            flush()
            note = escape(footnote.group(1))
            out.append(f'<p class="footnote" id="fn-{note}"><a href="#ref-{note}">{note}</a>: '
                       f"{inline(footnote.group(2), link)}</p>")
        elif listed and not paragraph:
            if items and ordered != (listed.group(1) is not None):
                flush()
            ordered = listed.group(1) is not None
            items.append(listed.group(2))
        elif items and line.startswith("  "):
            items[-1] += " " + line.strip()
        else:
            if items:
                flush()
            paragraph.append(line.strip())
        i += 1
    flush()
    return "\n".join(out) + "\n"
