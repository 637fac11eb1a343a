"""The model server: the bundle's Ollama (or llama.cpp's llama-server) as a StatefulSet in its
own namespace, on the node's model store (a local PersistentVolume), behind a NodePort Service,
watched by kube-prometheus; optionally Open WebUI in front of it. Manifests are validated offline
before any change; after an apply the deploy waits (bounded) for the rollout, then checks the
server over HTTP: the API answers, every model it serves is listed, and each one generates text.
Switching backends rolls the same StatefulSet onto the other server: the model store is kept."""

from __future__ import annotations

import io
import json
import re
import shlex
from functools import cache

from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, deploy, operation
from pyinfra.operations import python, server

from airnode import cluster, sizing
from airnode import llama_server as llamalogic
from airnode import ollama as ollamalogic
from airnode.bundle import images as imagelib
from airnode.config import (
    QUANTITY,
    Rule,
    Setting,
    boolean,
    integer,
    one_of,
    owned_dir,
    pattern,
)
from airnode.llama_server import OWN_FLAGS as OWN_LLAMA_FLAGS
from airnode.llama_server import extra_args_problem
from airnode.paths import CACHE, ROOT
from airnode.serving import manifests, webui
from airnode.serving import plan as serverplan
from airnode.steps import bundle
from airnode.steps import k0s as k0sstep
from airnode.steps._common import (
    APPLIED_DIR,
    UNAME_N,
    AirnodeError,
    applied_command,
    applied_on_node,
    declare,
    dir_state_read,
    file_state_read,
    owned_directory,
    put_text,
    record_applied_command,
    remote,
    script,
    settings,
)
from airnode.steps.models import served_models
from airnode.steps.monitoring import (
    APPLY,
    KUBECTL,
    MANIFESTS,
    WAIT_API,
    applied,
    forget_applied_command,
    mark_applied_command,
    rendered,
)
from airnode.steps.ollama import DEFAULTS as OLLAMA_DEFAULTS
from airnode.steps.ollama import account, artifact, version_dir

