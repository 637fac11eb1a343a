"""kube-prometheus from the bundle, with airnode's Grafana dashboards: `setup/` applied
server-side, a bounded wait until every CRD is Established, then the rest applied server-side.
Applied again only when what would be applied changed (a new kube-prometheus version, or a
changed dashboard); a run cut half-way applies again on the next run."""

from __future__ import annotations

from functools import cache
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Command
from pyinfra.operations import files, server

from airnode import k0s as k0slogic
from airnode import monitoring as logic
from airnode.render import render
from airnode.steps import bundle
from airnode.steps._common import AirnodeError, settings

DEFAULTS = {
    "monitoring_crd_timeout": 120,  # seconds to wait for kube-prometheus's CRDs (Established)
}
MANIFESTS = "/var/lib/airnode/manifests"
STATE = "/var/lib/airnode/state"
KUBECTL = f"{k0slogic.BINARY} kubectl"
APPLY = f"{KUBECTL} apply --server-side --field-manager=airnode --force-conflicts"


def applied(name: str) -> str:
    """The sha256 of what was last applied for `name` (written only after it succeeded)."""
    return (host.get_fact(Command, f"cat {STATE}/{name}.applied 2>/dev/null || true")
            or "").strip()


def mark_applied_command(name: str, sha256: str) -> str:
    return f"mkdir -p {STATE} && echo {sha256} > {STATE}/{name}.applied"


def dashboards(namespace: str) -> dict[str, str]:
    """airnode's Grafana dashboards, {name: JSON}."""
    return {"airnode-ollama": render("dashboard-ollama.json.j2", namespace=namespace,
                                     container="ollama", probe_job="ollama")}


@cache
def _render(tarball: Path, sha256: str, boards: tuple[tuple[str, str], ...]) -> logic.Rendered:
    try:
        return logic.render(tarball, dict(boards))
    except logic.MonitoringError as e:
        raise AirnodeError(str(e)) from None


def rendered(b: bundle.Bundle) -> logic.Rendered:
    """kube-prometheus of the bundle with our dashboards (rendered once per run)."""
    from airnode.steps.model_server import DEFAULTS as SERVER_DEFAULTS

    found = b.artifacts("kube-prometheus")
    if not found:
        raise AirnodeError(f"bundle {b.root} holds no kube-prometheus: add [kube_prometheus] to "
                           "the spec and re-fetch")
    namespace = settings(SERVER_DEFAULTS)["model_server_namespace"]
    return _render(b.root / found[0]["file"], found[0]["sha256"],
                   tuple(sorted(dashboards(namespace).items())))


@deploy("kube-prometheus", data_defaults=DEFAULTS)
def monitoring():
    s = settings(DEFAULTS)
    b = bundle.current("kube-prometheus comes from the offline bundle")
    if b is None:
        return
    version = b.artifacts("kube-prometheus")[0]["version"] if b.artifacts("kube-prometheus") else ""
    r = rendered(b)
    setup, main = f"{MANIFESTS}/kube-prometheus/setup.yaml", f"{MANIFESTS}/kube-prometheus/main.yaml"
    files.put(name=f"kube-prometheus {version} manifests: setup (namespace, CRDs)",
              src=StringIO(r.setup), dest=setup, mode="600")
    files.put(name=f"kube-prometheus {version} manifests: the rest, with airnode's dashboards",
              src=StringIO(r.main), dest=main, mode="600")
    if applied("kube-prometheus") != r.sha256:
        t = s["monitoring_crd_timeout"]
        server.shell(
            name=f"Apply kube-prometheus {version} (server-side): setup, CRDs Established, the rest",
            commands=[
                f"{APPLY} -f {setup} >/dev/null",
                f"{KUBECTL} wait --for condition=Established --all CustomResourceDefinition "
                f"--timeout={t}s >/dev/null || {{ echo 'kube-prometheus CRDs not Established "
                f"after {t}s (monitoring_crd_timeout): see k0s kubectl get crd' >&2; exit 1; }}",
                f"{APPLY} -f {main} >/dev/null",
                mark_applied_command("kube-prometheus", r.sha256)])
