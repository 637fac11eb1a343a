"""Taking a worker out of its cluster (deploys/remove_node.py): checked before any change; then
the controller's part: the node drained, its replica started again on a node that stays, its
model store volume and its Node object deleted. The node itself then goes through the
teardown's steps (its model store is kept). airnode/removal.py decides; this emits."""

from __future__ import annotations

import shlex

from pyinfra import host, state
from pyinfra.api import deploy
from pyinfra.operations import server

from airnode import cluster, removal
from airnode.config import Setting, pattern
from airnode.steps._common import AirnodeError, declare, remote, script, setting, settings
from airnode.steps.k0s import node_name
from airnode.steps.model_server import STATEFULSET
from airnode.steps.monitoring import KUBECTL
from airnode.steps.teardown import installed_as_worker

DEFAULTS = declare(
    "remove_node",
    {
        "remove_node": Setting(
            "",
            # only compared with the inventory's host names: it never reaches a shell
            pattern(r"(\S{1,253})?", "empty, or a host of the inventory's workers group"),
            "remove_node only: the worker deploys/remove_node.py takes out of its cluster",
        ),
    },
)

# how long the drain and the moved replica may take (kubectl's own --timeout)
DRAIN_TIMEOUT = 300


def reads(b=None) -> list[str]:
    return []  # not a step of deploys/node.py: nothing for its preflight to prefetch


def target() -> str:
    return settings(DEFAULTS)["remove_node"]


def leaving() -> bool:
    """This host is the worker being removed: the teardown's steps run here, nowhere else."""
    return host.name == target()


def controller_done() -> bool:
    """Each teardown step's `_if` on the leaving worker, asked at execution time: the
    controller's part went through. pyinfra drops a host whose operation failed and goes on
    with the others (with -y and no --fail-percent): a worker whose drain was refused, or whose
    replica did not start elsewhere, must not be torn down (its replica would be lost)."""
    ctrl = _controller()
    return ctrl is not None and ctrl.name not in {h.name for h in state.failed_hosts}


def _controller():
    """The inventory's one controller (None: none or several), through the run's state: read
    while the deploy file runs for a host and again at execution time (controller_done)."""
    ctrls = state.inventory.get_group(cluster.CONTROLLERS, [])
    return ctrls[0] if len(ctrls) == 1 else None


def _target_host():
    name = target()
    return next((h for h in host.inventory.get_group(cluster.WORKERS, []) if h.name == name), None)


def _reads(ns: str, node: str) -> dict[str, str]:
    q = shlex.quote
    return {
        "node": f"get node {q(node)} -o name",
        "volumes": f"get pv -l {removal.PART_OF} -o json",
        "claims": f"-n {q(ns)} get pvc -o json",
    }


def _read(args: str, absent_ok: bool = False) -> str | None:
    """A kubectl read on the controller, at plan time: a failure other than NotFound stops the
    run before any change (an API that does not answer must not read as "nothing there")."""
    try:
        return removal.answer(
            remote(removal.read_command(KUBECTL, args)), args, absent_ok=absent_ok
        )
    except removal.ReadFailed as e:
        raise AirnodeError(
            f"{host.name}: nothing was changed, the removal needs the cluster's API: {e} "
            "(is k0s running on the controller?)"
        ) from None


def _running(ns: str) -> int:
    """The replicas the model server's StatefulSet runs now (0: none)."""
    args = f"-n {shlex.quote(ns)} get statefulset {STATEFULSET} -o jsonpath='{{.spec.replicas}}'"
    got = _read(args, absent_ok=True) or ""
    return int(got) if got.strip().isdigit() else 0


