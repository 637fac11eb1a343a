"""zram swap: a systemd unit sized from the host's memory, plus vm.* tuned for zram."""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import server, systemd

from airnode import restart
from airnode.config import Setting, integer, number, one_of
from airnode.render import render
from airnode.sizing import MIB, zram_size_bytes
from airnode.steps._common import (
    applied_command,
    applied_on_node,
    declare,
    digest,
    file_state_read,
    profile,
    put_rendered,
    record_applied_command,
    running_and_enabled,
    service_read,
    service_state,
    settings,
    sysctl_read,
)
from airnode.steps.kernel import set_sysctls

DEFAULTS = declare(
    "zram",
    {
        "zram_fraction": Setting(
            0.5,
            number(gt=0, le=2),
            "zram device size as a share of MemTotal",
        ),
        "zram_max_mb": Setting(
            8192,
            integer(ge=0, note="0 means no cap"),
            "cap on the device size in MiB; `0` = no cap",
        ),
        "zram_algorithm": Setting(
            "zstd",
            one_of("zstd", "lzo-rle"),
            "compression algorithm",
        ),
        "zram_priority": Setting(
            100,
            integer(ge=0, le=32767),
            "swap priority of the zram device",
        ),
        "zram_swappiness": Setting(
            180,
            integer(ge=0, le=200),
            "`vm.swappiness`; values above 100 need kernel ≥ 5.8 (preflight checks)",
        ),
        "zram_page_cluster": Setting(
            0,
            integer(ge=0, le=10),
            "`vm.page-cluster`; 0 = no swap read-ahead, right for RAM-backed swap",
        ),
    },
)
UNIT = "airnode-zram.service"
UNIT_FILE = f"/etc/systemd/system/{UNIT}"
SYSCTL_FILE = "/etc/sysctl.d/90-airnode-zram.conf"
SYSCTLS = ("vm.swappiness", "vm.page-cluster")


def reads(b=None) -> list[str]:
    return [
        file_state_read(UNIT_FILE),
        file_state_read(SYSCTL_FILE),
        applied_command("zram"),
        service_read(UNIT),
        sysctl_read(SYSCTLS),
    ]


@deploy("zram swap", data_defaults=DEFAULTS)
def zram():
    s = settings(DEFAULTS)
    memory_mb = profile().memory_mb
    size = zram_size_bytes(memory_mb, s["zram_fraction"], s["zram_max_mb"])

    values = dict(
        size_bytes=size,
        size_mib=size // MIB,
        algorithm=s["zram_algorithm"],
        priority=s["zram_priority"],
    )
    unit = put_rendered("airnode-zram.service.j2", UNIT_FILE, name=f"Unit {UNIT}", **values)
    want = digest(render("airnode-zram.service.j2", **values))
    # a new size or algorithm re-creates the device (stop swapoffs and resets it), also after
    # a run cut before the re-create; a stopped device just starts with the new unit
    d = restart.decide(
        want,
        applied_on_node("zram"),
        changed=unit is not None,
        running=service_state(UNIT)[0] == "active",
    )
    if unit is not None or d:
        systemd.daemon_reload(name="Reload systemd (zram unit changed)")
    if d.restart:
        server.shell(
            name="Re-create zram device (unit changed)",
            commands=[f"systemctl restart {UNIT}", record_applied_command("zram", want)],
        )
    running_and_enabled(UNIT, f"{UNIT} running and enabled at boot")
    if d.record and not d.restart:
        server.shell(
            name="Record the zram device's settings",
            commands=[record_applied_command("zram", want)],
        )

    set_sysctls(
        "zram swap",
        SYSCTL_FILE,
        {
            "vm.swappiness": s["zram_swappiness"],
            "vm.page-cluster": s["zram_page_cluster"],
        },
    )
