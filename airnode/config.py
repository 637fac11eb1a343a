"""Inventory settings: the rules every value must meet, checked before any change on a host.

Each setting is declared once, beside the step that owns it (``airnode/steps/<step>.py``:
default, rule, one line of documentation); the kinds of rule live here, so that every error
names the key, the value and what is allowed. Pure: imports nothing from pyinfra.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airnode.record import STATE_DIR, inside


class SettingError(ValueError):
    """A setting with a value outside what is allowed."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key} = {value!r} is not allowed: {allowed}")


@dataclass(frozen=True)
class Rule:
    allowed: str  # human text: what is allowed
    check: Callable[[Any], bool]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def number(gt: float | None = None, ge: float | None = None, le: float | None = None) -> Rule:
    parts = [
        f"> {gt}" if gt is not None else None,
        f">= {ge}" if ge is not None else None,
        f"<= {le}" if le is not None else None,
    ]
    text = "a number " + " and ".join(p for p in parts if p)
    return Rule(
        text,
        lambda v: (
            _is_number(v)
            and (gt is None or v > gt)
            and (ge is None or v >= ge)
            and (le is None or v <= le)
        ),
    )


def integer(ge: int | None = None, le: int | None = None, note: str = "") -> Rule:
    parts = [f">= {ge}" if ge is not None else None, f"<= {le}" if le is not None else None]
    text = "an integer " + " and ".join(p for p in parts if p) + (f" ({note})" if note else "")
    return Rule(
        text.strip(), lambda v: _is_int(v) and (ge is None or v >= ge) and (le is None or v <= le)
    )


def one_of(*choices: str) -> Rule:
    return Rule("one of " + ", ".join(choices), lambda v: v in choices)


def ipv4_loopback() -> Rule:
    def check(v: Any) -> bool:
        parts = v.split(".") if isinstance(v, str) else []
        return (
            len(parts) == 4
            and parts[0] == "127"
            and all(p.isdigit() and 0 <= int(p) <= 255 for p in parts)
        )

    return Rule("an IPv4 loopback address (127.x.y.z)", check)


def optional_path() -> Rule:
    return Rule(
        "empty (no bundle) or a path to a bundle directory",
        lambda v: v is None or v == "" or isinstance(v, str),
    )


def boolean() -> Rule:
    return Rule("true or false", lambda v: isinstance(v, bool))


def pattern(regex: str, allowed: str) -> Rule:
    return Rule(allowed, lambda v: isinstance(v, str) and re.fullmatch(regex, v) is not None)


QUANTITY = r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti)"
# Ollama settings airnode sets itself: ollama_extra_env may not override them.
OLLAMA_OWN_ENV = ("OLLAMA_HOST", "OLLAMA_MODELS", "OLLAMA_NOPRUNE")


def extra_env() -> Rule:
    def check(v: Any) -> bool:
        return isinstance(v, dict) and all(
            isinstance(k, str)
            and re.fullmatch(r"OLLAMA_[A-Z0-9_]+", k) is not None
            and k not in OLLAMA_OWN_ENV
            and isinstance(val, (str, int, float, bool))
            for k, val in v.items()
        )

    return Rule(
        "a dict of OLLAMA_* names to strings or numbers, without "
        + " and ".join(OLLAMA_OWN_ENV)
        + " (airnode sets those)",
        check,
    )


SAFE_PATH = r"(/[A-Za-z0-9_][A-Za-z0-9._-]*)+"


def absolute_path(min_depth: int = 1) -> Rule:
    """A plain absolute path (letters, digits, '.', '_', '-'; no '..', no trailing '/'), at
    least min_depth levels deep: airnode owns it and may remove it, so never /opt or /var."""
    return Rule(
        f"an absolute path of letters, digits, '.', '_', '-', at least {min_depth} "
        f"level(s) deep"
        + (" (a directory of its own, not /opt or /var/lib)" if min_depth > 1 else ""),
        lambda v: (
            isinstance(v, str)
            and re.fullmatch(SAFE_PATH, v) is not None
            and ".." not in v.split("/")
            and v.count("/") >= min_depth
        ),
    )


# Directories a path setting may never be, nor sit inside: the system's own, users' homes, and
# what other software keeps its state in (airnode may chown, fill and - if it made them - remove
# what these settings name).
SYSTEM_TREES = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/lost+found",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/snap",
    "/sys",
    "/tmp",
    "/usr",
    "/var/backups",
    "/var/cache",
    "/var/local",
    "/var/lock",
    "/var/log",
    "/var/mail",
    "/var/opt",
    "/var/run",
    "/var/spool",
    "/var/tmp",
    "/var/lib/apt",
    "/var/lib/dpkg",
    "/var/lib/systemd",
    "/var/lib/containerd",
    "/var/lib/docker",
    "/var/lib/kubelet",
    "/var/lib/k0s",
    "/var/lib/cni",
    "/var/lib/etcd",
    "/var/lib/dbus",
    "/var/lib/pam",
    "/var/lib/polkit-1",
    "/var/lib/sudo",
    "/var/lib/ucf",
    "/var/lib/snapd",
    "/var/lib/NetworkManager",
    "/var/lib/private",
    "/opt/containerd",
    "/opt/cni",
)
# ...and these exactly (what sits below them is fine: /srv/airnode, /mnt/data/models)
SYSTEM_DIRS = ("/var", "/var/lib", "/opt", "/srv", "/mnt", "/media", "/data")


