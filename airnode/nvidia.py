"""NVIDIA GPU nodes: the Container Toolkit's packages from NVIDIA's apt repository, the containerd
runtime and RuntimeClass they give the model server, the device plugin. Pure: no pyinfra, no I/O.

Why a runtime handler and not CDI: Debian bookworm's containerd 1.6 has no CDI at all, 1.7 has
it off by default and only 2.x on; an ``nvidia`` runtime in containerd's CRI config plus a
RuntimeClass naming it works for both ``containerd_source`` values. It is what
``nvidia-ctk runtime configure --runtime=containerd`` writes (NVIDIA/nvidia-container-toolkit
v1.20.0, pkg/config/engine/containerd: a runtime ``nvidia`` of ``runtime_type``
io.containerd.runc.v2 whose ``options.BinaryName`` is /usr/bin/nvidia-container-runtime, with
runc's options copied, SystemdCgroup among them), without making it the default runtime: only
pods that ask for it (runtimeClassName: nvidia) get the GPU hooks.
"""

from __future__ import annotations

import re

# NVIDIA's flat apt repository (`deb https://nvidia.github.io/libnvidia-container/stable/deb/
# $(ARCH) /`, NVIDIA/nvidia-container-toolkit docs install-guide): one Packages index per
# architecture, each stanza with Filename (./name.deb, relative to that directory) and SHA256.
APT_SOURCE = "https://nvidia.github.io/libnvidia-container"
# The toolkit and what it depends on in that repository (NVIDIA/nvidia-container-toolkit v1.20.0
# packaging/debian/control: nvidia-container-toolkit Depends nvidia-container-toolkit-base
# (= V), libnvidia-container-tools (= V); the tools on libnvidia-container1 (>= V)); the rest
# (libc6, libcap2, libseccomp2) is in every Debian.
PACKAGES = (
    "libnvidia-container1",
    "libnvidia-container-tools",
    "nvidia-container-toolkit-base",
    "nvidia-container-toolkit",
)
RUNTIME = "nvidia"  # containerd's runtime handler and the RuntimeClass naming it
RUNTIME_BINARY = "/usr/bin/nvidia-container-runtime"  # nvidia-container-toolkit-base's
DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"
DCGM_EXPORTER_IMAGE = "nvcr.io/nvidia/k8s/dcgm-exporter:4.5.3-4.8.2-distroless"
# The counters airnode's GPU panels read, each in NVIDIA/dcgm-exporter 4.5.3-4.8.2's
# etc/default-counters.csv (what the exporter exports unless told otherwise): name -> unit.
DCGM_COUNTERS = {
    "DCGM_FI_DEV_GPU_UTIL": "GPU utilization (in %)",
    "DCGM_FI_DEV_FB_USED": "Framebuffer memory used (in MiB)",
    "DCGM_FI_DEV_FB_FREE": "Framebuffer memory free (in MiB)",
    "DCGM_FI_DEV_POWER_USAGE": "Power draw (in W)",
    "DCGM_FI_DEV_GPU_TEMP": "GPU temperature (in C)",
}
DCGM_JOB = "dcgm-exporter"  # the Service's name: the ServiceMonitor's job label
RESOURCE = "nvidia.com/gpu"  # what the device plugin advertises and the model server asks for
# k0s's kubelet root is /var/lib/k0s/kubelet (k0s pkg/constant KubeletRootDir), not
# /var/lib/kubelet as the device plugin's and dcgm-exporter's own manifests assume
DEVICE_PLUGINS_DIR = "/var/lib/k0s/kubelet/device-plugins"
POD_RESOURCES_DIR = "/var/lib/k0s/kubelet/pod-resources"
# What the CUDA libraries need from the driver (the official Ollama image's
# NVIDIA_DRIVER_CAPABILITIES); the device plugin sets NVIDIA_VISIBLE_DEVICES per container.
DRIVER_CAPABILITIES = "compute,utility"

_VERSION = r"[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}(-[0-9A-Za-z.+~]{1,32})?"
VERSION_ALLOWED = "a toolkit version like 1.20.1 (or a Debian version like 1.20.1-1)"


class RepoError(ValueError):
    """The repository's Packages index lacks what the spec asks for, or says something odd."""


