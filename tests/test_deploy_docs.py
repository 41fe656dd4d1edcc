"""docs/deploy.md shows the files of deploy/ as they are: each one verbatim, in a code
block of its own, and every placeholder they leave open in its table. The proxy tests
run these files (tests/proxy_support.py), so the page shows what is tested."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.proxy_support import DEPLOY, PLACEHOLDER, REPO, placeholders

DOC = REPO / "docs" / "deploy.md"
FILES = sorted(p for p in DEPLOY.iterdir() if p.is_file())


def code_blocks(markdown: str) -> list[str]:
    """The contents of every fenced code block, each ending with its last newline."""
    return re.findall(r"^```[\w-]*\n(.*?)^```$", markdown, re.MULTILINE | re.DOTALL)


def section(markdown: str, heading: str) -> str:
    start = markdown.index(f"\n{heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else None]


def test_deploy_holds_the_proxies_and_the_unit() -> None:
    assert {p.name for p in FILES} >= {"nginx.conf", "haproxy.cfg", "backend.service"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_the_page_includes_the_file_verbatim(path: Path) -> None:
    assert path.read_text() in code_blocks(DOC.read_text()), (
        f"docs/deploy.md has no code block identical to deploy/{path.name}: copy the file into it"
    )


def test_the_placeholders_table_lists_exactly_the_files_placeholders() -> None:
    used = set().union(*(placeholders(p.read_text()) for p in FILES))
    table = section(DOC.read_text(), "## Placeholders")
    documented = set(PLACEHOLDER.findall(table))
    assert documented == used, f"undocumented: {sorted(used - documented)}; gone: {sorted(documented - used)}"
