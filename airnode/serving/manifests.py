"""Kubernetes manifests of the model server, rendered from templates/ and validated offline:
core kinds against the Kubernetes schemas of the version k0s runs (kubernetes-validate,
strict), kube-prometheus kinds against the CRD schemas shipped with kube-prometheus. Pure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from airnode.render import render

K8S_VERSION = "1.34"  # Kubernetes of the pinned k0s (v1.34.x+k0s)
OLLAMA_ENV_DEFAULTS = {
    "OLLAMA_KEEP_ALIVE": "5m",          # how long a model stays loaded after its last request
    "OLLAMA_NUM_PARALLEL": "1",         # parallel requests per model (each one more KV cache)
    "OLLAMA_MAX_LOADED_MODELS": "1",
    "OLLAMA_CONTEXT_LENGTH": "4096",
    "OLLAMA_FLASH_ATTENTION": "0",
    "OLLAMA_KV_CACHE_TYPE": "f16",
    "OLLAMA_NOPRUNE": "1",              # never prune blobs seeded offline
}


def render_model_server(*, node: str, image: str, ollama_version: str, uid: int, gid: int,
                        env: dict[str, Any] | None = None, namespace: str = "airnode",
                        model_store: str = "/var/lib/airnode/models",
                        ollama_dir: str = "/opt/airnode/ollama/current",
                        store_size: str = "50Gi", node_port: int = 31434,
                        cpu_request: str = "1", memory_request: str = "2Gi") -> list[dict]:
    text = render("model-server.yaml.j2", node=node, image=image, ollama_version=ollama_version,
                  uid=uid, gid=gid, env={**OLLAMA_ENV_DEFAULTS, **(env or {})},
                  namespace=namespace, model_store=model_store, ollama_dir=ollama_dir,
                  store_size=store_size, node_port=node_port, cpu_request=cpu_request,
                  memory_request=memory_request, k8s_version=K8S_VERSION)
    return [d for d in yaml.safe_load_all(text) if d]


def crd_schemas(crd_dir: Path) -> dict[tuple[str, str], dict]:
    """{(apiVersion, kind): openAPIV3Schema} from CustomResourceDefinition files."""
    from airnode.bundle.images import load_all

    out = {}
    for path in sorted(Path(crd_dir).glob("*.yaml")):
        with open(path) as f:
            for doc in load_all(f):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for v in spec["versions"]:
                    out[(f"{spec['group']}/{v['name']}", spec["names"]["kind"])] = \
                        v["schema"]["openAPIV3Schema"]
    return out


def validate(docs: list[dict], crds: dict[tuple[str, str], dict],
             k8s_version: str = K8S_VERSION) -> list[str]:
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
            problems.append(f"{name}: no schema for {key[0]} {key[1]} in Kubernetes "
                            f"{k8s_version} nor in the CRDs")
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as e:
            msg = getattr(e, "message", None) or str(e).splitlines()[0]
            path = "/".join(str(p) for p in getattr(e, "path", []) or [])
            problems.append(f"{name}: {msg}{' at ' + path if path else ''}")
    return problems
