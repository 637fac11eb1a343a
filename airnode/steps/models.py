"""Models seeded offline, each stored once: a GGUF of the bundle goes from the control machine
straight into the model store under its final name, `blobs/sha256-<hex>` (uploaded to a
`.partial` name, its sha256 checked on the node, then renamed), the one file both backends
read. For Ollama it then becomes a model: airnode writes the config blob and the manifest that
`ollama create` would write around that blob (airnode/ollama.py `registration`, read from the
pinned Ollama), blobs first, each renamed into place. No Ollama runs for it, no byte of the
GGUF is read again, and the GGUF is not copied (create itself rewrites it into a second blob
from Ollama v0.30). A model already in the store with the same GGUF digest and all its blobs is
left alone; models are never deleted by a deploy."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import server as shell

from airnode import llama_server as llamalogic
from airnode import ollama as logic
from airnode import sizing
from airnode.bundle import digests
from airnode.bundle.manifest import human
from airnode.bundle.ship import PARTIAL
from airnode.bundle.spec import parse_checksums
from airnode.paths import CACHE
from airnode.record import CREATED, made_by_airnode
from airnode.scripts import ollama_register, place_files
from airnode.sizing import Need
from airnode.steps import bundle
from airnode.steps._common import (
    AirnodeError,
    declare,
    dir_state_read,
    directory,
    owned_directory,
    remote,
    setting,
    stream_upload,
)
from airnode.transfer import start_offset

DEFAULTS = declare("models", {})  # the store is the model server's (model_server_store_dir)
CREATED_READ = f"cat {CREATED} 2>/dev/null || true"


def store_dir() -> str:
    """The model store: the model server's setting (a later step's, read by key)."""
    return str(setting("model_server_store_dir"))


def store_read(b: bundle.Bundle) -> str:
    return logic.store_listing_command(store_dir(), [m["name"] for m in b.artifacts("model")])


def reads(b: bundle.Bundle | None) -> list[str]:
    try:
        store = store_dir()
        if b is None:
            return []
        return [
            store_read(b),
            dir_state_read(store),
            dir_state_read(f"{store}/blobs"),
            CREATED_READ,
            bundle.stats_command(b.remote),
            *([deep_read(store, b.artifacts("model"))] if setting("bundle_deep_check") else []),
        ]
    except ValueError:  # a bad model name: preflight names it
        return []


def store_state(b: bundle.Bundle) -> tuple[dict, dict]:
    """What the node's store holds of the bundle's models: ({name: manifest}, {blob: size})."""
    return logic.parse_store_listing(remote(store_read(b)).splitlines())


def served_models(s: dict, b: bundle.Bundle) -> list[dict]:
    """The bundle models the server serves: all of them (Ollama), or one (llama-server)."""
    if s["model_server"] != "llama-server":
        return b.artifacts("model")
    try:
        return [llamalogic.served_model(b.artifacts("model"), s["llama_server_model"])]
    except ValueError as e:
        raise AirnodeError(str(e)) from None


def server_choice() -> dict:
    """The model server's settings (a later step's) this step depends on: which backend, and
    the one model llama-server serves."""
    return {k: setting(k) for k in ("model_server", "llama_server_model")}


def disk_needs(b: bundle.Bundle) -> list[Need]:
    """What this run writes into the store: each served model whose blob is missing (or short),
    once (Ollama registers it in place), less what a cut upload left of it."""
    _, blobs = store_state(b)
    missing = logic.blobs_missing(served_models(server_choice(), b), blobs)
    n = sum(
        m["size"] - start_offset(blobs.get(logic.blob_file(m["sha256"]) + PARTIAL), m["size"])
        for m in missing
    )
    return [Need(store_dir(), n, "models")]


@deploy("Models (seeded offline)", data_defaults=DEFAULTS)
def models():
    b = bundle.current("no models to seed")
    if b is None:
        return
    store = store_dir()
    owned_directory(store, f"Model store {store}", "750", user=logic.USER, group=logic.USER)
    wanted = b.artifacts("model")
    if not wanted:
        host.noop("the bundle holds no models ([[models]] in the spec)")
        return
    server = server_choice()
    served = served_models(server, b)
    manifests, blobs = store_state(b)
    missing = logic.blobs_missing(served, blobs)
    missing += [m for m in damaged(store, b, served) if m not in missing]
    ship_blobs(b, store, missing)
    forget_bundle_copies(b)
    if server["model_server"] == "llama-server":
        return  # it reads the blob itself
    todo = logic.models_to_seed(served, manifests, blobs)
    if todo:
        regs = [registration(b, m) for m in todo]
        shell.shell(
            name="Seed models offline: " + ", ".join(m["name"] for m in todo),
            commands=[
                ollama_register(store, f"{logic.USER}:{logic.USER}", logic.register_args(regs))
            ],
        )


def registration(b: bundle.Bundle, m: dict) -> logic.Registration:
    """What registering a model writes, from its GGUF's header read in the bundle here."""
    info = sizing.model_info(b.root / m["file"], m["name"], m["sha256"], CACHE)
    return logic.registration(m, info.arch, info.params, info.file_type)


