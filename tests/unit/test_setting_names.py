"""Each setting's name says where it is declared: its owning step's name as prefix (or one of
the components that step deploys), and each prefix belongs to one step. Renamed settings keep
working under their former names, with a warning."""

from __future__ import annotations

from airnode import config
from airnode.steps import _common, declared


def _prefix_of(key: str) -> list[str]:
    return [
        step
        for step, prefixes in _common.PREFIXES.items()
        for p in prefixes
        if key == p or key.startswith(p + "_")
    ]


def test_every_setting_carries_its_steps_prefix():
    every = declared()
    wrong = {
        key: _common.OWNER[key]
        for key in every
        if not any(
            key == p or key.startswith(p + "_") for p in _common.PREFIXES[_common.OWNER[key]]
        )
    }
    assert wrong == {}, f"settings whose name does not carry their step's prefix: {wrong}"


def test_a_prefix_names_one_step():
    declared()
    seen: dict[str, str] = {}
    for step, prefixes in _common.PREFIXES.items():
        for p in prefixes:
            assert seen.setdefault(p, step) == step, f"prefix {p}_ claimed by {seen[p]}, {step}"
    # and the name alone finds the owner: no setting matches another step's prefix
    for key in declared():
        assert set(_prefix_of(key)) == {_common.OWNER[key]}, key


def test_former_names_are_no_current_names_and_belong_to_one_setting():
    every = declared()
    former = [old for s in every.values() for old in s.was]
    assert former, "the renamed settings keep their former names"
    assert len(former) == len(set(former))
    assert not set(former) & set(every)


def test_a_former_name_is_read_while_the_new_one_is_at_its_default():
    s = declared()["model_server_store_dir"]
    assert "model_store_dir" in s.was
    assert config.lookup({}.get, "model_server_store_dir", s) == s.default
    old = {"model_store_dir": "/srv/models"}
    assert config.lookup(old.get, "model_server_store_dir", s) == "/srv/models"
    both = {**old, "model_server_store_dir": "/data/models"}
    assert config.lookup(both.get, "model_server_store_dir", s) == "/data/models"


def test_a_former_name_gets_a_warning_naming_the_new_one():
    every = declared()
    warnings = config.renamed(["hosts_address", "zram_fraction"], every)
    assert len(warnings) == 1
    assert warnings[0].startswith("hosts_address is now called hostname_address")
    assert config.renamed(["hostname_address"], every) == []


def test_the_model_servers_record_reads_every_former_name_of_its_immutable_settings():
    # serving/plan.py is pure (no step imports): its FORMER map restates the declarations'
    # `was` for the settings the cluster's record keeps; a rename there must reach FORMER.
    from airnode.serving import plan

    every = declared()
    expected = {old: key for key in (*plan.FIXED, *plan.FIXED_OPEN_WEBUI) for old in every[key].was}
    assert expected, "model_server_store_dir was model_store_dir"
    assert expected == plan.FORMER
