"""archcalc.files: the names of files, read as pathlib reads them."""
from __future__ import annotations

from pathlib import Path

import pytest

from archcalc.files import format_of, nearest_file, split_name

NAMES = ["vgg.json", "a/b.tar.gz", "noext", ".md", "x.", "dir.json/", "./rel/net.JSON", "/abs/out.csv", "a..b", ""]


@pytest.mark.parametrize("name", NAMES)
def test_split_name_is_pathlibs_stem_and_suffix(name):
    assert split_name(name) == (Path(name).stem, Path(name).suffix)


def test_format_of_follows_the_suffix():
    assert [format_of(n, "text") for n in ("t.md", "T.MD", "t.markdown", "t.csv", "t.json", "t.txt", "t.html", "md")] \
        == ["markdown", "markdown", "markdown", "csv", "json", "text", "text", "text"]


@pytest.mark.parametrize("target", ["zoo.md", "a" * 100 + ".html", ".archcalc-manifest"])
def test_is_temporary_of_knows_the_temporary_files_write_atomic_makes(tmp_path, monkeypatch, target):
    import os

    from archcalc.files import is_temporary_of, write_atomic

    made = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda source, destination: made.append(Path(source).name) or real_replace(source, destination))
    write_atomic(tmp_path / target, "x")
    (name,) = made
    assert is_temporary_of(name, target)
    assert not is_temporary_of(name, "other.md") and not is_temporary_of(name, "b" + target)
    assert not is_temporary_of(f".{target}.notes", target)  # a name of the user's beside it
    assert is_temporary_of(".zoo.md.abcd1234", "zoo.md")  # an earlier version's `.NAME.XXXXXXXX`


def test_reading_a_small_file_reserves_no_more_than_it_holds(tmp_path):
    """Under an address-space limit of 256 MiB beyond the process's own, a 3-byte file read with a
    2 GiB limit (the ONNX files' limit) is read; one read of the whole limit would need 2 GiB at once."""
    import subprocess
    import sys

    small = tmp_path / "small.bin"
    small.write_bytes(b"abc")
    code = (
        "import os, resource\n"
        "from archcalc.core.reading import read_bytes\n"
        "size = int(open('/proc/self/statm').read().split()[0]) * os.sysconf('SC_PAGE_SIZE')\n"
        "resource.setrlimit(resource.RLIMIT_AS, (size + 2**28, size + 2**28))\n"
        f"print(read_bytes({str(small)!r}, limit=2**31, what='models'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "b'abc'"), done.stderr[-500:]


def test_a_missing_file_names_the_nearest_file_of_its_folder_by_name_without_suffix(tmp_path):
    for name in ("vgg.json", "vgg.svg", "resnet.json", "my_net.json", ".hidden.json"):
        (tmp_path / name).write_text("{}")
    assert nearest_file(tmp_path / "vgg.jsn") == f" (did you mean {str(tmp_path / 'vgg.json')!r}?)"  # same stem
    assert nearest_file(tmp_path / "my-net.json") == f" (did you mean {str(tmp_path / 'my_net.json')!r}?)"
    assert nearest_file(tmp_path / "foo.json") == ""  # the shared `.json` makes no two names alike
    assert nearest_file(tmp_path / "hidden.json") == ""  # a hidden file is not suggested
    assert nearest_file(tmp_path / "no_folder" / "vgg.json") == ""


def test_sigterm_while_a_file_is_written_unwinds_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    import os
    import signal

    from archcalc.files import is_temporary, write_atomic

    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    real_fsync = os.fsync

    def terminated(fd):  # SIGTERM arrives while the temporary file is open, before the rename
        real_fsync(fd)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(os, "fsync", terminated)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "out.md", "x")
    assert [p.name for p in tmp_path.iterdir() if is_temporary(p.name) or p.name == "out.md"] == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # outside the write: the default again


def test_sigterm_unwinds_keeps_a_handler_the_caller_set(monkeypatch):
    import signal

    from archcalc.files import sigterm_unwinds

    def own(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, own)
    try:
        with sigterm_unwinds(), sigterm_unwinds():
            assert signal.getsignal(signal.SIGTERM) is own
        assert signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, previous)