def valid_version(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(_VERSION, value) is not None


def parse_packages(text: str) -> list[dict[str, str]]:
    """A Debian Packages index (deb822 stanzas, blank-line separated) -> one dict per stanza;
    continuation lines (a leading space) belong to the field before them and are dropped."""
    out: list[dict[str, str]] = []
    for block in re.split(r"\n\s*\n", text):
        stanza: dict[str, str] = {}
        for line in block.splitlines():
            if not line or line[0] in " \t" or ":" not in line:
                continue
            key, _, value = line.partition(":")
            stanza[key.strip()] = value.strip()
        if stanza.get("Package"):
            out.append(stanza)
    return out


def _upstream(version: str) -> str:
    """'1.20.1-1' -> '1.20.1' (Debian policy: the revision follows the last '-')."""
    return version.rsplit("-", 1)[0] if "-" in version else version


def pick(stanzas: list[dict[str, str]], version: str, arch: str, where: str) -> list[dict]:
    """The toolkit's packages at ``version`` for ``arch``: [{package, version, filename, sha256,
    size}] in PACKAGES order. ``version`` is the upstream version (1.20.1: its one Debian
    revision) or a full Debian version (1.20.1-1). ``where``: the index's URL, for errors."""
    out = []
    for name in PACKAGES:
        found = [
            s
            for s in stanzas
            if s.get("Package") == name
            and s.get("Architecture") in (arch, "all")
            and version in (s.get("Version"), _upstream(s.get("Version", "")))
        ]
        versions = sorted({s["Version"] for s in found})
        if not found:
            have = sorted(
                {s.get("Version", "?") for s in stanzas if s.get("Package") == name},
                key=lambda v: [
                    (0, int(x), "") if x.isdigit() else (1, 0, x) for x in re.split(r"[.~-]", v)
                ],
            )
            raise RepoError(
                f"{where}: no {name} {version} for {arch} (the index has "
                + (", ".join(have[-5:]) if have else "no such package")
                + ")"
            )
        if len(versions) > 1:
            raise RepoError(
                f"{where}: {name} {version} has several Debian revisions ({', '.join(versions)})"
                ": pin one, e.g. toolkit_version = " + repr(versions[-1])
            )
        s = found[0]
        filename = s.get("Filename", "").removeprefix("./")
        base = filename.rsplit("/", 1)[-1]
        deb = rf"{re.escape(name)}_[0-9][A-Za-z0-9.+~-]{{0,63}}_[a-z0-9]+\.deb"
        if not re.fullmatch(deb, base):
            raise RepoError(f"{where}: {name}'s Filename {s.get('Filename')!r} is not a .deb")
        if not re.fullmatch(r"[0-9a-f]{64}", s.get("SHA256", "")):
            raise RepoError(f"{where}: {name} {s['Version']} has no SHA256 in the index")
        if not re.fullmatch(
            r"[A-Za-z0-9_][A-Za-z0-9._+~-]*(/[A-Za-z0-9_][A-Za-z0-9._+~-]*)*", filename
        ):
            raise RepoError(f"{where}: {name}'s Filename {s.get('Filename')!r} leaves the repo")
        out.append(
            {
                "package": name,
                "version": s["Version"],
                "filename": filename,
                "sha256": s["SHA256"],
                "size": int(s["Size"]) if s.get("Size", "").isdigit() else None,
            }
        )
    return out


def index_url(source: str, arch: str) -> str:
    return f"{source.rstrip('/')}/stable/deb/{arch}/Packages"


# The toolkit packages airnode installed (absent before it did), one name a line: teardown
# purges these and no other (a toolkit the host had before airnode stays).
INSTALLED = "/var/lib/airnode/nvidia-packages"


def record_installed_command(names: list[str]) -> str:
    """Append package names to INSTALLED, each once (before dpkg runs: a cut install is still
    on the record)."""
    import shlex

    from airnode.record import append_once_command

    return f"mkdir -p {shlex.quote(INSTALLED.rsplit('/', 1)[0])} && " + append_once_command(
        INSTALLED, names
    )


def to_purge(recorded: str, installed: dict[str, str]) -> list[str]:
    """Teardown: the recorded names (INSTALLED's text) that are toolkit packages and installed
    now, in the order dpkg --purge takes them (dependents first)."""
    names = {line.strip() for line in recorded.splitlines()}
    return [p for p in reversed(PACKAGES) if p in names and p in installed]


def bundle_problems(
    requested: int,
    debs: list[str],
    images: dict[str, list[str]],
    backend: str,
    llama_server_image: str,
) -> list[str]:
    """What a bundle lacks for model_server_gpus = requested, each with what to do: the
    toolkit's packages (``debs``: the package names of its nvidia-deb artifacts), the device
    plugin's image, and for llama-server a CUDA build of llama.cpp's server image."""
    if requested <= 0:
        return []
    key = f"model_server_gpus = {requested}"
    out = []
    missing = [p for p in PACKAGES if p not in debs]
    if missing:
        out.append(
            f"{key}, but the bundle lacks the NVIDIA Container Toolkit ({', '.join(missing)}): "
            'add [nvidia] toolkit_version = "1.20.0" to the bundle spec and fetch it again'
        )
    if len(images.get("nvidia", [])) < 2:
        out.append(
            f"{key}, but the bundle lacks NVIDIA's device plugin and dcgm-exporter images: "
            "add the [nvidia] section to the bundle spec and fetch it again"
        )
    tag = llama_server_image.rsplit("/", 1)[-1].partition(":")[2]
    if backend == "llama-server" and "cuda" not in tag:
        out.append(
            f"{key} with model_server = 'llama-server', but the bundle's llama-server image "
            f"{llama_server_image!r} is not a CUDA build: pin llama.cpp's CUDA server image "
            "(ghcr.io/ggml-org/llama.cpp:server-cuda-b<build>) as [llama_server] image"
        )
    return out
