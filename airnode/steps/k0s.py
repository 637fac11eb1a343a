"""k0s from the bundle: single-node controller+worker on the system containerd, metrics-server
disabled; re-installed with --force only when its flags change, restarted only when its config
changes; the deploy waits (bounded) until the node is Ready."""

from __future__ import annotations

import hashlib
import re
import shlex

from pyinfra.api import deploy
from pyinfra.operations import server

from airnode import k0s as logic
from airnode.config import Rule, Setting, boolean, integer, one_of
from airnode.render import render
from airnode.sizing import Need
from airnode.steps import bundle
from airnode.steps._common import (
    AirnodeError,
    applied_command,
    applied_on_node,
    declare,
    digest,
    file_is,
    file_state_read,
    put_text,
    record_applied_command,
    remote,
    script,
    settings,
)

DEFAULTS = declare(
    "k0s",
    {
        "k0s_disable_components": Setting(
            ["metrics-server"],
            Rule(
                'a list of k0s component names (e.g. ["metrics-server"])',
                lambda v: (
                    isinstance(v, list)
                    and all(isinstance(c, str) and c.replace("-", "").isalnum() for c in v)
                ),
            ),
            "`--disable-components` (kube-prometheus replaces metrics-server)",
        ),
        "k0s_extra_install_flags": Setting(
            [],
            Rule(
                "a list of --flag or --flag=value strings, without --force (airnode decides "
                "when k0s is re-installed)",
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
            "more `k0s install controller` flags",
        ),
        "k0s_network_provider": Setting(
            "kuberouter",
            one_of("kuberouter", "calico", "custom"),
            "k0s.yaml `spec.network.provider`",
        ),
        "k0s_ready_timeout": Setting(
            600,
            integer(ge=30, le=3600),
            "seconds to wait for the node to become Ready",
        ),
        "k0s_node_ports_on_lan": Setting(
            False,
            boolean(),
            (
                "false: NodePorts (the model API, Open WebUI) answer on 127.0.0.1 only "
                '(kube-proxy\'s `nodePortAddresses: ["127.0.0.0/8"]`), reached through SSH; '
                "true: on every node address, to the LAN (no authentication in front of the "
                "Ollama API)"
            ),
        ),
    },
)


SHA = f"sha256sum {logic.BINARY} 2>/dev/null || true"
STATUS = f"{logic.BINARY} status -o json 2>/dev/null || true"
UNIT_TEXT = f"cat /etc/systemd/system/{logic.UNIT} 2>/dev/null || true"
ADMIN_MODE = f"stat -c %a {logic.ADMIN_KUBECONFIG} 2>/dev/null || true"


def reads(b=None) -> list[str]:
    return (
        [SHA, STATUS, UNIT_TEXT, ADMIN_MODE, applied_command("k0s"), file_state_read(logic.CONFIG)]
        if b
        else []
    )


def disk_needs(b: bundle.Bundle) -> list[Need]:
    """A k0s binary to install (beside the old one until it is renamed over it)."""
    binaries = b.artifacts("k0s")
    have = remote(SHA).split()
    if not binaries or (have and have[0] == binaries[0]["sha256"]):
        return []
    return [Need("/usr/local", binaries[0]["size"], f"k0s {binaries[0]['version']}")]


@deploy("k0s", data_defaults=DEFAULTS)
def k0s():
    s = settings(DEFAULTS)
    b = bundle.current("k0s comes from the offline bundle")
    if b is None:
        return
    if not b.artifacts("k0s"):
        raise AirnodeError(f"bundle {b.root} holds no k0s binary: add [k0s] to the spec, re-fetch")
    binary = b.artifacts("k0s")[0]
    src = f"{b.remote}/{binary['file']}"

    have = remote(SHA).split()
    status = logic.parse_status(remote(STATUS))
    unit_text = remote(UNIT_TEXT)
    values = dict(
        network_provider=s["k0s_network_provider"],
        pull_policy="Never",
        node_ports_on_lan=s["k0s_node_ports_on_lan"],
    )
    flags = logic.install_flags(s["k0s_disable_components"], s["k0s_extra_install_flags"])
    # What k0s should be running with; recorded once the node is Ready after a change, so that
    # a run cut between a change and the restart still restarts on the next run.
    text = render("k0s.yaml.j2", **values)
    want = digest(binary["sha256"], text, " ".join(flags))
    p = logic.plan(
        binary["sha256"],
        have[0] if have else "",
        flags,
        status,
        unit_text,
        not file_is(logic.CONFIG, hashlib.sha256(text.encode()).hexdigest(), "600"),
        want,
        applied_on_node("k0s"),
    )

    ops = []
    if p.install_binary:
        # k0s upgrade: stop, replace, start (the restart below starts it again)
        ops.append(
            server.shell(
                name=f"Install k0s {binary['version']} to {logic.BINARY}",
                commands=[
                    f"if systemctl is-active -q {logic.UNIT}; then {logic.BINARY} stop; fi",
                    f"install -m 755 {shlex.quote(src)} {logic.BINARY}.new",
                    f"mv {logic.BINARY}.new {logic.BINARY}",
                ],
            )
        )
    config = put_text(text, logic.CONFIG, name=f"{logic.CONFIG}", mode="600")
    if p.validate:
        server.shell(
            name="Validate k0s.yaml (k0s config validate)",
            commands=[f"{logic.BINARY} config validate --config {logic.CONFIG}"],
        )
    cmd = f"{logic.BINARY} install controller " + " ".join(shlex.quote(f) for f in flags)
    if p.install == "install":
        ops.append(server.shell(name="k0s install controller " + " ".join(flags), commands=[cmd]))
    elif p.install == "reinstall":
        ops.append(
            server.shell(
                name="k0s flags changed: install controller --force",
                commands=[cmd + " --force", "systemctl daemon-reload"],
            )
        )
    if config is not None:
        ops.append(config)
    woken = list(ops)
    if p.restart:
        woken.append(
            server.shell(
                name="Restart k0s (binary, flags or config changed)",
                commands=[f"systemctl restart {logic.UNIT}"],
            )
        )
    if p.start:
        woken.append(server.shell(name="Start k0s", commands=[f"{logic.BINARY} start"]))
    timeout = s["k0s_ready_timeout"]
    if p.wait:
        server.shell(
            name=f"Wait until the node is Ready (at most {timeout}s)",
            commands=[
                script("k0s-ready-wait.sh", logic.BINARY, logic.UNIT, str(timeout)),
                f"chmod 600 {logic.ADMIN_KUBECONFIG}",
                # recorded once Ready: a run cut before (or a node that never got Ready)
                # restarts and waits again next time
                record_applied_command("k0s", want),
            ],
            _if=lambda: any(op.did_change() for op in woken),
        )
    mode = remote(ADMIN_MODE).strip()
    if mode and mode != "600":
        server.shell(
            name=f"{logic.ADMIN_KUBECONFIG} readable by root only",
            commands=[f"chmod 600 {logic.ADMIN_KUBECONFIG}"],
        )
