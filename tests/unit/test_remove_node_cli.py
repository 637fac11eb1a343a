"""The real pyinfra CLI on deploys/remove_node.py over a cluster of @fake hosts
(tests/fake_cluster.py): what is refused before any change, and the operations a removal
plans on the controller, from what its kubectl reads answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from airnode import k0s
from airnode.paths import ROOT
from tests.unit.test_cluster_cli import node
from tests.unit.test_removal import listed_volume as volume

PYINFRA = str(Path(sys.executable).parent / "pyinfra")
SINGLE_UNIT = "[Service]\nExecStart=/usr/local/bin/k0s controller --single\n"


def controller(replicas: int, on: dict[int, str], nodes: list[str]) -> dict:
    """The controller c1, its kubectl answering: replica i's claim bound on node on[i]."""
    c = node("c1", k0s_node_address="10.77.0.1")
    held = {n: f"models-model-server-{i}" for i, n in on.items()}
    # what removal.read_command prints: `ok` and kubectl's output, or `failed` and its error
    pvs = [volume(n, held.get(n, ""), "Bound" if n in held else "Available") for n in nodes]
    pvcs = [
        {"metadata": {"name": c_}, "spec": {"volumeName": f"airnode-models-{n}"}}
        for n, c_ in held.items()
    ]
    c["responses"] = {
        "get node w1 -o name": ["ok", "node/w1"],
        "get pv -l": ["ok", json.dumps({"items": pvs})],
        "get pvc -o json": ["ok", json.dumps({"items": pvcs})],
        "jsonpath": ["ok", str(replicas)],
        **c["responses"],
    }
    return c


def run(groups: dict, *extra: str) -> subprocess.CompletedProcess:
    """The removal, carried out on the @fake hosts (nothing real runs: the fake connector
    answers every command), printing each command it runs (-vv)."""
    return subprocess.run(
        [
            PYINFRA,
            "-y",
            "-vv",
            *extra,
            str(ROOT / "tests" / "fake_cluster.py"),
            str(ROOT / "deploys" / "remove_node.py"),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, AIRNODE_FAKE_CLUSTER=json.dumps(groups)),
        cwd="/",
        timeout=180,
    )


def three_nodes(replicas: int = 2, on: dict[int, str] | None = None, **worker_data) -> dict:
    on = {0: "c1", 1: "w1"} if on is None else on
    return {
        "controllers": {"c1": controller(replicas, on, ["c1", "w1", "w2"])},
        "workers": {
            "w1": node("w1", **worker_data),
            "w2": node("w2"),
        },
    }


def refused(r: subprocess.CompletedProcess, *messages: str) -> None:
    assert r.returncode != 0, r.stderr[-3000:]
    assert "nothing was changed" in r.stderr
    assert "Beginning operation run" not in r.stderr  # stopped while preparing
    text = " ".join(r.stderr.split())
    for m in messages:
        assert m in text, r.stderr[-3000:]


def test_the_controller_and_a_stranger_are_refused_naming_the_workers():
    r = run(three_nodes(), "--data", "remove_node=@fake/c1")
    refused(r, "remove_node = '@fake/c1': the controller holds the cluster")
    r = run(three_nodes(), "--data", "remove_node=w9")
    refused(r, "not a host of this inventory's workers group (allowed: @fake/w1, @fake/w2)")
    r = run(three_nodes())
    refused(r, "remove_node is empty")


def test_replicas_that_would_not_fit_the_nodes_left_are_refused():
    r = run(
        three_nodes(3, {0: "c1", 1: "w1", 2: "w2"}),
        "--data",
        "remove_node=@fake/w1",
        "--data",
        "model_server_replicas=2",
    )
    refused(r, "the model server's StatefulSet runs 3 replicas: at most one replica per node")


def test_a_node_installed_as_a_single_node_is_refused_naming_the_teardown():
    groups = three_nodes()
    groups["workers"]["w1"]["responses"][f"cat /etc/systemd/system/{k0s.UNIT}"] = SINGLE_UNIT
    r = run(groups, "--data", "remove_node=@fake/w1")
    refused(r, "k0s here was installed as a controller or a single node")


