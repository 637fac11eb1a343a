"""The real pyinfra CLI against a @fake host: preflight refuses unsupported hosts before any
change (pyinfra never reaches its execute phase) with one clear message."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from airnode.bundle import trust
from airnode.paths import ROOT

PYINFRA = str(Path(sys.executable).parent / "pyinfra")

DEBIAN = {
    "arch": "x86_64",
    "kernel": "6.1.0-50-amd64",
    "systemd": "yes",
    "mem_kb": "2011588",
    "modules": {"zram": "available", "br_netfilter": "available", "overlay": "loaded"},
    "os": ['PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"', "ID=debian"],
}


def profile(**over) -> list[str]:
    p = {**DEBIAN, **over}
    return (
        [
            f"arch={p['arch']}",
            f"kernel={p['kernel']}",
            f"systemd={p['systemd']}",
            f"mem_kb={p['mem_kb']}",
        ]
        + [f"module:{m} {s}" for m, s in p["modules"].items()]
        + [f"os-release:{line}" for line in p["os"]]
    )


def deploy(inventory: str, env: dict, *extra: str, timeout: int = 120):
    """The real CLI on deploys/node.py over a fake inventory of tests/ (its hosts' answers in
    ``env``), from a cwd outside the project."""
    return subprocess.run(
        [
            PYINFRA,
            "-y",
            "--debug",
            *extra,
            str(ROOT / "tests" / inventory),
            str(ROOT / "deploys/node.py"),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, **env),
        cwd="/",
        timeout=timeout,
    )


def run(host_profile, *extra):
    host = json.dumps({"echo arch=": host_profile, "uname -n": "node1"})
    return deploy("fake_inventory.py", {"AIRNODE_FAKE_HOST": host}, *extra)


@pytest.mark.parametrize(
    "over, message",
    [
        (
            dict(arch="riscv64"),
            "architecture 'riscv64' is not supported (supported: x86_64, aarch64)",
        ),
        (
            dict(os=['PRETTY_NAME="Fedora Linux 41"', "ID=fedora"]),
            "distribution 'Fedora Linux 41' is not Debian/Ubuntu-family",
        ),
        (dict(systemd="no"), "systemd is not the init system"),
        (dict(mem_kb="524288"), "memory 512 MiB is below preflight_min_memory_mb = 1024 MiB"),
        (
            dict(modules={"zram": "missing", "br_netfilter": "available", "overlay": "loaded"}),
            "kernel module 'zram' is not available for kernel 6.1.0-50-amd64",
        ),
        (dict(kernel="5.4.0-150-generic"), "zram_swappiness = 180 needs kernel >= 5.8"),
    ],
)
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


def llama3_shaped_bundle(tmp_path):
    """A bundle holding one GGUF with Llama-3-8B's attention shape (tiny tensors)."""
    from airnode.bundle import manifest
    from tests.ggufs import llama3_8b_shaped

    (tmp_path / "models").mkdir()
    llama3_8b_shaped(tmp_path / "models" / "l3.gguf")
    entry = manifest.entry("model", "llama3:8b", "", "models/l3.gguf", tmp_path, None, "test")
    manifest.write(tmp_path, "amd64", [entry], {}, {})
    return tmp_path


def run_sized(bundle, *extra, df="50000000000"):
    host = json.dumps(
        {
            "echo arch=": profile(mem_kb=str(8 * 1024 * 1024)),
            "uname -n": "node1",
            # one line per path preflight asks about (steps/preflight.py disk_paths)
            "df -P -B1": [f"/dev/vda1 {df} /var/lib"] * 2
            + [f"/dev/vda1 {df} /opt", f"/dev/vda1 {df} /usr", f"/dev/vda1 {df} /var/lib"],
        }
    )
    pin = ("--data", f"bundle_dir={bundle}", "--data", f"bundle_sha256={trust.digest(bundle)}")
    return deploy("fake_inventory.py", {"AIRNODE_FAKE_HOST": host}, *pin, *extra)


def test_a_model_that_cannot_fit_stops_the_run_with_a_table(tmp_path):
    bundle = llama3_shaped_bundle(tmp_path)
    # 8 GiB node - 2 GiB reserve = 6 GiB; 8192 ctx x 4 slots = 4 GiB KV + weights + 512 MiB fits
    # only without the extra slots: ask for 8 slots (8 GiB of KV cache)
    r = run_sized(bundle, "--data", "ollama_context_length=8192", "--data", "ollama_num_parallel=8")
    assert r.returncode != 0
    assert (
        "model(s) do not fit in memory (MemTotal 8192 MiB - preflight_reserved_mb 2048 MiB"
        in r.stderr
    )
    assert "llama3:8b" in r.stderr and "Q8_0" in r.stderr
    assert "context 4096 (-4096 MiB)" in r.stderr and "7 parallel slot(s) (-1024 MiB)" in r.stderr
    assert "Beginning operation run" not in r.stderr


