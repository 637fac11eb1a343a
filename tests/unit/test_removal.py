"""Taking a worker out of its cluster (airnode/removal.py): what is refused before any change,
and what the controller does, case by case; then the plan played on the k0s stand-in's
scheduler and volume binder (tests/doubles/k0s), which follow kube-scheduler and the PV
controller: the replica on the node that leaves starts again on a node that stays."""

from __future__ import annotations

import json

import pytest

from airnode import removal
from airnode.removal import Claim, Volume

NODES = ("lab-1", "lab-2", "lab-3")


def vol(node: str, claim: str = "", phase: str = "") -> Volume:
    phase = phase or ("Bound" if claim else "Available")
    return Volume(f"airnode-models-{node}", node, claim, phase)


def claim(ordinal: int, node: str) -> Claim:
    return Claim(f"models-model-server-{ordinal}", f"airnode-models-{node}")


# -- refused before any change -------------------------------------------------------------
def test_the_setting_must_name_a_worker_of_the_inventory():
    workers = ["lab-2", "lab-3"]
    (empty,) = removal.problems("", "lab-1", workers, 1, 1)
    assert "remove_node is empty" in empty and "lab-2, lab-3" in empty
    (ctrl,) = removal.problems("lab-1", "lab-1", workers, 1, 1)
    assert "remove_node = 'lab-1': the controller" in ctrl and "deploys/teardown.py" in ctrl
    (stranger,) = removal.problems("lab-9", "lab-1", workers, 1, 1)
    assert "remove_node = 'lab-9': not a host of this inventory's workers group" in stranger
    assert "allowed: lab-2, lab-3" in stranger
    (alone,) = removal.problems("lab-2", None, workers, 1, 1)
    assert "no controller" in alone
    assert removal.problems("lab-2", "lab-1", workers, 2, 2) == []


def test_the_replicas_must_fit_the_nodes_that_stay():
    workers = ["lab-2", "lab-3"]
    # three nodes, two stay: three replicas cannot be one per node any more
    (setting, running) = removal.problems("lab-2", "lab-1", workers, 3, 3)
    assert setting.startswith("model_server_replicas = 3: at most one replica per node")
    assert "2 node(s) stay once lab-2 has left (allowed: 1..2)" in setting
    assert "re-run deploys/node.py first" in setting
    assert running.startswith("the model server's StatefulSet runs 3 replicas")
    # the setting lowered but not yet deployed: the cluster still runs three
    (only,) = removal.problems("lab-2", "lab-1", workers, 2, 3)
    assert "StatefulSet runs 3 replicas" in only


# -- the controller's part ------------------------------------------------------------------
def test_a_node_already_gone_asks_for_nothing():
    p = removal.plan(
        "lab-2", False, [vol("lab-1", "models-model-server-0")], [claim(0, "lab-1")], 1
    )
    assert not p and p.problem == ""


def test_a_node_without_a_replica_is_drained_and_forgotten():
    volumes = [vol("lab-1", "models-model-server-0"), vol("lab-2")]
    p = removal.plan("lab-2", True, volumes, [claim(0, "lab-1")], 1)
    assert p.drain and p.delete_node
    assert p.delete_volumes == ("airnode-models-lab-2",)
    assert p.delete_claims == () and p.release == () and p.moves == ()


def test_its_replica_moves_to_a_free_store_on_a_node_that_stays():
    volumes = [vol("lab-1", "models-model-server-0"), vol("lab-2", "models-model-server-1")]
    volumes.append(vol("lab-3"))
    claims = [claim(0, "lab-1"), claim(1, "lab-2")]
    p = removal.plan("lab-2", True, volumes, claims, 2)
    assert p.moves == (1,)
    assert p.delete_claims == ("models-model-server-1",)
    assert p.release == ()  # lab-3's store is Available already
    assert p.delete_volumes == ("airnode-models-lab-2",) and p.delete_node and not p.problem


def one_replica_per_node() -> tuple[list[Volume], list[Claim]]:
    """Three replicas on three nodes, each claim holding its node's store."""
    volumes = [vol(n, f"models-model-server-{i}") for i, n in enumerate(NODES)]
    return volumes, [claim(i, n) for i, n in enumerate(NODES)]


def test_a_store_held_by_a_scaled_away_replica_is_freed_for_the_one_that_moves():
    # three replicas once, scaled to two: claim 2 still holds lab-3's store (whenScaled Retain)
    p = removal.plan("lab-2", True, *one_replica_per_node(), 2)
    assert p.moves == (1,)
    assert p.delete_claims == ("models-model-server-1", "models-model-server-2")
    assert p.release == ("airnode-models-lab-3",)
    assert not p.problem


