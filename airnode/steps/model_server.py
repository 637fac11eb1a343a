"""The model server: the bundle's Ollama as a StatefulSet in its own namespace, on the node's
model store (a local PersistentVolume), behind a NodePort Service, probed by kube-prometheus.
Manifests are validated offline before any change; after an apply the deploy waits (bounded)
for the rollout, then checks the server over HTTP: the API answers, every model of the bundle
is listed, and each one generates text."""

from __future__ import annotations

import hashlib
import json
import shlex
from functools import cache

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.operations import python, server

from airnode import ollama as ollamalogic
from airnode import sizing
from airnode.bundle import images as imagelib
from airnode.serving import manifests
from airnode.steps import bundle
from airnode.steps._common import (UNAME_N, AirnodeError, file_state_read, put_text, remote,
                                   settings)
from airnode.steps.models import DEFAULTS as MODELS_DEFAULTS
from airnode.steps.monitoring import (APPLY, KUBECTL, MANIFESTS, WAIT_API, applied,
                                      forget_applied_command, mark_applied_command, rendered)
from airnode.steps.ollama import account, artifact, version_dir

DEFAULTS = {
    "model_server_namespace": "airnode",
    "model_server_node_port": 31434,        # the API on every node address (Service NodePort)
    "model_server_store_size": "50Gi",       # capacity of the model store's PersistentVolume
    "model_server_cpu_request": "1",
    # "auto": what sizing computes for the largest model of the bundle; or a quantity (4Gi)
    "model_server_memory_request": "auto",
    "model_server_rollout_timeout": 600,     # seconds to wait for the pod to be Ready
    "model_server_check_timeout": 300,       # seconds for the health check and each generation
    # Empty: the check goes through pyinfra's SSH connection to the NodePort (needs sshd's
    # AllowTcpForwarding); or a URL the control machine reaches the server at.
    "model_server_check_url": "",
    # The server's environment (Ollama's OLLAMA_* variables); sizing counts the first three.
    "ollama_context_length": 4096,           # OLLAMA_CONTEXT_LENGTH: context per slot
    "ollama_num_parallel": 1,                # OLLAMA_NUM_PARALLEL: parallel requests per model
    "ollama_kv_cache_type": "f16",           # OLLAMA_KV_CACHE_TYPE: f16, q8_0, q4_0
    "ollama_keep_alive": "5m",               # OLLAMA_KEEP_ALIVE: how long a model stays loaded
    "ollama_max_loaded_models": 1,           # OLLAMA_MAX_LOADED_MODELS (0: Ollama decides)
    "ollama_flash_attention": "auto",        # OLLAMA_FLASH_ATTENTION: auto (unset), true, false
    "ollama_extra_env": {},                  # any other OLLAMA_* variable, e.g. OLLAMA_DEBUG
}
STATEFULSET = "ollama"
MANIFEST = f"{MANIFESTS}/model-server.yaml"


@cache
def _model_info(path, name):
    return sizing.read_gguf(path, name)


def memory_request(s: dict, b: bundle.Bundle) -> str:
    if s["model_server_memory_request"] != "auto":
        return s["model_server_memory_request"]
    needs = [sizing.need_bytes(_model_info(b.root / m["file"], m["name"]),
                               s["ollama_context_length"], s["ollama_num_parallel"],
                               s["ollama_kv_cache_type"]) for m in b.artifacts("model")]
    return f"{max(max(needs, default=0) // sizing.MIB, 512)}Mi"


def server_image(b: bundle.Bundle) -> str:
    image = ((b.data.get("spec") or {}).get("model_server") or {}).get("image")
    if not image:
        raise AirnodeError(f"bundle {b.root} names no model server image ([model_server] image "
                           "in the spec)")
    return imagelib.normalize(image)


def _check(state, host, port: int, models: list[str], check_timeout: int, url: str) -> bool:
    """pyinfra callback: health and smoke check over pyinfra's own SSH connection."""
    from airnode.serving.health import HealthError, check
    from airnode.serving.tunnel import TunnelError, forward

    client = getattr(host.connector, "client", None)
    try:
        if url:
            report = check(url, models, "ollama", ready_timeout=check_timeout,
                           timeout=check_timeout)
        elif client is not None:  # ssh: tunnel to the NodePort as the node sees it
            with forward(client.get_transport(), "127.0.0.1", port) as tunnel:
                report = check(tunnel, models, "ollama", ready_timeout=check_timeout,
                               timeout=check_timeout)
        elif host.name.startswith("@local"):
            report = check(f"http://127.0.0.1:{port}", models, "ollama",
                           ready_timeout=check_timeout, timeout=check_timeout)
        else:
            host.log_styled(f"health check skipped: connector {host.name} has no SSH client; "
                            f"run `airnode check http://NODE:{port}`", log_func=logger.warning)
            return True
    except (HealthError, TunnelError) as e:
        host.log_styled(f"model server check FAILED: {e}", fg="red", log_func=logger.error)
        return False
    report.base_url = url or f"{host.name} port {port} (the Service's NodePort)"
    for line in report.lines():
        host.log_styled(line, log_func=logger.info)
    return True


