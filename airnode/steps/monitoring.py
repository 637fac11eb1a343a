"""kube-prometheus from the bundle, with airnode's Grafana dashboards: `setup/` applied
server-side, a bounded wait until every CRD is Established, then the rest applied server-side.
Applied again only when what would be applied changed (a new kube-prometheus version, or a
changed dashboard); a run cut half-way applies again on the next run."""

from __future__ import annotations

import json
import shlex
from functools import cache
from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import server

from airnode import k0s as k0slogic
from airnode import monitoring as logic
from airnode import nvidia
from airnode.config import Setting, boolean, integer
from airnode.render import render
from airnode.steps import bundle
from airnode.steps import k0s as k0sstep
from airnode.steps._common import (
    AirnodeError,
    declare,
    digest,
    file_state_read,
    put_text,
    remote,
    script,
    setting,
    settings,
)

DEFAULTS = declare(
    "monitoring",
    {
        "monitoring_crd_timeout": Setting(
            120,
            integer(ge=10, le=3600),
            "seconds to wait for kube-prometheus's CRDs to be `Established`",
        ),
        "monitoring_high_availability": Setting(
            False,
            boolean(),
            (
                "`false`: one replica each of Alertmanager, Prometheus and prometheus-adapter"
                " (upstream runs 3, 2, 2 — 2,170 MiB of requests that buy nothing on one "
                "node), their PodDisruptionBudgets left out as upstream's jsonnet does at one"
                " replica; `true`: kube-prometheus's files unchanged"
            ),
        ),
    },
)
MANIFESTS = "/var/lib/airnode/manifests"
MARK_NAMESPACE = "kube-system"
SETUP = f"{MANIFESTS}/kube-prometheus/setup.yaml"
MAIN = f"{MANIFESTS}/kube-prometheus/main.yaml"
KUBECTL = k0slogic.KUBECTL
APPLY = k0slogic.APPLY


def applied(name: str) -> dict:
    """What was last applied (and checked) for `name`, as the cluster itself records it: a
    ConfigMap in kube-system ({"sha256": ..., and what else was recorded}), written only after
    success. Kept in the cluster, it goes with it: after `k0s reset` (or on a fresh node)
    everything is applied again."""
    try:
        data = json.loads(remote(applied_read(name)))["data"]
    except (ValueError, KeyError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def applied_read(name: str) -> str:
    return (
        f"[ -x {k0slogic.BINARY} ] && {KUBECTL} -n {MARK_NAMESPACE} get configmap "
        f"airnode-applied-{name} -o json 2>/dev/null || true"
    )


def reads(b=None) -> list[str]:
    if b is None:
        return []
    return [
        applied_read("kube-prometheus"),
        applied_read("model-server"),
        file_state_read(SETUP),
        file_state_read(MAIN),
    ]


def mark_applied_command(name: str, sha256: str, **extra: str) -> str:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"airnode-applied-{name}",
            "namespace": MARK_NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "airnode"},
        },
        "data": {"sha256": sha256, **extra},
    }
    return f"echo {shlex.quote(json.dumps(cm))} | {APPLY} -f - >/dev/null"


# Before each apply: the API must answer (after a reboot, or while k0s restarts, it may not yet).
WAIT_API = (
    "end=$(( $(date +%s) + 300 )); "
    f"until {KUBECTL} wait node --all --for=condition=Ready --timeout=10s >/dev/null 2>&1; "
    "do if [ $(date +%s) -ge $end ]; then echo 'the Kubernetes API (k0s) has not answered "
    "for 300s: see k0s status and journalctl -u k0scontroller' >&2; exit 1; fi; "
    "sleep 3; done"
)


def forget_applied_command(name: str) -> str:
    """Run before an apply: a run that fails or is cut after it leaves no record, so the next
    run applies again (the cluster may hold a half-applied or failed state by then)."""
    return (
        f"{KUBECTL} -n {MARK_NAMESPACE} delete configmap airnode-applied-{name} "
        "--ignore-not-found >/dev/null"
    )


BACKEND_DASHBOARDS = {"ollama": "airnode-ollama", "llama-server": "airnode-llama-server"}


