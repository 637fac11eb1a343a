"""The shell scripts of files/ as commands for the node: ``sh -c <script> <name> ARGS...``, each
argument quoted (the scripts are checked by ShellCheck, tests/unit). Pure: no pyinfra."""

from __future__ import annotations

import shlex

from airnode.paths import FILES


def command(name: str, *args: str) -> str:
    return "sh -c " + shlex.join([(FILES / name).read_text(), name, *args])


def place_files(directory: str, owner: str, mode: str, files: list[tuple[str, str]]) -> str:
    """files/place-files.sh: each (sha256, name) uploaded as DIR/name.partial checked, then given
    owner and mode and renamed; nothing renamed unless all passed, and bad partials removed."""
    return command("place-files.sh", directory, owner, mode, *(f"{s}={n}" for s, n in files))


def ollama_register(store: str, owner: str, args: list[str]) -> str:
    """files/ollama-register.sh: blobs then manifests written into an Ollama store as `ollama
    create` leaves them (args from airnode.ollama.register_args)."""
    return command("ollama-register.sh", store, owner, *args)
