"""archcalc.report.folder: `archcalc report` removes and writes over only the files it wrote itself,
and two runs on one folder take turns."""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import cli_runner

from archcalc.cli import main
from archcalc.files import is_temporary
from archcalc.report import folder, pages

# What a report generates, by hand: a few pages in the folder and one level down.
FILES = {"README.md": b"# Reports\n", "zoo.md": b"# The zoo\n", "networks/a.md": b"# a\n",
         "diagrams/a.svg": b"<svg/>\n", "plots/p.png": b"\x89PNG"}
TINY = str(Path(__file__).parent / "fixtures" / "report_tiny.json")


@pytest.fixture
def report(monkeypatch):
    """`archcalc report` generating FILES (set `report.files` to change what it generates)."""
    class Generated:
        files = dict(FILES)

    monkeypatch.setattr(pages, "build", lambda target=None, out="reports", network=None: dict(Generated.files))
    return Generated


def run(*args: str):
    return cli_runner().invoke(main, ["report", *args])


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def listed(out: Path) -> list[str]:
    return json.loads((out / folder.MANIFEST).read_text())["files"]


def refused(result, *words: str) -> str:
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
    assert all(word in result.stderr for word in words), result.stderr
    return result.stderr


def test_a_folder_with_files_and_no_manifest_is_refused_and_kept(report, tmp_path):
    out = tmp_path / "P"
    (out / "docs").mkdir(parents=True)
    users = {"thesis.md": b"x\n", "docs/guide.md": b"x\n", "README.md": b"my readme\n", "notes.html": b"<p>\n"}
    for name, data in users.items():
        (out / name).write_bytes(data)
    refused(run("--out", str(out)), f"archcalc: {out}: ", "archcalc did not write", "--force")
    assert tree(out) == users  # nothing written, nothing removed
    assert run("--out", str(out), "--force").exit_code == 0
    written = tree(out)
    assert {n: written[n] for n in ("thesis.md", "docs/guide.md", "notes.html")} == {
        n: users[n] for n in ("thesis.md", "docs/guide.md", "notes.html")}
    assert written["README.md"] == FILES["README.md"]  # --force writes over the names the report generates
    assert listed(out) == sorted(FILES)
    result = run("--out", str(out))  # the folder is archcalc's now: no --force needed
    assert result.exit_code == 0, result.output
    assert tree(out) == written
    check = run("--out", str(out), "--check")
    assert check.exit_code == 0 and check.stdout == f"{out} is up to date\n"  # the user's files are not stale


def test_one_networks_page_into_a_folder_of_the_users_is_refused(report, tmp_path):
    out = tmp_path / "P"
    (out / "networks").mkdir(parents=True)
    (out / "networks" / "a.md").write_text("my notes on a\n")
    report.files = {"networks/a.md": FILES["networks/a.md"], "diagrams/a.svg": FILES["diagrams/a.svg"]}
    refused(run("lenet5", "--out", str(out)), f"archcalc: {out}: ", "archcalc did not write")  # its page: a.md
    assert tree(out) == {"networks/a.md": b"my notes on a\n"}


def test_an_empty_or_new_folder_needs_no_force(report, tmp_path):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new" / "deeper"):
        assert run("--out", str(out)).exit_code == 0
        assert tree(out) == {**FILES, folder.MANIFEST: folder.manifest_bytes(FILES)}


def test_a_file_in_the_way_that_archcalc_did_not_write_is_refused(report, tmp_path):
    out = tmp_path / "out"
    report.files = {"networks/a.md": FILES["networks/a.md"]}  # one network's page first
    assert run("--out", str(out)).exit_code == 0
    (out / "README.md").write_text("my readme\n")
    (out / "zoo.md").write_bytes(FILES["zoo.md"])  # the same bytes archcalc writes: not in the way
    report.files = dict(FILES)
    refused(run("--out", str(out)), f"archcalc: {out / 'README.md'}: ", "not in .archcalc-manifest", "--force")
    assert sorted(tree(out)) == [folder.MANIFEST, "README.md", "networks/a.md", "zoo.md"]  # nothing written
    assert (out / "README.md").read_text() == "my readme\n"
    assert run("--out", str(out), "--force").exit_code == 0
    assert (out / "README.md").read_bytes() == FILES["README.md"] and listed(out) == sorted(FILES)


def test_only_files_an_earlier_run_listed_are_removed(report, tmp_path):
    out = tmp_path / "out"
    report.files = {**FILES, "networks/gone.md": b"# gone\n", "plots/gone.svg": b"<svg/>\n"}
    assert run("--out", str(out)).exit_code == 0
    users = {"networks/mine.md": b"mine\n", "plots/mine.svg": b"<svg/>\n", "measured/speed.md": b"run\n",
             "bench/H100.md": b"run\n", "thesis.md": b"x\n"}
    for name, data in users.items():
        (out / name).parent.mkdir(exist_ok=True)
        (out / name).write_bytes(data)
    report.files = dict(FILES)
    check = run("--out", str(out), "--check")
    assert check.exit_code == 1
    assert check.stdout.splitlines() == [f"stale: {out}/networks/gone.md (not generated)",
                                         f"stale: {out}/plots/gone.svg (not generated)"]
    assert run("--out", str(out)).exit_code == 0
    assert tree(out) == {**FILES, **users, folder.MANIFEST: folder.manifest_bytes(FILES)}


