"""Scaled units for people: K/M/G for counts, KiB/MiB/GiB for bytes, 3-4 significant digits."""
from __future__ import annotations

import pytest

from archcalc import fmt


@pytest.mark.parametrize("n, text", [
    (0, "0"), (999, "999"), (1_000, "1.00 K"),
    (416_520, "416.5 K"),  # LeNet-5's MACs: 416,520 / 1,000
    (15_470_264_320, "15.47 G"),  # VGG16's MACs, torchvision's 15.47 GFLOPS
    (138_357_544, "138.4 M"),
    (999_960, "1.00 M"),  # 999.96 K rounds to 1,000 K: the next unit up
    (2_000_000_000_000_000, "2,000 T"),
])
def test_scaled_counts(n, text):
    assert fmt.scaled(n) == text


@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (240, "240 B"), (1_000, "0.98 KiB"), (1_024, "1.00 KiB"),
    (61_706 * 4, "241.0 KiB"),  # LeNet-5's weights in fp32: 246,824 / 1,024 = 241.04
    (int(2_733.59 * 2**20), "2.67 GiB"),  # 2,733.59 MiB / 1,024 = 2.6695
    (2**20 - 1, "1.00 MiB"),  # 1,023.999 KiB reads as the next unit
    (138_357_544 * 4, "527.8 MiB"),  # VGG16's fp32 weights: 553,430,176 / 2**20 = 527.79
])
def test_scaled_bytes(n, text):
    assert fmt.scaled_bytes(n) == text


def test_markdown_table_right_aligns_numeric_columns():
    text = fmt.markdown_table([["a", "1,000"]], ["Name", "Count"], numeric=[1])
    separator = text.splitlines()[1]
    assert separator.startswith("|:-") and separator.endswith("-:|")


# ---- tables: the written-out layouts against tabulate's own --------------------------------

def _compare_with_tabulate(rows, headers, numeric):
    for style in ("simple", "pipe"):
        assert fmt._table(rows, headers, numeric, style) == fmt._tabulated(rows, headers, numeric, style), style


def test_tables_equal_tabulates_layouts():
    pytest.importorskip("tabulate")
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    cell = st.text(alphabet=" ab1,.-|:µ×²—*_\\`", max_size=9)

    @hypothesis.settings(max_examples=300, deadline=None, database=None)
    @hypothesis.given(st.integers(1, 5).flatmap(lambda n: st.tuples(
        st.lists(cell, min_size=n, max_size=n), st.lists(st.lists(cell, min_size=n, max_size=n), min_size=1, max_size=6),
        st.sets(st.integers(0, n - 1)))))
    def check(case):
        _compare_with_tabulate(case[1], case[0], case[2])

    check()


@pytest.mark.parametrize("rows", [[], [["two\nlines", "x"]], [["\x1b[1mbold\x1b[0m", "x"]], [["宽", "x"]], [[1, "x"]]])
def test_tables_with_cells_the_layout_does_not_handle_go_to_tabulate(rows):
    """No rows, line breaks, escapes, wide characters, non-text cells: tabulate's own output."""
    pytest.importorskip("tabulate")
    _compare_with_tabulate(rows, ["a", "b"], {1})


@pytest.mark.parametrize("text, escaped", [
    ("<script>alert(1)</script>", "&lt;script>alert(1)&lt;/script>"),  # Python-Markdown keeps `\<` a tag
    ("a < b", "a &lt; b"),
    ("&lt; &#60; & b", "&amp;lt; &amp;#60; & b"),  # a reference would be read; a lone & is text
    ("[x](javascript:alert(1))", "[x\\](javascript:alert(1))"),
    ("![x](y) [a][b]", "![x\\](y) [a\\][b]"),
    ("[55x55x96] = 290,400", "[55x55x96] = 290,400"),  # brackets alone are text
    ("one ` tick", "one \\` tick"),  # a lone backtick would pair with one in another cell
    ("title {: onclick=x}", "title \\{: onclick=x}"),  # an attribute list (Python-Markdown's attr_list)
    ("red\x1b[31m\x07 \x9b \x7f", "red\\x1b[31m\\x07 \\x9b \\x7f"),
    ("a\nb\tc\u2028d", "a b c d"),
])
def test_cell_leaves_no_html_link_code_or_control_character(text, escaped):
    assert fmt.cell(text) == escaped


@pytest.mark.parametrize("text, written", [
    ("vgg16.json", "`vgg16.json`"),
    ("a`b", "a\\`b"),  # a backtick would end the span
    ("a\x1bb <i>", "a\\x1bb &lt;i>"),
])
def test_code_spans_only_plain_text(text, written):
    assert fmt.code(text) == written


@pytest.mark.parametrize("text, written", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+1", "'+1"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
    ("conv2d", "conv2d"), ("a=b", "a=b"),
    ("\tx\ny", "\\tx\\ny"),
])
def test_csv_text_escapes_control_characters_and_guards_formulas(text, written):
    assert fmt.csv_text(text) == written


def test_shape_of_several_tensors_reads_as_a_list_of_shapes():
    assert fmt.shape((3, 224, 224)) == "3x224x224"
    assert fmt.shape(((64, 32, 32), (64, 32, 32))) == "64x32x32, 64x32x32"  # a module returning a tuple
    assert fmt.shape(None) == "-"
