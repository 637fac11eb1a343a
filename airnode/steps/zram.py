"""zram swap: a systemd unit sized from the host's memory, plus vm.* tuned for zram."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.systemd import SystemdStatus
from pyinfra.operations import server, systemd

from airnode.facts import HostProfile
from airnode.sizing import MIB, zram_size_bytes
from airnode.render import render
from airnode.steps._common import (applied_on_node, digest, put_rendered, record_applied_command,
                                   settings)
from airnode.steps.kernel import set_sysctls

DEFAULTS = {
    "zram_fraction": 0.5,      # share of MemTotal given to the zram device (0 < f <= 2)
    "zram_max_mb": 8192,       # cap in MiB; 0 = no cap
    "zram_algorithm": "zstd",  # zstd | lzo-rle
    "zram_priority": 100,      # swap priority (above any disk swap)
    "zram_swappiness": 180,    # vm.swappiness; zram likes it high (kernel >= 5.8 takes <= 200)
    "zram_page_cluster": 0,    # vm.page-cluster; 0 = no read-ahead, right for RAM-backed swap
}
UNIT = "airnode-zram.service"


@deploy("zram swap", data_defaults=DEFAULTS)
def zram():
    s = settings(DEFAULTS)
    memory_mb = host.get_fact(HostProfile).memory_mb
    size = zram_size_bytes(memory_mb, s["zram_fraction"], s["zram_max_mb"])

    values = dict(size_bytes=size, size_mib=size // MIB, algorithm=s["zram_algorithm"],
                  priority=s["zram_priority"])
    unit = put_rendered("airnode-zram.service.j2", f"/etc/systemd/system/{UNIT}",
                        name=f"Unit {UNIT}", **values)
    want = digest(render("airnode-zram.service.j2", **values))
    stale = applied_on_node("zram") != want  # also after a run cut before the re-create
    systemd.daemon_reload(name="Reload systemd (zram unit changed)",
                          _if=lambda: unit.did_change() or stale)
    active = host.get_fact(SystemdStatus).get(UNIT)
    if active and stale:
        # A new size or algorithm re-creates the device: stop swapoffs and resets it.
        server.shell(name="Re-create zram device (unit changed)",
                     commands=[f"systemctl restart {UNIT}", record_applied_command("zram", want)])
    systemd.service(name=f"{UNIT} running and enabled at boot", service=UNIT,
                    running=True, enabled=True)
    if stale and not active:
        server.shell(name="Record the zram device's settings",
                     commands=[record_applied_command("zram", want)])

    set_sysctls("zram swap", "/etc/sysctl.d/90-airnode-zram.conf", {
        "vm.swappiness": s["zram_swappiness"],
        "vm.page-cluster": s["zram_page_cluster"],
    })
