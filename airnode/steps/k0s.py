"""k0s from the bundle on the system containerd, as the inventory's groups say (airnode.cluster):
a single node (`--single`), the controller (+ worker, etcd) or a worker joining it with a token
the controller makes; metrics-server disabled; re-installed with --force only when its flags
change, restarted only when its config changes; the deploy waits (bounded) until the node is
Ready."""

from __future__ import annotations

import hashlib
import re
import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import python, server

from airnode import cluster, transfer
from airnode import k0s as logic
from airnode.config import Rule, Setting, boolean, integer, one_of
from airnode.render import render
from airnode.sizing import Need
from airnode.steps import bundle
from airnode.steps._common import (
    UNAME_N,
    AirnodeError,
    applied_command,
    applied_on_node,
    declare,
    digest,
    file_is,
    file_state_read,
    put_text,
    record_applied_command,
    remote,
    remote_on,
    role,
    script,
    settings,
)

DEFAULTS = declare(
    "k0s",
    {
        "k0s_disable_components": Setting(
            ["metrics-server"],
            Rule(
                'a list of k0s component names (e.g. ["metrics-server"])',
                lambda v: (
                    isinstance(v, list)
                    and all(isinstance(c, str) and c.replace("-", "").isalnum() for c in v)
                ),
            ),
            "`--disable-components` (kube-prometheus replaces metrics-server)",
        ),
        "k0s_extra_install_flags": Setting(
            [],
            Rule(
                "a list of --flag or --flag=value strings, without --force (airnode decides "
                "when k0s is re-installed)",
                lambda v: (
                    isinstance(v, list)
                    and all(
                        isinstance(f, str)
                        and re.fullmatch(r"--[a-z0-9][a-z0-9-]*(=[\x21-\x7e]*)?", f) is not None
                        and f.split("=", 1)[0] != "--force"
                        for f in v
                    )
                ),
            ),
            "more `k0s install controller` (or `worker`) flags",
        ),
        "k0s_node_address": Setting(
            "",
            Rule(
                "empty, or an IP address of this node (not a loopback or any-address)",
                lambda v: isinstance(v, str) and (not v or not cluster.address_problem("", v)),
            ),
            (
                "the IP the other nodes of a cluster reach this node on: the kubelet's "
                "`--node-ip`, and on the controller k0s.yaml `spec.api.address` (the server of "
                "every join token); empty: the controller's inventory address when that is an "
                "IP, k0s's own pick otherwise"
            ),
        ),
        "k0s_network_provider": Setting(
            "kuberouter",
            one_of("kuberouter", "calico", "custom"),
            "k0s.yaml `spec.network.provider`",
        ),
        "k0s_ready_timeout": Setting(
            600,
            integer(ge=30, le=3600),
            "seconds to wait for the node to become Ready",
        ),
        "k0s_node_ports_on_lan": Setting(
            False,
            boolean(),
            (
                "false: NodePorts (the model API, Open WebUI) answer on 127.0.0.1 only "
                '(kube-proxy\'s `nodePortAddresses: ["127.0.0.0/8"]`), reached through SSH; '
                "true: on every node address, to the LAN (no authentication in front of the "
                "Ollama API)"
            ),
        ),
    },
)


SHA = f"sha256sum {logic.BINARY} 2>/dev/null || true"
STATUS = f"{logic.BINARY} status -o json 2>/dev/null || true"
UNIT_TEXT = f"cat /etc/systemd/system/{logic.UNIT} 2>/dev/null || true"
WORKER_UNIT_TEXT = f"cat /etc/systemd/system/{logic.WORKER_UNIT} 2>/dev/null || true"
JOINED = f"[ -e {cluster.KUBELET_CONF} ] && echo yes || true"
TOKEN_LEFT = f"[ -e {cluster.TOKEN_FILE} ] && echo yes || true"
ADMIN_MODE = f"stat -c %a {logic.ADMIN_KUBECONFIG} 2>/dev/null || true"


def reads(b=None) -> list[str]:
    # a worker's way to its controller is read whatever the bundle (preflight checks it)
    reach = [reach_read(a)] if role() == cluster.WORKER and (a := controller_address()) else []
    if role() != cluster.SINGLE:
        reach.append(ADDRESSES)  # preflight: the node's address must be one of its own
        # preflight: a joined worker's CA against its controller's (a rebuilt controller)
        reach.append(
            cluster.KUBELET_CA_READ if role() == cluster.WORKER else cluster.CLUSTER_CA_READ
        )
    return reach + (
        [
            SHA,
            STATUS,
            UNIT_TEXT,
            WORKER_UNIT_TEXT,
            JOINED,
            TOKEN_LEFT,
            ADMIN_MODE,
            applied_command("k0s"),
            file_state_read(logic.CONFIG),
        ]
        if b
        else []
    )


