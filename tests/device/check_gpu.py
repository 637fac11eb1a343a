#!/usr/bin/env python3
"""Device check (issue 18): preflight's GPU facts on a machine with a real NVIDIA GPU, against
nvidia-smi's own answers to other questions. Run only where one is lent:

    python3 tests/device/check_gpu.py          # exit 0: every fact agrees; 1: a mismatch

Standard library and airnode/gpu.py only (pure); prints one line per check and, when $OUT is
set, writes them to $OUT/check_gpu.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from airnode import gpu


def sh(command: str) -> str:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True).stdout


def smi(query: str) -> list[str]:
    out = sh(f"nvidia-smi --query-gpu={query} --format=csv,noheader,nounits")
    return [line.strip() for line in out.splitlines() if line.strip()]


def bus(pci_id: str) -> str:
    """nvidia-smi's 00000000:01:00.0 and sysfs's 0000:01:00.0 -> 01:00.0 (lowercase)."""
    return pci_id.strip().lower().split(":", 1)[-1] if pci_id.count(":") == 2 else pci_id


def main() -> int:
    raw = sh(gpu.READ)
    facts = gpu.parse(raw.splitlines())
    listed = [line for line in sh("nvidia-smi -L").splitlines() if line.startswith("GPU ")]
    checks = []

    def check(what: str, ours, theirs) -> None:
        checks.append({"check": what, "airnode": ours, "nvidia-smi": theirs, "ok": ours == theirs})

    check("GPUs (nvidia-smi -L)", len(facts.smi), len(listed))
    check(
        "PCI functions",
        sorted(bus(p) for p in facts.pci),
        sorted(bus(p) for p in smi("pci.bus_id")),
    )
    check("driver", facts.driver, (smi("driver_version") or [None])[0])
    check("memory MiB", [g.memory_mib for g in facts.smi], [int(m) for m in smi("memory.total")])
    check("names", [g.name for g in facts.smi], smi("name"))
    check("uuids", [g.uuid for g in facts.smi], smi("uuid"))
    check("device nodes", len(facts.gpu_nodes), len(listed))
    check("preflight accepts one GPU", gpu.problems(1, facts), [])
    check("preflight refuses one too many", len(gpu.problems(len(listed) + 1, facts)), 1)
    for c in checks:
        print(("ok   " if c["ok"] else "FAIL ") + json.dumps(c))
    print("describe:", gpu.describe(facts))
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "check_gpu.json").write_text(
            json.dumps({"read": raw, "checks": checks}, indent=1)
        )
    return 0 if all(c["ok"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
