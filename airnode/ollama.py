"""Ollama on a node: where the release tarball goes, how it is unpacked, the on-disk model store
and the server's environment. Pure: imports nothing from pyinfra.

Layout on the node (install.sh's conventions where they fit an offline, versioned install):
    /opt/airnode/ollama/<version>/{bin/ollama,lib/ollama/...}   one directory per version
    /opt/airnode/ollama/current -> <version>                     the stable path
    /usr/local/bin/ollama -> /opt/airnode/ollama/current/bin/ollama
    system user and group `ollama`, home /usr/share/ollama
    /var/lib/airnode/models                                      the model store (OLLAMA_MODELS)
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from airnode.bundle.unpack import TAR_SAFE

USER = "ollama"
HOME = "/usr/share/ollama"
REGISTRY = "registry.ollama.ai"
MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
# useradd --system takes the highest free id in [SYS_UID_MIN, SYS_UID_MAX] (login.defs)
SYS_ID_MIN, SYS_ID_MAX = 100, 999
# Ollama model names: [namespace/]model[:tag]
NAME_RE = re.compile(r"^(?:[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*(?::[A-Za-z0-9._-]+)?$")


def tarball_kind(file: str) -> str:
    """'.tgz' (Ollama up to v0.13.x) or '.tar.zst' (from v0.14.0)."""
    for ext in (".tar.zst", ".tgz", ".tar.gz"):
        if file.endswith(ext):
            return ".tgz" if ext == ".tar.gz" else ext
    raise ValueError(f"{file}: not an Ollama release tarball (.tgz or .tar.zst)")


def extract_command(tarball: str, dest: str) -> str:
    """Unpack a release tarball into dest (plain `tar -x` cannot read .tar.zst)."""
    t, d = shlex.quote(tarball), shlex.quote(dest)
    if tarball_kind(tarball) == ".tar.zst":
        return f"zstd -dc {t} | tar -x {TAR_SAFE} -C {d}"
    return f"tar -xz {TAR_SAFE} -f {t} -C {d}"


def install_script(tarball: str, sha256: str, base: str, version: str) -> str:
    """Unpack into <base>/<version>.tmp, check the layout, then rename into place: a run cut
    half-way never leaves a half-unpacked version behind under its final name."""
    final = f"{base}/{version}"
    tmp = shlex.quote(final + ".tmp")
    return " && ".join(
        [
            f"rm -rf {tmp}",
            f"mkdir -p {tmp}",
            extract_command(tarball, final + ".tmp"),
            f"{{ test -x {tmp}/bin/ollama || {{ echo "
            + shlex.quote(
                f"{tarball}: no executable bin/ollama in the tarball (not an Ollama release?)"
            )
            + " >&2; exit 1; }; }",
            f"echo {shlex.quote(sha256)} > {tmp}/.airnode-sha256",
            f"rm -rf {shlex.quote(final)}",
            f"mv {tmp} {shlex.quote(final)}",
        ]
    )


def split_name(name: str) -> tuple[str, str, str]:
    """'smollm2:135m' -> ('library', 'smollm2', '135m'); 'me/x' -> ('me', 'x', 'latest')."""
    if not NAME_RE.match(name):
        raise ValueError(
            f"model name {name!r}: expected [namespace/]model[:tag] "
            "(lowercase letters, digits, '.', '_', '-')"
        )
    path, _, tag = name.partition(":")
    ns, _, model = path.rpartition("/")
    return ns or "library", model, tag or "latest"


def manifest_path(store: str, name: str) -> str:
    ns, model, tag = split_name(name)
    return f"{store}/manifests/{REGISTRY}/{ns}/{model}/{tag}"


def model_digest(manifest_text: str | None) -> str | None:
    """The sha256 (hex) of the GGUF layer an Ollama manifest points at; None if unreadable."""
    try:
        layers = json.loads(manifest_text or "")["layers"]
        digest = next(la["digest"] for la in layers if la["mediaType"] == MODEL_MEDIA_TYPE)
    except (ValueError, KeyError, TypeError, StopIteration):
        return None
    return digest.removeprefix("sha256:")


def layer_digests(manifest_text: str | None) -> set[str]:
    """Every layer's sha256 (hex) in an Ollama manifest, whatever its media type (a GGUF with
    vision tensors is stored as a projector layer, not a model layer)."""
    try:
        return {
            la["digest"].removeprefix("sha256:") for la in json.loads(manifest_text or "")["layers"]
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return set()


def blob_file(sha256: str) -> str:
    """The name of a GGUF's blob in the store's blobs/ (the GGUF itself, byte for byte)."""
    return f"sha256-{sha256}"


def blobs_missing(models: list[dict], blobs: dict[str, int]) -> list[dict]:
    """Models (artifacts with sha256, size) whose blob is missing from the store, or short."""
    return [m for m in models if blobs.get(blob_file(m["sha256"])) != m["size"]]


def models_to_seed(
    models: list[dict], manifests: dict[str, str | None], blobs: dict[str, int]
) -> list[dict]:
    """Bundle models (artifacts with name, sha256, size) that the store lacks: no manifest, a
    manifest without that GGUF among its layers, or the blob missing/short."""
    short = blobs_missing(models, blobs)
    return [
        m
        for m in models
        if m in short or m["sha256"] not in layer_digests(manifests.get(m["name"]))
    ]


def store_listing_command(store: str, names: list[str]) -> str:
    """One command that prints each model's manifest and the store's blob sizes."""
    parts = []
    for name in names:
        parts.append(
            f"echo {shlex.quote('@@manifest ' + name)}; "
            f"cat {shlex.quote(manifest_path(store, name))} 2>/dev/null; echo"
        )
    parts.append(
        f"echo @@blobs; find {shlex.quote(store + '/blobs')} -maxdepth 1 -type f "
        "-printf '%f %s\\n' 2>/dev/null"
    )
    return "; ".join(parts) + "; true"


def parse_store_listing(lines: list[str]) -> tuple[dict[str, str | None], dict[str, int]]:
    manifests: dict[str, str | None] = {}
    blobs: dict[str, int] = {}
    current: str | None = None
    section = ""
    for line in lines:
        if line.startswith("@@manifest "):
            current, section = line[len("@@manifest ") :], "manifest"
            manifests[current] = None
        elif line == "@@blobs":
            section = "blobs"
        elif section == "manifest" and line.strip() and current is not None:
            manifests[current] = (manifests[current] or "") + line + "\n"
        elif section == "blobs" and line.strip():
            name, _, size = line.rpartition(" ")
            if size.isdigit():
                blobs[name] = int(size)
    return manifests, blobs


def modelfile(gguf_path: str) -> str:
    return f"# Managed by airnode: `ollama create` reads this offline.\nFROM {gguf_path}\n"


def modelfile_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) + ".Modelfile"


def pick_system_id(used_uids: set[int], used_gids: set[int]) -> int:
    """The id `useradd --system --user-group` would take: the highest one free as uid and gid."""
    for i in range(SYS_ID_MAX, SYS_ID_MIN - 1, -1):
        if i not in used_uids and i not in used_gids:
            return i
    raise ValueError(f"no free system uid/gid in {SYS_ID_MIN}-{SYS_ID_MAX}")


def parse_ids(lines: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """`getent passwd; echo @@group; getent group` -> ({user: uid}, {group: gid})."""
    users: dict[str, int] = {}
    groups: dict[str, int] = {}
    target = users
    for line in lines:
        if line == "@@group":
            target = groups
            continue
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            target[fields[0]] = int(fields[2])
    return users, groups


def server_env(settings: dict[str, Any]) -> dict[str, str]:
    """OLLAMA_* environment of the model server, from inventory settings."""
    env = {
        "OLLAMA_KEEP_ALIVE": str(settings["ollama_keep_alive"]),
        "OLLAMA_NUM_PARALLEL": str(settings["ollama_num_parallel"]),
        "OLLAMA_MAX_LOADED_MODELS": str(settings["ollama_max_loaded_models"]),
        "OLLAMA_CONTEXT_LENGTH": str(settings["ollama_context_length"]),
        "OLLAMA_KV_CACHE_TYPE": str(settings["ollama_kv_cache_type"]),
        "OLLAMA_NOPRUNE": "1",  # never prune blobs seeded offline
    }
    if settings["ollama_flash_attention"] != "auto":  # unset: Ollama decides per model
        env["OLLAMA_FLASH_ATTENTION"] = "1" if settings["ollama_flash_attention"] else "0"
    env.update({k: str(v) for k, v in settings.get("ollama_extra_env", {}).items()})
    return env


SEED_UNIT = "airnode-ollama-seed.service"


def seed_script(
    binary: str, store: str, port: int, timeout: int, modelfiles: list[tuple[str, str]]
) -> str:
    """Start an Ollama server bound to 127.0.0.1:port as the ollama user for the duration (a
    transient systemd unit, stopped on exit whatever happens), wait for it, `ollama create`
    each (name, Modelfile path). POSIX sh."""
    q = shlex.quote
    unit = SEED_UNIT
    lines = [
        "set -e",
        f"systemctl stop {unit} 2>/dev/null || true",
        f"systemctl reset-failed {unit} 2>/dev/null || true",
        f"if ss -ltnH 'sport = :{port}' 2>/dev/null | grep -q .; then echo '127.0.0.1:{port} "
        "is taken by another program: seeding would talk to it; set ollama_seed_port to a free "
        "port' >&2; exit 1; fi",
        f"systemd-run --unit={unit} --collect -q --uid={USER} --gid={USER} "
        f"-p WorkingDirectory={HOME} --setenv=HOME={HOME} "
        f"--setenv=OLLAMA_HOST=127.0.0.1:{port} --setenv=OLLAMA_MODELS={q(store)} "
        f"--setenv=OLLAMA_NOPRUNE=1 {q(binary)} serve",
        f"trap 'systemctl stop {unit} 2>/dev/null || true' EXIT",
        f"export OLLAMA_HOST=127.0.0.1:{port}",
        f"end=$(( $(date +%s) + {timeout} ))",
        f"until {q(binary)} list >/dev/null 2>&1; do",
        f"  if [ $(date +%s) -ge $end ] || ! systemctl is-active -q {unit}; then",
        f"    echo 'the Ollama server started for seeding did not answer on 127.0.0.1:{port} "
        f"within {timeout}s; its log:' >&2",
        f"    journalctl -u {unit} -n 20 --no-pager -o cat >&2 || true",
        "    exit 1",
        "  fi",
        "  sleep 1",
        "done",
    ]
    for name, path in modelfiles:
        lines.append(
            f"{q(binary)} create {q(name)} -f {q(path)} || "
            f"{{ echo {q(f'ollama create {name} -f {path} failed')} >&2; exit 1; }}"
        )
    return "\n".join(lines)


def versions_command(base: str) -> str:
    """The version directories airnode unpacked under base (those carrying .airnode-sha256, and
    leftovers of cut unpacks, *.tmp), one name per line: nothing else there is ever removed."""
    b = shlex.quote(base)
    return (
        f'for d in {b}/*; do [ -d "$d" ] && [ ! -L "$d" ] || continue; '
        'case "$d" in *.tmp) basename "$d"; continue;; esac; '
        '[ -e "$d/.airnode-sha256" ] && basename "$d"; done; true'
    )