def owned_dir(what: str) -> Rule:
    """A directory airnode makes and owns: a plain absolute path (letters, digits, '.', '_',
    '-'), at least 2 levels deep, not a system or home directory nor inside one, not a mount
    root (/mnt/x, /media/x), not /var/lib/airnode itself."""

    def check(v: Any) -> bool:
        if not absolute_path(min_depth=2).check(v):
            return False
        if any(inside(v, t) for t in SYSTEM_TREES) or v in SYSTEM_DIRS or v == STATE_DIR:
            return False
        return not (v.count("/") == 2 and v.split("/")[1] in ("mnt", "media"))

    return Rule(
        f"{what}: an absolute path of letters, digits, '.', '_', '-', at least 2 levels "
        "deep, outside system and home directories (/etc, /usr, /home, /root, /tmp, "
        "/var/lib/k0s, /var/lib/containerd, ...), not /var/lib, /opt, /srv, a /mnt or "
        "/media mount root, nor /var/lib/airnode itself",
        check,
    )


# The path settings, checked together: none may be inside another (teardown removes each on its
# own; the model store inside the bundle directory would go with it).
PATH_SETTINGS = (
    "bundle_remote_dir",
    "model_server_store_dir",
    "open_webui_data_dir",
    "ollama_install_dir",
)


def path_overlaps(values: Mapping[str, Any]) -> list[str]:
    """Pairs of path settings where one is, or is inside, the other."""
    paths = [
        (k, values[k])
        for k in PATH_SETTINGS
        if isinstance(values.get(k), str)
        and (k != "open_webui_data_dir" or values.get("open_webui"))
    ]
    out = []
    for i, (ka, a) in enumerate(paths):
        for kb, b in paths[i + 1 :]:
            if inside(a, b) or inside(b, a):
                out.append(
                    f"{ka} = {a!r} and {kb} = {b!r} overlap: give each a directory of "
                    "its own (neither inside the other)"
                )
    return out


@dataclass(frozen=True)
class Setting:
    """One inventory setting, declared once, beside the step that owns it
    (airnode/steps/<step>.py, ``declare``): its default, its rule, and one line for the
    settings reference (docs/settings.md is generated from these)."""

    default: Any
    rule: Rule
    doc: str
    # Names it had before (renamed to carry its step's prefix): still read, with a warning.
    was: tuple[str, ...] = ()


_MISSING = object()


def lookup(get: Callable[[str, Any], Any], key: str, setting: Setting) -> Any:
    """A setting's value from the inventory (``get`` is ``host.data.get``): the value under its
    name; while that is the default, one under a former name (``Setting.was``) if set."""
    value = get(key, setting.default)
    if value == setting.default:
        for old in setting.was:
            former = get(old, _MISSING)
            if former is not _MISSING:
                return former
    return value


def renamed(keys: Iterable[str], declared: Mapping[str, Setting]) -> list[str]:
    """Warnings for settings given under a former name: what to rename it to."""
    keys = set(keys)
    return [
        f"{old} is now called {key}: rename it in the inventory or group_data (the old name is "
        f"read only while {key} is left at its default)"
        for key, setting in declared.items()
        for old in setting.was
        if old in keys
    ]


def check(values: Mapping[str, Any], declared: Mapping[str, Setting]) -> dict[str, Any]:
    """Check every value against its declared rule; raise SettingError for the first bad one."""
    out = {}
    for key, value in values.items():
        setting = declared.get(key)
        if setting is None:
            raise KeyError(f"setting {key!r} is declared by no step (airnode/steps/*.py)")
        rule = setting.rule
        if not rule.check(value):
            raise SettingError(key, value, rule.allowed)
        out[key] = value
    return out


def check_all(values: Mapping[str, Any], declared: Mapping[str, Setting]) -> list[SettingError]:
    """Every bad value at once (preflight reports them together)."""
    errors = []
    for key, value in values.items():
        try:
            check({key: value}, declared)
        except SettingError as e:
            errors.append(e)
    return errors


def unknown_keys(
    keys: Iterable[str], known: Iterable[str], prefixes: tuple[str, ...] = ()
) -> list[str]:
    """Keys that look like ours but are not known (typos), each with a suggestion."""
    known = sorted(set(known))
    ours = {k.split("_", 1)[0] + "_" for k in known}
    out = []
    for key in sorted(keys):
        if key in known or key.startswith(prefixes) or key.startswith("_"):
            continue
        close = difflib.get_close_matches(key, known, n=1)
        if close or key.startswith(tuple(ours)):
            hint = f" (did you mean {close[0]}?)" if close else ""
            out.append(f"{key}{hint}")
    return out