def dashboards(namespace: str, backend: str = "ollama", gpus: int = 0) -> dict[str, str]:
    """airnode's Grafana dashboards for the model server's backend, {name: JSON}; with GPUs, a
    row of GPU panels (dcgm-exporter's counters)."""
    gpu = dict(gpus=gpus, dcgm_job=nvidia.DCGM_JOB)
    if backend == "llama-server":
        board = render(
            "dashboard-llama-server.json.j2",
            namespace=namespace,
            container="llama-server",
            job="llama-server",
            **gpu,
        )
    else:
        board = render(
            "dashboard-ollama.json.j2",
            namespace=namespace,
            container="ollama",
            probe_job="ollama",
            **gpu,
        )
    return {BACKEND_DASHBOARDS[backend]: board}


def other_dashboards_command(backend: str) -> str:
    """Delete the dashboard ConfigMaps of the other backends (after switching backends)."""
    names = " ".join(
        f"grafana-dashboard-{n}" for b, n in sorted(BACKEND_DASHBOARDS.items()) if b != backend
    )
    return f"{KUBECTL} -n {logic.NAMESPACE} delete configmap {names} --ignore-not-found >/dev/null"


def single_node_budgets_command() -> str:
    """Delete the PodDisruptionBudgets an earlier high-availability apply left (with one
    replica they would block every eviction)."""
    names = " ".join(logic.SINGLE_NODE_DROPPED.values())
    return (
        f"{KUBECTL} -n {logic.NAMESPACE} delete poddisruptionbudget {names} "
        "--ignore-not-found >/dev/null"
    )


@cache
def _render(
    tarball: Path, sha256: str, boards: tuple[tuple[str, str], ...], high_availability: bool
) -> logic.Rendered:
    try:
        return logic.render(tarball, dict(boards), high_availability)
    except logic.MonitoringError as e:
        raise AirnodeError(str(e)) from None


def rendered(b: bundle.Bundle) -> logic.Rendered:
    """kube-prometheus of the bundle with our dashboards (rendered once per run)."""
    found = b.artifacts("kube-prometheus")
    if not found:
        raise AirnodeError(
            f"bundle {b.root} holds no kube-prometheus: add [kube_prometheus] to "
            "the spec and re-fetch"
        )
    # the model server's settings (a later step): its namespace and backend
    boards = dashboards(
        setting("model_server_namespace"), setting("model_server"), setting("model_server_gpus")
    )
    return _render(
        b.root / found[0]["file"],
        found[0]["sha256"],
        tuple(sorted(boards.items())),
        settings(DEFAULTS)["monitoring_high_availability"],
    )


@deploy("kube-prometheus", data_defaults=DEFAULTS)
def monitoring():
    s = settings(DEFAULTS)
    b = bundle.current("kube-prometheus comes from the offline bundle")
    if b is None:
        return
    if k0sstep.is_worker():
        host.noop("a worker: the controller applies kube-prometheus, once for the cluster")
        return
    version = b.artifacts("kube-prometheus")[0]["version"] if b.artifacts("kube-prometheus") else ""
    r = rendered(b)
    backend = setting("model_server")
    put_text(
        r.setup, SETUP, f"kube-prometheus {version} manifests: setup (namespace, CRDs)", mode="600"
    )
    put_text(
        r.main,
        MAIN,
        f"kube-prometheus {version} manifests: the rest, with airnode's dashboards",
        mode="600",
    )
    want = digest(version, r.sha256)  # a new version is applied even if its files are alike
    if applied("kube-prometheus").get("sha256") != want:
        t = s["monitoring_crd_timeout"]
        server.shell(
            name=f"Apply kube-prometheus {version} (server-side): setup, CRDs Established, "
            "the rest",
            commands=[
                WAIT_API,
                forget_applied_command("kube-prometheus"),
                f"{APPLY} -f {SETUP} >/dev/null",
                script("crds-wait.sh", KUBECTL, str(t)),
                f"{APPLY} -f {MAIN} >/dev/null",
                other_dashboards_command(backend),
                *([] if s["monitoring_high_availability"] else [single_node_budgets_command()]),
                mark_applied_command("kube-prometheus", want),
            ],
        )