def test_the_controller_drains_moves_the_replica_and_forgets_the_node_others_do_nothing():
    r = run(three_nodes(), "--data", "remove_node=@fake/w1", "--data", "model_server_replicas=2")
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    kubectl = "/usr/local/bin/k0s kubectl"
    ran = [line.split(">>> ", 1)[1] for line in out.splitlines() if "[@fake/c1] >>> " in line]
    changes = [c for c in ran if c.startswith(kubectl) and " get " not in c]  # not the reads
    assert changes == [
        # no --force: a pod no controller manages would be lost (airnode did not make it)
        f"{kubectl} drain --ignore-daemonsets --delete-emptydir-data --timeout=300s w1",
        f"{kubectl} -n airnode delete pvc --timeout=120s models-model-server-1",
        f"{kubectl} delete pv --timeout=120s airnode-models-w1",
        f"{kubectl} delete node w1",
    ], ran
    assert "Wait for replica 1 on a node that stays" in out
    # nothing on the worker that stays
    assert not any("[@fake/w2] >>> " in line for line in out.splitlines())
    assert "stays: nothing changes here while @fake/w1 leaves" in out


def test_a_store_held_by_a_scaled_away_replica_is_freed_and_a_gone_node_asks_for_nothing():
    # three replicas once, two now: claim 2 still holds w2's store
    groups = three_nodes(2, {0: "c1", 1: "w1", 2: "w2"})
    r = run(groups, "--data", "remove_node=@fake/w1", "--data", "model_server_replicas=2")
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert "delete pvc --timeout=120s models-model-server-1 models-model-server-2" in out
    assert (
        'patch pv airnode-models-w2 --type json -p \'[{"op":"remove","path":'
        '"/spec/claimRef"}]\'' in out
    )
    # the node gone already (a second run): no Node, no volume, no claim of it
    groups = three_nodes(1, {0: "c1"})
    responses = groups["controllers"]["c1"]["responses"]
    responses["get node w1 -o name"] = [
        "failed",
        'Error from server (NotFound): nodes "w1" not found',
    ]
    pvs = [volume("c1", "models-model-server-0", "Bound"), volume("w2")]
    responses["get pv -l"] = ["ok", json.dumps({"items": pvs})]
    r = run(groups, "--data", "remove_node=@fake/w1", "--data", "model_server_replicas=1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "w1 is not in the cluster (no Node, no model store volume)" in r.stdout + r.stderr
    ran = [line for line in (r.stdout + r.stderr).splitlines() if "[@fake/c1] >>> " in line]
    assert ran and not [c for c in ran if "k0s kubectl" in c and " get " not in c], ran


def test_an_api_that_does_not_answer_stops_the_removal_before_any_change():
    groups = three_nodes()
    groups["controllers"]["c1"]["responses"]["get pv -l"] = [
        "failed",
        "The connection to the server 10.77.0.1:6443 was refused - did you specify the right "
        "host or port?",
    ]
    r = run(groups, "--data", "remove_node=@fake/w1", "--data", "model_server_replicas=2")
    refused(r, "the removal needs the cluster's API: `kubectl get pv -l", "was refused")


def test_a_refused_drain_stops_the_removal_and_the_worker_is_not_torn_down():
    groups = three_nodes()
    # k0s installed on the worker: its teardown would stop and reset it
    groups["workers"]["w1"]["responses"]["[ -e /usr/local/bin/k0s ] && echo yes"] = "yes"
    ok = run(groups, "--data", "remove_node=@fake/w1", "--data", "model_server_replicas=2")
    assert ok.returncode == 0, ok.stderr[-3000:]
    stop = "[@fake/w1] >>> /usr/local/bin/k0s stop"
    assert stop in ok.stdout + ok.stderr
    groups["controllers"]["c1"]["responses"] = {
        "drain --ignore-daemonsets": {
            "success": False,
            "stderr": 'error: unable to drain node "w1" due to error: cannot delete Pods '
            "declare no controller (use --force to override): default/mine",
        },
        **groups["controllers"]["c1"]["responses"],
    }
    r = run(groups, "--data", "remove_node=@fake/w1", "--data", "model_server_replicas=2")
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "cannot delete Pods declare no controller" in out
    assert stop not in out  # the worker keeps k0s (and its replica's data)
    assert "[@fake/c1] >>> /usr/local/bin/k0s kubectl delete node" not in out