def test_a_setting_under_its_former_name_is_used_with_a_warning(tmp_path):
    """sizing_reserved_mb was renamed preflight_reserved_mb (settings carry their step's
    prefix): an inventory with the old name still works, and is told what to rename."""
    bundle = llama3_shaped_bundle(tmp_path)
    r = run_sized(
        bundle,
        "--data",
        "sizing_reserved_mb=3072",
        "--data",
        "ollama_context_length=8192",
        "--data",
        "ollama_num_parallel=8",
    )
    assert r.returncode != 0
    assert "preflight_reserved_mb 3072 MiB" in r.stderr
    assert "sizing_reserved_mb is now called preflight_reserved_mb" in r.stderr
    assert "unknown setting sizing_reserved_mb" not in r.stderr


def test_the_same_model_fits_with_fewer_slots(tmp_path):
    bundle = llama3_shaped_bundle(tmp_path)
    r = run_sized(
        bundle, "--dry", "--data", "ollama_context_length=8192", "--data", "ollama_num_parallel=4"
    )
    assert "do not fit" not in r.stderr and "cannot become an airnode node" not in r.stderr
    # preflight passed; the next refusal is the containerd step's: this test bundle holds a
    # model only (and that message names what to put in the spec)
    assert "containerd_source = 'debian' but the bundle holds no containerd .deb" in r.stderr


def test_not_enough_disk_for_the_model_stops_the_run_counting_it_once(tmp_path):
    bundle = llama3_shaped_bundle(tmp_path)
    r = run_sized(bundle, df="1000")
    assert r.returncode != 0
    # the bundle holds only the model: it goes straight into the store, once (it was counted
    # twice when it went through the bundle directory: 8.4 KiB + 8.4 KiB)
    assert re.search(
        r"not enough disk on /var/lib \(/dev/vda1\): models 8.4 KiB = 8.4 KiB, 1000 B free",
        r.stderr,
    ), r.stderr[-1500:]
    assert "Beginning operation run" not in r.stderr


def test_an_artifact_missing_from_the_bundle_stops_the_run_naming_it(tmp_path):
    bundle = llama3_shaped_bundle(tmp_path)
    (bundle / "models" / "l3.gguf").unlink()
    r = run_sized(bundle)
    assert r.returncode != 0
    assert "missing: models/l3.gguf (model llama3:8b)" in r.stderr
    assert "nothing was changed" in r.stderr
    assert "Beginning operation run" not in r.stderr


def test_a_new_ollama_version_counts_its_unpacked_files_on_the_disk(tmp_path):
    """Each step says what it writes: here the tarball into the bundle directory, Ollama's
    files unpacked from it (5 MiB from a few KiB) and the model into the store (8.4 KiB), all
    on one filesystem with 1 MiB free, in the order of the steps."""
    import io
    import tarfile

    from airnode.bundle import manifest

    bundle = llama3_shaped_bundle(tmp_path)
    (tmp_path / "ollama").mkdir()
    with tarfile.open(tmp_path / "ollama" / "ollama-linux-amd64.tgz", "w:gz") as tar:
        info = tarfile.TarInfo("bin/ollama")
        info.size, info.mode = 5 << 20, 0o755
        tar.addfile(info, io.BytesIO(bytes(5 << 20)))
    data = manifest.load(bundle)
    tgz = manifest.entry(
        "ollama", "ollama", "v0.13.5", "ollama/ollama-linux-amd64.tgz", bundle, None, "test"
    )
    manifest.write(bundle, "amd64", [*data["artifacts"], tgz], {}, {})
    r = run_sized(bundle, df=str(1 << 20))
    assert r.returncode != 0
    assert re.search(
        r"not enough disk on /var/lib \(/dev/vda1\): bundle files 5.\d KiB \+ "
        r"Ollama v0.13.5 unpacked 5.0 MiB \+ models 8.4 KiB = 5.0 MiB, 1.0 MiB free",
        r.stderr,
    ), r.stderr[-1500:]
    assert "Beginning operation run" not in r.stderr
