"""Taking a worker out of its cluster (deploys/remove_node.py): what the inventory allows, and
what the controller does, decided from what the cluster runs. Pure: no pyinfra.

The model (k0sproject/k0sctl v0.32.2 phase/reset_workers.go ResetWorkers.Run: drain, delete
the Node, then reset k0s on the host; kubespray's remove-node.yml the same for Ansible users)
with one thing more: the model server's replicas live on local volumes pinned to their node, so
a replica on the node that leaves cannot follow it. Its claim is deleted once the node is
drained; the StatefulSet makes the claim anew for the pod left Pending, and the scheduler binds
it to a free model store on a node that stays (the models are seeded on every node: nothing is
lost; kubernetes v1.34 pkg/controller/statefulset/stateful_set_control.go processReplica:
`isPending` -> createMissingPersistentVolumeClaims, since v1.27, kubernetes#113270). A claim
whose pod is no longer bound to a node is not protected (pvcprotection podUsesPVC checks
only pods with spec.nodeName), which is why the drain comes first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

# the names airnode gives: a node's model store volume (templates/model-store-volume.yaml.j2)
# and the StatefulSet's claims (volumeClaimTemplates `models` of StatefulSet `model-server`:
# <template>-<statefulset>-<ordinal>, kubernetes pkg/controller/statefulset/stateful_set_utils.go
# getPersistentVolumeClaimName)
VOLUME_PREFIX = "airnode-models-"
CLAIM_PREFIX = "models-model-server-"
PART_OF = "app.kubernetes.io/part-of=airnode"
SETTING = "remove_node"


@dataclass(frozen=True)
class Volume:
    """An airnode model store volume: the node its nodeAffinity pins it to, the claim its
    claimRef names ("" none) and its phase (Available, Bound, Released)."""

    name: str
    node: str
    claim: str
    phase: str


@dataclass(frozen=True)
class Claim:
    """A model server claim and the volume it is bound to ("" none yet)."""

    name: str
    volume: str


def volume_node(pv: dict) -> str:
    """The one node a local volume's required nodeAffinity names ("" none or several)."""
    terms = (
        pv.get("spec", {}).get("nodeAffinity", {}).get("required", {}).get("nodeSelectorTerms")
        or []
    )
    names = [
        v
        for t in terms
        for e in t.get("matchExpressions") or []
        if e.get("key") == "kubernetes.io/hostname" and e.get("operator") == "In"
        for v in e.get("values") or []
    ]
    return names[0] if len(names) == 1 else ""


def parse_volumes(text: str) -> list[Volume]:
    """`kubectl get pv -l app.kubernetes.io/part-of=airnode -o json` ("": none)."""
    out = []
    for pv in json.loads(text).get("items", []) if text.strip() else []:
        name = pv["metadata"]["name"]
        if not name.startswith(VOLUME_PREFIX):
            continue
        out.append(
            Volume(
                name,
                volume_node(pv),
                (pv["spec"].get("claimRef") or {}).get("name", ""),
                pv.get("status", {}).get("phase", ""),
            )
        )
    return out


def parse_claims(text: str) -> list[Claim]:
    """`kubectl -n NS get pvc -o json` ("": none): the model server's claims."""
    out = []
    for pvc in json.loads(text).get("items", []) if text.strip() else []:
        name = pvc["metadata"]["name"]
        if ordinal(name) is not None:
            out.append(Claim(name, pvc.get("spec", {}).get("volumeName", "")))
    return out


def read_command(kubectl: str, args: str) -> str:
    """A kubectl read on the controller that says how it ended, on its first line (a fact's
    command must exit 0): `ok` then the output, or `failed` then kubectl's last error lines."""
    k = f"{kubectl} {args}"
    return (
        f"if out=$({k} 2>/dev/null); then echo ok; printf '%s\\n' \"$out\"; "
        f"else echo failed; {k} 2>&1 >/dev/null | tail -n 5; fi"
    )


class ReadFailed(ValueError):
    pass


def answer(text: str, what: str, absent_ok: bool = False) -> str | None:
    """read_command's output: what kubectl printed; None when the object does not exist and
    ``absent_ok``; ReadFailed for anything else (the API down: nothing may be guessed)."""
    first, _, rest = text.partition("\n")
    if first.strip() == "ok":
        return rest
    if absent_ok and "(NotFound)" in rest:
        return None
    raise ReadFailed(f"`kubectl {what}` failed: {' '.join(rest.split())[-600:] or 'no answer'}")


def ordinal(claim: str) -> int | None:
    m = re.fullmatch(re.escape(CLAIM_PREFIX) + r"(0|[1-9][0-9]*)", claim)
    return int(m.group(1)) if m else None


