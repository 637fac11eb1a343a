"""Models seeded offline: each GGUF of the bundle becomes an Ollama model (`ollama create` from
a Modelfile, against a server bound to 127.0.0.1 for the duration) in a model store outside
/var/lib/k0s. A model already in the store with the same GGUF digest is left alone; models
are never deleted by a deploy."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files
from pyinfra.operations import server as shell

from airnode import llama_server as llamalogic
from airnode import ollama as logic
from airnode.steps import bundle
from airnode.steps._common import (
    AirnodeError,
    declare,
    dir_state_read,
    directory,
    owned_directory,
    remote,
    setting,
    settings,
)
from airnode.steps.ollama import DEFAULTS as OLLAMA_DEFAULTS

DEFAULTS = declare("models", {})  # the store is the model server's (model_server_store_dir)
MODELFILES = "/var/lib/airnode/modelfiles"


def store_dir() -> str:
    """The model store: the model server's setting (a later step's, read by key)."""
    return str(setting("model_server_store_dir"))


def store_read(b: bundle.Bundle) -> str:
    return logic.store_listing_command(store_dir(), [m["name"] for m in b.artifacts("model")])


def reads(b: bundle.Bundle | None) -> list[str]:
    try:
        store = store_dir()
        return [store_read(b), dir_state_read(store), dir_state_read(f"{store}/blobs")] if b else []
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


def to_store(server: dict, b: bundle.Bundle) -> list[dict]:
    """The served models the store still lacks, with the model server's settings: llama-server
    needs its GGUF's blob, Ollama a model (manifest and blob). Preflight sizes the disk by it,
    the step fills it."""
    served = served_models(server, b)
    manifests, blobs = store_state(b)
    if server["model_server"] == "llama-server":
        return logic.blobs_missing(served, blobs)
    return logic.models_to_seed(served, manifests, blobs)


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
    # the model server's settings (a later step): which backend, which model it serves
    server = {k: setting(k) for k in ("model_server", "llama_server_model")}
    todo = to_store(server, b)
    if server["model_server"] == "llama-server":
        place_blobs(b, store, todo)
        return
    modelfiles = []
    for m in todo:
        path = f"{MODELFILES}/{logic.modelfile_name(m['name'])}"
        files.put(
            name=f"Modelfile for {m['name']}",
            dest=path,
            mode="644",
            src=StringIO(logic.modelfile(f"{b.remote}/{m['file']}")),
        )
        modelfiles.append((m["name"], path))
    if todo:
        s = settings(OLLAMA_DEFAULTS)
        binary = f"{s['ollama_install_dir']}/current/bin/ollama"
        shell.shell(
            name="Seed models offline: " + ", ".join(n for n, _ in modelfiles),
            commands=[
                logic.seed_script(
                    binary, store, s["ollama_seed_port"], s["ollama_seed_timeout"], modelfiles
                )
            ],
        )


def place_blobs(b: bundle.Bundle, store: str, missing: list[dict]) -> None:
    """llama-server reads its GGUF straight from the store, where Ollama keeps it too
    (blobs/sha256-<hex>): copied from the bundle, checked, then renamed into place. A blob
    already there with the right size (Ollama's own, from before a switch) is not missing."""
    from airnode import llama_server

    for m in missing:
        blob = llama_server.blob_name(m["sha256"])
        directory(
            f"{store}/blobs",
            f"Model store blobs {store}/blobs",
            "755",
            user=logic.USER,
            group=logic.USER,
        )
        shell.shell(
            name=f"Model {m['name']} into the store ({blob}, for llama-server)",
            commands=[
                logic.place_blob_script(f"{b.remote}/{m['file']}", m["sha256"], f"{store}/{blob}")
            ],
        )