@deploy("Check the removal", data_defaults=DEFAULTS)
def check_removal():
    """Before any change, on every host: the setting, the inventory's shape, and (on the
    controller) the replicas the cluster runs against the nodes that stay."""
    name = target()
    ctrl = _controller()
    workers = [h.name for h in host.inventory.get_group(cluster.WORKERS, [])]
    replicas = setting("model_server_replicas")
    running = 0
    # `host` is pyinfra's context proxy: compare names, not objects
    if ctrl is not None and host.name == ctrl.name and name in workers:
        running = _running(setting("model_server_namespace"))
    problems = removal.problems(name, ctrl.name if ctrl else None, workers, replicas, running)
    if problems:
        raise AirnodeError(
            f"{host.name}: nothing was changed, the removal is refused:\n  - "
            + "\n  - ".join(problems)
        )
    if host.name == name and not installed_as_worker():
        raise AirnodeError(
            f"{host.name}: nothing was changed: k0s here was installed as a controller or a "
            "single node, not as a worker of this cluster, so there is no worker to take out; "
            f"`{cluster.TEARDOWN.format(host=name)}` removes what airnode installed"
        )


@deploy("Take the node out of its cluster", data_defaults=DEFAULTS)
def release_node():
    """On the controller: drain, claims, volumes, the Node object, then the rollout; on the
    other hosts nothing."""
    name = target()
    ctrl = _controller()
    if ctrl is None or host.name != ctrl.name:
        host.noop(
            f"{name} leaves: the controller takes it out"
            if host.name == name
            else f"stays: nothing changes here while {name} leaves"
        )
        return
    ns = setting("model_server_namespace")
    node = node_name(_target_host())
    r = _reads(ns, node)
    try:
        p = removal.plan(
            node,
            _read(r["node"], absent_ok=True) is not None,
            removal.parse_volumes(_read(r["volumes"]) or ""),
            removal.parse_claims(_read(r["claims"]) or ""),
            _running(ns),
        )
    except (ValueError, KeyError) as e:
        raise AirnodeError(
            f"{host.name}: the cluster's volumes and claims did not parse: {e}"
        ) from None
    if p.problem:
        raise AirnodeError(f"{host.name}: nothing was changed, the removal is refused: {p.problem}")
    if not p:
        host.noop(f"{node} is not in the cluster (no Node, no model store volume)")
        return
    emit(p, ns, node)


def emit(p: removal.Plan, ns: str, node: str) -> None:
    q = shlex.quote
    if p.drain:
        # no --force: a pod no controller manages would be lost (airnode did not make it)
        server.shell(
            name=f"Drain {node}",
            commands=[
                f"{KUBECTL} drain --ignore-daemonsets --delete-emptydir-data "
                f"--timeout={DRAIN_TIMEOUT}s {q(node)}"
            ],
        )
    if p.delete_claims:
        server.shell(
            name=f"Delete the claims on {node}'s model store ({', '.join(p.delete_claims)})",
            commands=[
                f"{KUBECTL} -n {q(ns)} delete pvc --timeout=120s "
                + " ".join(q(c) for c in p.delete_claims)
            ],
        )
    if p.release:
        remove_ref = q('[{"op":"remove","path":"/spec/claimRef"}]')
        server.shell(
            name=f"Free the model store(s) {', '.join(p.release)} for the moved replica",
            commands=[f"{KUBECTL} patch pv {q(v)} --type json -p {remove_ref}" for v in p.release],
        )
    if p.delete_volumes:
        server.shell(
            name=f"Delete {node}'s model store volume (its data stays on {node})",
            commands=[
                f"{KUBECTL} delete pv --timeout=120s " + " ".join(q(v) for v in p.delete_volumes)
            ],
        )
    if p.delete_node:
        server.shell(name=f"Delete node {node}", commands=[f"{KUBECTL} delete node {q(node)}"])
    if p.moves:
        server.shell(
            name=f"Wait for replica {', '.join(map(str, p.moves))} on a node that stays",
            commands=[
                script(
                    "rollout-wait.sh",
                    KUBECTL,
                    ns,
                    STATEFULSET,
                    str(DRAIN_TIMEOUT),
                    f"{STATEFULSET}-{p.moves[0]}",
                    "the removal's wait for the moved replica",
                )
            ],
        )