ADDRESSES = "ip -o addr show 2>/dev/null || true"


def reach_read(address: str) -> str:
    return script("reach.sh", address, "3", *map(str, cluster.CONTROLLER_PORTS))


def controller_address() -> str | None:
    """The address workers reach the controller on (None: no single controller, or it has no
    address other nodes can reach: preflight says which)."""
    ctrls = host.inventory.get_group(cluster.CONTROLLERS, [])
    if len(ctrls) != 1:
        return None
    given = str(ctrls[0].data.get("k0s_node_address") or "")
    return cluster.controller_address(given, inventory_address(ctrls[0]))


def controller_host():
    """The inventory's controller (preflight made sure there is exactly one)."""
    return host.inventory.get_group(cluster.CONTROLLERS)[0]


def inventory_address(h) -> str:
    return str(h.data.get("ssh_hostname") or h.name)


def node_address(r: str | None = None) -> str:
    """The address this node's kubelet and (on a controller) the API advertise ("": k0s picks)."""
    r = r or role()
    given = settings(DEFAULTS)["k0s_node_address"]
    if r == cluster.CONTROLLER:
        return cluster.controller_address(given, inventory_address(host)) or ""
    return given


def disk_needs(b: bundle.Bundle) -> list[Need]:
    """A k0s binary to install (beside the old one until it is renamed over it)."""
    binaries = b.artifacts("k0s")
    have = remote(SHA).split()
    if not binaries or (have and have[0] == binaries[0]["sha256"]):
        return []
    return [Need("/usr/local", binaries[0]["size"], f"k0s {binaries[0]['version']}")]


def node_name(h=None) -> str:
    """A node's name in Kubernetes: its hostname, lowercased (k0sproject/k0s v1.36.3+k0s.2
    pkg/node/nodename.go -> k8s.io/component-helpers nodeutil.GetHostname). ``h``: another
    host of the inventory (read through its own batch when it has been read already)."""
    return (
        remote_on(h, UNAME_N).strip().lower() if h is not None else remote(UNAME_N).strip().lower()
    )


def cluster_nodes() -> list[str]:
    """The names of every node of this host's cluster, this one first ([this node] for a
    single node): the model server has a local volume on each."""
    if role() != cluster.CONTROLLER:
        return [node_name()]
    return [node_name()] + [
        node_name(h) for h in host.inventory.get_group(cluster.WORKERS, []) if h is not host
    ]


def is_worker() -> bool:
    """Kubernetes objects are applied from the controller: a worker skips those steps."""
    return role() == cluster.WORKER


