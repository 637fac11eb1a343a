"""Shared by the steps: settings lookup with validation, errors, uploads of rendered text."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
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
