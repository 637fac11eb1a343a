"""k0s: the install flags we want, and whether an installed k0s has them. Pure: no pyinfra.

k0s cannot change the flags of an installed instance: we compare the wanted flags with the
``Args`` that ``k0s status -o json`` reports and re-install with ``--force`` when they differ.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

CONFIG = "/etc/k0s/k0s.yaml"
CRI_SOCKET = "remote:unix:///run/containerd/containerd.sock"
UNIT = "k0scontroller.service"
WORKER_UNIT = "k0sworker.service"
BINARY = "/usr/local/bin/k0s"
ADMIN_KUBECONFIG = "/var/lib/k0s/pki/admin.conf"
KUBECTL = f"{BINARY} kubectl"
# every object airnode applies: server-side, as field manager airnode
APPLY = f"{KUBECTL} apply --server-side --field-manager=airnode --force-conflicts"
# Flags that take no value (as `--flag`, or `--flag=true` in the Args k0s reports).
BOOLEAN_FLAGS = {"--single", "--enable-worker", "--no-taints", "--debug", "--force"}
ALIASES = {"-c": "--config"}


def install_flags(
    disable_components: list[str], extra: list[str], role: str = "single", node_address: str = ""
) -> list[str]:
    """`k0s install controller|worker` flags on the system containerd. ``role`` (airnode.
    cluster): single -> `--single` (kine, one node for good); controller -> `--enable-worker
    --no-taints` (etcd; runs workloads and takes workers); worker -> `--token-file` (joins).
    Flags read at k0sproject/k0s v1.36.3+k0s.2 pkg/config/cli.go (GetControllerFlags,
    GetWorkerFlags). ``node_address``: the kubelet's --node-ip (the address the other nodes
    reach this one on), when set."""
    from airnode import cluster

    if role == cluster.WORKER:
        flags = [f"--token-file={cluster.TOKEN_FILE}", f"--cri-socket={CRI_SOCKET}"]
    else:
        flags = ["--single"] if role == cluster.SINGLE else ["--enable-worker", "--no-taints"]
        flags += [f"--config={CONFIG}", f"--cri-socket={CRI_SOCKET}"]
        if disable_components:
            flags.append("--disable-components=" + ",".join(sorted(disable_components)))
    extra = list(extra)
    if node_address:
        # one --kubelet-extra-args: k0s reads it as one string flag, the last one given wins
        # (k0s v1.36.3+k0s.2 pkg/config/cli.go StringVar; cmd/install/util.go cmdFlagsToArgs
        # writes that one value into the unit), so the operator's own kubelet arguments and
        # the node IP share one value; a --node-ip of theirs is kept as they wrote it
        theirs, rest = kubelet_extra_args(extra)
        if not re.search(r"(^|\s)--node-ip(=|\s|$)", theirs):
            theirs = f"--node-ip={node_address} {theirs}".strip()
        flags.append(f"--kubelet-extra-args={theirs}")
        extra = rest
    return flags + extra


def kubelet_extra_args(extra: list[str]) -> tuple[str, list[str]]:
    """The value of the last --kubelet-extra-args among ``extra`` (as `--f=v` or `--f v`),
    and ``extra`` without any of them."""
    value, rest = "", []
    i = 0
    while i < len(extra):
        arg = extra[i]
        i += 1
        if arg == "--kubelet-extra-args" and i < len(extra):
            value = extra[i]
            i += 1
        elif arg.startswith("--kubelet-extra-args="):
            value = arg.partition("=")[2]
        else:
            rest.append(arg)
    return value, rest


def unit(role: str) -> str:
    """The systemd unit `k0s install` writes for a role."""
    from airnode import cluster

    return WORKER_UNIT if role == cluster.WORKER else UNIT


def normalize(args: list[str]) -> set[tuple[str, str]]:
    """Flags as a set of (flag, value): '--x v' == '--x=v', '--b' == '--b=true', '-c' ==
    '--config', comma lists sorted; the binary, subcommands and --force are dropped."""
    out: set[tuple[str, str]] = set()
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-"):
            continue  # /usr/local/bin/k0s, controller, install
        name, eq, value = arg.partition("=")
        name = ALIASES.get(name, name)
        if not eq:
            if name in BOOLEAN_FLAGS:
                value = "true"
            elif i < len(args) and not args[i].startswith("-"):
                value = args[i]
                i += 1
            else:
                value = "true"
        if name == "--force":
            continue
        if "," in value:
            value = ",".join(sorted(value.split(",")))
        out.add((name, value))
    return out


def parse_status(text: str) -> dict | None:
    """`k0s status -o json` -> dict, or None when k0s is not installed/running."""
    text = (text or "").strip()
    if not text.startswith("{"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def needs_reinstall(wanted: list[str], status: dict | None, unit_text: str | None = None) -> bool:
    """Installed with other flags? Asks the running k0s (status .Args); when it is not running
    (crash-looping on bad flags, say), reads the installed unit's ExecStart instead."""
    args = (status or {}).get("Args") or unit_args(unit_text or "")
    if not args:
        return False
    return normalize(args) != normalize(wanted)


def unit_args(unit_text: str) -> list[str] | None:
    """The flags of an installed k0s service, from its ExecStart= line (k0s not running)."""
    import shlex

    for line in (unit_text or "").splitlines():
        if line.startswith("ExecStart="):
            return shlex.split(line[len("ExecStart=") :])
    return None


@dataclass(frozen=True)
class Plan:
    """What the k0s step does this run, in order."""

    install_binary: bool  # stop k0s (if running), replace the binary
    validate: bool  # `k0s config validate` before anything uses the config
    install: str  # "" (installed as wanted), "install" or "reinstall" (--force: flags changed)
    restart: bool  # restart the unit (binary, flags or config changed, or a cut run's restart)
    start: bool  # installed but not running: start it
    wait: bool  # wait until the node is Ready, then record ``want``
    why: str
    join: bool = False  # a worker that has not joined yet: a token, (re)install, start, wait


def plan(
    binary_sha: str,
    have_sha: str,
    flags: list[str],
    status: dict | None,
    unit_text: str,
    config_changes: bool,
    want: str,
    applied: str,
    joined: bool = True,
) -> Plan:
    """``have_sha``: the installed binary's sha256 ("" when none); ``status``: `k0s status -o
    json` parsed (None: not running); ``unit_text``: the installed unit ("" when none);
    ``config_changes``: this run writes k0s.yaml; ``want``/``applied``: what k0s should run
    with and what it last got Ready with (restart.decide)."""
    from airnode import restart

    install_binary = have_sha != binary_sha
    installed = bool(unit_text)
    if not installed:
        install = "install"
    elif needs_reinstall(flags, status, unit_text):
        install = "reinstall"
    else:
        install = ""
    changed = install_binary or bool(install) or config_changes
    d = restart.decide(want, applied, changed=changed)
    start = installed and status is None
    if not joined:
        return Plan(install_binary, False, install, True, False, True, "joins its cluster", True)
    return Plan(
        install_binary=install_binary,
        validate=config_changes or applied != want,
        install=install,
        restart=d.restart,
        start=start,
        wait=changed or d.restart or start,
        why=d.why,
    )
