"""Strict rules for every field a bundle carries (bundle.json, the spec inside it, the image
names read from OCI archives). A bundle crossed an air gap on removable media: whatever it says
may have been edited. Each value must match a narrow pattern before anything uses it, so that no
value can reach a shell as code, a path outside the bundle, or a Kubernetes manifest as YAML.
Pure: no I/O.

Each error names the field (``artifacts[3].version``), the value (shortened) and what is allowed.
"""

from __future__ import annotations

import re
from typing import Any

ARCHES = ("amd64", "arm64")
# the kinds `airnode bundle fetch` writes (airnode/bundle/spec.py artifacts, fetch.fetch_image)
KINDS = (
    "k0s",
    "k0s-airgap",
    "ollama",
    "kube-prometheus",
    "containerd",
    "containerd-unit",
    "runc",
    "deb",
    "nvidia-deb",
    "model",
    "image",
)

# Versions, per kind, as the upstream projects tag their releases.
SEMVER = r"[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}"
VERSIONS = {
    "k0s": (rf"v{SEMVER}\+k0s\.[0-9]{{1,3}}", "a k0s release tag like v1.34.1+k0s.0"),
    "k0s-airgap": (rf"v{SEMVER}\+k0s\.[0-9]{{1,3}}", "a k0s release tag like v1.34.1+k0s.0"),
    "ollama": (rf"v{SEMVER}(-rc[0-9]{{1,3}})?", "an Ollama release tag like v0.13.5"),
    "kube-prometheus": (rf"v{SEMVER}", "a kube-prometheus release tag like v0.18.0"),
    "containerd": (rf"v?{SEMVER}", "a containerd version like 2.1.4"),
    "containerd-unit": (rf"v?{SEMVER}", "a containerd version like 2.1.4"),
    "runc": (rf"v?{SEMVER}", "a runc version like 1.3.0"),
    # Debian policy 5.6.12: [epoch:]upstream[-revision]; ':' only after the epoch
    "deb": (r"([0-9]{1,4}:)?[0-9][A-Za-z0-9.+~-]{0,63}", "a Debian version like 1.6.20~ds1-1"),
    "nvidia-deb": (r"([0-9]{1,4}:)?[0-9][A-Za-z0-9.+~-]{0,63}", "a Debian version like 1.20.1-1"),
    "model": (r"|[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", "empty or a tag (letters, digits, . _ -)"),
    "image": (r"|[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", "empty or an image tag"),
}
NAMES = {
    # Ollama's model names (types/model/name.go): [host/][namespace/]model[:tag], each part of
    # letters, digits, '_', '-', '.'; airnode keeps to lowercase model parts as `ollama create`
    "model": (
        r"[a-z0-9][a-z0-9._-]{0,79}(/[a-z0-9][a-z0-9._-]{0,79}){0,2}"
        r"(:[A-Za-z0-9_][A-Za-z0-9._-]{0,79})?",
        "an Ollama model name like smollm2:135m or team/model:tag",
    ),
    "deb": (r"[a-z0-9][a-z0-9.+-]{1,63}", "a Debian package name"),
    "nvidia-deb": (r"[a-z0-9][a-z0-9.+-]{1,63}", "a Debian package name"),
}
OTHER_NAME = (r"[A-Za-z0-9][A-Za-z0-9 ._+-]{0,63}", "letters, digits, spaces, '.', '_', '+', '-'")
# the OCI distribution reference grammar (distribution/reference regexp.go), lowercase
# repository, an optional tag and/or sha256 digest
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REGISTRY = (
    r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"(?::[0-9]{1,5})?"
)
_DOMAIN = rf"(?:{REGISTRY}/)"
IMAGE_REF = (
    rf"{_DOMAIN}?{_COMPONENT}(?:/{_COMPONENT}){{0,8}}(?::[A-Za-z0-9_][A-Za-z0-9._-]{{0,127}})?"
    r"(?:@sha256:[0-9a-f]{64})?"
)
IMAGE_REF_ALLOWED = "an image reference like registry.example/name:tag (OCI reference grammar)"
# a path inside the bundle: relative, '/'-separated parts of letters, digits, '.', '_', '+',
# '~', '-', none starting with '.' or '-' (so no '..', no hidden files, no option-like names)
FILE_PART = r"[A-Za-z0-9_][A-Za-z0-9._+~-]{0,199}"
FILE = rf"{FILE_PART}(/{FILE_PART}){{0,7}}"
FILE_ALLOWED = (
    "a relative path of at most 8 parts, each of letters, digits, '.', '_', '+', "
    "'~', '-' not starting with '.' or '-'"
)
SHA256 = r"[0-9a-f]{64}"
URL = r"(https?|docker)://[\x21-\x7e]{1,2000}"
TEXT = r"[\x20-\x7e]{0,200}"  # printable ASCII: no newline, no control character


