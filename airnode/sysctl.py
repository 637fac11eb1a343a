"""Kernel parameters: which live values differ from the wanted ones. Pure: no pyinfra."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def changes(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The wanted settings whose live value differs (or is missing: module not loaded yet)."""
    return {k: v for k, v in wanted.items() if str(current.get(k)) != str(v)}


def command(settings: Mapping[str, Any]) -> str:
    return "sysctl -q -w " + " ".join(f"{k}={v}" for k, v in sorted(settings.items()))