@deploy("k0s", data_defaults=DEFAULTS)
def k0s():
    s = settings(DEFAULTS)
    b = bundle.current("k0s comes from the offline bundle")
    if b is None:
        return
    if not b.artifacts("k0s"):
        raise AirnodeError(f"bundle {b.root} holds no k0s binary: add [k0s] to the spec, re-fetch")
    binary = b.artifacts("k0s")[0]
    src = f"{b.remote}/{binary['file']}"
    r = role()
    unit = logic.unit(r)
    worker = r == cluster.WORKER

    have = remote(SHA).split()
    status = logic.parse_status(remote(STATUS))
    unit_text = remote(WORKER_UNIT_TEXT if worker else UNIT_TEXT)
    address = node_address(r)
    values = dict(
        network_provider=s["k0s_network_provider"],
        pull_policy="Never",
        node_ports_on_lan=s["k0s_node_ports_on_lan"],
        api_address=address,
    )
    flags = logic.install_flags(
        s["k0s_disable_components"], s["k0s_extra_install_flags"], r, address
    )
    # What k0s should be running with; recorded once the node is Ready after a change, so that
    # a run cut between a change and the restart still restarts on the next run. A worker has
    # no k0s.yaml: its configuration comes from the controller.
    text = "" if worker else render("k0s.yaml.j2", **values)
    want = digest(binary["sha256"], text, " ".join(flags))
    joined = not worker or remote(JOINED).strip() == "yes"
    p = logic.plan(
        binary["sha256"],
        have[0] if have else "",
        flags,
        status,
        unit_text,
        not worker and not file_is(logic.CONFIG, hashlib.sha256(text.encode()).hexdigest(), "600"),
        want,
        applied_on_node("k0s"),
        joined=joined,
    )

    ops = []
    if p.install_binary:
        # k0s upgrade: stop, replace, start (the restart below starts it again)
        ops.append(
            server.shell(
                name=f"Install k0s {binary['version']} to {logic.BINARY}",
                commands=[
                    f"if systemctl is-active -q {unit}; then {logic.BINARY} stop; fi",
                    f"install -m 755 {shlex.quote(src)} {logic.BINARY}.new",
                    f"mv {logic.BINARY}.new {logic.BINARY}",
                ],
            )
        )
    kind = "worker" if worker else "controller"
    cmd = f"{logic.BINARY} install {kind} " + " ".join(shlex.quote(f) for f in flags)
    timeout = s["k0s_ready_timeout"]
    joining = worker and p.join
    config = None if worker else put_text(text, logic.CONFIG, name=f"{logic.CONFIG}", mode="600")
    if p.validate and not worker:
        server.shell(
            name="Validate k0s.yaml (k0s config validate)",
            commands=[f"{logic.BINARY} config validate --config {logic.CONFIG}"],
        )
    if p.install == "install" and not joining:
        ops.append(server.shell(name=f"k0s install {kind} " + " ".join(flags), commands=[cmd]))
    elif p.install == "reinstall" and not joining:
        ops.append(
            server.shell(
                name=f"k0s flags changed: install {kind} --force",
                commands=[cmd + " --force", "systemctl daemon-reload"],
            )
        )
    if config is not None:
        ops.append(config)
    woken = list(ops)
    if p.restart and not joining:
        woken.append(
            server.shell(
                name="Restart k0s (binary, flags or config changed)",
                commands=[f"systemctl restart {unit}"],
            )
        )
    if p.start and not joining:
        woken.append(server.shell(name="Start k0s", commands=[f"{logic.BINARY} start"]))
    # One operation, at one line, for every role: the controller waits until its node is
    # Ready; a joining worker waits until the controller's API answers. pyinfra orders the
    # operations of all hosts as one graph in which an operation is the same one on every host
    # that reaches its line: a worker's join comes after this, so after the controller's k0s
    # is up in the same run (operations on other lines would run side by side with the
    # controller's install).
    address = controller_address() if joining else None
    if joining or (p.wait and not worker):
        server.shell(
            name=(
                f"Wait until {controller_host().name}'s API answers (at most {timeout}s)"
                if joining
                else f"Wait until the node is Ready (at most {timeout}s)"
            ),
            commands=(
                [
                    script(
                        "api-wait.sh", address or "", str(cluster.CONTROLLER_PORTS[0]), str(timeout)
                    )
                ]
                if joining
                else [
                    script("k0s-ready-wait.sh", logic.BINARY, unit, str(timeout), node_name()),
                    f"chmod 600 {logic.ADMIN_KUBECONFIG}",
                    # recorded once Ready: a run cut before (or a node that never got Ready)
                    # restarts and waits again next time
                    record_applied_command("k0s", want),
                ]
            ),
            _if=None if joining else (lambda: any(op.did_change() for op in woken)),
        )
    if joining:
        ctrl = controller_host()
        install = {"install": cmd, "reinstall": cmd + " --force && systemctl daemon-reload"}
        python.call(
            name=f"Join {ctrl.name}'s cluster: a worker token (expires in "
            f"{cluster.TOKEN_EXPIRY}, invalidated once joined), k0s install worker "
            + " ".join(flags)
            + f", start, wait until Ready (at most {timeout}s)",
            function=_join,
            controller=ctrl,
            install=install.get(p.install, ""),
            node=node_name(),
            unit=unit,
            timeout=timeout,
            record=record_applied_command("k0s", want),
        )
    elif worker and remote(TOKEN_LEFT).strip() == "yes":
        # a run cut inside the join (between writing the token and its `finally`) left it;
        # k0s reads it only before its first start (pkg/component/worker/utils.go), so a
        # joined worker has no use for it (it expires an hour after it was made anyway)
        server.shell(
            name=f"Remove the join token a cut run left ({cluster.TOKEN_FILE})",
            commands=[f"rm -f {cluster.TOKEN_FILE}"],
        )
    if p.wait and worker and not joining:
        python.call(
            name=f"Wait until the node is Ready on {controller_host().name} (at most {timeout}s)",
            function=_ready,
            controller=controller_host(),
            node=node_name(),
            unit=unit,
            timeout=timeout,
            record=record_applied_command("k0s", want),
            _if=lambda: any(op.did_change() for op in woken),
        )
    mode = remote(ADMIN_MODE).strip()
    if mode and mode != "600" and not worker:
        server.shell(
            name=f"{logic.ADMIN_KUBECONFIG} readable by root only",
            commands=[f"chmod 600 {logic.ADMIN_KUBECONFIG}"],
        )


