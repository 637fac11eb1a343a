"""Kubernetes manifests of the model server, rendered from templates/ and validated offline:
core kinds against the Kubernetes schemas of the version k0s runs (kubernetes-validate,
strict), kube-prometheus kinds against the CRD schemas shipped with kube-prometheus. Pure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from airnode import nvidia
from airnode.render import render
from airnode.serving import webui

K8S_VERSION = "1.36"  # Kubernetes of the pinned k0s (v1.36.x+k0s)


PORTS = {"ollama": 11434, "llama-server": 8080}  # each server's own port, kept in the pod


def model_server_text(
    *,
    node: str,
    image: str,
    uid: int,
    gid: int,
    backend: str = "ollama",
    server_version: str = "",
    env: dict[str, Any] | None = None,
    args: list[str] | None = None,
    namespace: str = "airnode",
    model_store: str = "/var/lib/airnode/models",
    ollama_dir: str = "/opt/airnode/ollama/current",
    store_size: str = "50Gi",
    node_port: int = 31434,
    cpu_request: str = "1",
    memory_request: str = "2Gi",
    open_webui: dict[str, Any] | None = None,
    gpus: int = 0,
    device_plugin_image: str = "",
    dcgm_exporter_image: str = "",
    replicas: int = 1,
) -> str:
    """The model server's manifests as one multi-document YAML text (what is applied).
    backend "ollama": ``env`` is the OLLAMA_* environment (airnode.ollama.server_env),
    ``ollama_dir`` the version's own directory, so that a new version rolls the pod.
    backend "llama-server": ``args`` are llama-server's (airnode.llama_server.server_args),
    ``image`` llama.cpp's server image. ``open_webui``: None, or {image, node_port, data_dir,
    store_size, admin_email} to add Open WebUI in front of the server. ``gpus``: NVIDIA GPUs the
    server asks for (with containerd's nvidia runtime class); then the RuntimeClass, the device
    plugin and dcgm-exporter (``device_plugin_image``, ``dcgm_exporter_image``) come first.
    ``replicas``: pods of the StatefulSet, at most one per node (a required anti-affinity),
    each on its node's own store: this ``node``'s volume is here, each worker applies its own
    (``store_volume_text``)."""
    if backend not in PORTS:
        raise ValueError(f"model_server = {backend!r}: one of {', '.join(PORTS)}")
    from airnode import llama_server

    port = PORTS[backend]
    text = render(
        "model-server.yaml.j2",
        node=node,
        replicas=replicas,
        image=image,
        backend=backend,
        server_version=server_version,
        uid=uid,
        gid=gid,
        env=env or {},
        args=args or [],
        binary=llama_server.BINARY,
        port=port,
        namespace=namespace,
        model_store=model_store,
        ollama_dir=ollama_dir,
        store_size=store_size,
        node_port=node_port,
        cpu_request=cpu_request,
        memory_request=memory_request,
        k8s_version=K8S_VERSION,
        gpus=gpus,
        runtime_class=nvidia.RUNTIME,
        driver_capabilities=nvidia.DRIVER_CAPABILITIES,
        gpu_resource=nvidia.RESOURCE,
    )
    if gpus:
        if not (device_plugin_image and dcgm_exporter_image):
            raise ValueError("gpus > 0 needs the device plugin's and dcgm-exporter's images")
        text = (
            render(
                "nvidia.yaml.j2",
                image=device_plugin_image,
                runtime_class=nvidia.RUNTIME,
                host_dir=nvidia.DEVICE_PLUGINS_DIR,
                resource=nvidia.RESOURCE,
                dcgm_image=dcgm_exporter_image,
                dcgm_version=nvidia.DCGM_EXPORTER_IMAGE.rsplit(":", 1)[1].removesuffix(
                    "-distroless"
                ),
                pod_resources_dir=nvidia.POD_RESOURCES_DIR,
            )
            + "---\n"
            + text
        )
    if open_webui:
        text += "---\n" + render(
            "open-webui.yaml.j2",
            node=node,
            namespace=namespace,
            image=open_webui["image"],
            node_port=open_webui["node_port"],
            data_dir=open_webui["data_dir"],
            store_size=open_webui["store_size"],
            admin_email=open_webui["admin_email"],
            admin_secret=webui.ADMIN_SECRET,
            admin_secret_key=webui.ADMIN_SECRET_KEY,
            server_url=f"http://model-server.{namespace}.svc",
        )
    return text


def store_volume_text(node: str, model_store: str, store_size: str) -> str:
    """One node's model store as a local PersistentVolume pinned to it (what a worker applies
    through its controller, so that a replica may run over its store)."""
    return render(
        "model-store-volume.yaml.j2", node=node, model_store=model_store, store_size=store_size
    )


def documents(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def render_model_server(**values) -> list[dict]:
    return documents(model_server_text(**values))


def crd_schemas(crd_dir: Path) -> dict[tuple[str, str], dict]:
    """{(apiVersion, kind): openAPIV3Schema} from the CustomResourceDefinition files in crd_dir."""
    from airnode.bundle.images import load_all
    from airnode.monitoring import crd_schemas as schemas

    docs = []
    for path in sorted(Path(crd_dir).glob("*.yaml")):
        with open(path) as f:
            docs += [d for d in load_all(f) if d]
    return schemas(docs)


def validate(
    docs: list[dict], crds: dict[tuple[str, str], dict], k8s_version: str = K8S_VERSION
) -> list[str]:
    """Every problem found, as '<Kind>/<name>: message'; empty when all documents are valid."""
    import jsonschema
    import kubernetes_validate

    problems = []
    for doc in docs:
        key = (doc.get("apiVersion", ""), doc.get("kind", ""))
        name = f"{key[1]}/{doc.get('metadata', {}).get('name', '?')}"
        try:
            if key in crds:
                jsonschema.validate(doc, crds[key])
            else:
                kubernetes_validate.validate(doc, k8s_version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(
                f"{name}: no schema for {key[0]} {key[1]} in Kubernetes "
                f"{k8s_version} nor in the CRDs"
            )
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as e:
            msg = getattr(e, "message", None) or str(e).splitlines()[0]
            path = "/".join(str(p) for p in getattr(e, "path", []) or [])
            problems.append(f"{name}: {msg}{' at ' + path if path else ''}")
    return problems
