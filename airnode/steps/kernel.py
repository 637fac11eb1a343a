"""Kernel settings Kubernetes needs: br_netfilter and overlay, forwarding and bridge sysctls."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Sysctl
from pyinfra.operations import server

from airnode import sysctl
from airnode.facts import HostProfile
from airnode.steps._common import put_rendered

DEFAULTS: dict = {}
MODULES = ("br_netfilter", "overlay")
SYSCTLS = {
    "net.ipv4.ip_forward": 1,
    "net.bridge.bridge-nf-call-iptables": 1,
    "net.bridge.bridge-nf-call-ip6tables": 1,
}


def set_sysctls(step: str, path: str, wanted: dict) -> None:
    """Persist ``wanted`` in ``path`` (/etc/sysctl.d) and apply whatever differs live."""
    put_rendered("sysctl.conf.j2", path, name=f"Persist sysctls in {path}",
                 step=step, settings=wanted)
    diff = sysctl.changes(host.get_fact(Sysctl, keys=sorted(wanted)), wanted)
    if diff:
        server.shell(name="Set sysctls live: " + ", ".join(f"{k}={v}" for k, v in diff.items()),
                     commands=[sysctl.command(diff)])


@deploy("Kernel modules and sysctls", data_defaults=DEFAULTS)
def kernel():
    put_rendered("modules-load.conf.j2", "/etc/modules-load.d/airnode-kubernetes.conf",
                 name="Load br_netfilter and overlay at boot", step="kernel", modules=MODULES)
    states = host.get_fact(HostProfile).modules
    to_load = [m for m in MODULES if states.get(m) not in ("loaded", "builtin")]
    if to_load:
        server.shell(name="Load modules now: " + ", ".join(to_load),
                     commands=["modprobe -a " + " ".join(shlex.quote(m) for m in to_load)])
    set_sysctls("kernel", "/etc/sysctl.d/90-airnode-kubernetes.conf", SYSCTLS)