def test_a_released_store_is_freed_before_any_claim_is_touched():
    volumes = [
        vol("lab-1", "models-model-server-0"),
        vol("lab-2", "models-model-server-1"),
        vol("lab-3", "models-model-server-7", phase="Released"),
    ]
    p = removal.plan("lab-2", True, volumes, [claim(0, "lab-1"), claim(1, "lab-2")], 2)
    assert p.release == ("airnode-models-lab-3",)
    assert p.delete_claims == ("models-model-server-1",)


def test_a_scaled_away_claim_on_the_node_is_deleted_and_nothing_moves():
    volumes = [vol("lab-1", "models-model-server-0"), vol("lab-2", "models-model-server-1")]
    p = removal.plan("lab-2", True, volumes, [claim(0, "lab-1"), claim(1, "lab-2")], 1)
    assert p.moves == () and p.delete_claims == ("models-model-server-1",)
    assert p.release == ()


def test_a_run_cut_half_way_is_finished_by_the_next():
    # cut after the claims were deleted (1: the replica's, 2: a scaled-away one holding
    # lab-3's store), before lab-3's store was freed: the StatefulSet made claim 1 anew,
    # unbound; both stores are Released
    volumes = [
        vol("lab-1", "models-model-server-0"),
        vol("lab-2", "models-model-server-1", phase="Released"),
        vol("lab-3", "models-model-server-2", phase="Released"),
    ]
    claims = [claim(0, "lab-1"), Claim("models-model-server-1", "")]
    p = removal.plan("lab-2", True, volumes, claims, 2)
    assert p.moves == (1,) and p.release == ("airnode-models-lab-3",)
    assert p.delete_claims == ()  # the new claim 1 is the replica's: kept
    assert p.delete_volumes == ("airnode-models-lab-2",) and p.drain and p.delete_node
    # finished: replica 1 on lab-3's store, lab-2 gone: nothing left to do
    volumes = [vol("lab-1", "models-model-server-0"), vol("lab-3", "models-model-server-1")]
    assert not removal.plan("lab-2", False, volumes, [claim(0, "lab-1"), claim(1, "lab-3")], 2)
    # cut after the Node was deleted, before claim 1 was made again: the wait runs again
    volumes[1] = vol("lab-3")
    p = removal.plan("lab-2", False, volumes, [claim(0, "lab-1")], 2)
    assert p and p.moves == (1,) and not p.problem and p.release == ()


def test_no_free_store_left_is_a_problem_named_before_any_change():
    # three replicas on three nodes: every staying node's store is held by a running replica
    p = removal.plan("lab-2", True, *one_replica_per_node(), 3)
    assert p.problem.startswith("replica 1 on lab-2 must start again on a node that stays")
    assert "models-model-server-2 on airnode-models-lab-3" in p.problem


def listed_volume(node: str, claim: str = "", phase: str = "Available") -> dict:
    """A node's model store volume as `kubectl get pv -o json` lists it: airnode's own
    rendering (templates/model-store-volume.yaml.j2), with the binder's claimRef and phase."""
    from airnode.serving import manifests

    (pv,) = manifests.documents(
        manifests.store_volume_text(node, "/var/lib/airnode/models", "50Gi")
    )
    if claim:
        pv["spec"]["claimRef"] = {"name": claim, "namespace": "airnode"}
    pv["status"] = {"phase": phase}
    return pv


def test_what_kubectl_prints_is_parsed_to_airnodes_volumes_and_claims():
    pv = listed_volume("lab-2", "models-model-server-1", "Bound")
    other = {"metadata": {"name": "someone-elses"}, "spec": {}}
    assert removal.parse_volumes(json.dumps({"items": [pv, other]})) == [
        Volume("airnode-models-lab-2", "lab-2", "models-model-server-1", "Bound")
    ]
    claims = {
        "items": [
            {"metadata": {"name": "models-model-server-1"}, "spec": {"volumeName": "v"}},
            {"metadata": {"name": "models-model-server-01"}, "spec": {}},
            {"metadata": {"name": "data-other-0"}, "spec": {}},
        ]
    }
    assert removal.parse_claims(json.dumps(claims)) == [Claim("models-model-server-1", "v")]
    assert removal.parse_volumes("") == [] and removal.parse_claims(" \n") == []


# -- the plan played on the stand-in -----------------------------------------------------------
@pytest.fixture
def double(monkeypatch):
    from tests.unit.test_k0s_double_api import fake_node, k0s

    fake_node(monkeypatch)
    monkeypatch.setattr(k0s, "save", lambda c: None)
    return k0s