DEFAULTS = declare(
    "model_server",
    {
        "model_server": Setting(
            "ollama",
            one_of("ollama", "llama-server"),
            (
                "the backend (see [the operator "
                "guide](operator-guide.md#two-backends-ollama-or-llama-server)); switching "
                "rolls the same StatefulSet and keeps the model store"
            ),
        ),
        "model_server_namespace": Setting(
            "airnode",
            pattern(
                r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?",
                "a Kubernetes namespace name (lowercase DNS label)",
            ),
            "namespace of the model server",
        ),
        "model_server_node_port": Setting(
            31434,
            integer(ge=30000, le=32767, note="Kubernetes' NodePort range"),
            "the API's port on the node's addresses",
        ),
        "model_server_store_size": Setting(
            "50Gi",
            pattern(QUANTITY, "a Kubernetes quantity like 50Gi"),
            "capacity of the model store's PersistentVolume",
        ),
        "model_server_store_dir": Setting(
            "/var/lib/airnode/models",
            owned_dir("the model store"),
            (
                "the model store (`OLLAMA_MODELS`), the local PersistentVolume's path. It and"
                " `model_server_namespace`, `model_server_store_size` cannot change under a "
                "running model server (Kubernetes keeps them immutable): a run that would is "
                "refused, naming the way out (teardown, then deploy)"
            ),
            was=("model_store_dir",),
        ),
        "model_server_cpu_request": Setting(
            "1",
            pattern(r"[0-9]+(\.[0-9]+)?|[0-9]+m", "a CPU quantity like 1, 0.5 or 500m"),
            "the pod's CPU request",
        ),
        "model_server_gpus": Setting(
            0,
            integer(ge=0, le=16),
            (
                "NVIDIA GPUs for the model server; 0 = CPU only. Above 0: preflight checks the "
                "host's GPUs and driver and the bundle's `[nvidia]` part; containerd gets the "
                "NVIDIA Container Toolkit and its `nvidia` runtime, the pod asks for "
                "`nvidia.com/gpu` through NVIDIA's device plugin (docs/gpu.md)"
            ),
        ),
        "model_server_replicas": Setting(
            1,
            integer(ge=1, le=64),
            (
                "pods of the model server's StatefulSet, at most one per node, each on its "
                "node's own model store; above 1 needs a cluster (`controllers` and `workers` "
                "groups in the inventory); one Service balances across them"
            ),
        ),
        "model_server_memory_request": Setting(
            "auto",
            Rule(
                "auto (what sizing computes for the largest model) or a quantity like 4Gi",
                lambda v: (
                    v == "auto" or (isinstance(v, str) and re.fullmatch(QUANTITY, v) is not None)
                ),
            ),
            (
                "the pod's memory request; `auto` = what sizing needs for the largest model "
                "(at least 512Mi)"
            ),
        ),
        "model_server_rollout_timeout": Setting(
            600,
            integer(ge=30, le=3600),
            "seconds to wait for the pod to be Ready",
        ),
        "model_server_check_timeout": Setting(
            300,
            integer(ge=10, le=3600),
            "seconds for the health check and for each model's generation",
        ),
        "model_server_check_url": Setting(
            "",
            Rule(
                "empty (check through the SSH connection) or an http(s):// URL of the model server",
                lambda v: (
                    v == ""
                    or isinstance(v, str)
                    and re.fullmatch(r"https?://[^\s/]+/?", v) is not None
                ),
            ),
            (
                "empty: the check goes through pyinfra's SSH connection to the NodePort "
                "(needs sshd's `AllowTcpForwarding`, OpenSSH's default); else the URL the "
                "control machine reaches the server at (needs `k0s_node_ports_on_lan = true`)"
            ),
        ),
        "llama_server_model": Setting(
            "",
            Rule(
                "empty (the bundle's only model) or the name of a model of the bundle",
                lambda v: isinstance(v, str),
            ),
            (
                "the one model llama-server serves; empty = the bundle's only model (several:"
                " name one)"
            ),
        ),
        "llama_server_context_length": Setting(
            4096,
            integer(ge=256, le=1048576, note="context per slot"),
            (
                "context per slot; `--ctx-size` = this × `llama_server_parallel` (sizing "
                "counts the same)"
            ),
        ),
        "llama_server_parallel": Setting(
            1,
            integer(ge=1, le=64),
            "`--parallel`: requests served at once",
        ),
        "llama_server_threads": Setting(
            0,
            integer(ge=0, le=1024, note="0 lets llama-server decide"),
            "`--threads`; 0 = llama-server decides",
        ),
        "llama_server_extra_args": Setting(
            [],
            Rule(
                "a list of llama-server arguments starting with a flag, without the flags airnode "
                "sets (" + ", ".join(OWN_LLAMA_FLAGS) + ")",
                lambda v: extra_args_problem(v) is None,
            ),
            (
                'more llama-server arguments, e.g. `["--flash-attn", "on"]`; not the flags '
                "airnode sets"
            ),
        ),
        "open_webui": Setting(
            False,
            boolean(),
            (
                "Open WebUI in front of the model server (its image from the bundle's "
                "`[open_webui]`)"
            ),
        ),
        "open_webui_node_port": Setting(
            31080,
            integer(ge=30000, le=32767, note="Kubernetes' NodePort range"),
            "the UI's port on the node (127.0.0.1 unless `k0s_node_ports_on_lan`)",
        ),
        "open_webui_data_dir": Setting(
            "/var/lib/airnode/open-webui",
            owned_dir("Open WebUI's data"),
            (
                "users, chats and settings (a local PersistentVolume); kept by teardown "
                "unless purged"
            ),
        ),
        "open_webui_store_size": Setting(
            "5Gi",
            pattern(QUANTITY, "a Kubernetes quantity like 5Gi"),
            "capacity of that volume",
        ),
        "open_webui_admin_email": Setting(
            "",
            pattern(
                f"|{webui.EMAIL}",
                "empty or an email address (the Open WebUI admin's login, e.g. admin@example.com)",
            ),
            "the admin's login (sign-up is closed)",
        ),
        "open_webui_admin_password_file": Setting(
            "",
            Rule(
                "empty or the path of a file on the control machine whose first line is the Open "
                "WebUI admin's password",
                lambda v: isinstance(v, str) and "\n" not in v,
            ),
            (
                "its first line is the admin's password (≤ 72 bytes; relative paths from the "
                "project root); made into a Secret once, never printed"
            ),
        ),
    },
    prefixes=("llama_server", "open_webui"),
)
STATEFULSET = "model-server"
# Both backends are monitored through one ServiceMonitor (model-server); before it, Ollama's was
# a Probe of the Service (one replica at a time), deleted at the next apply.
FORMER_MONITOR = "probe"
MANIFEST = f"{MANIFESTS}/model-server.yaml"


def _model_info(b: bundle.Bundle, m: dict) -> sizing.ModelInfo:
    return sizing.model_info(b.root / m["file"], m["name"], m["sha256"], CACHE)


