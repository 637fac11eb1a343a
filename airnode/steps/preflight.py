"""Preflight: read the host, check every setting, and refuse before any change."""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import deploy

from airnode import config
from airnode.facts import HostProfile
from airnode.preflight import check_host
from airnode.steps import bundle, containerd, hostname, images, k0s, kernel, swap_off, zram
from airnode.steps._common import AirnodeError

DEFAULTS = {
    # Below this much memory (MiB, MemTotal) k0s + monitoring cannot run.
    "preflight_min_memory_mb": 1024,
}
# Every step's settings, in the order of deploys/node.py.
ALL_DEFAULTS = {**DEFAULTS, **bundle.DEFAULTS, **swap_off.DEFAULTS, **zram.DEFAULTS, **kernel.DEFAULTS,
                **hostname.DEFAULTS, **containerd.DEFAULTS, **images.DEFAULTS,
                **k0s.DEFAULTS}
# Data keys that belong to pyinfra's connectors, not to airnode.
CONNECTOR_PREFIXES = ("ssh_", "winrm_", "docker_", "dockerssh_", "local_", "chroot_",
                      "podman_", "terraform_", "vagrant_", "fake_")


@deploy("Preflight", data_defaults=DEFAULTS)
def preflight():
    values = {key: host.data.get(key, default) for key, default in ALL_DEFAULTS.items()}
    problems = [str(e) for e in config.check_all(values)]

    for key in config.unknown_keys(host.data.dict().keys(), ALL_DEFAULTS, CONNECTOR_PREFIXES):
        logger.warning(f"{host.name}: unknown setting {key}: ignored")

    facts = host.get_fact(HostProfile)
    if not problems:
        problems += check_host(facts, values["preflight_min_memory_mb"],
                               values["zram_swappiness"])
    if problems:
        raise AirnodeError(
            f"{host.name} cannot become an airnode node; nothing was changed:\n  - "
            + "\n  - ".join(problems))
    host.noop(f"{facts.arch}, {facts.os_release.get('PRETTY_NAME', '?')}, "
              f"kernel {facts.kernel}, {facts.memory_mb} MiB: supported")
