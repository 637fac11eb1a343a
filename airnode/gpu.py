"""NVIDIA GPUs on a node, as preflight reads them. Pure: imports nothing from pyinfra.

Three sources, each read where the kernel or the driver puts it:
  - PCI: every function under /sys/bus/pci/devices whose `vendor` is 0x10de (NVIDIA) and whose
    `class` is a display controller (0x03xxxx: VGA 0x0300, 3D 0x0302; the HD-audio 0x0403 and
    USB 0x0c03 functions of a card are not GPUs). Linux drivers/pci/pci-sysfs.c prints vendor
    as "0x%04x" and class as "0x%06x"; include/linux/pci_ids.h names the classes.
  - the driver: the first line of /proc/driver/nvidia/version ("NVRM version: NVIDIA UNIX
    x86_64 Kernel Module  550.54.14  ..." or, for the open module, "NVRM version: NVIDIA UNIX
    Open Kernel Module for x86_64  555.42.02  Release Build ..."), and its device nodes
    /dev/nvidia<N>, /dev/nvidiactl, /dev/nvidia-uvm.
  - nvidia-smi, when present: `--query-gpu=index,uuid,name,memory.total,driver_version
    --format=csv,noheader,nounits`, one line per GPU, fields separated by ", ", memory in MiB.

The driver stays the host's business (distribution-specific): airnode reads it, never installs it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NVIDIA_VENDOR = "0x10de"
SMI_QUERY = "index,uuid,name,memory.total,driver_version"
SMI_COMMAND = f"nvidia-smi --query-gpu={SMI_QUERY} --format=csv,noheader,nounits"
DRIVER_RE = re.compile(r"Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)")
DEV_RE = re.compile(r"^nvidia(\d+|ctl|-uvm)$")

# One command (POSIX sh) that prints every fact, each line tagged: gpu-pci:, gpu-driver:,
# gpu-dev:, gpu-smi: (and gpu-smi-error: with nvidia-smi's own message when it fails).
READ = (
    "for d in /sys/bus/pci/devices/*; do "
    f'[ "$(cat "$d/vendor" 2>/dev/null)" = {NVIDIA_VENDOR} ] || continue; '
    'echo "gpu-pci:${d##*/} $(cat "$d/class" 2>/dev/null)"; done; '
    "head -n 1 /proc/driver/nvidia/version 2>/dev/null | sed 's/^/gpu-driver:/'; "
    'for n in /dev/nvidia*; do [ -c "$n" ] && echo "gpu-dev:${n##*/}"; done; '
    "if command -v nvidia-smi >/dev/null 2>&1; then "
    f"out=$({SMI_COMMAND} 2>&1) && printf '%s\\n' \"$out\" | sed 's/^/gpu-smi:/' "
    "|| printf '%s\\n' \"$out\" | head -n 3 | sed 's/^/gpu-smi-error:/'; fi"
)


@dataclass(frozen=True)
class Gpu:
    """One GPU as nvidia-smi lists it."""

    index: int
    uuid: str
    name: str
    memory_mib: int
    driver: str


@dataclass
class GpuFacts:
    pci: list[str] = field(default_factory=list)  # bus ids of NVIDIA display functions
    driver: str | None = None  # the loaded kernel module's version
    devices: list[str] = field(default_factory=list)  # nvidia0, nvidiactl, nvidia-uvm, ...
    smi: list[Gpu] = field(default_factory=list)
    smi_error: str = ""  # what nvidia-smi said when it failed ("" if it did not, or is absent)

    @property
    def gpu_nodes(self) -> list[str]:
        return sorted((d for d in self.devices if d[6:].isdigit()), key=lambda d: int(d[6:]))


def is_display_class(pci_class: str) -> bool:
    """0x030000 (VGA), 0x030200 (3D), 0x038000 (other display): a GPU; not audio or USB."""
    try:
        return int(pci_class, 16) >> 16 == 0x03
    except ValueError:
        return False


def parse_smi(line: str) -> Gpu | None:
    parts = [p.strip() for p in line.split(",")]
    if len(parts) != 5 or not parts[0].isdigit() or not parts[3].isdigit():
        return None
    return Gpu(int(parts[0]), parts[1], parts[2], int(parts[3]), parts[4])


def parse(lines: list[str]) -> GpuFacts:
    """The output of READ (other lines are ignored)."""
    f = GpuFacts()
    errors = []
    for line in lines:
        tag, sep, value = line.partition(":")
        if not sep:
            continue
        if tag == "gpu-pci":
            bus, _, cls = value.partition(" ")
            if is_display_class(cls.strip()):
                f.pci.append(bus)
        elif tag == "gpu-driver":
            m = DRIVER_RE.search(value)
            f.driver = m.group(1) if m else value.strip() or None
        elif tag == "gpu-dev" and DEV_RE.match(value.strip()):
            f.devices.append(value.strip())
        elif tag == "gpu-smi":
            gpu = parse_smi(value)
            if gpu is not None:
                f.smi.append(gpu)
            elif value.strip():
                errors.append(value.strip())
        elif tag == "gpu-smi-error" and value.strip():
            errors.append(value.strip())
    f.smi_error = "; ".join(errors)
    return f


def problems(requested: int, f: GpuFacts) -> list[str]:
    """Why this host cannot give the model server `requested` GPUs (model_server_gpus), each
    with what to do; [] when it can, or when none is requested."""
    if requested <= 0:
        return []
    key = f"model_server_gpus = {requested}"
    if not f.pci:
        return [
            f"{key}, but this host has no NVIDIA GPU (no PCI function of vendor "
            f"{NVIDIA_VENDOR} with a display class under /sys/bus/pci/devices): "
            "set model_server_gpus = 0 to serve on the CPU"
        ]
    found = f"{len(f.pci)} NVIDIA GPU(s) on PCI ({', '.join(f.pci)})"
    if f.driver is None:
        return [
            f"{key}: {found}, but no NVIDIA driver is loaded (/proc/driver/nvidia/version is "
            "missing): install the NVIDIA driver for this distribution (the host's business: "
            "e.g. Debian's nvidia-driver, Ubuntu's ubuntu-drivers, or NVIDIA's own packages), "
            "reboot, check that `nvidia-smi` lists the GPUs, then run again"
        ]
    if not f.gpu_nodes:
        return [
            f"{key}: driver {f.driver} is loaded, but there is no /dev/nvidia<N> device node: "
            "load the driver's device nodes (`nvidia-modprobe -u -c=0`, or the "
            "nvidia-persistenced service), then run again"
        ]
    if f.smi_error:
        return [f"{key}: nvidia-smi fails on this host ({f.smi_error}): fix the driver first"]
    count = len(f.smi) if f.smi else len(f.gpu_nodes)
    if requested > count:
        return [
            f"{key}, but this host has {count} usable NVIDIA GPU(s) "
            f"({', '.join(g.name for g in f.smi) or ', '.join(f.gpu_nodes)}): "
            f"ask for at most {count}"
        ]
    return []


def describe(f: GpuFacts) -> str:
    """One line for preflight's report ("" when the host has no NVIDIA GPU)."""
    if not f.pci:
        return ""
    if f.smi:
        gpus = ", ".join(f"{g.name} {g.memory_mib} MiB" for g in f.smi)
        return f"{len(f.smi)} NVIDIA GPU(s) ({gpus}), driver {f.driver or f.smi[0].driver}"
    return f"{len(f.pci)} NVIDIA GPU(s) on PCI, driver {f.driver or 'not loaded'}"
