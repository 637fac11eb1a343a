"""Shared by the steps: settings lookup with validation, errors, uploads of rendered text."""

from __future__ import annotations

import hashlib
from io import StringIO

from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.api.exceptions import PyinfraError
from pyinfra.operations import files

from airnode import config
from airnode.render import render


class AirnodeError(PyinfraError):
    """Stops the run before any change, with a message meant for the user."""


def settings(defaults: dict) -> dict:
    """This step's settings: inventory/group data over the step's defaults, validated."""
    values = {key: host.data.get(key, default) for key, default in defaults.items()}
    try:
        return config.check(values)
    except config.SettingError as e:
        raise AirnodeError(f"{host.name}: {e}") from None


def put_rendered(template: str, dest: str, name: str, mode: str = "644", **values):
    """Upload a file rendered from templates/; changes only when its content differs."""
    text = render(template, **values)
    return files.put(name=name, src=StringIO(text), dest=dest, mode=mode,
                     user="root", group="root")


# What a service last (re)started with: written right after the restart succeeds. A run cut
# between writing a config and restarting on it leaves the old record, so the next run
# restarts even though the file itself no longer changes.
APPLIED_DIR = "/var/lib/airnode/applied"


def digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def applied_on_node(name: str) -> str:
    return (host.get_fact(Command, f"cat {APPLIED_DIR}/{name} 2>/dev/null || true") or "").strip()


def record_applied_command(name: str, value: str) -> str:
    return f"mkdir -p {APPLIED_DIR} && echo {value} > {APPLIED_DIR}/{name}"
