"""`airnode bundle fetch`: download every artifact of a spec into a bundle directory.

HTTP with requests: a progress bar, resume of partial downloads (HTTP Range), retries of
transient failures, and a sha256 check of each file against the upstream checksum file (or the
sha256 pinned in the spec). Images with skopeo, as OCI archives. Runs on a connected machine;
nothing here imports pyinfra.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urljoin

import requests
from tqdm import tqdm

from airnode import nvidia
from airnode.bundle import images as imagelib
from airnode.bundle import manifest
from airnode.bundle.spec import Artifact, Spec, parse_checksums

TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
CHUNK = 1 << 16


class FetchError(RuntimeError):
    pass


class _Transient(Exception):
    pass


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class _Session(requests.Session):
    def get_redirect_target(self, resp):
        """Redirects are followed, but never from https to http (a downgrade anyone on the
        path could have asked for)."""
        target = super().get_redirect_target(resp)
        if (
            target
            and resp.url.startswith("https://")
            and urljoin(resp.url, target).lower().startswith("http://")
        ):
            raise FetchError(
                f"{resp.url} redirects to {urljoin(resp.url, target)}: refused "
                "(https to plain http)"
            )
        return target


def validator_of(headers) -> str:
    """What tells one representation from another: a strong ETag, else Last-Modified."""
    etag = headers.get("ETag", "")
    return etag if etag and not etag.startswith("W/") else headers.get("Last-Modified", "")


def content_range_start(value: str | None) -> tuple[int, int | None] | None:
    """'bytes 100-199/200' -> (100, 200); '*' total -> (100, None); anything else -> None."""
    m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", (value or "").strip())
    if not m:
        return None
    return int(m.group(1)), (None if m.group(3) == "*" else int(m.group(3)))


class Fetcher:
    def __init__(
        self,
        retries: int = 5,
        backoff: float = 1.0,
        timeout: float = 30,
        progress: bool | None = None,
        insecure_registries: tuple[str, ...] = (),
        deadline: float = 6 * 3600,
    ):
        # Registries reached over plain HTTP / without TLS verification (a local mirror).
        self.insecure_registries = tuple(insecure_registries)
        # the most one file's download may take, all attempts together: `timeout` bounds each
        # wait for a byte, so a server sending one every 29 s would otherwise never time out
        self.deadline = deadline
        self.session = _Session()
        self.session.headers["User-Agent"] = "airnode-bundle-fetch"
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self.progress = sys.stderr.isatty() if progress is None else progress
        self._checksums: dict[str, dict[str, str]] = {}

    def _retrying(self, what: str, attempt_fn):
        attempt = 0
        while True:
            try:
                return attempt_fn()
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
                _Transient,
            ) as e:
                attempt += 1
                if attempt > self.retries:
                    raise FetchError(
                        f"{what}: {e} (gave up after {self.retries} retries)"
                    ) from None
                delay = self.backoff * 2 ** (attempt - 1)
                log(
                    f"  {what}: {e.__class__.__name__}: {e}; retry {attempt}/{self.retries} "
                    f"in {delay:.1f}s"
                )
                time.sleep(delay)

    def text(self, url: str) -> str:
        def attempt():
            r = self.session.get(url, timeout=self.timeout)
            if r.status_code in TRANSIENT_STATUS:
                raise _Transient(f"HTTP {r.status_code}")
            if r.status_code != 200:
                raise FetchError(f"{url}: HTTP {r.status_code}")
            return r.text

        return self._retrying(url, attempt)

    def download(self, url: str, dest: Path, label: str) -> None:
        """Download url to dest, resuming dest.part across attempts and runs - but only the
        same representation: the resumed request carries If-Range with the validator (strong
        ETag, else Last-Modified) of the response the part began with, and the 206 answer must
        start exactly where the part ends (Content-Range); otherwise it starts over from zero,
        so a file that changed upstream between two attempts is never spliced."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        validator_file = dest.with_name(dest.name + ".part-validator")
        deadline = time.monotonic() + self.deadline

        def attempt():
            have = part.stat().st_size if part.exists() else 0
            validator = validator_file.read_text().strip() if validator_file.exists() else ""
            if have and not validator:
                have = 0  # nothing to tell the same file by: start over
            # identity: a gzip Content-Encoding would make the body, the Content-Length and our
            # Range offsets disagree (requests decodes it on the fly)
            headers = {"Accept-Encoding": "identity"}
            if have:
                headers["Range"] = f"bytes={have}-"
                headers["If-Range"] = validator
            with self.session.get(url, headers=headers, stream=True, timeout=self.timeout) as r:
                if r.status_code == 416 and have:
                    part.unlink()  # our partial file is longer than the resource: start over
                    raise _Transient("HTTP 416 on resume")
                if r.status_code in TRANSIENT_STATUS:
                    raise _Transient(f"HTTP {r.status_code}")
                if r.status_code not in (200, 206):
                    raise FetchError(f"{label}: {url}: HTTP {r.status_code}")
                if r.status_code == 206:
                    got = content_range_start(r.headers.get("Content-Range"))
                    now = validator_of(r.headers)
                    if not have or got is None or got[0] != have or (now and now != validator):
                        part.unlink(missing_ok=True)
                        validator_file.unlink(missing_ok=True)
                        raise _Transient(
                            f"resume answered Content-Range "
                            f"{r.headers.get('Content-Range')!r} for bytes={have}-:"
                            " starting over"
                        )
                else:
                    have = 0  # a 200: the whole (maybe changed) file, from the start
                if not have:
                    validator_file.write_text(validator_of(r.headers))
                length = int(r.headers.get("Content-Length", 0)) or None
                total = (have + length) if length else None
                with (
                    open(part, "ab" if have else "wb") as f,
                    tqdm(
                        total=total,
                        initial=have,
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1024,
                        desc=label,
                        disable=not self.progress,
                        leave=False,
                    ) as bar,
                ):
                    for chunk in r.iter_content(CHUNK):
                        f.write(chunk)
                        bar.update(len(chunk))
                        if time.monotonic() > deadline:
                            raise FetchError(
                                f"{label}: {url}: not done after {self.deadline:.0f}"
                                f" s ({part.stat().st_size} bytes so far, kept "
                                "to resume)"
                            )
                if total is not None and part.stat().st_size != total:
                    raise _Transient(f"short body: {part.stat().st_size} of {total} bytes")
            part.rename(dest)
            validator_file.unlink(missing_ok=True)

        self._retrying(label, attempt)

    def expected_sha256(self, a: Artifact) -> tuple[str | None, str]:
        if a.checksum_url:
            if a.checksum_url not in self._checksums:
                self._checksums[a.checksum_url] = parse_checksums(self.text(a.checksum_url))
            sums = self._checksums[a.checksum_url]
            if a.checksum_name not in sums:
                raise FetchError(f"{a.file}: {a.checksum_name} is not listed in {a.checksum_url}")
            return sums[a.checksum_name], a.checksum_url.rsplit("/", 1)[1]
        if a.sha256:
            return a.sha256, a.verified_by
        return None, "none: pin its sha256 in the spec"

    def fetch_artifact(self, a: Artifact, root: Path, previous: dict[str, dict]) -> dict:
        dest = root / a.file
        expected, verified_by = self.expected_sha256(a)
        prev = previous.get(a.file)
        if dest.exists():
            have = manifest.sha256_file(dest)
            if have == (expected or (prev or {}).get("sha256")):
                log(f"  ok     {a.file} (already here)")
                return manifest.entry(
                    a.kind, a.name, a.version, a.file, root, a.url, verified_by, have
                )
            dest.unlink()
        log(f"  fetch  {a.file}")
        if a.url is None:  # only images have none, and skopeo fetches those
            raise FetchError(f"{a.file}: no URL to fetch it from")
        self.download(a.url, dest, a.file)
        got = manifest.sha256_file(dest)
        if expected and got != expected:
            bad = dest.with_name(dest.name + ".corrupt")
            dest.rename(bad)
            raise FetchError(
                f"{a.file}: sha256 {got} does not match {expected} from "
                f"{verified_by}; kept as {bad.name} for inspection, not in the bundle"
            )
        if not expected:
            log(
                f"  WARNING {a.file}: no upstream checksum; recorded sha256 {got}. "
                "Pin it in the spec to verify future fetches."
            )
        return manifest.entry(a.kind, a.name, a.version, a.file, root, a.url, verified_by, got)

    def fetch_image(self, ref: str, arch: str, root: Path, previous: dict[str, dict]) -> dict:
        file = f"images/{imagelib.archive_name(ref)}"
        dest = root / file
        prev = previous.get(file)
        if dest.exists() and prev and manifest.sha256_file(dest) == prev["sha256"]:
            log(f"  ok     {file} (already here)")
            return prev
        skopeo = shutil.which("skopeo")
        if not skopeo:
            raise FetchError(
                "skopeo is needed to fetch container images and is not installed: "
                "apt-get install skopeo (Debian/Ubuntu) or dnf install skopeo"
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        tmp.unlink(missing_ok=True)
        log(f"  fetch  {file} <- docker://{ref}")

        tls = ["--src-tls-verify=false"] if ref.split("/", 1)[0] in self.insecure_registries else []

        def attempt():
            r = subprocess.run(
                [
                    skopeo,
                    "--override-os",
                    "linux",
                    "--override-arch",
                    arch,
                    "copy",
                    "--quiet",
                    *tls,
                    f"docker://{ref}",
                    f"oci-archive:{tmp}:{ref}",
                ],
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                tmp.unlink(missing_ok=True)
                raise _Transient(
                    r.stderr.strip().splitlines()[-1]
                    if r.stderr.strip()
                    else f"skopeo exited {r.returncode}"
                )

        self._retrying(ref, attempt)
        tmp.rename(dest)
        name, _, tag = ref.rpartition(":")
        return manifest.entry(
            "image", ref, tag, file, root, f"docker://{ref}", "registry digest (skopeo)"
        )


def toolkit_artifacts(spec: Spec, fetcher: Fetcher) -> list[Artifact]:
    """[nvidia]: the NVIDIA Container Toolkit's .debs at the spec's version, as NVIDIA's apt
    repository lists them (its Packages index for the spec's arch: Filename, SHA256)."""
    if not spec.nvidia:
        return []
    url = nvidia.index_url(spec.sources["nvidia_apt"], spec.arch)
    try:
        found = nvidia.pick(
            nvidia.parse_packages(fetcher.text(url)),
            spec.nvidia["toolkit_version"],
            spec.arch,
            url,
        )
    except nvidia.RepoError as e:
        raise FetchError(f"nvidia.toolkit_version: {e}") from None
    base = url.rsplit("/", 1)[0]
    return [
        Artifact(
            "nvidia-deb",
            p["package"],
            p["version"],
            f"nvidia/debs/{p['filename'].rsplit('/', 1)[-1]}",
            f"{base}/{p['filename']}",
            sha256=p["sha256"],
            verified_by="SHA256 in NVIDIA's apt Packages index",
        )
        for p in found
    ]


def derive_images(spec: Spec, root: Path, entries: list[dict]) -> dict[str, list[str]]:
    by_kind = {e["kind"]: e for e in entries}
    out = {
        "model-server": sorted(
            {imagelib.normalize(spec.model_server_image)}
            | {imagelib.normalize(i) for i in spec.extra_images}
        )
    }
    if spec.nvidia:
        # the device plugin first, dcgm-exporter second (steps read them in that order)
        out["nvidia"] = [
            imagelib.normalize(spec.nvidia[k])
            for k in ("device_plugin_image", "dcgm_exporter_image")
        ]
    if "kube-prometheus" in by_kind:
        out["kube-prometheus"] = imagelib.images_in_kube_prometheus_tarball(
            root / by_kind["kube-prometheus"]["file"]
        )
    if "k0s-airgap" in by_kind:
        try:
            out["k0s"] = imagelib.images_in_oci_archive(root / by_kind["k0s-airgap"]["file"])
        except Exception as e:  # a listing is informative, not required
            log(f"  note: could not list images in the k0s airgap bundle: {e}")
    return out


def fetch(spec: Spec, root: Path, with_images: bool = True, fetcher: Fetcher | None = None) -> dict:
    """Fetch everything the spec names into root and write the manifest. Re-runs are cheap."""
    from airnode.bundle.spec import artifacts

    root.mkdir(parents=True, exist_ok=True)
    fetcher = fetcher or Fetcher(insecure_registries=spec.insecure_registries)
    try:
        previous = {a["file"]: a for a in manifest.load(root)["artifacts"]}
    except manifest.ManifestError:
        previous = {}
    entries = []
    for a in artifacts(spec) + toolkit_artifacts(spec, fetcher):
        entries.append(fetcher.fetch_artifact(a, root, previous))
    derived = derive_images(spec, root, entries)
    if with_images:
        # k0s's own images travel in its airgap bundle; every other one as an OCI archive.
        for ref in sorted({r for group, refs in derived.items() if group != "k0s" for r in refs}):
            entries.append(fetcher.fetch_image(ref, spec.arch, root, previous))
    return manifest.write(root, spec.arch, entries, derived, spec.raw)