def started(k0s, nodes, replicas):
    from tests.unit.test_k0s_double_api import cluster_docs, gpu_cluster, worker_node

    c = gpu_cluster(cluster_docs(list(nodes), replicas))
    for i, n in enumerate(nodes[1:]):
        worker_node(c, name=n, cpu=16000, mem=64 << 30, address=f"10.77.0.{i + 2}")
    c["pods"] = {}
    k0s.schedule(c)
    sts = c["objects"]["StatefulSet/airnode/model-server"]
    for i in range(replicas):  # the claims, made and bound where each pod went
        node = c["scheduled"][f"airnode/model-server-{i}"].get("node", nodes[0])
        assert k0s.claim_sources(c, sts, f"model-server-{i}", node)[0] is None
    return c


def listed(k0s, c, kind):
    return json.dumps({"items": [d for d in k0s.objects(c, kind)]})


def play(k0s, c, node, p):
    """The plan's commands, as the stand-in carries them out."""
    if p.drain:
        assert k0s.drain_refusal(c, node, ["--ignore-daemonsets", "--delete-emptydir-data"]) == []
        c["nodes"][node]["cordoned"] = True
        k0s.evict(c, node)
        k0s.schedule(c)
    for name in p.delete_claims:
        key = f"PersistentVolumeClaim/airnode/{name}"
        assert k0s.claim_user(c, key) is None, f"{name} still in use: kubectl would wait"
        k0s.release(c, c["objects"].pop(key))
    for v in p.release:
        pv = c["objects"][f"PersistentVolume//{v}"]
        del pv["spec"]["claimRef"]
        pv["status"]["phase"] = "Available"
    for v in p.delete_volumes:
        assert k0s.volume_user(c, f"PersistentVolume//{v}") is None
        del c["objects"][f"PersistentVolume//{v}"]
    if p.delete_node:
        del c["nodes"][node]
    k0s.schedule(c)


def test_on_the_stand_in_the_replica_of_the_leaving_node_starts_on_the_third(double):
    k0s = double
    c = started(k0s, ("airnode-lab", "airnode-lab-2", "airnode-lab-3"), 2)
    assert c["scheduled"]["airnode/model-server-1"]["node"] == "airnode-lab-2"
    p = removal.plan(
        "airnode-lab-2",
        True,
        removal.parse_volumes(listed(k0s, c, "PersistentVolume")),
        removal.parse_claims(listed(k0s, c, "PersistentVolumeClaim")),
        2,
    )
    assert p.moves == (1,) and not p.problem
    play(k0s, c, "airnode-lab-2", p)
    assert c["pending"] == {}
    assert c["scheduled"]["airnode/model-server-1"]["node"] == "airnode-lab-3"
    assert "node" not in c["scheduled"]["airnode/model-server-0"]  # replica 0 did not move
    sts = c["objects"]["StatefulSet/airnode/model-server"]
    why, sources = k0s.claim_sources(c, sts, "model-server-1", "airnode-lab-3")
    assert why is None and sources == {"models": "/var/lib/airnode/models"}
    pv = c["objects"]["PersistentVolume//airnode-models-airnode-lab-3"]
    assert pv["spec"]["claimRef"]["name"] == "models-model-server-1"


def test_on_the_stand_in_a_claim_deleted_before_the_drain_would_be_held(double):
    """Why the drain comes first: a scheduled pod's claim is protected (kubectl waits)."""
    k0s = double
    c = started(k0s, ("airnode-lab", "airnode-lab-2", "airnode-lab-3"), 2)
    key = "PersistentVolumeClaim/airnode/models-model-server-1"
    assert k0s.claim_user(c, key) == "model-server-1"
    assert k0s.volume_user(c, "PersistentVolume//airnode-models-airnode-lab-2") == (
        "models-model-server-1"
    )
    c["nodes"]["airnode-lab-2"]["cordoned"] = True
    k0s.schedule(c)
    assert k0s.claim_user(c, key) == "model-server-1"  # a cordon alone evicts nothing
    k0s.evict(c, "airnode-lab-2")
    k0s.schedule(c)
    assert k0s.claim_user(c, key) is None


def test_the_stand_ins_drain_refuses_pods_with_an_empty_dir_unless_told(double):
    k0s = double
    c = started(k0s, ("airnode-lab", "airnode-lab-2"), 2)
    why = k0s.drain_refusal(c, "airnode-lab-2", ["--ignore-daemonsets"])
    assert why == [
        "cannot delete Pods with local storage (use --delete-emptydir-data to override): "
        "airnode/model-server-1"
    ]
    both = k0s.drain_refusal(c, "airnode-lab-2", [])  # every refusal, together
    assert [w.split(" (")[0] for w in both] == [
        "cannot delete DaemonSet-managed Pods",
        "cannot delete Pods with local storage",
    ]
    assert (
        k0s.drain_refusal(c, "airnode-lab-2", ["--ignore-daemonsets", "--delete-emptydir-data"])
        == []
    )
