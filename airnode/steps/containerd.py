"""containerd from the offline bundle: Debian/Ubuntu .debs or the upstream static release;
config with CRI and SystemdCgroup; restarted only when something changed."""

from __future__ import annotations

import re
import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import server, systemd

from airnode import containerd as logic
from airnode import nvidia, restart
from airnode.bundle import unpack
from airnode.config import Rule, Setting, one_of
from airnode.render import render
from airnode.sizing import Need
from airnode.steps import bundle
from airnode.steps._common import (
    AirnodeError,
    applied_command,
    applied_on_node,
    declare,
    digest,
    file_state_read,
    put_rendered,
    record_applied_command,
    remote,
    running_and_enabled,
    service_read,
    service_state,
    setting,
    settings,
)

DEFAULTS = declare(
    "containerd",
    {
        "containerd_source": Setting(
            "debian",
            one_of("debian", "static"),
            (
                "where containerd comes from: the bundle's `.debs` or the upstream static "
                "release (the bundle spec must hold the same kind)"
            ),
        ),
        "containerd_sandbox_image": Setting(
            "auto",
            Rule(
                "auto (the pause image of k0s's airgap bundle) or an image reference with a tag "
                "(registry/name:tag)",
                lambda v: (
                    v == "auto"
                    or isinstance(v, str)
                    and re.fullmatch(r"[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+:[A-Za-z0-9._-]+", v)
                    is not None
                ),
            ),
            (
                "containerd's pause image; `auto` takes the one in k0s's airgap bundle (what "
                "its kubelet expects, and the only one an air-gapped node has)"
            ),
        ),
    },
)
STATIC_MARK = logic.STATIC_MARK
CONFIG = "/etc/containerd/config.toml"
UNIT = "containerd.service"
STATIC_MARK_READ = f"cat {STATIC_MARK} 2>/dev/null || true"


def dpkg_command(b: bundle.Bundle, kind: str = "deb") -> str:
    return logic.dpkg_status_command(
        sorted({logic.deb_version(d["file"])[0] for d in b.artifacts(kind)})
    )


def reads(b: bundle.Bundle | None) -> list[str]:
    if b is None:
        return []
    return [
        dpkg_command(b) if b.artifacts("deb") else "",
        dpkg_command(b, "nvidia-deb") if toolkit(b) else "",
        STATIC_MARK_READ,
        applied_command("containerd"),
        file_state_read(CONFIG),
        service_read(UNIT),
        *[service_read(u) for u in logic.CONFLICTING_UNITS],
    ]


def toolkit(b: bundle.Bundle) -> list[dict]:
    """The NVIDIA Container Toolkit's .debs, when the model server asks for GPUs (preflight has
    checked the bundle holds them)."""
    return b.artifacts("nvidia-deb") if setting("model_server_gpus") else []


def install_toolkit(b: bundle.Bundle):
    """The toolkit's .debs not installed at their version, with dpkg (offline); the packages
    absent before are recorded first (nvidia.INSTALLED: teardown purges those only)."""
    debs = toolkit(b)
    if not debs:
        return None
    installed = logic.parse_dpkg_status(remote(dpkg_command(b, "nvidia-deb")).splitlines())
    todo = logic.debs_to_install([d["file"] for d in debs], installed)
    if not todo:
        return None
    absent = sorted({logic.deb_version(d["file"])[0] for d in debs} - set(installed))
    return server.shell(
        name="Install the NVIDIA Container Toolkit: "
        + ", ".join(" ".join(logic.deb_version(f)) for f in todo),
        commands=[
            *([nvidia.record_installed_command(absent)] if absent else []),
            "DEBIAN_FRONTEND=noninteractive dpkg --configure -a",
            "DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "
            + " ".join(shlex.quote(f"{b.remote}/{f}") for f in todo),
        ],
    )


def disk_needs(b: bundle.Bundle) -> list[Need]:
    """A static install to come: the tarball's files and runc, into /usr/local."""
    if settings(DEFAULTS)["containerd_source"] != "static":
        return []
    found = [b.artifacts(k) for k in ("containerd", "runc", "containerd-unit")]
    if not all(found):
        return []  # the step names what the bundle lacks
    tgz, runc, unit = (f[0] for f in found)
    if remote(STATIC_MARK_READ).strip() == f"{tgz['sha256']} {runc['sha256']} {unit['sha256']}":
        return []
    size = bundle.safe_to_unpack(b, tgz) + runc["size"] + unit["size"]
    return [Need("/usr/local", size, f"containerd {tgz['version']} (static)")]


