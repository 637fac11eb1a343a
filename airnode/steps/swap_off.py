"""Disk swap off, for good: swapoff, swap units masked, fstab swap lines commented out."""

from __future__ import annotations

import shlex

from pyinfra.api import deploy
from pyinfra.operations import files, server

from airnode import swap
from airnode.steps._common import FSTAB, PROC_SWAPS, remote

DEFAULTS: dict = {}
STATE_DIR = "/var/lib/airnode"
# Units we masked, one per line: teardown unmasks exactly these.
MASKED_LIST = f"{STATE_DIR}/masked-swap-units"


def reads(b=None) -> list[str]:
    return [PROC_SWAPS, FSTAB]


@deploy("Disk swap off", data_defaults=DEFAULTS)
def swap_off():
    active = swap.disk_swaps(swap.parse_proc_swaps(remote(PROC_SWAPS).splitlines()))
    entries = swap.fstab_swaps(swap.parse_numbered(remote(FSTAB).splitlines()))

    if active:
        units = swap.units_to_mask(active)
        files.directory(name="State directory", path=STATE_DIR, mode="755")
        for unit in units:
            # Recorded before masking, so an interrupted run never loses track of a mask.
            files.line(
                name=f"Record {unit} for teardown",
                path=MASKED_LIST,
                line=f"^{unit}$",
                replace=unit,
                escape_regex_characters=False,
            )
        # Masked before swapoff: a run cut in between still leaves the swap off at boot.
        server.shell(
            name="Mask swap units: " + ", ".join(units),
            commands=["systemctl mask " + " ".join(shlex.quote(u) for u in units)],
        )
        server.shell(
            name="Switch disk swap off: " + ", ".join(s.name for s in active),
            commands=["swapoff " + " ".join(shlex.quote(s.name) for s in active)],
        )

    command = swap.comment_out_command(entries)
    if command:
        server.shell(
            name="Comment out fstab swap lines: "
            + ", ".join(f"{e.lineno}: {e.device}" for e in entries),
            commands=[command],
        )
