"""airnode bundle fetch against a real HTTP server on 127.0.0.1 serving upstream-shaped files."""

from __future__ import annotations

import pytest

from airnode.bundle import fetch, manifest
from airnode.bundle.fetch import Fetcher, FetchError
from tests.upstream import CTD, K0S, K0S_IMAGES, OLLAMA, sha


def fetcher():
    return Fetcher(retries=3, backoff=0.01, timeout=10, progress=False)


def test_fetch_verifies_every_artifact_and_derives_the_image_list(upstream, tmp_path):
    data = fetch.fetch(upstream.spec(), tmp_path, with_images=False, fetcher=fetcher())
    by_kind = {a["kind"]: a for a in data["artifacts"]}
    assert set(by_kind) == {
        "k0s",
        "k0s-airgap",
        "containerd",
        "containerd-unit",
        "runc",
        "ollama",
        "kube-prometheus",
    }
    assert by_kind["k0s"]["sha256"] == sha(upstream.k0s)
    assert by_kind["k0s"]["size"] == len(upstream.k0s)
    assert by_kind["k0s"]["verified_by"] == "sha256sums.txt"
    assert by_kind["ollama"]["verified_by"] == "sha256sum.txt"
    assert by_kind["kube-prometheus"]["verified_by"] == "sha256 pinned in spec"
    assert by_kind["containerd-unit"]["verified_by"].startswith("none")
    assert (tmp_path / "k0s" / f"k0s-{K0S}-amd64").read_bytes() == upstream.k0s
    imgs = data["images"]
    assert imgs["k0s"] == sorted(K0S_IMAGES)
    assert imgs["model-server"] == ["docker.io/library/debian:bookworm-slim"]
    assert (
        "quay.io/prometheus-operator/prometheus-config-reloader:v0.92.0" in imgs["kube-prometheus"]
    )
    assert "docker.io/grafana/grafana:13.0.2" in imgs["kube-prometheus"]
    assert len(imgs["kube-prometheus"]) == 11
    assert manifest.verify(tmp_path).ok
    assert not list(tmp_path.rglob("*.part"))


def test_wrong_checksum_is_refused_and_named(upstream, tmp_path):
    upstream.server.files[upstream.ollama_path] = upstream.ollama + b"tampered"
    with pytest.raises(FetchError) as e:
        fetch.fetch(upstream.spec(), tmp_path, with_images=False, fetcher=fetcher())
    msg = str(e.value)
    assert f"ollama/{OLLAMA}/ollama-linux-amd64.tar.zst" in msg and "does not match" in msg
    assert "sha256sum.txt" in msg
    assert not (tmp_path / f"ollama/{OLLAMA}/ollama-linux-amd64.tar.zst").exists()
    assert (tmp_path / f"ollama/{OLLAMA}/ollama-linux-amd64.tar.zst.corrupt").exists()
    assert not (tmp_path / "bundle.json").exists()


def test_cut_connection_is_resumed_with_range(upstream, tmp_path):
    cut = 1024 * 1024 + 5
    upstream.server.cut_after[upstream.k0s_path] = [cut, 100]  # two cuts, then a clean tail
    data = fetch.fetch(upstream.spec(), tmp_path, with_images=False, fetcher=fetcher())
    ranges = upstream.server.gets(upstream.k0s_path)
    assert len(ranges) == 3 and ranges[0] is None
    # each retry asks only for what is missing: from what was written before the cut
    starts = [int(r.removeprefix("bytes=").rstrip("-")) for r in ranges[1:]]
    assert cut - 65536 < starts[0] <= cut
    assert starts[0] <= starts[1] <= starts[0] + 100
    k0s = next(a for a in data["artifacts"] if a["kind"] == "k0s")
    assert k0s["sha256"] == sha(upstream.k0s)


def test_transient_errors_are_retried(upstream, tmp_path):
    upstream.server.fail_first[upstream.ollama_path] = 2
    fetch.fetch(upstream.spec(), tmp_path, with_images=False, fetcher=fetcher())
    assert upstream.server.gets(upstream.ollama_path) == [None, None, None]


def test_persistent_failure_gives_up_with_the_artifact_named(upstream, tmp_path):
    upstream.server.fail_first[upstream.ollama_path] = 99
    with pytest.raises(FetchError, match=r"ollama-linux-amd64.tar.zst: .*gave up after 3 retries"):
        fetch.fetch(upstream.spec(), tmp_path, with_images=False, fetcher=fetcher())


def test_missing_upstream_file_is_not_retried(upstream, tmp_path):
    del upstream.server.files[upstream.k0s_path]
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch.fetch(upstream.spec(), tmp_path, with_images=False, fetcher=fetcher())
    assert len(upstream.server.gets(upstream.k0s_path)) == 1


def test_refetch_downloads_nothing(upstream, tmp_path):
    first = fetch.fetch(upstream.spec(), tmp_path, with_images=False, fetcher=fetcher())
    upstream.server.requests.clear()
    second = fetch.fetch(upstream.spec(), tmp_path, with_images=False, fetcher=fetcher())
    assert second == first
    # only the small checksum files are read again
    assert all(p.endswith((".txt", ".sha256sum")) for p, _ in upstream.server.requests)


