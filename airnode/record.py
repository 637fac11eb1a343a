"""The host as it was before airnode, recorded once, and what teardown puts back from it.
Pure: imports nothing from pyinfra.

The first deploy writes ``/var/lib/airnode/before.txt`` before it changes anything: the live
value of every sysctl airnode sets, whether each kernel module airnode loads was loaded, whether
each package airnode installs was installed, the state of each unit airnode enables or disables,
and a copy of each file airnode overwrites that existed. Later runs never rewrite it. Teardown
reads it to restore exactly that.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

STATE_DIR = "/var/lib/airnode"
BEFORE = f"{STATE_DIR}/before.txt"
BEFORE_FILES = f"{STATE_DIR}/before-files"


@dataclass
class Before:
    sysctls: dict[str, str | None] = field(default_factory=dict)  # None: did not exist
    modules: dict[str, bool] = field(default_factory=dict)  # loaded before?
    packages: dict[str, bool] = field(default_factory=dict)  # installed before?
    units: dict[str, tuple[str, str]] = field(default_factory=dict)  # (is-enabled, is-active)
    files: dict[str, bool] = field(default_factory=dict)  # existed before (copy kept)?

    @property
    def recorded(self) -> bool:
        return bool(self.sysctls or self.modules or self.packages or self.units or self.files)


def record_command(
    sysctls: list[str], modules: list[str], packages: list[str], units: list[str], files: list[str]
) -> str:
    """Write BEFORE (atomically) unless it exists; copies of existing files under BEFORE_FILES."""
    q = shlex.quote
    parts = [
        f"[ -e {BEFORE} ] && exit 0",
        f"mkdir -p {BEFORE_FILES}",
        "{",
        *[f'  echo "sysctl {k} $(sysctl -n {q(k)} 2>/dev/null || echo -)"' for k in sysctls],
        *[
            f"  if grep -q '^{m} ' /proc/modules; then echo 'module {m} loaded'; "
            f"else echo 'module {m} absent'; fi"
            for m in modules
        ],
        *[
            f"  if dpkg-query -W -f='${{db:Status-Abbrev}}' {q(p)} 2>/dev/null | grep -q '^ii'; "
            f"then echo 'package {p} installed'; else echo 'package {p} absent'; fi"
            for p in packages
        ],
        *[
            f'  echo "unit {u} $(systemctl is-enabled {q(u)} 2>/dev/null || true) '
            f'$(systemctl is-active {q(u)} 2>/dev/null || true)"'
            for u in units
        ],
        *[
            f"  if [ -e {q(f)} ]; then echo 'file {f} present'; "
            f"cp -a --parents {q(f)} {BEFORE_FILES}/; else echo 'file {f} absent'; fi"
            for f in files
        ],
        f"}} > {BEFORE}.tmp",
        f"mv {BEFORE}.tmp {BEFORE}",
    ]
    return "\n".join(parts)


def parse(lines: list[str]) -> Before:
    b = Before()
    for line in lines:
        kind, _, rest = line.strip().partition(" ")
        name, _, value = rest.partition(" ")
        if not name:
            continue
        if kind == "sysctl":
            b.sysctls[name] = None if value in ("", "-") else value
        elif kind == "module":
            b.modules[name] = value == "loaded"
        elif kind == "package":
            b.packages[name] = value == "installed"
        elif kind == "unit":
            enabled, _, active = value.partition(" ")
            b.units[name] = (enabled or "absent", active or "inactive")
        elif kind == "file":
            b.files[name] = value == "present"
    return b


def restore_sysctls_command(before: Before) -> str | None:
    """Put back every recorded value that existed (keys of unloaded modules vanish anyway)."""
    values = {k: v for k, v in before.sysctls.items() if v is not None}
    if not values:
        return None
    return "; ".join(
        f"sysctl -q -w {shlex.quote(f'{k}={v}')} 2>/dev/null || true"
        for k, v in sorted(values.items())
    )


def modules_to_unload(before: Before) -> list[str]:
    return sorted(m for m, loaded in before.modules.items() if not loaded)


def packages_to_purge(before: Before) -> list[str]:
    return sorted(p for p, installed in before.packages.items() if not installed)


def restore_file_command(before: Before, path: str) -> str:
    """A file airnode overwrote: its copy back, or removed when it did not exist."""
    if before.files.get(path):
        return f"cp -a {shlex.quote(BEFORE_FILES + path)} {shlex.quote(path)}"
    return f"rm -f {shlex.quote(path)}"


# -- what airnode created -------------------------------------------------------------------
# One absolute path a line: each directory airnode created (the top-most one a mkdir -p made,
# files/owned-dirs.sh) and each file it shipped into a directory. Teardown removes only these,
# and what lies inside airnode's own STATE_DIR.
CREATED = f"{STATE_DIR}/created"


def append_once_command(file: str, lines: list[str]) -> str:
    """Append each line to file unless it is there already."""
    c = shlex.quote(file)
    return (
        f'for p in {" ".join(shlex.quote(p) for p in lines)}; do grep -qxF -- "$p" {c} '
        f"2>/dev/null || printf '%s\\n' \"$p\" >> {c}; done"
    )


def record_created_command(paths: list[str]) -> str:
    """Append paths airnode made to CREATED, each once."""
    return append_once_command(CREATED, paths)


def inside(path: str, tree: str) -> bool:
    """path is tree or lies below it."""
    return bool(tree) and (path == tree or path.startswith(tree.rstrip("/") + "/"))


def made_by_airnode(path: str, created: list[str]) -> bool:
    """path, or a directory it is inside, was created by airnode (recorded, or airnode's own
    state directory)."""
    return inside(path, STATE_DIR) or any(inside(path, c) for c in created)


@dataclass(frozen=True)
class Removal:
    """What teardown may delete of a directory airnode used: the whole tree (airnode made it),
    or only the entries recorded inside it (it was there before airnode)."""

    tree: str | None
    entries: list[str]  # recorded files and directories inside it, deepest first
    kept_because: str = ""


def removal(path: str, created: list[str], keep: list[str]) -> Removal:
    """Teardown's decision for a directory setting (e.g. bundle_remote_dir): never a directory
    that existed before airnode, never one holding what must be kept (the model store, Open
    WebUI's data); then only what airnode recorded inside it, less what holds a kept path."""
    holding = [k for k in keep if inside(k, path)]
    if made_by_airnode(path, created) and not holding:
        return Removal(path, [])
    entries = sorted(
        {
            c
            for c in created
            if inside(c, path) and c != path and not any(inside(k, c) for k in keep)
        },
        key=lambda c: (-c.count("/"), c),
    )
    why = (
        f"it holds {', '.join(holding)}"
        if holding
        else "it was there before airnode: only what airnode put in it is removed"
    )
    return Removal(None, entries, why)


def removal_command(r: Removal) -> str:
    """Shell for a Removal: a mount point is never removed."""
    q = shlex.quote
    # the tree airnode made, or each entry: a file it shipped, a directory it made
    return (
        "; ".join(
            f"if mountpoint -q {q(p)}; then echo {q(p + ': a mount point, kept')} >&2; "
            f"else rm -rf {q(p)}; fi"
            for p in ([r.tree] if r.tree else []) + r.entries
        )
        or "true"
    )


def kept_records_command() -> str:
    """Keep the record's lines for what still exists (the model store kept by teardown must
    still count as airnode's on the next teardown); remove the record when none is left."""
    c = shlex.quote(CREATED)
    return (
        f'if [ -e {c} ]; then while IFS= read -r p; do [ -e "$p" ] && printf \'%s\\n\' "$p";'
        f" done < {c} > {c}.new || true; mv {c}.new {c}; [ -s {c} ] || rm -f {c}; fi"
    )
