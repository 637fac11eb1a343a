"""The bundle spec (bundle.toml) and the artifacts it expands to. Pure: no pyinfra, no I/O
beyond reading the spec file."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from airnode import nvidia
from airnode.bundle import rules
from airnode.serving import webui

ARCHES = rules.ARCHES
UNAME_TO_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
DEFAULT_SOURCES = {
    "github": "https://github.com",
    "github_raw": "https://raw.githubusercontent.com",
    "nvidia_apt": nvidia.APT_SOURCE,
}


class SpecError(ValueError):
    pass


@dataclass(frozen=True)
class Artifact:
    kind: str  # k0s, k0s-airgap, ollama, kube-prometheus, containerd, runc,
    # containerd-unit, deb, nvidia-deb, model, image
    name: str
    version: str
    file: str  # path inside the bundle directory
    url: str | None = None  # None for images (fetched with skopeo)
    checksum_url: str | None = None  # upstream checksum file (sha256sum format)
    checksum_name: str | None = None  # the name to look up in it
    sha256: str | None = None  # pinned in the spec (or read from an apt index)
    verified_by: str = "sha256 pinned in spec"  # what vouches for sha256


@dataclass
class Spec:
    arch: str
    sources: dict[str, str]
    k0s: str
    containerd: dict[str, Any]
    ollama: str
    kube_prometheus: str
    kube_prometheus_sha256: str | None
    model_server_image: str
    models: list[dict[str, str]] = field(default_factory=list)
    extra_images: list[str] = field(default_factory=list)
    insecure_registries: tuple[str, ...] = ()
    # [nvidia]: {toolkit_version, device_plugin_image, dcgm_exporter_image} for GPU nodes
    nvidia: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


def version_tuple(version: str) -> tuple[int, ...]:
    """'v1.36.1+k0s.0' -> (1, 36, 1); 'v0.14.0-rc2' -> (0, 14, 0)."""
    core = re.split(r"[+-]", version.lstrip("v"), maxsplit=1)[0]
    try:
        return tuple(int(x) for x in core.split("."))
    except ValueError:
        raise SpecError(f"version {version!r} is not of the form [v]X.Y.Z") from None


def _need(table: dict, key: str, where: str, kind=str) -> Any:
    if key not in table:
        raise SpecError(f"{where}.{key} is missing")
    value = table[key]
    if not isinstance(value, kind):
        raise SpecError(f"{where}.{key} = {value!r}: expected a {kind.__name__}")
    return value


def _sha(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not (isinstance(value, str) and re.fullmatch(rules.SHA256, value)):
        raise SpecError(f"{where} = {value!r}: expected 64 lowercase hex digits")
    return value


SECTIONS = (
    "arch",
    "sources",
    "k0s",
    "containerd",
    "ollama",
    "kube_prometheus",
    "model_server",
    "models",
    "images",
    "insecure_registries",
    "llama_server",
    "open_webui",
    "nvidia",
)
NVIDIA_KEYS = ("toolkit_version", "device_plugin_image", "dcgm_exporter_image")


def _strict(where: str, check, *args) -> None:
    """A rule of airnode/bundle/rules.py, its error as a SpecError."""
    try:
        check(where, *args)
    except rules.BundleValueError as e:
        raise SpecError(str(e)) from None


def parse(data: dict[str, Any]) -> Spec:
    if not isinstance(data, dict):
        raise SpecError(f"the spec is {type(data).__name__}, expected a table")
    for key in data:
        if key not in SECTIONS:
            raise SpecError(f"{key}: no such section (one of {', '.join(SECTIONS)})")
    arch = data.get("arch", "amd64")
    if arch not in ARCHES:
        raise SpecError(f"arch = {arch!r} is not allowed: one of {', '.join(ARCHES)}")
    sources = {**DEFAULT_SOURCES, **data.get("sources", {})}
    for key, value in sources.items():
        if not (isinstance(value, str) and re.fullmatch(r"https?://[\x21-\x7e]{1,500}", value)):
            raise SpecError(f"sources.{key} = {value!r}: expected an http(s):// URL")
    for section in ("k0s", "containerd", "kube_prometheus", "model_server"):
        if not isinstance(data.get(section), dict):
            raise SpecError(f"[{section}] table is missing")
    for section in ("ollama", "llama_server", "open_webui", "nvidia"):
        if section in data and not isinstance(data[section], dict):
            raise SpecError(f"[{section}] must be a table")
    if "ollama" not in data and "llama_server" not in data:
        raise SpecError(
            "[ollama] table is missing (or [llama_server], for a node serving with "
            "llama.cpp's llama-server only)"
        )
    optional_images = {}
    for section in ("llama_server", "open_webui"):
        if section in data:
            image = _need(data[section], "image", section)
            if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
                raise SpecError(
                    f"{section}.image = {image!r}: pin a tag (e.g. "
                    + (
                        "ghcr.io/ggml-org/llama.cpp:server-b10488)"
                        if section == "llama_server"
                        else "ghcr.io/open-webui/open-webui:v0.7.0)"
                    )
                )
            _strict(f"{section}.image", rules.image_ref, image)
            if section == "open_webui" and (problem := webui.image_problem(image)):
                raise SpecError(problem)
            optional_images[section] = image
    gpu = {}
    if "nvidia" in data:
        for key in data["nvidia"]:
            if key not in NVIDIA_KEYS:
                raise SpecError(f"nvidia.{key}: no such key (one of {', '.join(NVIDIA_KEYS)})")
        toolkit = _need(data["nvidia"], "toolkit_version", "nvidia")
        if not nvidia.valid_version(toolkit):
            raise SpecError(
                f"nvidia.toolkit_version = {toolkit!r} is not allowed: {nvidia.VERSION_ALLOWED}"
            )
        gpu = {
            "toolkit_version": toolkit,
            "device_plugin_image": data["nvidia"].get(
                "device_plugin_image", nvidia.DEVICE_PLUGIN_IMAGE
            ),
            "dcgm_exporter_image": data["nvidia"].get(
                "dcgm_exporter_image", nvidia.DCGM_EXPORTER_IMAGE
            ),
        }
        for key in ("device_plugin_image", "dcgm_exporter_image"):
            _strict(f"nvidia.{key}", rules.image_ref, gpu[key])
    containerd = dict(data["containerd"])
    source = containerd.get("source", "static")
    if source not in ("static", "debian"):
        raise SpecError(f"containerd.source = {source!r} is not allowed: one of static, debian")
    if source == "static":
        for key, kind in (("version", "containerd"), ("runc_version", "runc")):
            _strict(f"containerd.{key}", rules.version, kind, _need(containerd, key, "containerd"))
    else:
        debs = containerd.get("debs")
        if not debs or not isinstance(debs, list):
            raise SpecError(
                "containerd.source = 'debian' needs [[containerd.debs]] entries "
                "(url and sha256 of each .deb)"
            )
        for i, deb in enumerate(debs):
            url = _need(deb, "url", f"containerd.debs[{i}]")
            _strict(f"containerd.debs[{i}].url", rules.need, url, rules.URL, "an http(s) URL")
            _strict(
                f"containerd.debs[{i}].url",
                rules.need,
                unquote(url.rsplit("/", 1)[1]),
                r"[a-z0-9][a-z0-9.+-]{1,63}_[0-9][A-Za-z0-9.+~-]{0,63}_[a-z0-9]+\.deb",
                "a URL ending in a .deb file name (package_version_arch.deb)",
            )
            _sha(_need(deb, "sha256", f"containerd.debs[{i}]"), f"containerd.debs[{i}].sha256")
    models = data.get("models", [])
    for i, m in enumerate(models):
        _strict(
            f"models[{i}].name", rules.need, _need(m, "name", f"models[{i}]"), *rules.NAMES["model"]
        )
        url = _need(m, "url", f"models[{i}]")
        if not url.endswith(".gguf"):
            raise SpecError(f"models[{i}].url = {url!r}: expected a .gguf file")
        _strict(f"models[{i}].url", rules.need, url, rules.URL, "an http(s) URL, no spaces")
        _strict(
            f"models[{i}].url",
            rules.need,
            url.rsplit("/", 1)[1],
            rules.FILE_PART,
            "a URL ending in a plain file name (letters, digits, '.', '_', '+', '~', '-')",
        )
        _strict(f"models[{i}].version", rules.version, "model", m.get("version", ""))
        _sha(m.get("sha256"), f"models[{i}].sha256")
    spec = Spec(
        arch=arch,
        sources=sources,
        k0s=_need(data["k0s"], "version", "k0s"),
        containerd={**containerd, "source": source},
        ollama=_need(data["ollama"], "version", "ollama") if "ollama" in data else "",
        kube_prometheus=_need(data["kube_prometheus"], "version", "kube_prometheus"),
        kube_prometheus_sha256=_sha(
            data["kube_prometheus"].get("sha256"), "kube_prometheus.sha256"
        ),
        model_server_image=_need(data["model_server"], "image", "model_server"),
        models=models,
        extra_images=list(data.get("images", []))
        + [optional_images[k] for k in sorted(optional_images)],
        insecure_registries=tuple(data.get("insecure_registries", [])),
        nvidia=gpu,
        raw=data,
    )
    _strict("k0s.version", rules.version, "k0s", spec.k0s)
    if spec.ollama:
        _strict("ollama.version", rules.version, "ollama", spec.ollama)
    _strict("kube_prometheus.version", rules.version, "kube-prometheus", spec.kube_prometheus)
    _strict("model_server.image", rules.image_ref, spec.model_server_image)
    for i, ref in enumerate(data.get("images", [])):
        _strict(f"images[{i}]", rules.image_ref, ref)
    for i, reg in enumerate(spec.insecure_registries):
        _strict(
            f"insecure_registries[{i}]", rules.need, reg, rules.REGISTRY, "a registry host[:port]"
        )
    names = [m["name"] for m in models]
    files = [m["url"].rsplit("/", 1)[1] for m in models]
    for what, values in (("name", names), ("file name", files)):
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise SpecError(
                f"models: two models with the {what} {twice[0]!r}: each needs its "
                "own (models are stored in the bundle under their URL's file name)"
            )
    return spec


def load(path: Path) -> Spec:
    try:
        with open(path, "rb") as f:
            return parse(tomllib.load(f))
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: {e}") from None


def artifacts(spec: Spec) -> list[Artifact]:
    """Every file artifact (images come later, derived from the manifests)."""
    gh, raw, arch = (
        spec.sources["github"].rstrip("/"),
        spec.sources["github_raw"].rstrip("/"),
        spec.arch,
    )
    out = []

    k = spec.k0s
    rel = f"{gh}/k0sproject/k0s/releases/download/{k}"
    sums = f"{rel}/sha256sums.txt"
    binary = f"k0s-{k}-{arch}"
    out.append(Artifact("k0s", "k0s", k, f"k0s/{binary}", f"{rel}/{binary}", sums, binary))
    airgap = (
        f"k0s-airgap-bundle-{k}-linux-{arch}.tar"
        if version_tuple(k) >= (1, 36, 1)
        else f"k0s-airgap-bundle-{k}-{arch}"
    )
    out.append(
        Artifact(
            "k0s-airgap", "k0s airgap images", k, f"k0s/{airgap}", f"{rel}/{airgap}", sums, airgap
        )
    )

    c = spec.containerd
    if c["source"] == "static":
        v, r = c["version"].lstrip("v"), c["runc_version"].lstrip("v")
        tgz = f"containerd-static-{v}-linux-{arch}.tar.gz"  # static: no glibc floor
        crel = f"{gh}/containerd/containerd/releases/download/v{v}"
        out.append(
            Artifact(
                "containerd",
                "containerd",
                v,
                f"containerd/{tgz}",
                f"{crel}/{tgz}",
                f"{crel}/{tgz}.sha256sum",
                tgz,
            )
        )
        out.append(
            Artifact(
                "containerd-unit",
                "containerd.service",
                v,
                "containerd/containerd.service",
                f"{raw}/containerd/containerd/v{v}/containerd.service",
            )
        )
        rrel = f"{gh}/opencontainers/runc/releases/download/v{r}"
        out.append(
            Artifact(
                "runc",
                "runc",
                r,
                f"containerd/runc.{arch}",
                f"{rrel}/runc.{arch}",
                f"{rrel}/runc.sha256sum",
                f"runc.{arch}",
            )
        )
    else:
        for deb in c["debs"]:
            name = unquote(deb["url"].rsplit("/", 1)[1])  # pool URLs spell "+" as %2B
            pkg, _, rest = name.partition("_")
            out.append(
                Artifact(
                    "deb",
                    pkg,
                    rest.rsplit("_", 1)[0],
                    f"containerd/debs/{name}",
                    deb["url"],
                    sha256=deb["sha256"],
                )
            )

    o = spec.ollama
    if o:
        ext = ".tar.zst" if version_tuple(o) >= (0, 14, 0) else ".tgz"
        tar = f"ollama-linux-{arch}{ext}"
        orel = f"{gh}/ollama/ollama/releases/download/{o}"
        out.append(
            Artifact(
                "ollama",
                "ollama",
                o,
                f"ollama/{o}/{tar}",
                f"{orel}/{tar}",
                f"{orel}/sha256sum.txt",
                tar,
            )
        )

    kp = spec.kube_prometheus
    out.append(
        Artifact(
            "kube-prometheus",
            "kube-prometheus",
            kp,
            f"kube-prometheus/kube-prometheus-{kp}.tar.gz",
            f"{gh}/prometheus-operator/kube-prometheus/archive/refs/tags/{kp}.tar.gz",
            sha256=spec.kube_prometheus_sha256,
        )
    )

    for m in spec.models:
        name = m["url"].rsplit("/", 1)[1]
        out.append(
            Artifact(
                "model",
                m["name"],
                m.get("version", ""),
                f"models/{name}",
                m["url"],
                sha256=m.get("sha256"),
            )
        )
    return out


def parse_checksums(text: str) -> dict[str, str]:
    """sha256sum output ('<hex>  name', '<hex> *name', './name') -> {name: hex}."""
    out = {}
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
            name = parts[1].lstrip("*")
            name = name[2:] if name.startswith("./") else name
            out[name] = parts[0].lower()
    return out
