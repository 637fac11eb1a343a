"""The structure that keeps changes to one place: deploys/node.py is the one list of steps; each
step module declares its settings once and has its @deploy and its reads; steps import one
another without cycles; a setting is declared by exactly one step."""

from __future__ import annotations

import ast
import importlib

import pytest

from airnode import steps
from airnode.paths import ROOT

STEPS_DIR = ROOT / "airnode" / "steps"


def test_the_node_is_the_list_in_deploys_node_py_and_each_step_is_a_module():
    assert steps.NODE[0] == "preflight"  # refuse before any change
    assert steps.NODE[-1] == "model_server"
    on_disk = {p.stem for p in STEPS_DIR.glob("*.py") if not p.stem.startswith("_")}
    assert set(steps.NODE) == on_disk - set(steps.AFTER), "a step module not in deploys/node.py"


@pytest.mark.parametrize("name", steps.NODE)
def test_each_step_has_its_deploy_its_declared_settings_and_its_reads(name):
    from airnode.steps import _common

    mod = steps.module(name)
    assert callable(getattr(mod, name)), f"airnode/steps/{name}.py: no @deploy {name}()"
    assert callable(getattr(mod, "reads", None)) or name == "preflight"
    assert all(_common.OWNER[k] == name for k in mod.DEFAULTS)


def test_the_teardown_walks_its_own_list():
    teardown = steps.module("teardown")
    assert steps.TEARDOWN[0] == "remove_workloads" and steps.TEARDOWN[-1] == "remove_state"
    assert all(callable(getattr(teardown, f)) for f in steps.TEARDOWN)


def test_the_removal_of_a_node_checks_first_then_the_controller_then_the_teardowns_steps():
    assert steps.REMOVE_NODE == ("check_removal", "release_node")
    tree = ast.parse((ROOT / "deploys" / "remove_node.py").read_text())
    (branch,) = [n for n in tree.body if isinstance(n, ast.If)]
    calls = [s.value for s in branch.body]  # type: ignore[attr-defined]
    assert tuple(c.func.id for c in calls) == steps.TEARDOWN, "the teardown's list, in order"
    # each only once the controller's part went through
    assert all([k.arg for k in c.keywords] == ["_if"] for c in calls)
    assert all(c.keywords[0].value.id == "controller_done" for c in calls)


def imports_of(name: str) -> set[str]:
    """Step modules a step module imports, at module level or inside functions."""
    tree = ast.parse((STEPS_DIR / f"{name}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("airnode.steps."):
                found.add(node.module.rsplit(".", 1)[1])
            elif node.module == "airnode.steps":
                found |= {a.name for a in node.names}
    step_modules = set(steps.NODE) | set(steps.AFTER)
    return (found & step_modules) - {name}


def test_steps_import_one_another_without_cycles():
    graph = {n: imports_of(n) for n in (*steps.NODE, *steps.AFTER)}
    seen: dict[str, str] = {}

    def visit(n: str, path: list[str]) -> None:
        if seen.get(n) == "done":
            return
        assert seen.get(n) != "open", "import cycle: " + " -> ".join([*path, n])
        seen[n] = "open"
        for m in sorted(graph[n]):
            visit(m, [*path, n])
        seen[n] = "done"

    for n in graph:
        visit(n, [])


def test_no_step_but_preflight_and_the_teardown_imports_a_later_step():
    for i, name in enumerate(steps.NODE):
        if name == "preflight":
            continue
        later = imports_of(name) & set(steps.NODE[i + 1 :])
        # record reads what kernel will change (its constants), zram sets sysctls as kernel does
        allowed = {"record": {"kernel"}, "zram": {"kernel"}}.get(name, set())
        assert later <= allowed, f"{name} imports later step(s) {later}: use _common.setting()"


def test_every_setting_is_declared_once_with_a_rule_and_a_doc():
    declared = steps.declared()
    for key, s in declared.items():
        assert s.rule.check(s.default), f"{key}: its default breaks its own rule"
        assert s.doc.strip() and "\n" not in s.doc, f"{key}: one line of doc"
    from airnode.steps import _common

    with pytest.raises(ValueError, match="declared by both zram and kernel"):
        _common.declare("kernel", {"zram_fraction": declared["zram_fraction"]})


def test_a_later_steps_setting_is_read_without_importing_it(monkeypatch):
    for name in ("ollama", "models", "monitoring"):
        src = (STEPS_DIR / f"{name}.py").read_text()
        assert "setting(" in src
    importlib.import_module("airnode.steps.models")  # imports cleanly on its own
