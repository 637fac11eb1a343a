"""Lab VM fixtures: a fresh, air-gapped Debian guest per test module, and the real pyinfra CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import testinfra

from airnode import lab
from airnode.bundle import trust
from airnode.paths import ROOT
from tests.conftest import TIMINGS

PYINFRA = str(Path(sys.executable).parent / "pyinfra")

# The suite runs two to four guests of two vCPUs at once on two cores: each guest's vCPUs on
# one host thread cost less CPU than a thread each (airnode.lab.tcg_thread). Set before any VM
# starts; `./dev lab` run by a test inherits it.
os.environ.setdefault("AIRNODE_LAB_TCG_THREAD", "single")


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)

    @property
    def changed(self) -> list[str]:
        """Names of the operations that changed something."""
        return [op["name"] for op in self.json["results"]["operations"] if op["success"]]

    misses: list[str] = field(default_factory=list)  # reads the prefetch batch did not hold

    @property
    def errors(self) -> list[str]:
        return [op["name"] for op in self.json["results"]["operations"] if op["error"]]


def pinned(args) -> list[str]:
    """The deploy's arguments with the bundle pinned, as an operator's inventory pins it
    (bundle_sha256 = what `airnode bundle fetch` printed), unless they pin it themselves."""
    args = list(args)
    dirs = [a.split("=", 1)[1] for a in args if a.startswith("bundle_dir=")]
    if dirs and dirs[-1] and not any(a.startswith("bundle_sha256=") for a in args):
        args += ["--data", f"bundle_sha256={trust.digest(Path(dirs[-1]))}"]
    return args


class Node:
    """A running lab VM, the CLI to deploy on it, and testinfra to look at it."""

    def __init__(self, inst: lab.Instance):
        self.inst = inst
        self.host = testinfra.get_host(f"ssh://{lab.SSH_ALIAS}", ssh_config=str(inst.ssh_config))

    def sh(self, command: str) -> str:
        return self.inst.ssh(command).stdout

    def mark(self) -> None:
        """Start watching for changes (see fingerprint)."""
        self.sh("touch /run/airnode-test.marker; sleep 1")

    def fingerprint(self) -> str:
        """What a run could touch: files changed since mark(), swaps, modules, sysctls, zram."""
        return self.sh(
            "find /etc /var/lib/airnode /usr/local -newer /run/airnode-test.marker "
            "2>/dev/null | sort; cat /proc/swaps; cut -d' ' -f1 /proc/modules | sort; "
            "sysctl vm.swappiness vm.page-cluster net.ipv4.ip_forward; "
            "ls /dev/zram* 2>/dev/null; true"
        )

    def deploy(self, *extra: str, deploy: str = "deploys/node.py", label: str = "") -> Run:
        """The real CLI, as a user types it, from a cwd outside the project."""
        misses = Path(tempfile.mkstemp(prefix="airnode-misses-")[1])
        env = dict(
            os.environ, AIRNODE_LAB_DIR=str(self.inst.dir), AIRNODE_PREFETCH_MISSES=str(misses)
        )
        argv = [
            PYINFRA,
            "-y",
            "--json",
            *pinned(extra),
            str(ROOT / "inventories/lab.py"),
            str(ROOT / deploy),
        ]
        started = time.monotonic()
        p = subprocess.run(argv, capture_output=True, text=True, env=env, cwd="/", timeout=1800)
        run = Run(p.returncode, p.stdout, p.stderr, time.monotonic() - started)
        run.misses = misses.read_text().splitlines()
        misses.unlink()
        if label:
            TIMINGS.append((label, run.seconds))
        return run

    def deploy_killed_at(
        self, fragment: str, *extra: str, delay: float = 0.0, deploy: str = "deploys/node.py"
    ) -> str:
        """The real CLI, SIGKILLed (pyinfra and its SSH connection) when it starts the first
        operation whose name contains ``fragment``: a cut network, a Ctrl-C that does not wait,
        a control machine losing power. Returns what it printed until then."""
        import signal

        env = dict(os.environ, AIRNODE_LAB_DIR=str(self.inst.dir))
        argv = [PYINFRA, "-y", *pinned(extra), str(ROOT / "inventories/lab.py"), str(ROOT / deploy)]
        p = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd="/",
            start_new_session=True,
        )
        seen = []
        killed = False
        for line in p.stderr:
            seen.append(line)
            if "Starting operation:" in line and fragment in line:
                time.sleep(delay)
                os.killpg(p.pid, signal.SIGKILL)
                killed = True
                break
        p.wait(60)
        out = "".join(seen)
        assert killed, f"the run never reached an operation named *{fragment}*:\n{out[-3000:]}"
        return out


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    vmdir = tmp_path_factory.mktemp("lab") / "vm"
    started = time.monotonic()
    lab.ensure_image()
    TIMINGS.append(("lab image (build once, else from cache)", time.monotonic() - started))
    started = time.monotonic()
    inst = lab.start(str(vmdir))
    TIMINGS.append((f"lab VM boot to SSH ({inst.info['accel']})", time.monotonic() - started))
    try:
        yield Node(inst)
    finally:
        inst.stop()


# -- a stand-in NVIDIA GPU on the lab VM ------------------------------------------------------
# No GPU can be had here. Its traces, for the length of a test: an NVIDIA display function on
# PCI (a tmpfs over /sys/bus/pci/devices), the driver's version file (a tmpfs over
# /proc/driver), /dev/nvidia0 and /dev/nvidiactl (mknod), and the nvidia-smi stand-in of
# tests/doubles/ answering for one H200.
GPU_CSV = "0, GPU-1b7e0d2c-8f6a-4a7e-9d4c-3f1f0e2a9b11, NVIDIA H200, 143771, 550.54.14\n"
DRIVER_LINE = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024"
)


def gpu_on_pci(node) -> None:
    """A GPU function (3D controller) and its HD-audio function (not a GPU) on PCI."""
    node.sh(
        "mkdir -p /run/airnode-test && mount -t tmpfs fake-pci "
        "/sys/bus/pci/devices && mkdir /sys/bus/pci/devices/0000:01:00.0 "
        "/sys/bus/pci/devices/0000:01:00.1 && cd /sys/bus/pci/devices && "
        "echo 0x10de > 0000:01:00.0/vendor && echo 0x030200 > 0000:01:00.0/class && "
        "echo 0x10de > 0000:01:00.1/vendor && echo 0x040300 > 0000:01:00.1/class"
    )


def gpu_driver(node) -> None:
    """The driver's traces and the nvidia-smi stand-in (after gpu_on_pci)."""
    smi = (ROOT / "tests/doubles/nvidia-smi/nvidia-smi").read_text()
    node.sh(
        "mount -t tmpfs fake-driver /proc/driver && mkdir /proc/driver/nvidia && "
        f"echo '{DRIVER_LINE}' > /proc/driver/nvidia/version && "
        "mknod -m 666 /dev/nvidia0 c 195 0 && mknod -m 666 /dev/nvidiactl c 195 255 && "
        f"printf '%s' '{GPU_CSV}' > /run/airnode-test/nvidia-smi.csv && "
        f"cat > /usr/bin/nvidia-smi <<'SMI'\n{smi}SMI\nchmod 755 /usr/bin/nvidia-smi"
    )


def no_gpu(node) -> None:
    """Every trace of the stand-in GPU gone."""
    node.sh(
        "umount /proc/driver; umount /sys/bus/pci/devices; "
        "rm -f /dev/nvidia0 /dev/nvidiactl /usr/bin/nvidia-smi /run/airnode-test/nvidia-smi.csv"
        "; true"
    )
    assert "0x10de" not in node.sh("cat /sys/bus/pci/devices/*/vendor")
