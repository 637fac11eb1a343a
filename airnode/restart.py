"""Restart on change (Ansible's handlers), decided once for zram, containerd and k0s. Pure.

A service is restarted when what it should run with (``want``: a digest of its install and
configuration) is not what it last started with (``applied``: recorded on the node after each
successful restart), or when this run changes its install or configuration. The record is
written only after the restart succeeded, so a run cut between a change and the restart still
restarts on the next run; a service that is not running records only (it starts with what is
written).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    restart: bool  # restart now
    record: bool  # record ``want`` as what it runs with (after the restart, or alone)
    why: str

    def __bool__(self) -> bool:
        return self.restart or self.record


def decide(want: str, applied: str, changed: bool = False, running: bool = True) -> Decision:
    """``changed``: this run changes the install or configuration; ``running``: the service is
    active now (a stopped one is started by the step with what is written)."""
    if applied == want and not changed:
        return Decision(False, False, "unchanged since its last start")
    if not running:
        return Decision(False, True, "not running: it starts with what is written")
    if changed:
        return Decision(True, True, "its install or configuration changes in this run")
    if not applied:
        return Decision(True, True, "no start recorded yet")
    return Decision(True, True, "a run was cut before its restart")
