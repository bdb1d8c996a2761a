"""The reports as HTML: the Markdown archcalc writes, converted by hand-checked rules (the index of the zoo and
the pages of a whole report: tests/test_report.py)."""
from __future__ import annotations

from archcalc.report.site import inline, markdown_html, report_link


def test_markdown_as_html_by_hand():
    text = ("# Tricks, computed\n\nA *stack* of `3x3` convolutions: see [the claims](claims.md#12-inception-module)"
            "[^a].\n\n| Design | C |\n|:--|--:|\n| one 5x5 \\| 7x7 | 64 |\n\n1. [Output size](#1-output-size)\n"
            "2. two\n\n- a\n- **b**\n\n[^a]: a note, 2 \\< 3\n")
    assert markdown_html(text, report_link) == (
        '<h1 id="tricks-computed">Tricks, computed</h1>\n'
        '<p>A <em>stack</em> of <code>3x3</code> convolutions: see <a href="claims.html#12-inception-module">the claims'
        '</a><sup><a href="#fn-a" id="ref-a">a</a></sup>.</p>\n'
        '<div class="scroll"><table>\n<thead><tr><th>Design</th><th class=num>C</th></tr></thead>\n<tbody>\n'
        '<tr><td>one 5x5 | 7x7</td><td class=num>64</td></tr>\n</tbody></table></div>\n'
        '<ol><li><a href="#1-output-size">Output size</a></li><li>two</li></ol>\n'
        '<ul><li>a</li><li><strong>b</strong></li></ul>\n'
        '<p class="footnote" id="fn-a"><a href="#ref-a">a</a>: a note, 2 &lt; 3</p>\n')


def test_markup_in_the_text_stays_text():
    assert inline("a <script>alert(1)</script> & `<b>`", lambda h: h) == \
        "a &lt;script&gt;alert(1)&lt;/script&gt; &amp; <code>&lt;b&gt;</code>"
    assert inline('[x](a"b.md)', lambda h: h) == '<a href="a&quot;b.md">x</a>'


def test_links_of_the_report_folder_from_html():
    assert report_link("claims.md#wrong-in-the-source") == "claims.html#wrong-in-the-source"
    assert report_link("zoo.md") == "zoo.html" and report_link("README.md") == "index.html"
    assert report_link("networks/vgg16.md") == "../networks/vgg16.md"
    assert report_link("html/vgg16.html") == "vgg16.html" and report_link("plots/x.png") == "../plots/x.png"
    assert report_link("#top") == "#top" and report_link("https://example.org/a.md") == "https://example.org/a.md"
