"""Sizing computed from the host's real memory. Pure: imports nothing from pyinfra."""

from __future__ import annotations

MIB = 1024 * 1024


def zram_size_bytes(memory_mb: int, fraction: float, max_mb: int) -> int:
    """Size of the zram swap device.

    ``memory_mb`` is the host's total memory in MiB (``MemTotal``, as pyinfra's Memory fact
    reports it); the device gets ``fraction`` of it, rounded down to whole MiB, capped at
    ``max_mb`` MiB unless ``max_mb`` is 0. At least 1 MiB.
    """
    if memory_mb <= 0:
        raise ValueError(f"memory_mb must be positive, got {memory_mb}")
    size_mb = int(memory_mb * fraction)
    if max_mb:
        size_mb = min(size_mb, max_mb)
    return max(size_mb, 1) * MIB
