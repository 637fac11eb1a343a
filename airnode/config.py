"""Inventory settings: the rules every value must meet, checked before any change on a host.

Defaults live beside each step (``airnode/steps/<step>.py``, ``DEFAULTS``); the rules live here,
one per key, so that preflight can check every step's settings at once and the error names the
key, the value and what is allowed. Pure: imports nothing from pyinfra.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airnode.llama_server import OWN_FLAGS as OWN_LLAMA_FLAGS
from airnode.llama_server import extra_args_problem
from airnode.record import STATE_DIR, inside
from airnode.serving import webui


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
    "model_store_dir",
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


RULES: dict[str, Rule] = {
    # preflight
    "preflight_min_memory_mb": integer(ge=256),
    # sizing
    "sizing_reserved_mb": integer(ge=0),
    "ollama_context_length": integer(ge=256, le=1048576),
    "ollama_num_parallel": integer(ge=1, le=64),
    "ollama_kv_cache_type": one_of("f16", "q8_0", "q4_0"),
    # kube-prometheus
    "monitoring_crd_timeout": integer(ge=10, le=3600),
    "monitoring_high_availability": boolean(),
    # Ollama and its models
    "ollama_install_dir": owned_dir("where Ollama's versions are unpacked"),
    "model_store_dir": owned_dir("the model store"),
    "ollama_seed_port": integer(ge=1024, le=65535),
    "ollama_seed_timeout": integer(ge=10, le=3600),
    "ollama_keep_alive": pattern(
        r"-1|0|([0-9]+(\.[0-9]+)?(ms|s|m|h))+",
        "a duration like 5m, 1h30m, 0 (unload at once) or -1 (never)",
    ),
    "ollama_max_loaded_models": integer(ge=0, le=64, note="0 lets Ollama decide"),
    "ollama_flash_attention": Rule(
        "auto (Ollama decides per model), true or false",
        lambda v: v == "auto" or isinstance(v, bool),
    ),
    "model_server_check_url": Rule(
        "empty (check through the SSH connection) or an http(s):// URL of the model server",
        lambda v: (
            v == "" or isinstance(v, str) and re.fullmatch(r"https?://[^\s/]+/?", v) is not None
        ),
    ),
    "ollama_extra_env": extra_env(),
    # the model server
    "model_server_namespace": pattern(
        r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", "a Kubernetes namespace name (lowercase DNS label)"
    ),
    "model_server_node_port": integer(ge=30000, le=32767, note="Kubernetes' NodePort range"),
    "model_server_store_size": pattern(QUANTITY, "a Kubernetes quantity like 50Gi"),
    "model_server_cpu_request": pattern(
        r"[0-9]+(\.[0-9]+)?|[0-9]+m", "a CPU quantity like 1, 0.5 or 500m"
    ),
    "model_server_memory_request": Rule(
        "auto (what sizing computes for the largest model) or a quantity like 4Gi",
        lambda v: v == "auto" or (isinstance(v, str) and re.fullmatch(QUANTITY, v) is not None),
    ),
    "model_server_rollout_timeout": integer(ge=30, le=3600),
    "model_server_check_timeout": integer(ge=10, le=3600),
    "model_server": one_of("ollama", "llama-server"),
    # llama-server (model_server = llama-server)
    "llama_server_model": Rule(
        "empty (the bundle's only model) or the name of a model of the bundle",
        lambda v: isinstance(v, str),
    ),
    "llama_server_context_length": integer(ge=256, le=1048576, note="context per slot"),
    "llama_server_parallel": integer(ge=1, le=64),
    "llama_server_threads": integer(ge=0, le=1024, note="0 lets llama-server decide"),
    "llama_server_extra_args": Rule(
        "a list of llama-server arguments starting with a flag, without the flags airnode "
        "sets (" + ", ".join(OWN_LLAMA_FLAGS) + ")",
        lambda v: extra_args_problem(v) is None,
    ),
    # Open WebUI
    "open_webui": boolean(),
    "open_webui_node_port": integer(ge=30000, le=32767, note="Kubernetes' NodePort range"),
    "open_webui_data_dir": owned_dir("Open WebUI's data"),
    "open_webui_store_size": pattern(QUANTITY, "a Kubernetes quantity like 5Gi"),
    "open_webui_admin_email": pattern(
        f"|{webui.EMAIL}",
        "empty or an email address (the Open WebUI admin's login, e.g. admin@example.com)",
    ),
    "open_webui_admin_password_file": Rule(
        "empty or the path of a file on the control machine whose first line is the Open "
        "WebUI admin's password",
        lambda v: isinstance(v, str) and "\n" not in v,
    ),
    # teardown
    "teardown_purge_models": one_of("", "yes, delete every model"),
    "teardown_purge_open_webui": one_of("", "yes, delete every chat"),
    "teardown_reset_attempts": integer(ge=1, le=20),
    # offline bundle
    "bundle_dir": optional_path(),
    "bundle_remote_dir": owned_dir("the bundle on the node"),
    "bundle_sha256": pattern(
        r"|[0-9a-f]{64}",
        "empty or the 64 lowercase hex digits of "
        "bundle.json's sha256 (`airnode bundle fetch` prints it)",
    ),
    "bundle_deep_check": boolean(),
    "bundle_allowed_signers": Rule(
        "empty or the path of an OpenSSH allowed-signers file",
        lambda v: isinstance(v, str) and "\n" not in v,
    ),
    # zram
    "zram_fraction": number(gt=0, le=2),
    "zram_max_mb": integer(ge=0, note="0 means no cap"),
    "zram_algorithm": one_of("zstd", "lzo-rle"),
    "zram_priority": integer(ge=0, le=32767),
    "zram_swappiness": integer(ge=0, le=200),
    "zram_page_cluster": integer(ge=0, le=10),
    # containerd
    "containerd_source": one_of("debian", "static"),
    "containerd_sandbox_image": Rule(
        "auto (the pause image of k0s's airgap bundle) or an image reference with a tag "
        "(registry/name:tag)",
        lambda v: (
            v == "auto"
            or isinstance(v, str)
            and re.fullmatch(r"[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+:[A-Za-z0-9._-]+", v)
            is not None
        ),
    ),
    # k0s
    "k0s_disable_components": Rule(
        'a list of k0s component names (e.g. ["metrics-server"])',
        lambda v: (
            isinstance(v, list)
            and all(isinstance(c, str) and c.replace("-", "").isalnum() for c in v)
        ),
    ),
    "k0s_extra_install_flags": Rule(
        "a list of --flag or --flag=value strings, without --force (airnode decides when k0s "
        "is re-installed)",
        lambda v: (
            isinstance(v, list)
            and all(
                isinstance(f, str)
                and re.fullmatch(r"--[a-z0-9][a-z0-9-]*(=[\x21-\x7e]*)?", f) is not None
                and f.split("=", 1)[0] != "--force"
                for f in v
            )
        ),
    ),
    "k0s_network_provider": one_of("kuberouter", "calico", "custom"),
    "k0s_ready_timeout": integer(ge=30, le=3600),
    "k0s_node_ports_on_lan": boolean(),
    # /etc/hosts
    "hosts_address": ipv4_loopback(),
}


def check(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check every value against its rule; raise SettingError for the first bad one."""
    out = {}
    for key, value in values.items():
        rule = RULES.get(key)
        if rule is None:
            raise KeyError(f"no rule for setting {key!r}: add one to airnode/config.py")
        if not rule.check(value):
            raise SettingError(key, value, rule.allowed)
        out[key] = value
    return out


def check_all(values: Mapping[str, Any]) -> list[SettingError]:
    """Every bad value at once (preflight reports them together)."""
    errors = []
    for key, value in values.items():
        try:
            check({key: value})
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