def deep_read(store: str, models: list[dict]) -> str:
    """With bundle_deep_check: the sha256 of each served model's blob in the store (every byte
    read; otherwise a blob is trusted by its size, like the bundle's files by their status)."""
    return bundle.hash_command(
        f"{store}/blobs", [{"file": logic.blob_file(m["sha256"])} for m in models]
    )


def damaged(store: str, b: bundle.Bundle, served: list[dict]) -> list[dict]:
    """Served models whose blob is there but not what the bundle says (bundle_deep_check)."""
    if not setting("bundle_deep_check"):
        return []
    sums = parse_checksums(remote(deep_read(store, b.artifacts("model"))))
    blob = logic.blob_file
    return [
        m for m in served if blob(m["sha256"]) in sums and sums[blob(m["sha256"])] != m["sha256"]
    ]


def ship_blobs(b: bundle.Bundle, store: str, missing: list[dict]) -> None:
    """Each missing GGUF from the control machine into the store: to `<blob>.partial`, its sha256
    checked on the node, owned by the ollama user, then renamed (a cut upload never sits under
    the blob's name). A blob already there with the right size (Ollama's own, from before a
    switch) is not missing."""
    if not missing:
        return
    directory(
        f"{store}/blobs",
        f"Model store blobs {store}/blobs",
        "755",
        user=logic.USER,
        group=logic.USER,
    )
    for m in missing:
        blob = f"{store}/blobs/{logic.blob_file(m['sha256'])}"
        stream_upload(
            src=str(b.root / m["file"]),
            dest=f"{blob}{PARTIAL}",
            label=f"model {m['name']}",
            name=f"Model {m['name']} into the store: upload {human(m['size'])}",
        )
        shell.shell(
            name=f"Model {m['name']} into the store: sha256 checked, then {blob}",
            commands=[
                place_files(
                    f"{store}/blobs",
                    f"{logic.USER}:{logic.USER}",
                    "644",
                    [(m["sha256"], logic.blob_file(m["sha256"]))],
                )
            ],
        )


def forget_bundle_copies(b: bundle.Bundle) -> None:
    """Models an earlier airnode shipped into the bundle directory (and only those: the record
    of what it created names them) are removed there: the store holds them now."""
    made = remote(CREATED_READ).splitlines()
    there = digests.parse_stats(remote(bundle.stats_command(b.remote)))
    doomed = [
        f"{b.remote}/{m['file']}"
        for m in b.artifacts("model")
        if m["file"] in there and made_by_airnode(f"{b.remote}/{m['file']}", made)
    ]
    if doomed:
        shell.shell(
            name="Remove the models' second copies from the bundle directory (the store has them)",
            commands=["rm -f -- " + " ".join(shlex.quote(p) for p in doomed)],
        )