def problems(
    node: str, controller: str | None, workers: Iterable[str], replicas: int, running: int
) -> list[str]:
    """What stops the removal of host ``node`` before any change. ``replicas``: the inventory's
    model_server_replicas; ``running``: the StatefulSet's replicas now (0: none)."""
    workers = list(workers)
    listed = ", ".join(workers) or "none"
    if not node:
        return [
            f"{SETTING} is empty: name the worker to take out of the cluster "
            f"(--data {SETTING}=HOST; this inventory's workers: {listed})"
        ]
    if node == controller:
        return [
            f"{SETTING} = {node!r}: the controller holds the cluster and is not removed this "
            f"way (allowed: a host of the workers group: {listed}); `pyinfra INVENTORY "
            "deploys/teardown.py` takes the whole cluster down (models are kept)"
        ]
    if node not in workers:
        return [
            f"{SETTING} = {node!r}: not a host of this inventory's workers group (allowed: "
            f"{listed}): keep the node in `workers` until it has been removed"
        ]
    if controller is None:
        return [f"{SETTING} = {node!r}: the inventory has no controller to remove it from"]
    stay = len(workers)  # the controller and every other worker
    out = []
    for what, n in (
        (f"model_server_replicas = {replicas}", replicas),
        (f"the model server's StatefulSet runs {running} replicas", running),
    ):
        if n > stay:
            out.append(
                f"{what}: at most one replica per node, and {stay} node(s) stay once {node} "
                f"has left (allowed: 1..{stay}): lower model_server_replicas to {stay} or "
                f"less and re-run deploys/node.py first, then remove {node}"
            )
    return out


@dataclass(frozen=True)
class Plan:
    """What the controller does, in this order; empty when the node is gone already."""

    drain: bool = False
    delete_claims: tuple[str, ...] = ()
    release: tuple[str, ...] = ()  # volumes made Available again (their claimRef removed)
    delete_volumes: tuple[str, ...] = ()
    delete_node: bool = False
    moves: tuple[int, ...] = ()  # replicas that start again on a node that stays
    problem: str = ""

    def __bool__(self) -> bool:
        return bool(
            self.drain
            or self.delete_claims
            or self.release
            or self.delete_volumes
            or self.delete_node
            or self.moves
        )


def plan(
    node: str, node_exists: bool, volumes: list[Volume], claims: list[Claim], running: int
) -> Plan:
    """The controller's part: drain ``node``; delete the claims bound to its model store (a
    replica's claim: the replica then starts on a node that stays; a claim of a replica scaled
    away: unused); free as many stores on the staying nodes as replicas move (a volume whose
    claim is gone is Released, and binds nothing until its claimRef is removed: kubernetes
    v1.34 pkg/controller/volume/persistentvolume/pv_controller.go syncVolume; a claim of a
    scaled-away replica still holds its node's store, the StatefulSet keeps it on scale-down:
    persistentVolumeClaimRetentionPolicy whenScaled Retain, the default); delete the node's
    volume (its data stays on the node) and the Node object."""
    mine = {v.name for v in volumes if v.node == node}
    held = [c for c in claims if c.volume in mine]
    others = [v for v in volumes if v.node != node]
    others_names = {v.name for v in others}
    # every replica not on a store of a node that stays needs a free one there: the node's
    # own, and (a run cut half-way, re-run) one whose claim is missing or not bound yet
    on_others = {
        o for c in claims if c.volume in others_names and (o := ordinal(c.name)) is not None
    }
    moves = tuple(o for o in range(running) if o not in on_others)
    free = [v.name for v in others if not v.claim]
    release = [v.name for v in others if v.claim and v.phase == "Released"]
    unused = sorted(
        (
            c
            for c in claims
            if c not in held
            and (o := ordinal(c.name)) is not None
            and o >= running
            and c.volume in others_names
        ),
        key=lambda c: -(ordinal(c.name) or 0),
    )
    deleted = [c.name for c in held]
    need = len(moves) - len(free)
    taken_released = release[: max(need, 0)]
    need -= len(taken_released)
    for c in unused:
        if need <= 0:
            break
        deleted.append(c.name)
        taken_released.append(c.volume)
        need -= 1
    problem = ""
    if need > 0:
        holders = sorted(f"{c.name} on {c.volume}" for c in claims if c.volume in others_names)
        problem = (
            f"replica {', '.join(map(str, moves))} on {node} must start again on a node that "
            f"stays, and {need} model store(s) too few are free there (held: "
            f"{'; '.join(holders) or 'none'}; free: {', '.join(free) or 'none'})"
        )
    return Plan(
        drain=node_exists,
        delete_claims=tuple(deleted),
        release=tuple(taken_released),
        delete_volumes=tuple(sorted(mine)),
        delete_node=node_exists,
        moves=moves,
        problem=problem,
    )
