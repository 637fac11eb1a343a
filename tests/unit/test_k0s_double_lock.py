"""The k0s stand-in's lock: kubectl calls that change the toy cluster hold it, the two that
poll for minutes (`rollout status`, `wait` for a node) do not, wherever their options stand."""

from __future__ import annotations

import pytest

from tests.unit.test_scheduling import load_double


@pytest.mark.parametrize(
    "argv",
    [
        "-n airnode rollout status statefulset/model-server --timeout=600s",
        "rollout status statefulset/model-server -n airnode",
        "--namespace=airnode rollout status sts/model-server",
        "wait node/airnode-lab-2 --for=condition=Ready --timeout=10s",
        "wait node --all --for=condition=Ready --timeout=10s",
    ],
)
def test_a_long_poll_leaves_the_cluster_to_the_writers_it_waits_for(argv):
    assert not load_double().takes_lock(argv.split())


@pytest.mark.parametrize(
    "argv",
    [
        "apply --server-side -f /var/lib/airnode/manifests/model-server.yaml",
        "-n airnode delete deployment,service open-webui --ignore-not-found",
        "wait --for=condition=Established crd --all --timeout=60s",
        "-n airnode get pods",
        "drain airnode-lab-2 --ignore-daemonsets",
    ],
)
def test_every_other_call_holds_the_lock(argv):
    assert load_double().takes_lock(argv.split())
