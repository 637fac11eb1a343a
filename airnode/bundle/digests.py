"""Digests remembered by file status, so that a re-run with an unchanged bundle reads no
artifact bytes. Pure: imports nothing from pyinfra.

On this machine, like git's index: a file's sha256 is kept with its size, mtime, ctime, inode
and device; while all five are the same the file is not read again. ctime cannot be set from
user space (``touch -r`` sets mtime, not ctime), and a file copied, replaced, rewritten or
moved to another disk gets a new ctime, inode or device. The blind spot: bytes that change
under an unchanged status (bit rot, a raw write to the block device); ``airnode bundle verify``
and the ``bundle_deep_check`` setting hash every byte.

On the node the same idea, with ``find -printf`` (one command for the whole directory) and a
record written after ``sha256sum -c`` passed there: see ``node_plan``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from airnode.bundle.manifest import sha256_file
from airnode.paths import write_json_atomically


def status(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


class DigestCache:
    """sha256 of the files of one directory, remembered by their status in ``store`` (a JSON
    file under airnode's cache, never inside the bundle: that may be read-only media)."""

    def __init__(self, store: Path | None):
        self.store = store
        self.entries: dict[str, list] = {}
        self.hashed = 0  # bytes read by this instance
        if store is not None:
            try:
                loaded = json.loads(store.read_text())
                if isinstance(loaded, dict):
                    self.entries = loaded
            except (OSError, ValueError):
                self.entries = {}

    def sha256(self, path: Path) -> str:
        key = str(path.resolve())
        now = status(path.stat())
        known = self.entries.get(key)
        if isinstance(known, list) and len(known) == 2 and known[0] == now:
            return str(known[1])
        digest = sha256_file(path)
        self.hashed += now[0]
        # the status after reading: a file written while it was read is hashed again next time
        self.entries[key] = [status(path.stat()), digest]
        return digest

    def save(self) -> None:
        if self.store is None:
            return
        write_json_atomically(self.store, self.entries)


def cache_for(root: Path, cache_dir: Path) -> DigestCache:
    """The digest cache of the bundle directory ``root``."""
    name = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:32]
    return DigestCache(cache_dir / "digests" / f"{name}.json")


# -- on the node ----------------------------------------------------------------------------

STAT_FORMAT = r"%P\t%s\t%T@\t%C@\t%i\n"  # path, size, mtime, ctime, inode (GNU find)


@dataclass
class NodePlan:
    ok: list[dict] = field(default_factory=list)  # recorded and unchanged: nothing to do
    rehash: list[dict] = field(default_factory=list)  # there, but not as recorded: hash there
    upload: list[dict] = field(default_factory=list)  # absent, or another version
    stale_record: bool = False  # the record is not what the files are now: write it again


def parse_stats(text: str) -> dict[str, str]:
    """{relative path: its status line} from ``find -printf STAT_FORMAT``."""
    out = {}
    for line in text.splitlines():
        path, sep, rest = line.partition("\t")
        if sep:
            out[path] = rest
    return out


def parse_record(text: str) -> dict[str, tuple[str, str]]:
    """{relative path: (status line, sha256)} from the record ``record_command`` writes."""
    out = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 7 and parts[0] == "v1":
            out[parts[1]] = ("\t".join(parts[2:6]), parts[6])
    return out


def node_plan(artifacts: list[dict], stats: dict[str, str], record: dict, deep: bool) -> NodePlan:
    """What to do with each artifact on the node: a file whose status is the one recorded
    after its last check there, with the manifest's sha256, is taken as it is; one present
    with another status is hashed on the node; one absent or recorded with another sha256 is
    uploaded. ``deep``: every present file is hashed."""
    plan = NodePlan()
    for a in artifacts:
        now = stats.get(a["file"])
        if now is None:
            plan.upload.append(a)
            plan.stale_record = True
            continue
        seen = record.get(a["file"])
        if seen != (now, a["sha256"]):
            plan.stale_record = True
        if not deep and seen is not None and seen[0] == now:
            (plan.ok if seen[1] == a["sha256"] else plan.upload).append(a)
        elif now.split("\t", 1)[0] != str(a["size"]):
            plan.upload.append(a)  # the wrong size: no need to read it
        else:
            plan.rehash.append(a)
    return plan
