"""The README is the short front door, every link in the docs leads somewhere, and the settings
reference lists exactly the settings the steps declare."""

from __future__ import annotations

import re

import pytest

from airnode.paths import ROOT
from airnode.steps.preflight import ALL_DEFAULTS, TEARDOWN_DEFAULTS

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


def test_the_settings_reference_lists_every_setting_and_no_other():
    text = (ROOT / "docs" / "settings.md").read_text()
    rows = set(re.findall(r"(?m)^\| `([a-z0-9_]+)` \|", text))
    declared = set(ALL_DEFAULTS) | set(TEARDOWN_DEFAULTS)
    assert sorted(declared - rows) == [], "declared but not in docs/settings.md"
    assert sorted(rows - declared) == [], "in docs/settings.md but declared nowhere"
