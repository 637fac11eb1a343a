"""Container images a node needs, derived from what runs, never typed by hand. Pure.

Sources: every ``image:`` field anywhere in the kube-prometheus manifests (Pods' containers and
also the Prometheus/Alertmanager custom resources), plus images that are passed only as
command-line flags (``--prometheus-config-reloader=quay.io/...``), plus k0s's own images and the
model server's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from airnode.bundle import rules

# A flag whose value is an image: registry host (with a dot, a port or "localhost"), a
# repository path, and a tag and/or digest. Paths and namespace/name pairs do not match.
_IMAGE_IN_FLAG = re.compile(
    r"^--[A-Za-z0-9-]+=((?:[a-z0-9-]+(?:\.[a-z0-9-]+)+(?::[0-9]+)?|localhost(?::[0-9]+)?)"
    r"/[a-z0-9._-]+(?:/[a-z0-9._-]+)*"
    r"(?::[A-Za-z0-9._-]+(?:@sha256:[0-9a-f]{64})?|@sha256:[0-9a-f]{64}))$"
)


if TYPE_CHECKING:
    _SafeLoader = yaml.SafeLoader
else:  # libyaml when available
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):
    """SafeLoader that reads YAML 1.1's ``=`` value scalar (found in CRDs) as a string."""


def _value_scalar(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_Loader.add_constructor("tag:yaml.org,2002:value", _value_scalar)


def load_all(stream):
    return yaml.load_all(stream, Loader=_Loader)


def normalize(ref: str) -> str:
    """Fully qualify a reference the way containerd's CRI does: docker.io/library/x:latest."""
    name, digest = (ref.split("@", 1) + [""])[:2]
    slash = name.find("/")
    first = name[:slash] if slash >= 0 else ""
    if slash < 0 or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + name
    if name.startswith("docker.io/") and name.count("/") == 1:
        name = "docker.io/library/" + name[len("docker.io/") :]
    last = name.rsplit("/", 1)[1]
    if ":" not in last and not digest:
        name += ":latest"
    return name + (f"@{digest}" if digest else "")


def _walk(node) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                yield value
            elif key in ("args", "command") and isinstance(value, list):
                for arg in value:
                    m = _IMAGE_IN_FLAG.match(arg) if isinstance(arg, str) else None
                    if m:
                        yield m.group(1)
            else:
                yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def images_in_documents(docs: Iterable) -> set[str]:
    return {normalize(ref) for doc in docs if doc for ref in _walk(doc)}


def images_in_manifests(directory: Path) -> list[str]:
    """Every image the YAML manifests under ``directory`` (recursively) need, sorted."""
    found: set[str] = set()
    for path in sorted(Path(directory).rglob("*.y*ml")):
        with open(path) as f:
            found |= images_in_documents(load_all(f))
    return sorted(found)


def archive_name(ref: str) -> str:
    """File name of an image's OCI archive in the bundle."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", normalize(ref)) + ".oci.tar"


def images_in_kube_prometheus_tarball(path: Path) -> list[str]:
    """Images the manifests/ (and manifests/setup/) inside a kube-prometheus source tarball need."""
    import tarfile

    found: set[str] = set()
    with tarfile.open(path) as tar:
        for member in tar:
            parts = Path(member.name).parts
            if (
                member.isfile()
                and len(parts) >= 3
                and parts[1] == "manifests"
                and member.name.endswith((".yaml", ".yml"))
            ):
                f = tar.extractfile(member)
                if f is not None:
                    found |= images_in_documents(load_all(f))
    return sorted(found)


def archive_images(path: Path) -> dict[str, str | None]:
    """{image name: manifest digest} of an OCI (or docker-save) archive, read without
    unpacking it: index.json annotations, or docker-save RepoTags (digest unknown: None)."""
    import json
    import tarfile

    from airnode.bundle.unpack import read_member

    out: dict[str, str | None] = {}
    with tarfile.open(path) as tar:
        members = {Path(m.name).as_posix().lstrip("./"): m for m in tar if m.isfile()}
        if "index.json" in members:
            index = json.loads(read_member(tar, members["index.json"]))
            for i, m in enumerate(index.get("manifests", [])):
                ann = m.get("annotations", {})
                key = next(
                    (
                        k
                        for k in ("io.containerd.image.name", "org.opencontainers.image.ref.name")
                        if ann.get(k)
                    ),
                    None,
                )
                name = ann.get(key) if key else None
                if name and ("/" in name or ":" in name):
                    # names reach ctr's command line and the node's image list: strict
                    where = f"{path.name}: index.json manifests[{i}]"
                    rules.image_ref(f"{where}.annotations[{key}]", name)
                    rules.need(
                        f"{where}.digest",
                        m.get("digest"),
                        rf"sha256:{rules.SHA256}",
                        "sha256:<64 lowercase hex digits>",
                    )
                    out[normalize(name)] = m.get("digest")
        if "manifest.json" in members:
            for i, m in enumerate(json.loads(read_member(tar, members["manifest.json"]))):
                for j, tag in enumerate(m.get("RepoTags") or []):
                    rules.image_ref(f"{path.name}: manifest.json [{i}].RepoTags[{j}]", tag)
                    out.setdefault(normalize(tag), None)
    return out


def images_in_oci_archive(path: Path) -> list[str]:
    """Image names in an OCI (or docker-save) archive."""
    return sorted(archive_images(path))
