"""The docs stay true: the command reference is generated from the CLI, and every
example command of the guides runs, in order, against a real Cinder database."""

from __future__ import annotations

import re
import shlex
from pathlib import Path


from cinder_promote.cli.reference import markdown
from cinder_promote.demo import seed_disaster

DOCS = Path(__file__).resolve().parent.parent / "docs"
GUIDES = ("admin-guide.md", "driver-guide.md")
SETUP = ("cinder-promote demo", "export ")  # the fixture builds the same disaster in a db-synced database


def commands(text: str) -> list[tuple[list[str], int]]:
    """The `sh` blocks' command lines, each with the exit code its `# exit N` comment expects (0 without)."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.strip()
            if not line or line.startswith("#") or line.startswith(SETUP):
                continue
            command, _, comment = line.partition("#")
            expected = re.search(r"exit (\d)", comment)
            found.append((shlex.split(command), int(expected.group(1)) if expected else 0))
    return found


def test_command_reference_is_current():
    assert (DOCS / "commands.md").read_text() == markdown(), (
        "docs/commands.md is stale: python -m cinder_promote.cli.reference > docs/commands.md")


def test_guides_have_examples():
    for guide in GUIDES:
        text = (DOCS / guide).read_text()
        assert commands(text), guide
        assert all(args[0] == "cinder-promote" for args, _ in commands(text))


def test_every_guide_command_runs(cli, cinder_url):
    seed_disaster(cinder_url, volumes=400, groups=20)
    ran = 0
    for guide in GUIDES:
        for args, expected in commands((DOCS / guide).read_text()):
            result = cli(*args[1:], env={"CINDER_PROMOTE_DB_URL": cinder_url})
            assert result.exit_code == expected, f"{guide}: {shlex.join(args)}\n{result.stdout}\n{result.stderr}"
            ran += 1
    assert ran >= 15
