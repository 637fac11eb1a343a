"""/etc/hosts: the node's hostname resolves locally; every other line is kept."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import server

from airnode import hosts
from airnode.config import Setting, ipv4_loopback
from airnode.steps._common import HOSTS, UNAME_N, AirnodeError, declare, remote, settings
from airnode.steps.record import HOSTS_LINE

DEFAULTS = declare(
    "hostname",
    {
        "hostname_address": Setting(
            "127.0.1.1",
            ipv4_loopback(),
            (
                "address of the hostname line added to `/etc/hosts` (Debian's convention; the"
                " seed walkthrough used 127.0.0.1)"
            ),
            was=("hosts_address",),
        ),
    },
)


def reads(b=None) -> list[str]:
    return [UNAME_N, HOSTS]


@deploy("Hostname in /etc/hosts", data_defaults=DEFAULTS)
def hostname():
    s = settings(DEFAULTS)
    name = remote(UNAME_N).strip()
    if not name:
        raise AirnodeError(f"{host.name}: `uname -n` printed no hostname")
    lines = remote(HOSTS).splitlines()
    if not hosts.hostname_resolves(lines, name):
        line = hosts.hosts_line(s["hostname_address"], name)
        # Appended; a last line without its newline gets one first. Nothing else is touched.
        # The line is recorded first, so that teardown removes exactly it, even after a cut run.
        server.shell(
            name=f"{name} resolves locally: {line}",
            commands=[
                f"mkdir -p {HOSTS_LINE.rsplit('/', 1)[0]} && "
                f"echo {shlex.quote(line)} > {HOSTS_LINE}",
                '[ -z "$(tail -c1 /etc/hosts)" ] || echo >> /etc/hosts; '
                f"echo {shlex.quote(line)} >> /etc/hosts",
            ],
        )
