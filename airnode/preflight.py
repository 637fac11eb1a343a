"""Is this host one airnode supports? Pure: imports nothing from pyinfra.

``check_host`` takes facts read from the host and returns every problem found, so preflight
can refuse an unsupported host with one clear message before anything on it changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from airnode import gpu

SUPPORTED_ARCHES = ("x86_64", "aarch64")
SUPPORTED_FAMILIES = ("debian", "ubuntu")
REQUIRED_MODULES = ("zram", "br_netfilter", "overlay")


@dataclass
class HostFacts:
    arch: str
    os_release: dict[str, str]
    systemd: bool
    memory_mb: int
    kernel: str  # uname -r
    cpus: int = 0  # online CPUs (0: unknown)
    memory_kb: int = 0  # MemTotal
    modules: dict[str, str] = field(
        default_factory=dict
    )  # name -> loaded|builtin|available|missing
    tools: dict[str, str] = field(default_factory=dict)  # command -> path, for those present
    gpus: gpu.GpuFacts = field(default_factory=gpu.GpuFacts)  # NVIDIA GPUs, airnode/gpu.py


def parse_os_release(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            out[key] = value.strip().strip('"').strip("'")
    return out


def parse_module_states(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        fields = line.split()
        if len(fields) == 2:
            out[fields[0]] = fields[1]
    return out


def kernel_version(release: str) -> tuple[int, int]:
    """'6.1.0-50-amd64' -> (6, 1)."""
    nums = []
    for part in release.split("-", 1)[0].split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        nums.append(int(digits) if digits else 0)
    while len(nums) < 2:
        nums.append(0)
    return nums[0], nums[1]


def distro_family(os_release: dict[str, str]) -> str | None:
    ids = [os_release.get("ID", "")] + os_release.get("ID_LIKE", "").split()
    for fam in SUPPORTED_FAMILIES:
        if fam in ids:
            return fam
    return None


def check_host(facts: HostFacts, min_memory_mb: int, swappiness: int) -> list[str]:
    problems = []
    name = facts.os_release.get("PRETTY_NAME") or facts.os_release.get("ID") or "unknown"
    if facts.arch not in SUPPORTED_ARCHES:
        problems.append(
            f"architecture {facts.arch!r} is not supported "
            f"(supported: {', '.join(SUPPORTED_ARCHES)})"
        )
    if distro_family(facts.os_release) is None:
        problems.append(
            f"distribution {name!r} is not Debian/Ubuntu-family "
            "(/etc/os-release ID or ID_LIKE must include debian or ubuntu)"
        )
    if not facts.systemd:
        problems.append("systemd is not the init system (/run/systemd/system is missing)")
    if facts.memory_mb < min_memory_mb:
        problems.append(
            f"memory {facts.memory_mb} MiB is below preflight_min_memory_mb = {min_memory_mb} MiB"
        )
    for mod in REQUIRED_MODULES:
        state = facts.modules.get(mod, "missing")
        if state == "missing":
            problems.append(f"kernel module {mod!r} is not available for kernel {facts.kernel}")
    if swappiness > 100 and kernel_version(facts.kernel) < (5, 8):
        problems.append(
            f"zram_swappiness = {swappiness} needs kernel >= 5.8 "
            f"(this host runs {facts.kernel}; use a value <= 100)"
        )
    return problems


def parse_profile(lines: list[str]) -> HostFacts:
    """Parse the output of the HostProfile fact (see airnode/facts.py)."""
    values: dict[str, str] = {}
    modules: dict[str, str] = {}
    tools: dict[str, str] = {}
    os_lines: list[str] = []
    gpu_lines: list[str] = []
    for line in lines:
        if line.startswith("gpu-"):
            gpu_lines.append(line)
        elif line.startswith("os-release:"):
            os_lines.append(line[len("os-release:") :])
        elif line.startswith("module:"):
            modules.update(parse_module_states([line[len("module:") :]]))
        elif line.startswith("tool:"):
            name, _, path = line[len("tool:") :].partition(" ")
            if path.strip() not in ("", "-"):
                tools[name] = path.strip()
        else:
            key, sep, value = line.partition("=")
            if sep:
                values[key] = value.strip()
    mem_kb = int(values.get("mem_kb") or 0)
    return HostFacts(
        arch=values.get("arch", ""),
        os_release=parse_os_release(os_lines),
        systemd=values.get("systemd") == "yes",
        memory_mb=round(mem_kb / 1024),
        kernel=values.get("kernel", ""),
        cpus=int(values["cpus"]) if values.get("cpus", "").isdigit() else 0,
        memory_kb=mem_kb,
        modules=modules,
        tools=tools,
        gpus=gpu.parse(gpu_lines),
    )