def sizing_settings(s: dict) -> tuple[int, int, str]:
    """(context per slot, parallel slots, KV cache type) of the configured backend."""
    if s["model_server"] == "llama-server":
        return s["llama_server_context_length"], s["llama_server_parallel"], "f16"
    return s["ollama_context_length"], s["ollama_num_parallel"], s["ollama_kv_cache_type"]


def memory_request(s: dict, b: bundle.Bundle) -> str:
    if s["model_server_memory_request"] != "auto":
        return s["model_server_memory_request"]
    needs = [sizing.need_bytes(_model_info(b, m), *sizing_settings(s)) for m in served_models(s, b)]
    return f"{max(max(needs, default=0) // sizing.MIB, 512)}Mi"


def spec_image(b: bundle.Bundle, section: str, what: str) -> str:
    image = ((b.data.get("spec") or {}).get(section) or {}).get("image")
    if not image:
        raise AirnodeError(
            f"bundle {b.root} names no {what} image ([{section}] image in the "
            "spec): add it and fetch the bundle again"
        )
    return imagelib.normalize(image)


def nvidia_images(s: dict, b: bundle.Bundle) -> dict[str, str]:
    """NVIDIA's device plugin and dcgm-exporter images, as the bundle's image list names them
    (the group `nvidia`: in that order); {} without GPUs (preflight has checked that a bundle
    for GPUs holds both)."""
    refs = b.data.get("images", {}).get("nvidia") or []
    if not s["model_server_gpus"] or len(refs) < 2:
        return {}
    return {"device_plugin_image": refs[0], "dcgm_exporter_image": refs[1]}


def server_image(b: bundle.Bundle) -> str:
    return spec_image(b, "model_server", "model server")


def _check(
    state, host, port: int, models: list[str], check_timeout: int, url: str, api: str = "ollama"
) -> bool:
    """pyinfra callback: health and smoke check over pyinfra's own SSH connection."""
    from airnode.serving.health import HealthError, check
    from airnode.serving.tunnel import TunnelError, forward

    client = getattr(host.connector, "client", None)
    try:
        if url:
            report = check(url, models, api, ready_timeout=check_timeout, timeout=check_timeout)
        elif client is not None:  # ssh: tunnel to the NodePort as the node sees it
            with forward(client.get_transport(), "127.0.0.1", port) as tunnel:
                report = check(
                    tunnel, models, api, ready_timeout=check_timeout, timeout=check_timeout
                )
        elif host.name.startswith("@local"):
            report = check(
                f"http://127.0.0.1:{port}",
                models,
                api,
                ready_timeout=check_timeout,
                timeout=check_timeout,
            )
        else:
            host.log_styled(
                f"health check skipped: connector {host.name} has no SSH client; "
                f"run `airnode check http://NODE:{port}`",
                log_func=logger.warning,
            )
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
    return [
        ollamalogic.versions_command(version_dir("").rstrip("/")),
        UNAME_N,
        applied_command(VOLUME),
        applied_command(VOLUME_FIXED),
        file_state_read(MANIFEST),
        dir_state_read(settings(DEFAULTS)["open_webui_data_dir"]),
    ]


_TEXTS: dict[str, str] = {}


def render_text(s: dict, b: bundle.Bundle, node: str, store: str) -> str:
    """The manifests for the configured backend (and Open WebUI), validated; nothing changed.
    Rendered and validated once per host and run: preflight counts its pods' requests, the
    step applies it."""
    key = json.dumps(
        [host.name, {k: s[k] for k in (*OLLAMA_DEFAULTS, *DEFAULTS)}, str(b.root), node, store],
        sort_keys=True,
        default=str,
    )
    if key not in _TEXTS:
        _TEXTS[key] = _render_text(s, b, node, store)
    return _TEXTS[key]