def worker_volume(s: dict) -> tuple[str, str]:
    """A worker's own model store as a PersistentVolume pinned to it (what it applies through
    the controller: a worker has no admin kubeconfig), and its digest: a replica of the model
    server may run here over this node's models."""
    from airnode.serving import manifests

    text = manifests.store_volume_text(
        node_name(), s["model_server_store_dir"], s["model_server_store_size"]
    )
    return text, digest(text)


# -- a worker joins, at execution time ----------------------------------------------------
# The controller's k0s runs by now (the join comes after the one wait operation both roles
# share, see k0s()), or its API would not have answered. The token
# goes from the controller's stdout to the worker's stdin over their SSH connections: never on a
# command line, in pyinfra's output or in a file anyone but root can read, and gone (the file
# removed, the token invalidated) once the worker has joined - or failed to.


def _transport(h):
    client = getattr(h.connector, "client", None)
    if client is None:
        raise AirnodeError(
            f"{h.name}: joining a worker needs pyinfra's SSH connector (the token travels over "
            "the SSH connections of both nodes)"
        )
    return client.get_transport()


def _sudo(h) -> bool:
    """The host's `_sudo` data, else pyinfra's --sudo (the run's config)."""
    config = getattr(getattr(h, "state", None), "config", None)
    return bool(h.data.get("_sudo") or getattr(config, "SUDO", False))


def _on(h, command: str, what: str, stdin: bytes = b"") -> str:
    rc, out = transfer.run(_transport(h), command, _sudo(h), stdin)
    if rc != 0:
        raise AirnodeError(f"{h.name}: {what} failed (exit {rc}): {out.strip()[-1500:]}")
    return out


def _ready(state, host, controller, node: str, unit: str, timeout: int, record: str) -> None:
    wait = script("k0s-ready-wait.sh", logic.BINARY, f"{unit} on {node}", str(timeout), node)
    _on(controller, wait, f"waiting for node {node} to be Ready")
    _on(host, record, "recording what k0s runs with")


def _join(
    state, host, controller, install: str, node: str, unit: str, timeout: int, record: str
) -> None:
    out = _on(
        controller,
        f"{logic.BINARY} token create --role=worker --expiry={cluster.TOKEN_EXPIRY}",
        "k0s token create --role=worker",
    )
    # stdout and stderr come together: the token is the line that is one base64 word
    # (a warning from sudo or k0s on its own line must not be taken for it)
    words = [w for w in out.split() if re.fullmatch(r"[A-Za-z0-9+/]{40,}={0,2}", w)]
    token = words[-1] if words else ""
    try:
        tid = cluster.token_id(token)
    except ValueError as e:
        raise AirnodeError(f"{controller.name}: k0s token create printed {e}") from None
    try:
        _on(
            host,
            f"umask 077; mkdir -p {cluster.TOKEN_DIR} && chmod 700 {cluster.TOKEN_DIR} && "
            f"cat > {cluster.TOKEN_FILE}",
            f"writing the join token to {cluster.TOKEN_FILE}",
            stdin=token.encode() + b"\n",
        )
        if install:
            _on(host, install, "k0s install worker")
        _on(host, f"systemctl restart {unit}", f"starting {unit}")
        _ready(state, host, controller, node, unit, timeout, record)
    finally:
        # best effort each, one not keeping the other from running: the token expires anyway
        for h, command in (
            (host, f"rm -f {cluster.TOKEN_FILE}"),
            (controller, f"{logic.BINARY} token invalidate {tid}"),
        ):
            try:
                transfer.run(_transport(h), command, _sudo(h))
            except Exception as e:
                host.log(f"{h.name}: `{command}` failed ({e}): the token expires in 1h")


def apply_on_controller(state, host, controller, text: str, apply: str, record: str) -> None:
    """Objects a worker needs in the cluster (its model store's volume), applied on the
    controller with ``text`` on stdin; then recorded on the worker."""
    _on(controller, apply, "applying this node's objects", stdin=text.encode())
    _on(host, record, "recording what was applied")
