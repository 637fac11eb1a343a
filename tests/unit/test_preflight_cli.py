"""The real pyinfra CLI against a @fake host: preflight refuses unsupported hosts before any
change (pyinfra never reaches its execute phase) with one clear message."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airnode.paths import ROOT

PYINFRA = str(Path(sys.executable).parent / "pyinfra")

DEBIAN = {
    "arch": "x86_64", "kernel": "6.1.0-50-amd64", "systemd": "yes", "mem_kb": "2011588",
    "modules": {"zram": "available", "br_netfilter": "available", "overlay": "loaded"},
    "os": ['PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"', "ID=debian"],
}


def profile(**over) -> list[str]:
    p = {**DEBIAN, **over}
    return ([f"arch={p['arch']}", f"kernel={p['kernel']}", f"systemd={p['systemd']}",
             f"mem_kb={p['mem_kb']}"]
            + [f"module:{m} {s}" for m, s in p["modules"].items()]
            + [f"os-release:{line}" for line in p["os"]])


def run(host_profile, *extra):
    env = dict(os.environ, AIRNODE_FAKE_HOST=json.dumps({"echo arch=": host_profile,
                                                      "uname -n": "node1"}))
    return subprocess.run(
        [PYINFRA, "-y", "--debug", *extra, str(ROOT / "tests/fake_inventory.py"),
         str(ROOT / "deploys/node.py")],
        capture_output=True, text=True, env=env, cwd="/", timeout=120)


@pytest.mark.parametrize("over, message", [
    (dict(arch="riscv64"), "architecture 'riscv64' is not supported (supported: x86_64, aarch64)"),
    (dict(os=['PRETTY_NAME="Fedora Linux 41"', "ID=fedora"]),
     "distribution 'Fedora Linux 41' is not Debian/Ubuntu-family"),
    (dict(systemd="no"), "systemd is not the init system"),
    (dict(mem_kb="524288"), "memory 512 MiB is below preflight_min_memory_mb = 1024 MiB"),
    (dict(modules={"zram": "missing", "br_netfilter": "available", "overlay": "loaded"}),
     "kernel module 'zram' is not available for kernel 6.1.0-50-amd64"),
    (dict(kernel="5.4.0-150-generic"), "zram_swappiness = 180 needs kernel >= 5.8"),
])
def test_unsupported_host_is_refused_before_any_change(over, message):
    r = run(profile(**over))
    assert r.returncode != 0
    assert "cannot become an airnode node; nothing was changed" in r.stderr
    assert message in r.stderr
    assert "Beginning operation run" not in r.stderr  # stopped while preparing: no change


def test_bad_value_names_key_value_and_allowed():
    r = run(profile(), "--data", "zram_max_mb=-1")
    assert r.returncode != 0
    assert "zram_max_mb = -1 is not allowed: an integer >= 0 (0 means no cap)" in r.stderr
    assert "Beginning operation run" not in r.stderr


def test_typo_in_a_setting_is_warned_about():
    r = run(profile(), "--dry", "--data", "zram_fracton=0.3")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "unknown setting zram_fracton (did you mean zram_fraction?): ignored" in r.stderr


def test_supported_host_gets_through_preflight():
    r = run(profile(), "--dry")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "nothing was changed" not in r.stderr