@deploy("containerd", data_defaults=DEFAULTS)
def containerd():
    s = settings(DEFAULTS)
    b = bundle.current("containerd comes from the offline bundle")
    if b is None:
        return
    where = b.remote

    if s["containerd_source"] == "debian":
        debs = b.artifacts("deb")
        if not any(logic.deb_version(d["file"])[0] == "containerd" for d in debs):
            raise AirnodeError(
                "containerd_source = 'debian' but the bundle holds no containerd "
                ".deb: list them under [[containerd.debs]] in the spec, re-fetch"
            )
        installed = logic.parse_dpkg_status(remote(dpkg_command(b)).splitlines())
        todo = logic.debs_to_install([d["file"] for d in debs], installed)
        installed_identity = " ".join(sorted(d["sha256"] for d in debs))
        version = next(
            logic.deb_version(d["file"])[1]
            for d in debs
            if logic.deb_version(d["file"])[0] == "containerd"
        )
        install = (
            server.shell(
                name="Install " + ", ".join(" ".join(logic.deb_version(f)) for f in todo),
                commands=[
                    "DEBIAN_FRONTEND=noninteractive dpkg --configure -a",  # after a cut dpkg
                    "DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "
                    + " ".join(shlex.quote(f"{where}/{f}") for f in todo),
                ],
            )
            if todo
            else None
        )
    else:
        needed = {k: b.artifacts(k) for k in ("containerd", "runc", "containerd-unit")}
        missing = [k for k, v in needed.items() if not v]
        if missing:
            raise AirnodeError(
                f"containerd_source = 'static' but the bundle lacks {missing}: set "
                'containerd.source = "static" in the spec and re-fetch'
            )
        tgz, runc, unit = (needed[k][0] for k in ("containerd", "runc", "containerd-unit"))
        version = tgz["version"]
        mark = remote(STATIC_MARK_READ)
        want = f"{tgz['sha256']} {runc['sha256']} {unit['sha256']}"
        installed_identity = want
        install = None
        if (mark or "").strip() != want:
            bundle.safe_to_unpack(b, tgz)
            install = server.shell(
                name=f"Install containerd {version} (static) and runc "
                f"{runc['version']} into /usr/local",
                commands=logic.static_install_commands(
                    f"{where}/{tgz['file']}",
                    f"{where}/{runc['file']}",
                    f"{where}/{unit['file']}",
                    want,
                    unpack.TAR_SAFE,
                ),
            )

    gpu_install = install_toolkit(b)
    gpu_debs = toolkit(b)
    if gpu_debs:
        installed_identity += " nvidia " + " ".join(sorted(d["sha256"] for d in gpu_debs))
    try:
        sandbox = logic.sandbox_image(
            s["containerd_sandbox_image"], b.data.get("images", {}).get("k0s", [])
        )
    except ValueError as e:
        raise AirnodeError(f"{host.name}: {e}") from None
    values = dict(
        version=version,
        sandbox_image=sandbox,
        cni_bin_dir="/opt/cni/bin",
        nvidia_runtime=nvidia.RUNTIME_BINARY if gpu_debs else "",
    )
    put_rendered(
        logic.config_template(version),
        CONFIG,
        name="containerd config (CRI, SystemdCgroup" + (", nvidia runtime)" if gpu_debs else ")"),
        **values,
    )
    # Restart when what containerd runs with (its install and config) is not what it last
    # started with, whether this run changed it or a cut run left the restart undone.
    want = digest(render(logic.config_template(version), **values), installed_identity)
    changed = install is not None or gpu_install is not None
    if restart.decide(want, applied_on_node("containerd"), changed=changed).restart:
        server.shell(
            name="Restart containerd (installed or config changed)",
            commands=[
                "systemctl daemon-reload",
                "systemctl restart containerd.service",
                record_applied_command("containerd", want),
            ],
        )
    running_and_enabled(UNIT, "containerd running and enabled at boot")

    for unit in logic.CONFLICTING_UNITS:
        active, enabled = service_state(unit)
        if active == "active" or enabled in ("enabled", "enabled-runtime", "linked"):
            systemd.service(
                name=f"Conflicting runtime {unit} stopped and disabled",
                service=unit,
                running=False,
                enabled=False,
            )
