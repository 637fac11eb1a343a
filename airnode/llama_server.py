"""llama.cpp's llama-server as the model server: its command line, where its model lives in the
model store, and which model it serves. Pure: imports nothing from pyinfra.

The server runs from llama.cpp's own server image (ghcr.io/ggml-org/llama.cpp:server-<build>,
entrypoint /app/llama-server), fetched into the offline bundle like every other image. The GGUF
it serves is a blob of the model store, in the layout Ollama uses (blobs/sha256-<hex>): the
same file serves both backends, so switching backends keeps the store and copies nothing twice.
"""

from __future__ import annotations

from typing import Any

BINARY = "/app/llama-server"  # in llama.cpp's server image (.devops/*.Dockerfile, target server)
PORT = 8080  # llama-server's default port, kept inside the pod
MODELS_MOUNT = "/models"  # where the model store is mounted in the pod
# Flags airnode sets itself: llama_server_extra_args may not repeat them.
OWN_FLAGS = (
    "--host",
    "--port",
    "--metrics",
    "-m",
    "--model",
    "-a",
    "--alias",
    "-c",
    "--ctx-size",
    "-np",
    "--parallel",
    "-t",
    "--threads",
)


def image_version(ref: str) -> str:
    """A label-safe version of an image reference: its tag, or 'sha256-<12 hex>' when it is
    pinned by digest (a label value holds at most 63 characters)."""
    import re

    name, _, digest = ref.partition("@")
    if digest:
        return "sha256-" + digest.split(":", 1)[-1][:12]
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    tag = re.sub(r"[^A-Za-z0-9._-]", "-", tag)[:63].strip("-._")
    return tag or "latest"


def blob_name(sha256: str) -> str:
    """The model store's file for a GGUF (Ollama's layout: blobs/sha256-<hex>)."""
    from airnode.ollama import blob_file

    return f"blobs/{blob_file(sha256)}"


def served_model(models: list[dict[str, Any]], wanted: str) -> dict[str, Any]:
    """The bundle model llama-server serves (it serves one model per process): the one named
    by llama_server_model, or the bundle's only model."""
    names = sorted(m["name"] for m in models)
    if not models:
        raise ValueError(
            "the bundle holds no models ([[models]] in the spec): llama-server "
            "needs one GGUF to serve"
        )
    if wanted:
        for m in models:
            if m["name"] == wanted:
                return m
        raise ValueError(
            f"llama_server_model = {wanted!r} is not a model of the bundle: one of "
            + ", ".join(names)
        )
    if len(models) > 1:
        raise ValueError(
            "llama_server_model is empty but the bundle holds several models ("
            + ", ".join(names)
            + "): llama-server serves one, name it"
        )
    return models[0]


def server_args(
    *,
    model_file: str,
    alias: str,
    context_length: int,
    parallel: int,
    threads: int = 0,
    gpus: int = 0,
    extra: list[str] | tuple[str, ...] = (),
) -> list[str]:
    """llama-server's arguments. context_length is per slot, as for Ollama: llama-server's
    --ctx-size is the whole KV cache, split over --parallel slots (unified KV is off when
    the number of slots is given), so it gets context_length x parallel."""
    args = [
        "--host",
        "0.0.0.0",
        "--port",
        str(PORT),
        "--metrics",
        "--model",
        f"{MODELS_MOUNT}/{model_file}",
        "--alias",
        alias,
        "--ctx-size",
        str(context_length * parallel),
        "--parallel",
        str(parallel),
    ]
    if threads:
        args += ["--threads", str(threads)]
    if gpus:
        # every layer in VRAM (b10488's default is `auto`: as many as fit, the rest on the CPU,
        # which would serve slowly without saying so), split by layer across the GPUs
        args += ["--n-gpu-layers", "all"]
    return args + [str(a) for a in extra]


def extra_args_problem(extra: Any) -> str | None:
    """Why llama_server_extra_args is not allowed, or None."""
    if not isinstance(extra, (list, tuple)) or not all(isinstance(a, str) for a in extra):
        return "a list of strings (llama-server arguments, e.g. ['--flash-attn', 'on'])"
    if extra and not extra[0].startswith("-"):
        return "a list starting with a flag (e.g. ['--flash-attn', 'on'])"
    own = sorted({a.split("=", 1)[0] for a in extra} & set(OWN_FLAGS))
    if own:
        return (
            "a list without " + ", ".join(own) + " (airnode sets them from its own "
            "settings: llama_server_* and model_server_*)"
        )
    return None