def reads(b: bundle.Bundle | None) -> list[str]:
    if b is None:
        return []
    return [ollamalogic.versions_command(version_dir("").rstrip("/")), UNAME_N,
            file_state_read(MANIFEST)]


@deploy("Model server (StatefulSet)", data_defaults=DEFAULTS)
def model_server():
    s = settings(DEFAULTS)
    b = bundle.current("no model server without the offline bundle")
    if b is None:
        return
    tarball = artifact(b)
    uid, gid = account()
    node = remote(UNAME_N).strip().lower()
    store = settings(MODELS_DEFAULTS)["model_store_dir"]
    env = ollamalogic.server_env(s)
    text = manifests.model_server_text(
        node=node, image=server_image(b), ollama_version=tarball["version"], uid=uid, gid=gid,
        env=env, namespace=s["model_server_namespace"],
        model_store=store,
        ollama_dir=version_dir(tarball["version"]), store_size=s["model_server_store_size"],
        node_port=s["model_server_node_port"], cpu_request=s["model_server_cpu_request"],
        memory_request=memory_request(s, b))
    problems = manifests.validate(manifests.documents(text), _crds(rendered(b)))
    if problems:
        raise AirnodeError("the model server's manifests do not validate; nothing was "
                           "changed:\n  - " + "\n  - ".join(problems))

    path = MANIFEST
    put_text(text, path, f"Model server manifests ({path})", mode="600")
    models = sorted(m["name"] for m in b.artifacts("model"))
    want = hashlib.sha256(json.dumps(
        [text, [(m["name"], m["sha256"]) for m in b.artifacts("model")]]).encode()).hexdigest()
    ns = s["model_server_namespace"]
    last = applied("model-server")
    # What Kubernetes will not change in place (the PersistentVolume's path, the claim's size,
    # where the objects live): refused with the way out, before any change.
    fixed = json.dumps({"namespace": ns, "node": node, "model_store_dir": store,
                        "model_server_store_size": s["model_server_store_size"]}, sort_keys=True)
    if last.get("fixed") and last["fixed"] != fixed:
        was, now = json.loads(last["fixed"]), json.loads(fixed)
        changes = ", ".join(f"{k} {was.get(k)!r} -> {now[k]!r}" for k in sorted(now)
                            if was.get(k) != now[k])
        raise AirnodeError(
            f"{host.name}: {changes}: Kubernetes cannot change these on a running model server "
            "(the PersistentVolume and the StatefulSet's volume claim are immutable). Remove the "
            "node first with deploys/teardown.py (the model store is kept; move it by hand if "
            "its path changes), then deploy again; nothing was changed")
    if last.get("sha256") != want:
        t = s["model_server_rollout_timeout"]
        server.shell(name=f"Apply the model server (server-side) in namespace {ns}",
                     commands=[WAIT_API, forget_applied_command("model-server"),
                               f"{APPLY} -f {path} >/dev/null"])
        server.shell(
            name=f"Wait for the rollout of statefulset/{STATEFULSET} (at most {t}s)",
            commands=[
                f"{KUBECTL} -n {ns} rollout status statefulset/{STATEFULSET} --timeout={t}s "
                ">/dev/null || { "
                f"echo 'statefulset/{STATEFULSET} in {ns} not ready after {t}s "
                "(model_server_rollout_timeout):' >&2; "
                f"{KUBECTL} -n {ns} get pods >&2; "
                f"{KUBECTL} -n {ns} logs {STATEFULSET}-0 --tail=20 >&2; exit 1; }}"])
        python.call(name=f"Health check: API, {len(models)} model(s) listed, one generation each",
                    function=_check, port=s["model_server_node_port"], models=models,
                    check_timeout=s["model_server_check_timeout"],
                    url=s["model_server_check_url"])
        server.shell(name="Record the applied model server",
                     commands=[mark_applied_command("model-server", want, fixed=fixed)])

    base = version_dir("").rstrip("/")
    old = [d for d in remote(ollamalogic.versions_command(base)).split()
           if d != tarball["version"]]
    if old:
        server.shell(name="Remove Ollama versions no longer in use: " + ", ".join(old),
                     commands=["rm -rf " + " ".join(shlex.quote(f"{base}/{d}") for d in old)])


@cache
def _crds(r) -> dict:
    """The CRD schemas of the bundle's kube-prometheus (the Probe is checked against them)."""
    from airnode.bundle.images import load_all
    from airnode.monitoring import crd_schemas

    return crd_schemas([d for d in load_all(r.setup) if d])
