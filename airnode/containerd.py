"""containerd: which config schema a version takes, what dpkg and ctr report, which images a
node lacks. Pure: no pyinfra."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

CONFLICTING_UNITS = ("docker.service", "docker.socket", "crio.service")

# containerd_source = "static": the release tarball unpacked into /usr/local, runc and the
# systemd unit beside it. What was installed is listed at install time (the tarball's own
# members), and teardown removes exactly that list: both sides read these names.
STATIC_DIR = "/usr/local/lib/airnode"
STATIC_MARK = f"{STATIC_DIR}/containerd-static.sha256"
STATIC_FILES = f"{STATIC_DIR}/containerd-static.files"
STATIC_RUNC = "/usr/local/sbin/runc"
STATIC_UNIT = "/etc/systemd/system/containerd.service"
# Nodes installed before the list was kept: the release tarballs' bin/ members
# (containerd/containerd Makefile, RELEASE_BINARIES / SHIM_BINARIES: 1.7.x and 2.x).
LEGACY_STATIC_FILES = tuple(
    f"/usr/local/bin/{b}"
    for b in (
        "containerd",
        "containerd-shim",
        "containerd-shim-runc-v1",
        "containerd-shim-runc-v2",
        "containerd-stress",
        "ctr",
    )
)


def static_install_commands(tgz: str, runc: str, unit: str, want: str, tar_safe: str) -> list[str]:
    """Unpack the tarball (its members checked on the control machine first), install runc and
    the unit, list every file installed (STATIC_FILES), then mark the install (STATIC_MARK)."""
    q = shlex.quote
    return [
        f"mkdir -p {STATIC_DIR}",
        # the list first: a run cut during the unpack still leaves teardown what it wrote
        f"tar -tzf {q(tgz)} | grep -v '/$' | sed 's|^[.]/||; s|^|/usr/local/|' "
        f"> {STATIC_FILES}.tmp",
        f"printf '%s\\n' {STATIC_RUNC} {STATIC_UNIT} >> {STATIC_FILES}.tmp",
        f"mv {STATIC_FILES}.tmp {STATIC_FILES}",
        f"tar -xz {tar_safe} -f {q(tgz)} -C /usr/local",
        f"install -m 755 {q(runc)} {STATIC_RUNC}",
        f"install -D -m 644 {q(unit)} {STATIC_UNIT}",
        "systemctl daemon-reload",
        f"echo {q(want)} > {STATIC_MARK}",
    ]


def static_removal_commands() -> list[str]:
    """Teardown of a static install: the files listed at install time (or, for a node installed
    before the list, the release layout's), the list and the mark; nothing else in /usr/local."""
    legacy = " ".join([*LEGACY_STATIC_FILES, STATIC_RUNC, STATIC_UNIT])
    return [
        f"if [ -f {STATIC_FILES} ]; then xargs -d '\\n' rm -f -- < {STATIC_FILES}; "
        f"else rm -f -- {legacy}; fi",
        f"rm -f {STATIC_FILES} {STATIC_MARK}",
        f"rmdir {STATIC_DIR} 2>/dev/null || true",
        "systemctl daemon-reload",
    ]


def config_template(version: str) -> str:
    """containerd 1.x reads config schema version 2, 2.x schema version 3."""
    m = re.match(r"v?(\d+)", version)
    if not m:
        raise ValueError(f"containerd version {version!r} does not start with a number")
    major = int(m.group(1))
    return "containerd-config-v3.toml.j2" if major >= 2 else "containerd-config-v2.toml.j2"


def deb_version(file: str) -> tuple[str, str]:
    """containerd_1.6.20~ds1-1+deb12u3_amd64.deb -> ('containerd', '1.6.20~ds1-1+deb12u3')."""
    name = Path(file).name
    parts = name.removesuffix(".deb").split("_")
    if len(parts) != 3 or not name.endswith(".deb"):
        raise ValueError(f"{file}: not a Debian package file name (name_version_arch.deb)")
    return parts[0], parts[1]


def dpkg_status_command(names: list[str]) -> str:
    """What dpkg knows of these packages (parse_dpkg_status reads it); nothing for unknown ones."""
    return (
        "dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n' "
        + " ".join(shlex.quote(n) for n in names)
        + " 2>/dev/null || true"
    )


def parse_dpkg_status(lines: list[str]) -> dict[str, str]:
    """`dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n'` -> installed versions."""
    out = {}
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and fields[2].startswith("ii"):
            # file names carry no epoch ("1:"): compare without it
            out[fields[0]] = re.sub(r"^\d+:", "", fields[1])
    return out


def debs_to_install(debs: list[str], installed: dict[str, str]) -> list[str]:
    """The bundle's .debs whose package is absent or at another version."""
    return [d for d in debs if installed.get(deb_version(d)[0]) != deb_version(d)[1]]


def parse_ctr_images(lines: list[str]) -> dict[str, str]:
    """`ctr -n k8s.io images ls` -> {ref: digest}."""
    out = {}
    for line in lines:
        fields = line.split()
        if len(fields) >= 3 and fields[0] != "REF" and fields[2].startswith("sha256:"):
            out[fields[0]] = fields[2]
    return out


def archives_to_import(
    archives: dict[str, dict[str, str | None]], present: dict[str, str]
) -> list[str]:
    """Archives (file -> {name: digest}) holding an image containerd lacks at that digest.
    An archive whose names or digests cannot be read is always imported."""
    return sorted(
        f
        for f, imgs in archives.items()
        if not imgs or any(d is None or present.get(n) != d for n, d in imgs.items())
    )


def sandbox_image(setting: str, k0s_images: list[str]) -> str:
    """containerd's pause image: the setting, or with "auto" the pause image of k0s's airgap
    bundle (the one k0s's kubelet expects, and the only one an air-gapped node has)."""
    if setting != "auto":
        return setting
    pauses = sorted(i for i in k0s_images if i.rsplit("/", 1)[-1].startswith("pause:"))
    if not pauses:
        raise ValueError(
            "containerd_sandbox_image = 'auto' but the bundle lists no pause image "
            "among k0s's airgap images: set containerd_sandbox_image explicitly"
        )
    return pauses[-1]
