"""Shared by the steps: settings lookup with validation, errors, uploads of rendered text, and
reads of the node (batched: see `prefetch`)."""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Sequence
from io import StringIO
from typing import Any

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.command import PyinfraCommand
from pyinfra.api.exceptions import PyinfraError
from pyinfra.facts.server import Command
from pyinfra.operations import files, server, systemd

from airnode import config, scripts
from airnode.record import CREATED, record_created_command
from airnode.render import render


class AirnodeError(PyinfraError):
    """Stops the run before any change, with a message meant for the user."""


# Every setting of every step imported so far: {key: Setting}, the step that owns each, and
# the name prefixes each step's settings carry (a prefix names one step: its settings' home).
DECLARED: dict[str, config.Setting] = {}
OWNER: dict[str, str] = {}
PREFIXES: dict[str, tuple[str, ...]] = {}


def declare(
    step: str, table: dict[str, config.Setting], prefixes: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A step's settings, declared once (default, rule, doc): registered for preflight and the
    settings reference; returns {key: default} (the step's DEFAULTS, pyinfra's data_defaults).
    Each name carries the step's name as its prefix, or one of ``prefixes``: the components
    the step deploys (the model server's ``llama_server_``, ``open_webui_``)."""
    PREFIXES[step] = (step, *prefixes)
    for key, setting in table.items():
        if OWNER.get(key, step) != step:
            raise ValueError(f"setting {key} declared by both {OWNER[key]} and {step}")
        DECLARED[key], OWNER[key] = setting, step
    return {key: setting.default for key, setting in table.items()}


def settings(defaults: dict) -> dict:
    """This step's settings: inventory/group data over the step's defaults (a former name of a
    setting still read, config.lookup), validated."""
    values = {key: config.lookup(host.data.get, key, DECLARED[key]) for key in defaults}
    try:
        return config.check(values, DECLARED)
    except config.SettingError as e:
        raise AirnodeError(f"{host.name}: {e}") from None


def setting(key: str) -> Any:
    """Any step's setting, read without importing that step (steps import none after them):
    inventory/group data over its declared default, validated."""
    if key not in DECLARED:
        from airnode.steps import declared

        declared()  # imports every step: each declares its settings
    return settings({key: DECLARED[key].default})[key]


class StreamUploadCommand(PyinfraCommand):
    """A large file to the node through airnode/transfer.py (streamed, resumed, with progress,
    written by ``sudo -n`` itself when the operation runs with ``_sudo``); pyinfra's own upload
    when the connector has no SSH client or sudo needs a password or another user."""

    def __init__(self, src: str, dest: str, label: str):
        super().__init__()
        self.src, self.dest, self.label = src, dest, label

    def __repr__(self) -> str:
        return f"StreamUploadCommand({self.src}, {self.dest})"

    def execute(self, state, host, connector_arguments) -> bool:
        from pathlib import Path

        from pyinfra import logger

        from airnode import transfer

        client = getattr(host.connector, "client", None)
        special = any(
            connector_arguments.get(k)
            for k in ("_sudo_user", "_sudo_password", "_use_sudo_password", "_su_user", "_doas")
        )
        if client is None or special:
            return host.put_file(self.src, self.dest, **connector_arguments)

        def log(line: str) -> None:
            host.log_styled(line, log_func=logger.info)

        try:
            r = transfer.send(
                client.get_transport(),
                Path(self.src),
                self.dest,
                sudo=bool(connector_arguments.get("_sudo")),
                log=log,
                name=self.label,
                ssh=transfer.ssh_argv(host.data, host.name),
            )
        except transfer.TransferError as e:
            host.log_styled(str(e), fg="red", log_func=logger.error)
            return False
        log(transfer.done_line(self.label, r))
        return True


@operation(is_idempotent=False)
def stream_upload(src: str, dest: str, label: str):
    """Upload src to dest (a temporary name: the caller checks and renames it), resuming what
    a cut upload left there. Emit it only when the file is missing: it reads no fact."""
    yield StreamUploadCommand(src, dest, label)


def put_rendered(template: str, dest: str, name: str, mode: str = "644", **values):
    """Upload a file rendered from templates/; changes only when its content differs."""
    return put_text(render(template, **values), dest, name, mode)


# -- operations skipped outright when the node already is as wanted -----------------------
# pyinfra's own operations read the node with a few facts each (content hash, mode, owner,
# parent directory; unit states; links; users): on a no-op run that was most of the time.
# These helpers read the same through the one prefetched batch and add the operation only
# when something differs, so the operation (and its facts) run only when there is work.


def changed(op) -> bool:
    """did_change() of an operation that may not have been added (None: nothing to do)."""
    return op is not None and op.did_change()


def file_state_read(path: str) -> str:
    q = shlex.quote(path)
    return f"sha256sum {q} 2>/dev/null | cut -c1-64; stat -c '%a %U %G' {q} 2>/dev/null"


def file_is(path: str, sha256: str, mode: str, user: str = "root", group: str = "root") -> bool:
    return remote(file_state_read(path)).splitlines() == [sha256, f"{mode} {user} {group}"]


def put_text(text: str, dest: str, name: str, mode: str = "644"):
    if file_is(dest, hashlib.sha256(text.encode()).hexdigest(), mode):
        return None
    return files.put(name=name, src=StringIO(text), dest=dest, mode=mode, user="root", group="root")


def put_local(src, dest: str, name: str, sha256: str, mode: str = "644"):
    if file_is(dest, sha256, mode):
        return None
    return files.put(name=name, src=str(src), dest=dest, mode=mode, user="root", group="root")


def script(name: str, *args: str) -> str:
    """A shell script of files/ run on the node with its arguments, each quoted."""
    return scripts.command(name, *args)


def dir_state_read(path: str) -> str:
    return f"stat -c '%F %a %U %G' {shlex.quote(path)} 2>/dev/null || true"


def directory(path: str, name: str, mode: str, user: str = "root", group: str = "root"):
    if remote(dir_state_read(path)).strip() == f"directory {mode} {user} {group}":
        return None
    return files.directory(name=name, path=path, mode=mode, user=user, group=group)


def owned_dirs(
    paths: list[str],
    name: str,
    mode: str,
    user: str = "root",
    group: str = "root",
    files_to_come: Sequence[str] = (),
):
    """Make directories airnode owns, recording in record.CREATED the ones it creates
    (files/owned-dirs.sh), and the files about to be written into them (recorded first, so a
    run cut half-way still leaves them on the record): teardown removes only what is recorded.
    Always emitted: call it only when something will go into them."""
    cmds = [script("owned-dirs.sh", CREATED, mode, f"{user}:{group}", *paths)]
    if files_to_come:
        cmds.append(record_created_command(list(files_to_come)))
    return server.shell(name=name, commands=cmds)


def owned_directory(path: str, name: str, mode: str, user: str = "root", group: str = "root"):
    """directory(), for a directory a setting names: created (and recorded) when missing."""
    if remote(dir_state_read(path)).strip() == f"directory {mode} {user} {group}":
        return None
    return owned_dirs([path], name, mode, user, group)


def link_read(path: str) -> str:
    return f"readlink {shlex.quote(path)} 2>/dev/null || true"


def link(path: str, target: str, name: str):
    if remote(link_read(path)).strip() == target:
        return None
    return files.link(name=name, path=path, target=target)


def service_read(unit: str) -> str:
    q = shlex.quote(unit)
    return f"systemctl is-active {q} 2>/dev/null; systemctl is-enabled {q} 2>/dev/null; true"


def service_state(unit: str) -> tuple[str, str]:
    """(is-active, is-enabled) of a unit, e.g. ("active", "enabled"), ("inactive", "")."""
    parts = remote(service_read(unit)).split()
    return (parts[0] if parts else "", parts[1] if len(parts) > 1 else "")


def running_and_enabled(unit: str, name: str):
    if service_state(unit) == ("active", "enabled"):
        return None
    return systemd.service(name=name, service=unit, running=True, enabled=True)


def sysctl_read(keys) -> str:
    return "sysctl " + " ".join(shlex.quote(k) for k in sorted(keys)) + " 2>/dev/null; true"


def sysctl_values(keys) -> dict[str, str]:
    out = {}
    for line in remote(sysctl_read(keys)).splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            out[key.strip()] = value.strip()
    return out


# -- the node's basic facts, read through the batch too ---------------------------------
def profile_read() -> str:
    from airnode.facts import HostProfile

    return HostProfile().command()


def profile():
    """arch, kernel, init, memory, modules, tools, os-release (airnode.preflight.HostFacts)."""
    from airnode.preflight import parse_profile

    return parse_profile(remote(profile_read()).splitlines())


PROC_SWAPS = "cat /proc/swaps"
FSTAB = "grep -n '' /etc/fstab 2>/dev/null || true"
HOSTS = "cat /etc/hosts 2>/dev/null || true"
UNAME_N = "uname -n"


# What a service last (re)started with: written right after the restart succeeds. A run cut
# between writing a config and restarting on it leaves the old record, so the next run
# restarts even though the file itself no longer changes.
APPLIED_DIR = "/var/lib/airnode/applied"


def digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def applied_command(name: str) -> str:
    return f"cat {APPLIED_DIR}/{name} 2>/dev/null || true"


def applied_on_node(name: str) -> str:
    return remote(applied_command(name)).strip()


def record_applied_command(name: str, value: str) -> str:
    return f"mkdir -p {APPLIED_DIR} && echo {value} > {APPLIED_DIR}/{name}"


# Reads of the node: `remote(cmd)` is what `host.get_fact(Command, cmd)` gives, but served from
# one batch when preflight has prefetched that exact command (every step lists its reads in a
# `reads()` function). A command not prefetched is simply read on its own: only slower.
_PREFETCHED: dict[str, dict[str, str]] = {}


def prefetch(commands: list[str]) -> None:
    from airnode.facts import Batch

    commands = list(dict.fromkeys(c for c in commands if c))
    got = host.get_fact(Batch, commands=tuple(commands)) or {}
    cache = _PREFETCHED.setdefault(host.name, {})
    for i, command in enumerate(commands):
        if i in got:
            cache[command] = "\n".join(got[i])


def remote(command: str) -> str:
    """Output of a read-only shell command on the node ("" when it printed nothing)."""
    cached = _PREFETCHED.get(host.name, {})
    if command in cached:
        return cached[command]
    if host.name in _PREFETCHED:
        _missed(command)
    return host.get_fact(Command, command) or ""


def role() -> str:
    """This host's role in its cluster, from the inventory groups it is in (airnode.cluster)."""
    from airnode import cluster

    return cluster.role(host.groups)


def cluster_hosts() -> list:
    """The hosts of this host's cluster, this one first: its controller and every worker (a
    single node: itself alone)."""
    from airnode import cluster

    if role() == cluster.SINGLE:
        return [host]
    members = host.inventory.get_group(cluster.CONTROLLERS, []) + host.inventory.get_group(
        cluster.WORKERS, []
    )
    return [host] + [h for h in dict.fromkeys(members) if h is not host]


def remote_on(other, command: str) -> str:
    """remote() on another host of the inventory (the controller reading a worker): from that
    host's batch when it has been read, else read on its own."""
    if other is None or other is host:
        return remote(command)
    cached = _PREFETCHED.get(other.name, {})
    if command in cached:
        return cached[command]
    return other.get_fact(Command, command) or ""


def _missed(command: str) -> None:
    """A read after the batch that the batch did not hold: the prefetch contract (a step's
    reads() lists byte for byte what it passes to remote()) missed, or the read depends on
    what was read (a bundle file whose status changed). Only slower; the lab tests collect
    them in $AIRNODE_PREFETCH_MISSES to hold the no-op re-run to none."""
    path = os.environ.get("AIRNODE_PREFETCH_MISSES")
    if path:
        with open(path, "a") as f:
            f.write(command.replace("\n", " ")[:300] + "\n")
