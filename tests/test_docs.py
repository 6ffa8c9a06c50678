"""The README and docs/ as a reader meets them: every relative link leads to a file, and every
`dcgan` command shown parses with the real parser; `dcgan train` lines resolve their config."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from dcgan.cli import build_parser, main

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
README_LINES = 350  # a newcomer reads it in ten minutes; the rest lives in docs/


def _commands(page: Path) -> list[list[str]]:
    """The `dcgan ...` command lines of the page's bash blocks, continuation lines joined."""
    commands, inside, pending = [], False, ""
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            inside = line.strip() in ("```bash", "```sh", "```console")
            continue
        if not inside:
            continue
        pending += line.rstrip("\\").strip() + " "
        if line.endswith("\\"):
            continue
        text, pending = pending.strip(), ""
        if text.startswith("$ "):
            text = text[2:]
        if text.startswith("dcgan ") and "..." not in text:
            commands.append(shlex.split(text, comments=True)[1:])
    return commands


COMMANDS = [(page, argv) for page in PAGES for argv in _commands(page)]


def test_the_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= README_LINES


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_leads_to_a_file(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.name}: {target}"


def test_the_docs_show_commands() -> None:
    assert len(COMMANDS) > 50  # the extraction finds them (bash blocks, `dcgan ...` lines)


@pytest.mark.parametrize(("page", "argv"), COMMANDS, ids=lambda v: getattr(v, "name", None))
def test_every_command_shown_parses(page: Path, argv: list[str]) -> None:
    try:
        with contextlib.redirect_stderr(io.StringIO()) as err:
            build_parser().parse_args(argv)
    except SystemExit as e:
        pytest.fail(f"{page.name}: dcgan {shlex.join(argv)}: {err.getvalue().strip()} ({e})")


TRAIN = [(p, a) for p, a in COMMANDS if a[0] == "train" and "--resume" not in a]


@pytest.mark.parametrize(("page", "argv"), TRAIN, ids=lambda v: getattr(v, "name", None))
def test_every_train_command_shown_resolves_its_config(
    page: Path, argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --dry-run: a valid config, or an error about a file the reader is to supply."""
    monkeypatch.chdir(ROOT)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as e:
        code = main([*argv, "--dry-run"])
    placeholder = any(word in e.getvalue() for word in argv if not word.startswith("-"))
    assert code == 0 or placeholder, f"{page.name}: dcgan {shlex.join(argv)}: {e.getvalue()}"
