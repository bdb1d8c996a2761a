"""README.md and docs/: the set-up commands CI runs, the example output, the size, and every link."""
from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import unquote

import click
from conftest import cli_runner

from archcalc.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
README_LIMIT = 12 * 1024  # bytes: set-up, the commands people use most, one example, links

INSTALL_AND_RUN = ("python3 -m venv .venv && .venv/bin/python -m pip install -q -c constraints.txt . "
                   "&& .venv/bin/archcalc table vgg16")
INSTALL_AND_TEST = ('python3 -m venv .venv && .venv/bin/python -m pip install -q -c constraints.txt ".[test]" '
                    "&& .venv/bin/python -m pytest -q")


def fenced(text: str, language: str) -> list[str]:
    """The bodies of the fenced blocks of `language`, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.M | re.S)


def test_the_readme_opens_with_the_two_set_up_commands_and_ci_runs_the_second():
    readme = README.read_text(encoding="utf-8")
    first_section = readme.split("\n## ", 1)[0]
    assert fenced(first_section, "bash") == [INSTALL_AND_RUN + "\n", INSTALL_AND_TEST + "\n"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ci[-1] == INSTALL_AND_TEST


def test_the_readme_is_at_most_12_kb():
    assert len(README.read_bytes()) <= README_LIMIT


def test_the_readme_example_output_is_what_the_command_prints():
    examples = fenced(README.read_text(encoding="utf-8"), "console")
    assert examples, "the README shows one example output"
    for example in examples:
        command, _, shown = example.partition("\n")
        assert command.startswith("$ archcalc "), command
        result = cli_runner().invoke(main, shlex.split(command)[2:])
        assert (result.exit_code, result.stderr) == (0, ""), command
        assert result.stdout == shown, command


# ---- links -------------------------------------------------------------------------------------

def anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown page (lower case, punctuation dropped,
    spaces as hyphens, a repeated heading numbered)."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", without_code_blocks(text), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def without_code_blocks(text: str) -> str:
    return re.sub(r"^```.*?^```$", "", text, flags=re.M | re.S)


def relative_links(text: str) -> list[str]:
    prose = re.sub(r"`[^`\n]*`", "", without_code_blocks(text))
    targets = re.findall(r"\]\(([^)\s]+)\)", prose)
    return [t for t in targets if not re.match(r"[a-z]+:", t)]


def broken_links(page: Path) -> list[str]:
    broken = []
    for link in relative_links(page.read_text(encoding="utf-8")):
        path, _, anchor = link.partition("#")
        target = (page.parent / unquote(path)).resolve() if path else page
        if not target.is_file():
            broken.append(link)
        elif anchor and target.suffix == ".md" and anchor not in anchors(target.read_text(encoding="utf-8")):
            broken.append(link)
    return broken


def test_every_relative_link_of_the_readme_and_the_docs_resolves():
    broken = {page.relative_to(ROOT).as_posix(): broken_links(page) for page in [README, *PAGES]}
    assert {page: links for page, links in broken.items() if links} == {}


def test_the_link_check_finds_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## A section: `x`\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#a-section-x) [file](gone.md) [anchor](other.md#nowhere) `[code](gone.md)`\n"
                    "```\n[block](gone.md)\n```\n[web](https://example.com/gone.md)\n")
    assert broken_links(page) == ["gone.md", "other.md#nowhere"]


def test_the_docs_index_and_the_readme_link_every_page():
    pages = {page.name for page in PAGES} - {"README.md"}
    index = set(relative_links((DOCS / "README.md").read_text(encoding="utf-8")))
    readme = {link.removeprefix("docs/") for link in relative_links(README.read_text(encoding="utf-8"))}
    assert pages - index == set() and pages - readme == set()


def test_every_command_is_in_the_command_table_of_the_cli_page():
    cli_page = (DOCS / "cli.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `archcalc (\w+)`(?:, `archcalc (\w+)`)?", cli_page, flags=re.M))
    assert {name for pair in listed for name in pair if name} == set(main.list_commands(click.Context(main)))


def test_the_ci_pages_workflow_installs_from_the_checkout_and_its_commands_run(tmp_path):
    """Every `run:` of the GitHub Actions example after the checkout, in a folder holding what a checkout
    would (specs under specs/, family files among them), with the installed archcalc standing in for the
    install step (which must install the checkout itself, pinned as the README's commands are)."""
    import os
    import shutil
    import subprocess
    import sys

    (workflow,) = fenced((DOCS / "ci.md").read_text(), "yaml")
    runs = [line.split("run:", 1)[1].split("  #")[0].strip() for line in workflow.splitlines() if "- run:" in line]
    install, *commands = runs
    assert install == "python -m pip install -c constraints.txt ."
    (tmp_path / "specs").mkdir()
    for name in ("vgg.json", "lenet.json"):
        shutil.copy(ROOT / "specs" / name, tmp_path / "specs" / name)
    summary = tmp_path / "summary.md"
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary), "PYTHONPATH": str(ROOT),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for command in commands:
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, (command, done.stderr)
    assert "| features.0 " in summary.read_text()  # VGG's first convolution, named as torchvision names it
