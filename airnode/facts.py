"""pyinfra facts airnode reads from a host. Parsing is delegated to the pure modules."""

from __future__ import annotations

import shlex

from pyinfra.api import FactBase

from airnode import gpu, preflight, swap
from airnode.preflight import REQUIRED_MODULES


class HostProfile(FactBase):
    """Everything preflight needs, in one remote command: arch, kernel, init, memory,
    module availability, /etc/os-release and NVIDIA GPUs (airnode/gpu.py)."""

    def command(self, modules=REQUIRED_MODULES):
        mods = " ".join(shlex.quote(m) for m in modules)
        return (
            "echo arch=$(uname -m); echo kernel=$(uname -r); "
            "if [ -d /run/systemd/system ]; then echo systemd=yes; else echo systemd=no; fi; "
            "echo mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo); "
            "echo cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null); "
            "echo tool:zstd $(command -v zstd || echo -); "
            f"for m in {mods}; do "
            'if [ -d /sys/module/$m ] && grep -q "^$m " /proc/modules; then s=loaded; '
            "elif [ -d /sys/module/$m ]; then s=builtin; "
            "elif modinfo $m >/dev/null 2>&1; then s=available; else s=missing; fi; "
            "echo module:$m $s; done; "
            "sed 's/^/os-release:/' /etc/os-release 2>/dev/null; "
            f"{gpu.READ}; true"
        )

    def process(self, output):
        return preflight.parse_profile(output)


class ProcSwaps(FactBase):
    """Active swaps, from /proc/swaps."""

    default = list

    def command(self):
        return "cat /proc/swaps"

    def process(self, output):
        return swap.parse_proc_swaps(output)


class NumberedLines(FactBase):
    """A file's lines with their numbers (empty when the file is missing)."""

    default = list

    def command(self, path):
        return f"grep -n '' {shlex.quote(path)} 2>/dev/null || true"

    def process(self, output):
        return swap.parse_numbered(output)


BATCH_MARK = "@@@airnode-batch"


class Batch(FactBase):
    """Several read-only shell commands in one remote command: {command: output}. Each runs in
    a subshell with stderr dropped and its exit status ignored; outputs are split by marker
    lines. A no-op run is mostly reading the node, and every remote command costs a round trip
    and process starts on it: batching is where the time goes back."""

    default = dict

    def command(self, commands):
        return (
            "; ".join(
                f"echo '{BATCH_MARK} {i}'; ( {c} ) 2>/dev/null" for i, c in enumerate(commands)
            )
            + "; true"
        )

    def process(self, output):
        return parse_batch(output)


def parse_batch(lines: list[str]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    current = None
    for line in lines:
        if line.startswith(BATCH_MARK + " ") and line[len(BATCH_MARK) + 1 :].isdigit():
            current = int(line[len(BATCH_MARK) + 1 :])
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return out
