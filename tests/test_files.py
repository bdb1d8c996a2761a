"""archcalc.files: the names of files, read as pathlib reads them."""
from __future__ import annotations

from pathlib import Path

import pytest

from archcalc.files import format_of, split_name

NAMES = ["vgg.json", "a/b.tar.gz", "noext", ".md", "x.", "dir.json/", "./rel/net.JSON", "/abs/out.csv", "a..b", ""]


@pytest.mark.parametrize("name", NAMES)
def test_split_name_is_pathlibs_stem_and_suffix(name):
    assert split_name(name) == (Path(name).stem, Path(name).suffix)


def test_format_of_follows_the_suffix():
    assert [format_of(n, "text") for n in ("t.md", "T.MD", "t.markdown", "t.csv", "t.json", "t.txt", "t.html", "md")] \
        == ["markdown", "markdown", "markdown", "csv", "json", "text", "text", "text"]
