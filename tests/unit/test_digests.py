"""A re-run reads no artifact bytes: digests remembered by file status, on this machine (a cache
like git's index) and on the node (a record written by files/bundle-record.sh after sha256sum
-c passed, compared with one `find -printf` read). Real files, real GNU find and sh."""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from airnode.bundle import digests
from airnode.paths import FILES

STAT = digests.STAT_FORMAT


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def files(tmp_path):
    root = tmp_path / "bundle"
    (root / "models").mkdir(parents=True)
    (root / "models" / "a.gguf").write_bytes(b"a" * 1000)
    (root / "k0s").mkdir()
    (root / "k0s" / "k0s").write_bytes(b"k" * 500)
    return root


def test_a_file_is_read_once_while_its_status_is_unchanged(files, tmp_path):
    store = tmp_path / "cache" / "d.json"
    c = digests.DigestCache(store)
    path = files / "models" / "a.gguf"
    assert c.sha256(path) == sha(b"a" * 1000) and c.hashed == 1000
    c.save()
    again = digests.DigestCache(store)
    assert again.sha256(path) == sha(b"a" * 1000) and again.hashed == 0


def test_a_changed_file_is_read_again_even_with_its_size_and_mtime_put_back(files, tmp_path):
    store = tmp_path / "d.json"
    path = files / "models" / "a.gguf"
    c = digests.DigestCache(store)
    c.sha256(path)
    c.save()
    st = path.stat()
    time.sleep(0.01)
    path.write_bytes(b"b" * 1000)  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back: ctime moves on
    again = digests.DigestCache(store)
    assert again.sha256(path) == sha(b"b" * 1000) and again.hashed == 1000


def test_a_file_replaced_by_another_is_read_again(files, tmp_path):
    store = tmp_path / "d.json"
    path = files / "k0s" / "k0s"
    c = digests.DigestCache(store)
    c.sha256(path)
    c.save()
    other = files / "k0s" / "other"
    other.write_bytes(b"x" * 500)
    os.replace(other, path)  # another inode
    again = digests.DigestCache(store)
    assert again.sha256(path) == sha(b"x" * 500) and again.hashed == 500


def test_a_corrupt_or_foreign_cache_is_ignored(files, tmp_path):
    store = tmp_path / "d.json"
    for junk in ("not json", "[1, 2]", '{"x": "y"}'):
        store.write_text(junk)
        c = digests.DigestCache(store)
        assert c.sha256(files / "k0s" / "k0s") == sha(b"k" * 500)


def test_each_bundle_directory_has_its_own_cache(tmp_path):
    a = digests.cache_for(tmp_path / "one", tmp_path / "cache")
    b = digests.cache_for(tmp_path / "two", tmp_path / "cache")
    assert a.store != b.store and a.store.parent == tmp_path / "cache" / "digests"


def node_read(root: Path) -> dict[str, str]:
    out = subprocess.run(
        f"cd {shlex.quote(str(root))} && find . -type f -printf {shlex.quote(STAT)}",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return digests.parse_stats(out)


def record(root: Path, rec: Path, artifacts: list[dict]) -> subprocess.CompletedProcess:
    script = (FILES / "bundle-record.sh").read_text()
    return subprocess.run(
        [
            "sh",
            "-c",
            script,
            "bundle-record.sh",
            str(rec),
            str(root),
            *(f"{a['file']}={a['sha256']}" for a in artifacts),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def arts(root: Path) -> list[dict]:
    return [
        {"file": "models/a.gguf", "sha256": sha(b"a" * 1000), "size": 1000},
        {"file": "k0s/k0s", "sha256": sha(b"k" * 500), "size": 500},
    ]


def test_on_the_node_nothing_is_hashed_once_the_record_matches(files, tmp_path):
    rec = tmp_path / "state" / "bundle-verified"
    a = arts(files)
    # first run: present but never checked -> hashed there; absent -> uploaded
    first = digests.node_plan(a, node_read(files), {}, deep=False)
    assert first.rehash == a and first.upload == [] and first.ok == []
    assert record(files, rec, a).returncode == 0
    seen = digests.parse_record(rec.read_text())
    assert set(seen) == {"models/a.gguf", "k0s/k0s"}
    # the next run: every status as recorded -> nothing read, nothing sent
    again = digests.node_plan(a, node_read(files), seen, deep=False)
    assert again.ok == a and again.rehash == [] and again.upload == []
    assert not again.stale_record
    # deep: every present file hashed again; the record, still right, is not written again
    deep = digests.node_plan(a, node_read(files), seen, deep=True)
    assert deep.rehash == a and not deep.stale_record
    assert first.stale_record


def test_on_the_node_a_touched_file_is_hashed_and_a_new_version_uploaded(files, tmp_path):
    rec = tmp_path / "bundle-verified"
    a = arts(files)
    record(files, rec, a)
    seen = digests.parse_record(rec.read_text())
    time.sleep(0.01)
    (files / "k0s" / "k0s").write_bytes(b"z" * 500)  # same size, new status
    plan = digests.node_plan(a, node_read(files), seen, deep=False)
    assert [x["file"] for x in plan.rehash] == ["k0s/k0s"] and plan.ok == a[:1]
    (files / "k0s" / "k0s").write_bytes(b"z" * 7)  # another size: no need to read it
    plan = digests.node_plan(a, node_read(files), seen, deep=False)
    assert [x["file"] for x in plan.upload] == ["k0s/k0s"] and plan.rehash == []
    # a new bundle version of a file recorded as it is: uploaded
    newer = [a[0], {**a[1], "sha256": sha(b"new")}]
    record(files, rec, [a[0], {**a[1], "sha256": sha(b"z" * 7)}])
    seen = digests.parse_record(rec.read_text())
    plan = digests.node_plan(newer, node_read(files), seen, deep=False)
    assert [x["file"] for x in plan.upload] == ["k0s/k0s"]
    (files / "models" / "a.gguf").unlink()
    plan = digests.node_plan(a, node_read(files), seen, deep=False)
    assert a[0] in plan.upload


def test_the_record_script_refuses_a_missing_file_and_leaves_the_old_record(files, tmp_path):
    rec = tmp_path / "bundle-verified"
    record(files, rec, arts(files))
    before = rec.read_text()
    r = record(files, rec, [*arts(files), {"file": "gone", "sha256": "0" * 64}])
    assert r.returncode == 1 and "gone is not a regular file" in r.stderr
    assert rec.read_text() == before and not Path(str(rec) + ".tmp").exists()


def test_a_record_line_of_another_shape_is_ignored():
    assert digests.parse_record("v2\ta\t1\t2\t3\t4\tsha\njunk\n") == {}
