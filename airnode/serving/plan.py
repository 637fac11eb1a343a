"""The model server step's decisions, pure (imports nothing from pyinfra): from the settings, the
rendered manifests and what the node's cluster recorded at the last apply, what this run does.
airnode/steps/model_server.py reads the facts and turns the plan into operations;
tests/unit/test_model_server_plan.py covers the cases one by one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The settings Kubernetes will not change under a running model server: the PersistentVolumes'
# paths, the claims' sizes, where the objects live. Recorded at each apply, compared next time.
FIXED = ("model_server_store_dir", "model_server_store_size")
FIXED_OPEN_WEBUI = ("open_webui_data_dir", "open_webui_store_size")
# Names the record used before the settings carried their step's prefix (= their Setting.was:
# tests/unit/test_setting_names.py holds the two together).
FORMER = {"model_store_dir": "model_server_store_dir"}


class ImmutableChange(ValueError):
    """A change Kubernetes refuses on a running model server: the run stops before any change."""


@dataclass(frozen=True)
class Plan:
    apply: bool  # apply, wait for the rollout, check, record
    reason: str  # why (or why not): shown as the step's no-op message
    want: str  # the record's digest of what is applied
    fixed: str  # the record's immutable settings (JSON)
    remove_versions: list[str] = field(default_factory=list)  # old Ollama version dirs


def fixed_now(s: Mapping[str, Any], node: str) -> dict[str, str]:
    now = {"namespace": s["model_server_namespace"], "node": node}
    keys = FIXED + (FIXED_OPEN_WEBUI if s["open_webui"] else ())
    return {**now, **{k: s[k] for k in keys}}


def fixed_was(record: Mapping[str, str]) -> dict[str, Any]:
    """The recorded immutable settings, under today's names (a bad record counts as none)."""
    try:
        was = json.loads(record.get("fixed") or "{}")
    except ValueError:
        return {}
    if not isinstance(was, dict):
        return {}
    return {FORMER.get(str(k), str(k)): v for k, v in was.items()}


def refuse_immutable_changes(was: Mapping[str, Any], now: Mapping[str, Any]) -> None:
    """ImmutableChange naming each setting recorded as ``was`` that ``now`` changes."""
    changes = [
        f"{k} {was[k]!r} -> {now[k]!r}" for k in sorted(now) if k in was and was[k] != now[k]
    ]
    if changes:
        raise ImmutableChange(
            ", ".join(changes) + ": Kubernetes cannot change these on a running model server "
            "(the PersistentVolume and the StatefulSet's volume claim are immutable). Remove "
            "the node first with deploys/teardown.py (the model store is kept; move it by hand "
            "if its path changes), then deploy again; nothing was changed"
        )


def worker_volume_fixed(s: Mapping[str, Any], record: str) -> dict[str, Any]:
    """What a worker's own PersistentVolume fixes (its path and size), to record on the worker
    when it applies the volume; ImmutableChange when ``record`` (what the last one recorded,
    JSON; "" when none) says the volume there has others (the controller's record covers its
    own volume)."""
    now = {k: s[k] for k in FIXED}
    refuse_immutable_changes(fixed_was({"fixed": record}), now)
    return now


def digest(text: str, served: Sequence[tuple[str, str]]) -> str:
    """What the record holds of an apply: the manifests and the models served (name, sha256)."""
    return hashlib.sha256(json.dumps([text, [list(m) for m in served]]).encode()).hexdigest()


def plan(
    s: Mapping[str, Any],
    node: str,
    text: str,
    served: Sequence[tuple[str, str]],
    record: Mapping[str, str],
    versions: Sequence[str] = (),
    version: str | None = None,
) -> Plan:
    """``record``: the cluster's record of the last apply that succeeded ({} when none, e.g. a
    fresh node, a run cut before its record, a reset cluster); ``versions``: the Ollama
    version directories airnode unpacked on the node, ``version`` the bundle's (None:
    llama-server, whose image needs none of them)."""
    now, was = fixed_now(s, node), fixed_was(record)
    refuse_immutable_changes(was, now)
    want = digest(text, served)
    if not record.get("sha256"):
        reason = "nothing recorded as applied: apply, wait, check"
    elif record["sha256"] != want:
        reason = "the manifests or the models changed: apply, wait, check"
    else:
        reason = "applied and checked as it is now"
    old = [v for v in versions if v != version] if version is not None else []
    return Plan(
        apply=record.get("sha256") != want,
        reason=reason,
        want=want,
        fixed=json.dumps({**was, **now}, sort_keys=True),
        remove_versions=old,
    )
