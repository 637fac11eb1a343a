"""Every shell script airnode ships or runs (files/*.sh, the lab image's customize script, the
two commands) passes shellcheck; ./dev installs it (Debian's shellcheck)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from airnode.paths import ROOT

SCRIPTS = sorted([*(ROOT / "files").rglob("*.sh"), ROOT / "dev", ROOT / ".ci" / "run"])


def test_there_are_scripts_to_check():
    assert ROOT / "files" / "owned-dirs.sh" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=[str(s.relative_to(ROOT)) for s in SCRIPTS])
def test_shellcheck_is_clean(script):
    exe = shutil.which("shellcheck")
    assert exe, "shellcheck is missing: ./dev test installs it (apt-get install shellcheck)"
    r = subprocess.run([exe, "--external-sources", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
