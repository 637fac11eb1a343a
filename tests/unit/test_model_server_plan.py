"""The model server step's decisions (airnode/serving/plan.py), case by case: what a run does
given the settings, the manifests and what the cluster recorded at the last apply."""

from __future__ import annotations

import json

import pytest

from airnode.serving import plan as p
from airnode.steps import node_defaults

S = node_defaults()
TEXT = "apiVersion: v1\nkind: Namespace\n"
SERVED = [("smollm2:135m", "a" * 64)]


def applied(s=S, text=TEXT, served=SERVED, node="n1"):
    """The record a successful apply of these leaves in the cluster."""
    first = p.plan(s, node, text, served, {})
    return {"sha256": first.want, "fixed": first.fixed}


def test_first_run_applies_and_records_the_immutable_settings():
    plan = p.plan(S, "n1", TEXT, SERVED, {})
    assert plan.apply and "nothing recorded" in plan.reason
    fixed = json.loads(plan.fixed)
    assert fixed["model_server_store_dir"] == S["model_server_store_dir"]
    assert fixed["node"] == "n1" and fixed["namespace"] == "airnode"
    assert "open_webui_data_dir" not in fixed  # Open WebUI off: its volume is not fixed


def test_nothing_changed_applies_nothing():
    plan = p.plan(S, "n1", TEXT, SERVED, applied())
    assert not plan.apply
    assert plan.reason == "applied and checked as it is now"


@pytest.mark.parametrize(
    "text, served",
    [
        (TEXT + "# changed\n", SERVED),  # a setting changed the manifests
        (TEXT, [*SERVED, ("qwen:0.5b", "b" * 64)]),  # a model added to the bundle
        (TEXT, [("smollm2:135m", "c" * 64)]),  # same name, other weights
    ],
)
def test_a_changed_manifest_or_model_applies_again(text, served):
    plan = p.plan(S, "n1", text, served, applied())
    assert plan.apply and "changed" in plan.reason


def test_a_run_cut_after_the_apply_but_before_the_record_applies_again():
    # the apply deletes the record first: a cut run leaves none
    assert p.plan(S, "n1", TEXT, SERVED, {}).apply


@pytest.mark.parametrize(
    "key, value",
    [
        ("model_server_store_dir", "/srv/airnode/models"),
        ("model_server_store_size", "80Gi"),
        ("model_server_namespace", "llm"),
    ],
)
def test_an_immutable_setting_changed_under_a_running_server_is_refused(key, value):
    with pytest.raises(p.ImmutableChange) as e:
        p.plan({**S, key: value}, "n1", TEXT, SERVED, applied())
    assert key.replace("model_server_namespace", "namespace") in str(e.value)
    assert "teardown" in str(e.value) and "nothing was changed" in str(e.value)


def test_the_node_renamed_is_refused():
    with pytest.raises(p.ImmutableChange, match="node 'n1' -> 'n2'"):
        p.plan(S, "n2", TEXT, SERVED, applied())


def test_a_record_made_before_the_rename_is_read_under_the_new_name():
    record = applied()
    fixed = json.loads(record["fixed"])
    fixed["model_store_dir"] = fixed.pop("model_server_store_dir")
    old = {**record, "fixed": json.dumps(fixed)}
    assert not p.plan(S, "n1", TEXT, SERVED, old).apply
    with pytest.raises(p.ImmutableChange, match="model_server_store_dir"):
        p.plan({**S, "model_server_store_dir": "/srv/m"}, "n1", TEXT, SERVED, old)
    # the new record carries the new name only
    assert "model_store_dir" not in json.loads(p.plan(S, "n1", TEXT, SERVED, old).fixed)


def test_open_webui_volume_is_fixed_once_enabled_and_remembered_after():
    on = {**S, "open_webui": True}
    record = applied(s=on)
    assert "open_webui_data_dir" in json.loads(record["fixed"])
    with pytest.raises(p.ImmutableChange, match="open_webui_store_size"):
        p.plan({**on, "open_webui_store_size": "9Gi"}, "n1", TEXT, SERVED, record)
    # turned off, its volume is still on the record (its data are kept)
    assert "open_webui_data_dir" in json.loads(p.plan(S, "n1", TEXT, SERVED, record).fixed)


def test_a_damaged_record_counts_as_none():
    plan = p.plan(S, "n1", TEXT, SERVED, {"sha256": "x", "fixed": "{not json"})
    assert plan.apply
    assert p.fixed_was({"fixed": "[1, 2]"}) == {}


def test_old_ollama_versions_are_removed_and_only_with_ollama():
    plan = p.plan(
        S, "n1", TEXT, SERVED, applied(), ["v0.12.0", "v0.13.5", "v0.13.0.tmp"], "v0.13.5"
    )
    assert plan.remove_versions == ["v0.12.0", "v0.13.0.tmp"]
    assert p.plan(S, "n1", TEXT, SERVED, applied(), ["v0.13.5"], "v0.13.5").remove_versions == []
    # llama-server: the Ollama versions are left as they are (None: no tarball in use)
    assert p.plan(S, "n1", TEXT, SERVED, applied(), ["v0.12.0"], None).remove_versions == []


def test_the_digest_is_the_one_earlier_releases_recorded():
    """Nodes deployed before the plan was split out must not apply again: same JSON, same hash."""
    import hashlib

    old = hashlib.sha256(json.dumps([TEXT, [(n, d) for n, d in SERVED]]).encode()).hexdigest()
    assert p.digest(TEXT, SERVED) == old


def test_a_workers_volume_records_its_path_and_size_and_refuses_a_change():
    s = dict(S)
    fixed = p.worker_volume_fixed(s, "")  # nothing recorded yet
    assert fixed == {
        "model_server_store_dir": s["model_server_store_dir"],
        "model_server_store_size": s["model_server_store_size"],
    }
    record = json.dumps(fixed)
    assert p.worker_volume_fixed(s, record) == fixed  # unchanged: fine
    moved = {**s, "model_server_store_dir": "/srv/models"}
    with pytest.raises(
        p.ImmutableChange, match="model_server_store_dir '/var/lib/airnode/models' -> '/srv/models'"
    ):
        p.worker_volume_fixed(moved, record)
    bigger = {**s, "model_server_store_size": "80Gi"}
    with pytest.raises(p.ImmutableChange, match="model_server_store_size '50Gi' -> '80Gi'"):
        p.worker_volume_fixed(bigger, record)
    assert p.worker_volume_fixed(moved, "not json") == {
        **fixed,
        "model_server_store_dir": "/srv/models",
    }
