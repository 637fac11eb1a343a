"""NVIDIA GPUs as preflight reads them (airnode/gpu.py): the facts parsed line by line, what a
request for GPUs is refused with, and the one command that reads them run for real here against
a fake sysfs, procfs and /dev (and the nvidia-smi stand-in)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from airnode import gpu
from airnode.paths import ROOT

SMI_DOUBLE = ROOT / "tests" / "doubles" / "nvidia-smi" / "nvidia-smi"
PROPRIETARY = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024"
)
OPEN = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  555.42.02  Release Build  "
    "(dvs-builder@U16-I3-B03-4-3)  Mon May 13 17:10:33 UTC 2024"
)
TWO = [
    "gpu-pci:0000:17:00.0 0x030200",  # 3D controller (a datacenter GPU)
    "gpu-pci:0000:65:00.0 0x030000",  # VGA (a workstation card)
    "gpu-pci:0000:65:00.1 0x040300",  # its HD-audio function: not a GPU
    "gpu-pci:0000:65:00.2 0x0c0330",  # its USB controller: not a GPU
    f"gpu-driver:{PROPRIETARY}",
    "gpu-dev:nvidia0",
    "gpu-dev:nvidia1",
    "gpu-dev:nvidiactl",
    "gpu-dev:nvidia-uvm",
    "gpu-dev:nvidia-modeset-not-a-node",
    "gpu-smi:0, GPU-1b7e0d2c-8f6a-4a7e-9d4c-3f1f0e2a9b11, NVIDIA H200, 143771, 550.54.14",
    "gpu-smi:1, GPU-2c8f1e3d-9a7b-4b8f-ae5d-4a2a1f3bac22, NVIDIA RTX A4000, 16376, 550.54.14",
]


def test_two_gpus_their_driver_nodes_and_memory_are_read():
    f = gpu.parse(["arch=x86_64", *TWO])
    assert f.pci == ["0000:17:00.0", "0000:65:00.0"]
    assert f.driver == "550.54.14"
    assert f.gpu_nodes == ["nvidia0", "nvidia1"]
    assert [(g.index, g.name, g.memory_mib) for g in f.smi] == [
        (0, "NVIDIA H200", 143771),
        (1, "NVIDIA RTX A4000", 16376),
    ]
    assert f.smi_error == ""
    assert gpu.problems(2, f) == [] and gpu.problems(0, f) == []
    assert gpu.describe(f) == (
        "2 NVIDIA GPU(s) (NVIDIA H200 143771 MiB, NVIDIA RTX A4000 16376 MiB), driver 550.54.14"
    )


def test_the_open_kernel_modules_version_line_is_read_too():
    assert gpu.parse([f"gpu-driver:{OPEN}"]).driver == "555.42.02"


def test_nothing_requested_nothing_checked():
    assert gpu.problems(0, gpu.GpuFacts()) == []
    assert gpu.describe(gpu.GpuFacts()) == ""


@pytest.mark.parametrize(
    "lines, requested, expected",
    [
        ([], 1, "model_server_gpus = 1, but this host has no NVIDIA GPU (no PCI function of "
         "vendor 0x10de with a display class under /sys/bus/pci/devices): set "
         "model_server_gpus = 0 to serve on the CPU"),
        (["gpu-pci:0000:65:00.1 0x040300"], 1, "this host has no NVIDIA GPU"),  # audio only
        (TWO[:4], 1, "model_server_gpus = 1: 2 NVIDIA GPU(s) on PCI (0000:17:00.0, "
         "0000:65:00.0), but no NVIDIA driver is loaded (/proc/driver/nvidia/version is "
         "missing): install the NVIDIA driver for this distribution"),
        (TWO[:5], 1, "model_server_gpus = 1: driver 550.54.14 is loaded, but there is no "
         "/dev/nvidia<N> device node"),
        ([*TWO[:9], "gpu-smi-error:NVIDIA-SMI has failed because it couldn't communicate with "
          "the NVIDIA driver."], 1, "model_server_gpus = 1: nvidia-smi fails on this host "
         "(NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.): "
         "fix the driver first"),
        (TWO, 3, "model_server_gpus = 3, but this host has 2 usable NVIDIA GPU(s) (NVIDIA "
         "H200, NVIDIA RTX A4000): ask for at most 2"),
        (TWO[:9], 3, "this host has 2 usable NVIDIA GPU(s) (nvidia0, nvidia1): ask for at most 2"),
    ],
)  # fmt: skip
def test_a_request_the_host_cannot_meet_is_refused_with_what_to_do(lines, requested, expected):
    problems = gpu.problems(requested, gpu.parse(lines))
    assert len(problems) == 1 and expected in problems[0], problems


def fake_host(tmp_path: Path, pci: dict[str, tuple[str, str]], driver: str | None, nodes: int):
    """A sysfs PCI tree, /proc/driver/nvidia/version and /dev/nvidia* under tmp_path."""
    for bus, (vendor, cls) in pci.items():
        d = tmp_path / "pci" / bus
        d.mkdir(parents=True)
        (d / "vendor").write_text(vendor + "\n")
        (d / "class").write_text(cls + "\n")
    (tmp_path / "pci").mkdir(exist_ok=True)
    if driver is not None:
        (tmp_path / "proc").mkdir()
        (tmp_path / "proc" / "version").write_text(driver + "\nGCC version:  gcc 12.2.0\n")
    (tmp_path / "dev").mkdir()
    for i in range(nodes):
        os.mknod(tmp_path / "dev" / f"nvidia{i}", 0o666 | 0o020000, os.makedev(195, i))
    (tmp_path / "dev" / "nvidia-caps").mkdir()  # a directory, not a device node


def run_read(tmp_path: Path, path: str, gpus_csv: str | None) -> gpu.GpuFacts:
    cmd = (
        gpu.READ.replace("/sys/bus/pci/devices", str(tmp_path / "pci"))
        .replace("/proc/driver/nvidia/version", str(tmp_path / "proc" / "version"))
        .replace("/dev/nvidia", str(tmp_path / "dev" / "nvidia"))
    )
    env = {"PATH": path, "NVIDIA_SMI_DOUBLE_GPUS": str(tmp_path / "gpus.csv")}
    if gpus_csv is not None:
        (tmp_path / "gpus.csv").write_text(gpus_csv)
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, env=env, check=True)
    return gpu.parse(out.stdout.splitlines())


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of /dev/nvidia* stand-ins needs root")
def test_the_read_command_on_a_fake_gpu_host(tmp_path):
    fake_host(
        tmp_path,
        {
            "0000:00:02.0": ("0x8086", "0x030000"),  # an Intel iGPU: not NVIDIA
            "0000:01:00.0": ("0x10de", "0x030000"),
            "0000:01:00.1": ("0x10de", "0x040300"),
        },
        OPEN,
        1,
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").symlink_to(SMI_DOUBLE)
    path = f"{bin_dir}:/usr/bin:/bin"
    line = "0, GPU-1b7e0d2c-8f6a-4a7e-9d4c-3f1f0e2a9b11, NVIDIA RTX A4000, 16376, 555.42.02\n"
    f = run_read(tmp_path, path, line)
    assert f.pci == ["0000:01:00.0"] and f.driver == "555.42.02"
    assert f.devices == ["nvidia0"]
    assert [g.memory_mib for g in f.smi] == [16376] and gpu.problems(1, f) == []
    # nvidia-smi cannot reach the driver: its own message, not a GPU list
    (tmp_path / "gpus.csv").unlink()
    f = run_read(tmp_path, path, None)
    assert f.smi == [] and "couldn't communicate with the NVIDIA driver" in f.smi_error
    assert "nvidia-smi fails on this host" in gpu.problems(1, f)[0]
    # no nvidia-smi at all: the device nodes count
    f = run_read(tmp_path, "/usr/bin:/bin", None)
    assert f.smi == [] and f.smi_error == "" and gpu.problems(1, f) == []
    assert "ask for at most 1" in gpu.problems(2, f)[0]


def test_this_machine_reads_as_having_no_nvidia_gpu():
    out = subprocess.run(["sh", "-c", gpu.READ], capture_output=True, text=True, check=True)
    assert gpu.parse(out.stdout.splitlines()).pci == []  # the CI machine has none


def test_the_nvidia_smi_double_answers_only_airnodes_query(tmp_path):
    bad = subprocess.run([str(SMI_DOUBLE), "-L"], capture_output=True, text=True)
    assert bad.returncode == 2 and "only the query airnode runs" in bad.stderr
    args = gpu.SMI_COMMAND.split()[1:]
    env = {"NVIDIA_SMI_DOUBLE_GPUS": str(tmp_path / "none.csv")}
    r = subprocess.run([str(SMI_DOUBLE), *args], capture_output=True, text=True, env=env)
    assert r.returncode == 9 and r.stdout.startswith("NVIDIA-SMI has failed")


def test_a_request_the_host_meets_passes_without_a_bundle_to_check():
    from airnode.steps.preflight import gpu_problems

    f = gpu.parse(TWO)
    values = {"model_server_gpus": 1, "bundle_dir": "", "model_server": "ollama"}
    assert gpu_problems({**values, "model_server_gpus": 0}, f) == []
    assert gpu_problems(values, f) == []  # nothing is installed without a bundle
    assert gpu_problems(values, gpu.GpuFacts()) == gpu.problems(1, gpu.GpuFacts())