class BundleValueError(ValueError):
    """A bundle field whose value is outside what is allowed."""

    def __init__(self, where: str, value: Any, allowed: str):
        self.where, self.value, self.allowed = where, value, allowed
        shown = value if not isinstance(value, str) or len(value) <= 80 else value[:77] + "..."
        super().__init__(f"{where} = {shown!r} is not allowed: {allowed}")


def need(where: str, value: Any, regex: str, allowed: str) -> str:
    if not isinstance(value, str) or re.fullmatch(regex, value) is None:
        raise BundleValueError(where, value, allowed)
    return value


def image_ref(where: str, value: Any) -> str:
    return need(where, value, IMAGE_REF, IMAGE_REF_ALLOWED)


def version(where: str, kind: str, value: Any) -> str:
    regex, allowed = VERSIONS[kind]
    return need(where, value, regex, allowed)


def _keys(where: str, table: Any, allowed: tuple[str, ...]) -> dict:
    if not isinstance(table, dict):
        raise BundleValueError(where, table, "a table")
    for key in table:
        if key not in allowed:
            raise BundleValueError(
                f"{where}.{key}" if where else key,
                table[key],
                "no such field (one of " + ", ".join(allowed) + ")",
            )
    return table


def artifact(where: str, a: Any) -> None:
    _keys(where, a, ("kind", "name", "version", "file", "size", "sha256", "source", "verified_by"))
    for key in ("kind", "name", "file", "size", "sha256"):
        if key not in a:
            raise BundleValueError(f"{where}.{key}", None, "required")
    kind = a["kind"]
    if kind not in KINDS:
        raise BundleValueError(f"{where}.kind", kind, "one of " + ", ".join(KINDS))
    if kind == "image":
        image_ref(f"{where}.name", a["name"])
    else:
        need(f"{where}.name", a["name"], *NAMES.get(kind, OTHER_NAME))
    version(f"{where}.version", kind, a.get("version", ""))
    need(f"{where}.file", a["file"], FILE, FILE_ALLOWED)
    if not isinstance(a["size"], int) or isinstance(a["size"], bool) or a["size"] < 0:
        raise BundleValueError(f"{where}.size", a["size"], "a whole number of bytes >= 0")
    need(f"{where}.sha256", a["sha256"], SHA256, "64 lowercase hex digits")
    if a.get("source") is not None:
        need(f"{where}.source", a["source"], URL, "an http(s):// or docker:// URL, no spaces")
    need(
        f"{where}.verified_by",
        a.get("verified_by", ""),
        TEXT,
        "printable text of at most 200 characters",
    )


def manifest(data: Any) -> None:
    """Every field of a loaded bundle.json (the spec inside it included); raises
    BundleValueError for the first bad one."""
    _keys("", data, ("format", "arch", "artifacts", "images", "spec"))
    if data.get("arch") not in ARCHES:
        raise BundleValueError("arch", data.get("arch"), "one of " + ", ".join(ARCHES))
    arts = data.get("artifacts")
    if not isinstance(arts, list):
        raise BundleValueError("artifacts", arts, "a list")
    seen: dict[str, int] = {}
    for i, a in enumerate(arts):
        artifact(f"artifacts[{i}]", a)
        if a["file"] in seen:
            raise BundleValueError(
                f"artifacts[{i}].file",
                a["file"],
                f"a file of its own (artifacts[{seen[a['file']]}] has it)",
            )
        seen[a["file"]] = i
    images = data.get("images", {})
    _keys("images", images, tuple(images) if isinstance(images, dict) else ())
    for group, refs in images.items():
        need(f"images.{group}", group, r"[a-z0-9][a-z0-9-]{0,62}", "a lowercase group name")
        if not isinstance(refs, list):
            raise BundleValueError(f"images.{group}", refs, "a list of image references")
        for j, ref in enumerate(refs):
            image_ref(f"images.{group}[{j}]", ref)