def test_partial_file_from_an_interrupted_fetch_is_resumed(upstream, tmp_path):
    part = tmp_path / "k0s" / f"k0s-{K0S}-amd64.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(upstream.k0s[:2000])
    # what the first attempt recorded: the validator of the response the part began with
    part.with_name(part.name.replace(".part", ".part-validator")).write_text(
        upstream.server.etag(upstream.k0s_path)
    )
    fetch.fetch(upstream.spec(), tmp_path, with_images=False, fetcher=fetcher())
    assert upstream.server.gets(upstream.k0s_path) == ["bytes=2000-"]
    assert upstream.server.if_range(upstream.k0s_path) == [upstream.server.etag(upstream.k0s_path)]


def test_a_partial_file_without_a_validator_is_started_over(upstream, tmp_path):
    part = tmp_path / "k0s" / f"k0s-{K0S}-amd64.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 2000)  # whose bytes? nothing says: not resumed
    data = fetch.fetch(upstream.spec(), tmp_path, with_images=False, fetcher=fetcher())
    assert upstream.server.gets(upstream.k0s_path) == [None]
    assert next(a for a in data["artifacts"] if a["kind"] == "k0s")["sha256"] == sha(upstream.k0s)


def test_a_server_that_would_gzip_still_gives_the_exact_bytes(upstream, tmp_path):
    # raw.githubusercontent.com compresses text for clients that accept gzip
    unit = f"/containerd/containerd/v{CTD}/containerd.service"
    upstream.server.gzip_paths.add(unit)
    fetch.fetch(upstream.spec(), tmp_path, with_images=False, fetcher=fetcher())
    assert (tmp_path / "containerd" / "containerd.service").read_bytes() == upstream.server.files[
        unit
    ]


def interrupted(server, tmp_path, path, body):
    """A download of path cut after 300,000 bytes, the file then changed upstream to body."""
    server.cut_after[path] = [300_000]
    dest = tmp_path / path.strip("/")
    with pytest.raises(FetchError):
        Fetcher(retries=0, backoff=0.01, timeout=10, progress=False).download(
            server.url + path, dest, dest.name
        )
    assert 0 < dest.with_name(dest.name + ".part").stat().st_size <= 300_000
    server.files[path] = body
    return dest


@pytest.mark.parametrize("server_kind", ["honours If-Range", "ignores If-Range"])
def test_a_file_that_changed_upstream_between_attempts_is_never_spliced(
    upstream, tmp_path, server_kind
):
    server = upstream.server
    server.ignore_if_range = server_kind == "ignores If-Range"
    server.files["/f"] = b"A" * 500_000
    dest = interrupted(server, tmp_path, "/f", b"B" * 500_000)
    fetcher().download(server.url + "/f", dest, "f.bin")
    assert dest.read_bytes() == b"B" * 500_000  # the new file whole, never A's then B's
    old = server.if_range("/f")[1]
    assert old and old != server.etag("/f")  # the resume named the file it began with


def test_a_resume_answered_from_another_offset_starts_over(upstream, tmp_path):
    server = upstream.server
    server.files["/g"] = bytes(range(256)) * 2000
    dest = interrupted(server, tmp_path, "/g", server.files["/g"])
    server.content_range["/g"] = "bytes 0-511999/512000"  # not where our part ends
    fetcher().download(server.url + "/g", dest, "g.bin")
    assert dest.read_bytes() == server.files["/g"]
    assert server.gets("/g")[-1] is None  # the last attempt took it from zero


def test_a_server_that_drips_bytes_hits_the_files_deadline(upstream, tmp_path):
    server = upstream.server
    server.files["/slow"] = b"x" * 200
    server.drip["/slow"] = 0.05  # a byte every 50 ms: each read is quick, the file never ends
    slow = Fetcher(retries=0, timeout=10, progress=False, deadline=1)
    with pytest.raises(FetchError, match=r"slow.bin: .*not done after 1 s"):
        slow.download(server.url + "/slow", tmp_path / "slow.bin", "slow.bin")


def test_https_to_http_redirects_are_refused():
    import requests

    from airnode.bundle.fetch import _Session

    resp = requests.Response()
    resp.status_code, resp.url = 302, "https://github.com/x/releases/download/v1/a"
    resp.headers["Location"] = "http://mirror.example/a"
    with pytest.raises(FetchError, match="https to plain http"):
        _Session().get_redirect_target(resp)
    resp.headers["Location"] = "https://objects.githubusercontent.com/a"
    assert _Session().get_redirect_target(resp) == "https://objects.githubusercontent.com/a"


def test_a_redirect_on_plain_http_is_followed(upstream, tmp_path):
    server = upstream.server
    server.files["/real"] = b"payload"
    server.redirect["/moved"] = server.url + "/real"
    fetcher().download(server.url + "/moved", tmp_path / "r.bin", "r.bin")
    assert (tmp_path / "r.bin").read_bytes() == b"payload"