def _render_text(s: dict, b: bundle.Bundle, node: str, store: str) -> str:
    uid, gid = account()
    common = dict(
        node=node,
        replicas=s["model_server_replicas"],
        uid=uid,
        gid=gid,
        namespace=s["model_server_namespace"],
        model_store=store,
        store_size=s["model_server_store_size"],
        node_port=s["model_server_node_port"],
        cpu_request=s["model_server_cpu_request"],
        memory_request=memory_request(s, b),
        gpus=s["model_server_gpus"],
        **nvidia_images(s, b),
    )
    if s["open_webui"]:
        common["open_webui"] = {
            "image": spec_image(b, "open_webui", "Open WebUI"),
            "node_port": s["open_webui_node_port"],
            "data_dir": s["open_webui_data_dir"],
            "store_size": s["open_webui_store_size"],
            "admin_email": s["open_webui_admin_email"],
        }
    if s["model_server"] == "llama-server":
        image = spec_image(b, "llama_server", "llama-server")
        model = served_models(s, b)[0]
        args = llamalogic.server_args(
            model_file=llamalogic.blob_name(model["sha256"]),
            alias=model["name"],
            context_length=s["llama_server_context_length"],
            parallel=s["llama_server_parallel"],
            threads=s["llama_server_threads"],
            gpus=s["model_server_gpus"],
            extra=s["llama_server_extra_args"],
        )
        text = manifests.model_server_text(
            backend="llama-server",
            image=image,
            server_version=llamalogic.image_version(image),
            args=args,
            **common,
        )
    else:
        tarball = artifact(b)
        text = manifests.model_server_text(
            backend="ollama",
            image=server_image(b),
            server_version=tarball["version"],
            env=ollamalogic.server_env(s),
            ollama_dir=version_dir(tarball["version"]),
            **common,
        )
    problems = manifests.validate(manifests.documents(text), _crds(rendered(b)))
    if problems:
        raise AirnodeError(
            "the model server's manifests do not validate; nothing was "
            "changed:\n  - " + "\n  - ".join(problems)
        )
    return text


def migrate_command(ns: str, node: str) -> str:
    """Before an apply, once: a node deployed when the model server's objects were named
    `ollama` has them replaced (the Service held the NodePort, the claim held the store's
    volume). The StatefulSet goes first, then its claim (which waits for the pod), then the
    volume is freed for the new claim: its data stay where they are (Retain, a local path)."""
    return script("migrate-model-server.sh", KUBECTL, ns, node)


def switch_commands(s: dict) -> list[str]:
    """Before an apply: what an earlier airnode (Ollama's Probe) or a disabled Open WebUI left
    in the namespace. The model store's claim and Open WebUI's data claim are never deleted."""
    ns = s["model_server_namespace"]
    cmds = [
        f"{KUBECTL} -n {ns} delete {FORMER_MONITOR} {STATEFULSET} --ignore-not-found >/dev/null"
    ]
    if not s["open_webui"]:
        cmds.append(
            f"{KUBECTL} -n {ns} delete deployment,service open-webui --ignore-not-found >/dev/null"
        )
    return cmds


def secret_command(ns: str) -> str:
    """Open WebUI's session key, made on the node once and never printed."""
    return (
        f"{KUBECTL} -n {ns} get secret open-webui >/dev/null 2>&1 || "
        f"{KUBECTL} -n {ns} create secret generic open-webui "
        "--from-literal=secret-key=\"$(head -c 32 /dev/urandom | base64 | tr -d '\\n')\" "
        ">/dev/null"
    )


@operation(is_idempotent=False)
def _admin_secret(ns: str, password: bytes):
    """Upload the password into a root-only directory on the node's tmpfs, make the Secret
    from the file unless it exists, remove the file. Nothing of it reaches a command line or
    the output (files.put would show a diff under --diff)."""
    yield f"install -d -m 700 {webui.UPLOAD_DIR}"
    yield FileUploadCommand(io.BytesIO(password), webui.UPLOAD_PATH)
    yield script(
        "admin-secret.sh",
        KUBECTL,
        ns,
        webui.ADMIN_SECRET,
        webui.ADMIN_SECRET_KEY,
        webui.UPLOAD_PATH,
    )


def admin_secret(ns: str, password_file: str) -> None:
    """Open WebUI's admin password as the Secret its Deployment reads (made once: Open WebUI
    reads it only on an empty database, so a later change of the file changes nothing)."""
    try:
        password = webui.admin_password(str(ROOT / password_file))
    except webui.SecretFileError as e:
        raise AirnodeError(f"{host.name}: {e}") from None
    _admin_secret(
        ns=ns,
        password=password,
        name=f"Open WebUI's admin password into secret/{webui.ADMIN_SECRET} in {ns}",
    )


VOLUME = "model-store-volume"  # what a worker last applied of its volume (applied record)
VOLUME_FIXED = "model-store-volume.fixed"  # and the settings that volume fixes (JSON)


def server_settings() -> dict:
    """The model server's settings with Ollama's (the ollama step declares those)."""
    return {**settings(OLLAMA_DEFAULTS), **settings(DEFAULTS)}