def test_one_networks_page_adds_to_the_manifest(report, tmp_path):
    out = tmp_path / "out"
    assert run("--out", str(out)).exit_code == 0
    report.files = {"networks/b.md": b"# b\n"}
    assert run("vgg11", "--out", str(out)).exit_code == 0  # its page: b.md
    assert listed(out) == sorted([*FILES, "networks/b.md"])  # one page prunes nothing and keeps the others listed
    assert (out / "zoo.md").exists()


@pytest.mark.parametrize("manifest, why", [
    ('{"files": ["../victim.md"]}', "a name that is not a plain file name inside the folder"),
    ('{"files": ["/etc/passwd"]}', "a name that is not a plain file name inside the folder"),
    ('{"files": "README.md"}', "no 'files' list"),
    ("[]", "no 'files' list"),
    ("{", "not JSON"),
    ("[" * 100_000, "not JSON"),  # nested past the budget's depth, not a RecursionError
])
def test_a_manifest_archcalc_cannot_have_written_is_refused(report, tmp_path, manifest, why):
    out, victim = tmp_path / "out", tmp_path / "victim.md"
    out.mkdir()
    victim.write_text("the user's")
    (out / folder.MANIFEST).write_text(manifest)
    refused(run("--out", str(out)), f"archcalc: {out / folder.MANIFEST}: not a manifest archcalc wrote ({why})")
    assert sorted(tree(out)) == [folder.MANIFEST]
    assert run("--out", str(out), "--force").exit_code == 0  # forced: written, nothing removed
    assert victim.read_text() == "the user's" and listed(out) == sorted(FILES)


def test_a_manifest_that_is_not_a_regular_file_is_refused_without_reading(report, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / folder.MANIFEST)  # opening it to read would wait for a writer
    refused(run("--out", str(out)), f"archcalc: {out / folder.MANIFEST}: cannot read: not a regular file")
    assert run("--out", str(out), "--force").exit_code == 0 and listed(out) == sorted(FILES)


def test_check_names_a_missing_manifest_and_an_unlisted_page(report, tmp_path):
    out = tmp_path / "out"
    assert run("--out", str(out)).exit_code == 0
    (out / folder.MANIFEST).write_bytes(folder.manifest_bytes(set(FILES) - {"zoo.md"}))
    assert pages.stale(out) == ["zoo.md (not in .archcalc-manifest)"]  # the next run would refuse to write it
    (out / folder.MANIFEST).unlink()
    assert pages.stale(out) == [".archcalc-manifest (missing)"]


def test_a_listed_file_behind_a_link_is_not_removed(report, tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    report.files = {**FILES, "networks/gone.md": b"# gone\n"}
    assert run("--out", str(out)).exit_code == 0
    elsewhere.mkdir()
    (elsewhere / "gone.md").write_text("the user's")
    (out / "networks" / "gone.md").unlink()
    (out / "networks" / "gone.md").symlink_to(elsewhere / "gone.md")
    report.files = dict(FILES)
    assert run("--out", str(out)).exit_code == 0
    assert (elsewhere / "gone.md").read_text() == "the user's"


# ---- two runs at once --------------------------------------------------------------------------

def _report_process(out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    return subprocess.Popen([sys.executable, "-m", "archcalc.cli", "report", TINY, "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_runs_at_once_on_one_folder_take_turns(tmp_path):
    out = tmp_path / "out"
    for _ in range(3):  # a new folder, then one archcalc already wrote (the race hits in 1 round of 6 most times)
        runs = [_report_process(out) for _ in range(6)]
        results = [(run.wait(timeout=120), run.stderr.read().decode()) for run in runs]
        assert results == [(0, "")] * 6  # none removes another's temporary file
    assert sorted(tree(out)) == [folder.MANIFEST, "diagrams/report_tiny.svg", "html/report_tiny.html",
                                 "networks/report_tiny.md"]


@pytest.fixture
def held(tmp_path):
    """A folder whose lock another process holds (this one, through its own descriptor)."""
    out = tmp_path / "out"
    out.mkdir()
    handle = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(handle, fcntl.LOCK_EX)
    yield out, handle
    os.close(handle)


def test_a_run_waits_while_another_writes(held):
    out, handle = held
    (out / folder.MANIFEST).write_bytes(folder.manifest_bytes(["networks/report_tiny.md"]))
    (out / "networks").mkdir()
    writing = out / "networks" / ".report_tiny.md.abcd1234.archcalc-tmp"  # the other run's file, half written
    writing.write_text("half")
    waiting = _report_process(out)
    time.sleep(2)
    assert waiting.poll() is None and writing.exists()  # it waits, and leaves the other's file alone
    fcntl.flock(handle, fcntl.LOCK_UN)  # the other run ends (killed: its file is left over)
    assert waiting.wait(timeout=60) == 0, waiting.stderr.read()
    assert not writing.exists() and not any(is_temporary(p.name) for p in out.rglob("*"))


def test_a_run_gives_up_waiting_with_one_line(held, report, monkeypatch):
    out, _ = held
    monkeypatch.setattr(folder, "LOCK_WAIT_S", 0.3)
    refused(run("--out", str(out)), f"archcalc: {out}: another archcalc run has been writing this folder for 0.3 s")
    assert list(out.iterdir()) == []
