"""Kernel settings Kubernetes needs: br_netfilter and overlay, forwarding and bridge sysctls."""

from __future__ import annotations

import shlex

from pyinfra.api import deploy
from pyinfra.operations import server

from airnode import sysctl
from airnode.steps._common import file_state_read, profile, put_rendered, sysctl_read, sysctl_values

DEFAULTS: dict = {}
MODULES = ("br_netfilter", "overlay")
SYSCTLS = {
    "net.ipv4.ip_forward": 1,
    "net.bridge.bridge-nf-call-iptables": 1,
    "net.bridge.bridge-nf-call-ip6tables": 1,
}


MODULES_FILE = "/etc/modules-load.d/airnode-kubernetes.conf"
SYSCTL_FILE = "/etc/sysctl.d/90-airnode-kubernetes.conf"


def reads(b=None) -> list[str]:
    return [file_state_read(MODULES_FILE), file_state_read(SYSCTL_FILE), sysctl_read(SYSCTLS)]


def set_sysctls(step: str, path: str, wanted: dict) -> None:
    """Persist ``wanted`` in ``path`` (/etc/sysctl.d) and apply whatever differs live."""
    put_rendered(
        "sysctl.conf.j2", path, name=f"Persist sysctls in {path}", step=step, settings=wanted
    )
    diff = sysctl.changes(sysctl_values(wanted), wanted)
    if diff:
        server.shell(
            name="Set sysctls live: " + ", ".join(f"{k}={v}" for k, v in diff.items()),
            commands=[sysctl.command(diff)],
        )


@deploy("Kernel modules and sysctls", data_defaults=DEFAULTS)
def kernel():
    put_rendered(
        "modules-load.conf.j2",
        MODULES_FILE,
        name="Load br_netfilter and overlay at boot",
        step="kernel",
        modules=MODULES,
    )
    states = profile().modules
    to_load = [m for m in MODULES if states.get(m) not in ("loaded", "builtin")]
    if to_load:
        server.shell(
            name="Load modules now: " + ", ".join(to_load),
            commands=["modprobe -a " + " ".join(shlex.quote(m) for m in to_load)],
        )
    set_sysctls("kernel", SYSCTL_FILE, SYSCTLS)
