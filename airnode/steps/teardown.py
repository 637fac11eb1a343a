"""Removal, the seed's sequence done safely: model server and monitoring deleted, node drained,
k0s stopped and reset (retrying busy mounts), Ollama, containerd (when airnode installed it),
zram removed, the original disk swap, sysctls, modules, units and /etc/hosts put back as
/var/lib/airnode/before.txt recorded them. The model store is kept unless
`teardown_purge_models` says so in so many words."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Command
from pyinfra.operations import server

from airnode import cluster, nvidia, swap
from airnode import containerd as containerd_logic
from airnode import k0s as k0slogic
from airnode import ollama as ollamalogic
from airnode import record as logic
from airnode.config import Setting, integer, one_of
from airnode.facts import NumberedLines
from airnode.steps._common import declare, role, script, settings
from airnode.steps.bundle import DEFAULTS as BUNDLE_DEFAULTS
from airnode.steps.containerd import STATIC_MARK
from airnode.steps.k0s import UNIT_TEXT as K0S_UNIT_TEXT
from airnode.steps.k0s import WORKER_UNIT_TEXT as K0S_WORKER_UNIT_TEXT
from airnode.steps.kernel import MODULES
from airnode.steps.model_server import DEFAULTS as SERVER_DEFAULTS
from airnode.steps.monitoring import KUBECTL, MANIFESTS
from airnode.steps.ollama import DEFAULTS as OLLAMA_DEFAULTS
from airnode.steps.record import HOSTS_LINE, ZRAM_SYSCTL_FILES
from airnode.steps.swap_off import MASKED_LIST
from airnode.steps.zram import UNIT as ZRAM_UNIT

PURGE_PHRASE = "yes, delete every model"
# teardown_purge_models: the model store survives teardown; to delete it (and the ollama user
# that owns it), set it to exactly "yes, delete every model".
# teardown_reset_attempts: k0s reset is retried while mounts are busy.
DEFAULTS = declare(
    "teardown",
    {
        "teardown_purge_models": Setting(
            "",
            one_of("", "yes, delete every model"),
            "teardown only: the model store is kept unless told in these words",
        ),
        "teardown_purge_open_webui": Setting(
            "",
            one_of("", "yes, delete every chat"),
            "teardown only: Open WebUI's data is kept unless told in these words",
        ),
        "teardown_reset_attempts": Setting(
            5,
            integer(ge=1, le=20),
            "teardown only: how many times `k0s reset` is tried before giving up",
        ),
    },
)


WEBUI_PURGE_PHRASE = "yes, delete every chat"


def purge_open_webui() -> bool:
    """teardown_purge_open_webui: Open WebUI's data (users, chats) survive teardown unless set
    to exactly "yes, delete every chat"."""
    return settings(DEFAULTS)["teardown_purge_open_webui"] == WEBUI_PURGE_PHRASE


def purge() -> bool:
    """Checked by the first step, at plan time: a bad value stops before any change."""
    return settings(DEFAULTS)["teardown_purge_models"] == PURGE_PHRASE


def before() -> logic.Before:
    return logic.parse(
        (host.get_fact(Command, f"cat {logic.BEFORE} 2>/dev/null || true") or "").splitlines()
    )


def created() -> list[str]:
    """What airnode recorded making (record.CREATED)."""
    text = host.get_fact(Command, f"cat {logic.CREATED} 2>/dev/null || true") or ""
    return [line for line in text.splitlines() if line.startswith("/")]


def installed_as_worker() -> bool:
    """What k0s was installed as on this node decides (its unit files), the inventory only when
    none is: a worker moved out of the `workers` group before its teardown is still torn down
    as a worker (no admin kubeconfig to drain or delete with, no k0s.yaml to reset with)."""
    installed = cluster.installed_role(
        host.get_fact(Command, K0S_UNIT_TEXT) or "",
        host.get_fact(Command, K0S_WORKER_UNIT_TEXT) or "",
    )
    return (installed or role()) == cluster.WORKER


def k0s_running() -> bool:
    return bool(
        host.get_fact(Command, f"{k0slogic.BINARY} status >/dev/null 2>&1 && echo yes || true")
    )


@deploy("Remove the model server and monitoring", data_defaults=DEFAULTS)
def remove_workloads():
    settings(DEFAULTS)
    purge()
    if installed_as_worker():
        host.noop(
            "a worker: the cluster's workloads are the controller's (deploys/remove_node.py "
            "drains it there first)"
        )
        return
    if not k0s_running():
        host.noop("k0s is not running: no workloads to delete")
        return
    ns = settings(SERVER_DEFAULTS)["model_server_namespace"]
    # `|| true`: once the CRDs are gone (a teardown cut half-way), kubectl fails on the custom
    # resources with "no matches for kind"; k0s reset wipes whatever is left anyway
    delete = f"{KUBECTL} delete --ignore-not-found --wait=false"
    server.shell(
        name=f"Delete the model server (namespace {ns}; its volume data stays)",
        commands=[
            f"[ ! -e {MANIFESTS}/model-server.yaml ] || {delete} -f {MANIFESTS}/model-server.yaml "
            "|| true",
            f"{KUBECTL} -n kube-system delete configmap airnode-applied-model-server "
            "--ignore-not-found || true",
        ],
    )
    server.shell(
        name="Delete kube-prometheus (the rest, then setup: CRDs, namespace)",
        commands=[
            f"[ ! -e {MANIFESTS}/kube-prometheus/main.yaml ] || "
            f"{delete} -f {MANIFESTS}/kube-prometheus/main.yaml || true",
            f"[ ! -e {MANIFESTS}/kube-prometheus/setup.yaml ] || "
            f"{delete} -f {MANIFESTS}/kube-prometheus/setup.yaml || true",
            f"{KUBECTL} -n kube-system delete configmap airnode-applied-kube-prometheus "
            "--ignore-not-found || true",
        ],
    )


@deploy("Remove k0s", data_defaults=DEFAULTS)
def remove_k0s():
    s = settings(DEFAULTS)
    installed = host.get_fact(Command, f"[ -e {k0slogic.BINARY} ] && echo yes || true")
    if not installed:
        host.noop("k0s is not installed")
        return
    worker = installed_as_worker()
    # a worker has no admin kubeconfig: it is drained from the controller, before
    if k0s_running() and not worker:
        node = (host.get_fact(Command, "uname -n") or "").strip().lower()
        server.shell(
            name=f"Drain node {node}",
            commands=[
                f"{KUBECTL} drain --ignore-daemonsets --delete-emptydir-data --force "
                f"--timeout=120s {shlex.quote(node)} || true"
            ],
        )
    n = s["teardown_reset_attempts"]
    server.shell(
        name=f"k0s stop and k0s reset (up to {n} attempts while mounts are busy)",
        commands=[
            f"{k0slogic.BINARY} stop 2>/dev/null || true",
            script(
                "k0s-reset.sh",
                k0slogic.BINARY,
                k0slogic.CRI_SOCKET,
                "" if worker else k0slogic.CONFIG,
                str(n),
            ),
        ],
    )
    server.shell(
        name="Remove the k0s binary and configuration",
        commands=[
            f"rm -f {k0slogic.BINARY} {k0slogic.CONFIG} {cluster.TOKEN_FILE}",
            f"rmdir {cluster.TOKEN_DIR} 2>/dev/null || true",
            f"rmdir {k0slogic.CONFIG.rsplit('/', 1)[0]} 2>/dev/null || true",
            "systemctl daemon-reload",
        ],
    )


@deploy("Remove Ollama", data_defaults=DEFAULTS)
def remove_ollama():
    base = settings(OLLAMA_DEFAULTS)["ollama_install_dir"]
    store = settings(SERVER_DEFAULTS)["model_server_store_dir"]
    versions = (host.get_fact(Command, ollamalogic.versions_command(base)) or "").split()
    link = host.get_fact(Command, "readlink /usr/local/bin/ollama 2>/dev/null || true") or ""
    ours = link.startswith(f"{base}/")  # an ollama airnode did not install stays
    older = f"ls -d {ollamalogic.MODELFILES} 2>/dev/null || true"  # seeding's, before v0.32
    if versions or ours or host.get_fact(Command, older):
        q = shlex.quote
        server.shell(
            name=f"Remove Ollama {', '.join(versions) or ''} from {base}, its link and "
            "the Modelfiles",
            commands=[
                f"systemctl stop {ollamalogic.SEED_UNIT} 2>/dev/null || true",
                *(["rm -f /usr/local/bin/ollama"] if ours else []),
                f"rm -rf {ollamalogic.MODELFILES} " + " ".join(q(f"{base}/{v}") for v in versions),
                f"rm -f {q(base + '/current')}",
                f"rmdir {q(base)} {q(base.rsplit('/', 1)[0])} 2>/dev/null || true",
            ],
        )
    webui = settings(SERVER_DEFAULTS)["open_webui_data_dir"]
    made = created()
    if purge_open_webui():
        if logic.made_by_airnode(webui, made):
            server.shell(
                name=f"PURGE: delete Open WebUI's data {webui} (users, chats)",
                commands=[logic.removal_command(logic.Removal(webui, []))],
            )
        else:
            host.noop(f"Open WebUI's data {webui} was there before airnode: not deleted")
    if purge():
        users = [
            f"userdel {ollamalogic.USER} 2>/dev/null || true",
            f"groupdel {ollamalogic.USER} 2>/dev/null || true",
            f"rm -rf {ollamalogic.HOME}",
        ]
        if logic.made_by_airnode(store, made):
            server.shell(
                name=f"PURGE: delete the model store {store} and the ollama user",
                commands=[logic.removal_command(logic.Removal(store, [])), *users],
            )
        else:
            # a directory airnode did not make is never deleted, whatever the phrase says
            host.noop(
                f"model store {store} was there before airnode: not deleted, nor the "
                "ollama user that owns it (delete its blobs/ and manifests/ yourself if "
                "you mean to)"
            )
    else:
        host.noop(f"model store {store} kept, with the ollama user that owns it")


@deploy("Remove containerd (when airnode installed it)", data_defaults=DEFAULTS)
def remove_containerd():
    b = before()
    # the NVIDIA Container Toolkit packages airnode installed (recorded before dpkg ran)
    recorded = host.get_fact(Command, f"cat {nvidia.INSTALLED} 2>/dev/null || true") or ""
    if recorded.strip():
        status = (
            host.get_fact(Command, containerd_logic.dpkg_status_command(list(nvidia.PACKAGES)))
            or ""
        )
        gone = nvidia.to_purge(recorded, containerd_logic.parse_dpkg_status(status.splitlines()))
        if gone:
            server.shell(
                name="Purge the NVIDIA Container Toolkit airnode installed: " + " ".join(gone),
                commands=["DEBIAN_FRONTEND=noninteractive dpkg --purge " + " ".join(gone)],
            )
    static = host.get_fact(Command, f"[ -e {STATIC_MARK} ] && echo yes || true")
    purge_pkgs = [
        p
        for p in logic.packages_to_purge(b)
        if (
            host.get_fact(
                Command, f"dpkg-query -W -f='${{db:Status-Abbrev}}' {p} 2>/dev/null || true"
            )
            or ""
        ).startswith("ii")
    ]
    if not (static or purge_pkgs):
        # containerd was there before airnode: it stays, with its own config back
        ours = host.get_fact(
            Command, "grep -qs 'Managed by airnode' /etc/containerd/config.toml && echo yes || true"
        )
        if ours and "/etc/containerd/config.toml" in b.files:
            server.shell(
                name="containerd (there before airnode) back on its own config",
                commands=[
                    logic.restore_file_command(b, "/etc/containerd/config.toml"),
                    "systemctl try-restart containerd.service",
                ],
            )
        else:
            host.noop("containerd was not installed by airnode")
        return
    cmds = ["systemctl disable --now containerd.service 2>/dev/null || true"]
    if purge_pkgs:
        cmds.append("DEBIAN_FRONTEND=noninteractive dpkg --purge " + " ".join(purge_pkgs))
    if static:
        cmds += containerd_logic.static_removal_commands()
    cmds += [
        "rm -rf /var/lib/containerd /run/containerd /opt/containerd",
        logic.restore_file_command(b, "/etc/containerd/config.toml"),
        "rmdir /etc/containerd 2>/dev/null || true",
    ]
    server.shell(
        name="Remove containerd and its images: " + (" ".join(purge_pkgs) or "static"),
        commands=cmds,
    )


@deploy("Restore units airnode disabled", data_defaults=DEFAULTS)
def restore_units():
    b = before()
    for unit, (enabled, active) in sorted(b.units.items()):
        if enabled in ("enabled", "disabled") or active == "active":
            now = host.get_fact(
                Command,
                f"systemctl is-enabled {unit} 2>/dev/null || true; "
                f"systemctl is-active {unit} 2>/dev/null || true",
            )
            cmds = []
            if enabled == "enabled" and "enabled" not in (now or ""):
                cmds.append(f"systemctl enable {unit}")
            if active == "active":
                cmds.append(f"systemctl start {unit}")
            if cmds and (now or "").split() != [enabled, active]:
                server.shell(name=f"{unit} back to {enabled}, {active}", commands=cmds)


@deploy("Restore the kernel settings, zram and disk swap", data_defaults=DEFAULTS)
def restore_host():
    b = before()
    # zram off and gone
    unit_present = host.get_fact(
        Command, f"[ -e /etc/systemd/system/{ZRAM_UNIT} ] && echo yes || true"
    )
    if unit_present:
        server.shell(
            name=f"Remove {ZRAM_UNIT} (swapoff, reset)",
            commands=[
                f"systemctl disable --now {ZRAM_UNIT}",
                f"rm -f /etc/systemd/system/{ZRAM_UNIT}",
                "systemctl daemon-reload",
            ],
        )
    ours = " ".join(["/etc/modules-load.d/airnode-kubernetes.conf", *ZRAM_SYSCTL_FILES])
    if host.get_fact(Command, f"ls {ours} 2>/dev/null || true"):
        server.shell(
            name="Remove airnode's sysctl.d and modules-load.d files", commands=[f"rm -f {ours}"]
        )
    restore = logic.restore_sysctls_command(b)
    if restore:
        server.shell(name="Sysctls back to their values before airnode", commands=[restore])
    unload = [m for m in logic.modules_to_unload(b) if m in (*MODULES, "zram")]
    if unload:
        server.shell(
            name="Unload modules airnode loaded: " + ", ".join(unload),
            commands=[f"modprobe -r {m} 2>/dev/null || true" for m in unload],
        )

    # disk swap back: fstab lines unmarked, units unmasked, swapon
    entries = [
        (n, line)
        for n, line in host.get_fact(NumberedLines, path="/etc/fstab")
        if line.startswith(swap.FSTAB_MARKER)
    ]
    masked = (host.get_fact(Command, f"cat {MASKED_LIST} 2>/dev/null || true") or "").split()
    if entries:
        server.shell(
            name="fstab swap lines back as they were: " + ", ".join(str(n) for n, _ in entries),
            commands=[swap.uncomment_command([n for n, _ in entries])],
        )
    if masked:
        server.shell(
            name="Unmask swap units: " + ", ".join(masked),
            commands=[
                "systemctl unmask " + " ".join(shlex.quote(u) for u in masked),
                "systemctl daemon-reload",
            ],
        )
    if entries or masked:
        server.shell(name="Disk swap on again (swapon -a)", commands=["swapon -a"])

    # the /etc/hosts line we added
    line = (host.get_fact(Command, f"cat {HOSTS_LINE} 2>/dev/null || true") or "").strip()
    if line:
        found = [n for n, text in host.get_fact(NumberedLines, path="/etc/hosts") if text == line]
        if found:
            server.shell(
                name=f"Remove the /etc/hosts line airnode added: {line}",
                commands=[f"sed -i '{found[-1]}d' /etc/hosts"],
            )


@deploy("Remove airnode's state (the model store stays)", data_defaults=DEFAULTS)
def remove_state():
    store = settings(SERVER_DEFAULTS)["model_server_store_dir"]
    remote = settings(BUNDLE_DEFAULTS)["bundle_remote_dir"]
    # every entry, flagged when it holds a model store (blobs/ and manifests/): that one stays
    # whatever the settings say, unless teardown_purge_models already removed it
    webui = settings(SERVER_DEFAULTS)["open_webui_data_dir"]
    entries = (
        host.get_fact(
            Command,
            f"for e in {logic.STATE_DIR}/* {logic.STATE_DIR}/.[!.]*; "
            'do [ -e "$e" ] || continue; if [ -d "$e/blobs" ] || '
            '[ -d "$e/manifests" ] || [ -e "$e/webui.db" ]; then '
            'echo "store $e"; else echo "other $e"; fi; done; true',
        )
        or ""
    ).splitlines()
    doomed = []
    for line in entries:
        kind, _, path = line.partition(" ")
        if (
            kind == "store"
            or path in (store, webui, logic.CREATED)
            or store.startswith(path + "/")
            or webui.startswith(path + "/")
        ):
            continue
        doomed.append(path)
    cmds = []
    if doomed:
        cmds.append("rm -rf " + " ".join(shlex.quote(p) for p in sorted(doomed)))
    if not remote.startswith(logic.STATE_DIR + "/") and host.get_fact(
        Command, f"[ -d {shlex.quote(remote)} ] && echo yes || true"
    ):
        # outside airnode's state directory: all of it only if airnode made it; else just
        # what it put there (never a directory the site had before, never a mount point)
        r = logic.removal(remote, created(), [store, webui])
        if r.tree or r.entries:
            doomed.append(r.tree or f"what airnode put in {remote}")
            cmds.append(logic.removal_command(r))
        if r.kept_because:
            host.noop(f"bundle_remote_dir {remote} kept: {r.kept_because}")
    if not doomed and purge() and created():
        doomed.append(logic.CREATED)  # the store it listed was purged: nothing left to keep
    if doomed:
        cmds += [logic.kept_records_command(), f"rmdir {logic.STATE_DIR} 2>/dev/null || true"]
        server.shell(name="Remove airnode's state: " + ", ".join(sorted(doomed)), commands=cmds)
