"""End to end on a real, air-gapped Debian guest: deploys/node.py host preparation.

The guest starts with a live disk swapfile; the real CLI runs the deploy; testinfra checks the
result live and after a reboot; the second run must change nothing.
"""

from __future__ import annotations

import json

import pytest

from airnode.sizing import zram_size_bytes
from airnode.swap import FSTAB_MARKER
from tests.conftest import TIMINGS
from tests.lab.conftest import gpu_driver, gpu_on_pci, no_gpu

pytestmark = pytest.mark.lab

SWAP_LINE = "/swapfile\tnone\tswap\tsw\t0\t0"
# Lines the deploy must leave byte for byte: odd spacing, comments, trailing blanks.
OTHER_LINES = "# data disk, kept as is\ntmpfs  /mnt/scratch   tmpfs  noauto,size=16m 0 0   \n"
K8S_SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
)


@pytest.fixture(scope="module")
def prepared(node):
    node.sh(
        "dd if=/dev/zero of=/swapfile bs=1M count=64 status=none && chmod 600 /swapfile"
        " && mkswap -q /swapfile && swapon /swapfile"
    )
    node.sh(f"printf '%s\\n%s' '{SWAP_LINE}' '{OTHER_LINES}' >> /etc/fstab")
    assert "/swapfile" in node.sh("cat /proc/swaps")
    fstab = node.host.file("/etc/fstab").content_string
    mem_kb = int(node.sh("awk '/^MemTotal:/ {print $2}' /proc/meminfo"))
    return {"fstab": fstab, "memory_mb": round(mem_kb / 1024)}


def test_bad_setting_stops_before_any_change(node, prepared):
    node.mark()
    before = node.fingerprint()
    run = node.deploy(
        "--data",
        "zram_algorithm=lz5",
        "--data",
        "zram_fraction=0",
        label="deploy with bad settings (refused)",
    )
    assert run.rc != 0
    assert "zram_algorithm = 'lz5' is not allowed: one of zstd, lzo-rle" in run.stderr
    assert "zram_fraction = 0 is not allowed: a number > 0 and <= 2" in run.stderr
    assert "nothing was changed" in run.stderr
    assert node.fingerprint() == before


def refused_gpus(node, label):
    node.mark()
    before = node.fingerprint()
    run = node.deploy("--data", "model_server_gpus=1", label=label)
    assert run.rc != 0 and "nothing was changed" in run.stderr, run.stderr[-2000:]
    assert node.fingerprint() == before
    return run.stderr


def test_a_gpu_request_is_checked_against_the_hosts_gpus_before_any_change(node, prepared):
    """The VM has no GPU; then a GPU stand-in: a PCI function of NVIDIA's (a tmpfs over
    /sys/bus/pci/devices), then its driver (/proc/driver/nvidia/version on a tmpfs over
    /proc/driver, /dev/nvidia0, the nvidia-smi stand-in of tests/doubles/)."""
    err = refused_gpus(node, "deploy: model_server_gpus=1 on a host without a GPU (refused)")
    assert "model_server_gpus = 1, but this host has no NVIDIA GPU" in err
    try:
        gpu_on_pci(node)
        err = refused_gpus(node, "deploy: model_server_gpus=1, a GPU without its driver (refused)")
        assert (
            "model_server_gpus = 1: 1 NVIDIA GPU(s) on PCI (0000:01:00.0), but no NVIDIA driver "
            "is loaded" in err
        )
        gpu_driver(node)
        # the host now meets the request: preflight passes and names the GPU (a dry run:
        # nothing changes, and the next test's first run stays the first)
        node.mark()
        before = node.fingerprint()
        run = node.deploy(
            "--dry", "--data", "model_server_gpus=1", label="deploy --dry: a (stand-in) GPU"
        )
        assert run.rc == 0, run.stderr[-2000:]
        planned = [op["name"] for op in json.loads(run.stdout)["plan"]]
        assert planned[0].startswith("Remember the host as it was"), planned[:3]
        assert node.fingerprint() == before
    finally:
        no_gpu(node)


def test_first_run_converges(node, prepared):
    run = node.deploy(label="deploy #1 (fresh guest)")
    assert run.rc == 0, run.stderr[-3000:]
    assert not run.errors
    assert len(run.changed) >= 8


def test_second_run_reports_zero_changes(node, prepared):
    run = node.deploy(label="deploy #2 (no-op re-run)")
    assert run.rc == 0, run.stderr[-3000:]
    assert run.changed == []
    assert run.json["results"]["totals"]["success"] == 0


def check_node(node, prepared, algorithm="zstd", fraction=0.5):
    h = node.host
    swaps = h.file("/proc/swaps").content_string.splitlines()[1:]
    if [s.split()[0] for s in swaps] != ["/dev/zram0"]:
        unit = h.run(
            "systemctl status --no-pager airnode-zram.service;"
            " journalctl -b --no-pager -u airnode-zram.service | tail -30"
        )
        pytest.fail(f"swaps: {swaps}; airnode-zram.service:\n{unit.stdout}{unit.stderr}")
    assert swaps[0].split()[4] == "100"
    size, alg = h.check_output(
        "zramctl --bytes --noheadings --output DISKSIZE,ALGORITHM /dev/zram0"
    ).split()
    assert int(size) == zram_size_bytes(prepared["memory_mb"], fraction, 8192)
    assert alg == algorithm
    unit = h.service("airnode-zram.service")
    assert unit.is_running and unit.is_enabled
    assert h.run("systemctl is-enabled swapfile.swap").stdout.strip() == "masked"
    modules = h.check_output("cut -d' ' -f1 /proc/modules").split()
    assert "br_netfilter" in modules and "overlay" in modules and "zram" in modules
    for key in K8S_SYSCTLS:
        assert h.sysctl(key) == 1, key
    assert h.sysctl("vm.swappiness") == 180 and h.sysctl("vm.page-cluster") == 0
    hostname = h.check_output("hostname")
    assert h.run(f"getent hosts {hostname}").rc == 0
    assert f"127.0.1.1 {hostname}" in h.file("/etc/hosts").content_string.splitlines()
    # fstab: the swap line commented out with our marker, every other line byte-identical.
    expected = prepared["fstab"].replace(SWAP_LINE, FSTAB_MARKER + SWAP_LINE, 1)
    assert h.file("/etc/fstab").content_string == expected


def test_node_state_live(node, prepared):
    check_node(node, prepared)


def test_node_state_after_reboot(node, prepared):
    TIMINGS.append(("guest reboot", node.inst.reboot()))
    check_node(node, prepared)
    run = node.deploy(label="deploy after reboot (no-op)")
    assert run.rc == 0 and run.changed == []


def test_changed_size_and_algorithm_recreate_the_device(node, prepared):
    args = ("--data", "zram_algorithm=lzo-rle", "--data", "zram_fraction=0.25")
    run = node.deploy(*args, label="deploy with new zram size and algorithm")
    assert run.rc == 0, run.stderr[-3000:]
    assert "zram swap | Re-create zram device (unit changed)" in run.changed
    check_node(node, prepared, algorithm="lzo-rle", fraction=0.25)
    again = node.deploy(*args)
    assert again.rc == 0 and again.changed == []
