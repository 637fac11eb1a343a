"""The README is the short front door, every link in the docs leads somewhere, and the settings
reference lists exactly the settings the steps declare."""

from __future__ import annotations

import re

import pytest

from airnode.paths import ROOT
from airnode.steps import settings_table

DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "tests" / "doubles" / "README.md",
]


def test_the_readme_is_at_most_12_kb():
    assert len((ROOT / "README.md").read_bytes()) <= 12 * 1024


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(doc):
    text = doc.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        assert dest.exists(), f"{doc.name}: link to {target}: no such file"
        if anchor:
            headings = re.findall(r"(?m)^#+ (.+)$", dest.read_text())
            slugs = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{doc.name}: link to {target}: no such heading"


def test_the_settings_reference_is_the_table_the_declarations_make():
    """docs/settings.md's table is generated from the steps' declarations (default, rule, doc):
    after adding or changing a setting, `airnode settings --markdown` prints the new one."""
    text = (ROOT / "docs" / "settings.md").read_text()
    begin = text.index("\n", text.index("<!-- generated from the declarations")) + 1
    end = text.index("<!-- end of the generated table -->")
    assert text[begin:end] == settings_table(), "run `airnode settings --markdown`"


def test_the_cli_prints_the_same_table(capsys):
    from airnode.cli import main

    assert main(["settings", "--markdown"]) == 0
    assert capsys.readouterr().out == settings_table()