@deploy("Model server (StatefulSet)", data_defaults=DEFAULTS)
def model_server():
    s = server_settings()
    b = bundle.current("no model server without the offline bundle")
    if b is None:
        return
    if k0sstep.role() != cluster.SINGLE:
        # One operation, at one line, on every node of a cluster: a worker applies its own
        # model store's volume through the controller (when it changed); on the controller it
        # does nothing, but pyinfra orders an operation by its line on every host, so the
        # controller's apply and rollout below come after every worker's volume is there.
        text, want = k0sstep.worker_volume(s) if k0sstep.is_worker() else ("", "")
        fixed_record = applied_on_node(VOLUME_FIXED) if text else ""
        try:
            fixed = serverplan.worker_volume_fixed(s, fixed_record)
        except serverplan.ImmutableChange as e:
            raise AirnodeError(f"{host.name}: {e}") from None
        ctrl = k0sstep.controller_host()
        # (a worker deployed before the fixed record existed writes it once)
        recorded = applied_on_node(VOLUME) == want and fixed_record
        if not k0sstep.is_worker() or not recorded:
            python.call(
                name=(
                    f"This node's model store as PersistentVolume airnode-models-"
                    f"{k0sstep.node_name()} (applied on {ctrl.name})"
                    if text
                    else "The workers' model store volumes come first"
                ),
                function=k0sstep.apply_on_controller,
                controller=ctrl,
                text=text,
                apply=f"{APPLY} -f -",
                record=record_applied_command(VOLUME, want)
                + f" && printf '%s\\n' {shlex.quote(json.dumps(fixed, sort_keys=True))}"
                + f" > {APPLIED_DIR}/{VOLUME_FIXED}",
                _if=(lambda: True) if text else (lambda: False),
            )
    if k0sstep.is_worker():
        host.noop("a worker: the controller applies the model server, once for the cluster")
        return
    backend = s["model_server"]
    node = remote(UNAME_N).strip().lower()
    text = render_text(s, b, node, s["model_server_store_dir"])
    served = served_models(s, b)
    tarball = artifact(b) if backend == "ollama" else None
    base = version_dir("").rstrip("/")
    try:
        p = serverplan.plan(
            s,
            node,
            text,
            [(m["name"], m["sha256"]) for m in served],
            applied("model-server"),
            remote(ollamalogic.versions_command(base)).split(),
            tarball["version"] if tarball else None,
        )
    except serverplan.ImmutableChange as e:
        raise AirnodeError(f"{host.name}: {e}") from None

    if s["open_webui"]:
        owned_directory(
            s["open_webui_data_dir"], f"Open WebUI data {s['open_webui_data_dir']}", "700"
        )
    path = MANIFEST
    put_text(text, path, f"Model server manifests ({path})", mode="600")
    if p.apply:
        emit_apply(s, path, node, sorted(m["name"] for m in served), p)
    else:
        host.noop(f"model server: {p.reason}")
    if p.remove_versions:
        server.shell(
            name="Remove Ollama versions no longer in use: " + ", ".join(p.remove_versions),
            commands=["rm -rf " + " ".join(shlex.quote(f"{base}/{d}") for d in p.remove_versions)],
        )


def emit_apply(s: dict, path: str, node: str, models: list[str], p: serverplan.Plan) -> None:
    """Apply (server-side), wait for the rollout, check the server, record what was applied."""
    ns, backend = s["model_server_namespace"], s["model_server"]
    t = s["model_server_rollout_timeout"]
    server.shell(
        name=f"Apply the model server ({backend}, server-side) in namespace {ns}",
        commands=[
            WAIT_API,
            forget_applied_command("model-server"),
            migrate_command(ns, node),
            *switch_commands(s),
            f"{APPLY} -f {path} >/dev/null",
            *([secret_command(ns)] if s["open_webui"] else []),
        ],
    )
    if s["open_webui"]:
        admin_secret(ns, s["open_webui_admin_password_file"])
    server.shell(
        name=f"Wait for the rollout of statefulset/{STATEFULSET} (at most {t}s)",
        commands=[script("rollout-wait.sh", KUBECTL, ns, STATEFULSET, str(t))],
    )
    python.call(
        name=f"Health check: API, {len(models)} model(s) listed, one generation each",
        function=_check,
        port=s["model_server_node_port"],
        models=models,
        check_timeout=s["model_server_check_timeout"],
        url=s["model_server_check_url"],
        api="openai" if backend == "llama-server" else "ollama",
    )
    server.shell(
        name="Record the applied model server",
        commands=[mark_applied_command("model-server", p.want, fixed=p.fixed)],
    )


@cache
def _crds(r) -> dict:
    """The CRD schemas of the bundle's kube-prometheus (to check the ServiceMonitor against)."""
    from airnode.monitoring import crd_schemas

    return crd_schemas(r.setup_documents())
