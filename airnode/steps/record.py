"""Remember the host as it was before airnode's first change (first run only): the values
teardown puts back. Written once to /var/lib/airnode/before.txt; later runs leave it alone."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import server

from airnode import containerd as containerd_logic
from airnode import record as logic
from airnode.steps._common import remote
from airnode.steps.kernel import MODULES, SYSCTLS

DEFAULTS: dict = {}
# What airnode changes and teardown restores.
RECORDED_SYSCTLS = sorted([*SYSCTLS, "vm.swappiness", "vm.page-cluster"])
RECORDED_MODULES = sorted([*MODULES, "zram"])
PACKAGES = ["containerd", "runc"]
UNITS = sorted([*containerd_logic.CONFLICTING_UNITS])
FILES = ["/etc/containerd/config.toml"]
ZRAM_SYSCTL_FILES = [
    "/etc/sysctl.d/90-airnode-zram.conf",
    "/etc/sysctl.d/90-airnode-kubernetes.conf",
]
# The exact /etc/hosts line the hostname step appended (teardown removes that line only).
HOSTS_LINE = f"{logic.STATE_DIR}/hosts-line"


RECORDED = f"[ -e {logic.BEFORE} ] && echo yes || true"


def reads(b=None) -> list[str]:
    return [RECORDED]


@deploy("Remember the host as it was (first run only)", data_defaults=DEFAULTS)
def record():
    if remote(RECORDED):
        host.noop(f"{logic.BEFORE} already records the host before airnode")
        return
    server.shell(
        name=f"Record sysctls, modules, packages, units and files in {logic.BEFORE}",
        commands=[logic.record_command(RECORDED_SYSCTLS, RECORDED_MODULES, PACKAGES, UNITS, FILES)],
    )
