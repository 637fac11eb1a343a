"""The steps of a node's life, one module each (an Ansible role each). deploys/node.py is the one
list of them (one call per line, in order): adding a step is a module here and a line there.

Every step module declares its settings once (``DEFAULTS = declare("<step>", {key:
Setting(default, rule, doc)})``, like a role's defaults/main.yml with its argument spec), has a
``reads()`` (what preflight prefetches for it) and one ``@deploy`` function named as the module.
Preflight derives every default, rule and batched read from that list (``NODE``). Pure logic
lives outside this package. Steps import one another without cycles
(tests/unit/test_structure.py): a step that needs a later step's setting reads it with
``_common.setting(key)``, not by importing it.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from airnode.paths import ROOT


def calls(deploy_file: Path, module: str | None = None) -> tuple[str, ...]:
    """The step functions a deploy file calls, in order: its module-level ``name()`` lines.
    pyinfra orders operations by the line they are called from, so each step keeps a line of
    its own in the deploy file, and the file is the one list (``module``: only functions
    imported from that step module)."""
    tree = ast.parse(deploy_file.read_text())
    imported = {
        alias.asname or alias.name: node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("airnode.steps")
        for alias in node.names
    }
    out = []
    for node in tree.body:
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id in imported
            and (module is None or imported[node.value.func.id] == f"airnode.steps.{module}")
        ):
            out.append(node.value.func.id)
    return tuple(out)


# The life of a node (deploys/node.py) and the way back (deploys/teardown.py): the one list of
# steps each, read from the deploy files themselves. AFTER: the step modules of the ways back
# (deploys/teardown.py, deploys/remove_node.py), which are not steps of a node's life.
NODE = calls(ROOT / "deploys" / "node.py")
TEARDOWN = calls(ROOT / "deploys" / "teardown.py", "teardown")
REMOVE_NODE = calls(ROOT / "deploys" / "remove_node.py", "remove_node")
AFTER = ("teardown", "remove_node")


def module(name: str) -> ModuleType:
    return importlib.import_module(f"airnode.steps.{name}")


def declared() -> dict:
    """Every setting of every step (node, teardown, node removal): {key: config.Setting}, in
    NODE order, then AFTER's."""
    from airnode.steps import _common

    order = (*NODE, *AFTER)
    for name in order:
        module(name)
    keys = sorted(_common.DECLARED, key=lambda k: order.index(_common.OWNER[k]))
    return {k: _common.DECLARED[k] for k in keys}


def node_defaults() -> dict[str, Any]:
    """{key: default} of the settings of NODE's steps (what preflight checks)."""
    from airnode.steps import _common

    declared()
    return {k: s.default for k, s in _common.DECLARED.items() if _common.OWNER[k] not in AFTER}


def check(values: dict) -> dict:
    """config.check against every declared setting."""
    from airnode import config

    return config.check(values, declared())


def settings_table() -> str:
    """The settings reference's table (docs/settings.md), from the declarations: one row per
    setting, in the order of the steps."""
    import json

    from airnode.steps import _common

    rows = ["| setting | step | default | allowed | what it does |", "|---|---|---|---|---|"]
    for key, s in declared().items():
        default = json.dumps(s.default, ensure_ascii=False)
        rows.append(
            f"| `{key}` | {_common.OWNER[key]} | `{default}` | {s.rule.allowed} | {s.doc} |"
        )
    return "\n".join(rows) + "\n"
