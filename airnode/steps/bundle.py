"""The offline bundle: verified on this machine before any change, then shipped to the node
(only files whose sha256 differs there) and verified again on the node."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import deploy
from pyinfra.operations import server

from airnode import sizing
from airnode.bundle import digests, manifest, ship, trust, unpack
from airnode.bundle.spec import parse_checksums
from airnode.config import Rule, Setting, boolean, optional_path, owned_dir, pattern
from airnode.paths import CACHE, ROOT
from airnode.record import STATE_DIR
from airnode.steps._common import (
    AirnodeError,
    declare,
    file_state_read,
    owned_dirs,
    profile,
    put_local,
    remote,
    script,
    settings,
    stream_upload,
)

DEFAULTS = declare(
    "bundle",
    {
        "bundle_dir": Setting(
            "",
            optional_path(),
            (
                "the bundle made by `airnode bundle fetch`, on the machine running pyinfra "
                "(relative paths from the project root); empty = no bundle"
            ),
        ),
        "bundle_remote_dir": Setting(
            "/var/lib/airnode/bundle",
            owned_dir("the bundle on the node"),
            (
                "where the bundle lives on the node. If it existed before airnode (a shared "
                "data directory), teardown removes only the files airnode shipped into it"
            ),
        ),
        "bundle_sha256": Setting(
            "",
            pattern(
                r"|[0-9a-f]{64}",
                "empty or the 64 lowercase hex digits of "
                "bundle.json's sha256 (`airnode bundle fetch` prints it)",
            ),
            (
                "the sha256 of `bundle.json` that `airnode bundle fetch` printed: with a "
                "bundle, this or `bundle_allowed_signers` is required"
            ),
        ),
        "bundle_allowed_signers": Setting(
            "",
            Rule(
                "empty or the path of an OpenSSH allowed-signers file",
                lambda v: isinstance(v, str) and "\n" not in v,
            ),
            (
                "an OpenSSH allowed-signers file: bundles signed by a key listed there "
                "(`airnode bundle sign`) are trusted without a pin"
            ),
        ),
        "bundle_deep_check": Setting(
            False,
            boolean(),
            (
                "hash every byte of the bundle on both sides, every run (else only files "
                "whose size, mtime, ctime or inode changed since their last check: see the "
                "air-gapped workflow)"
            ),
        ),
    },
)
# What was checked on the node: each bundle file's status when sha256sum -c last passed there.
RECORD = f"{STATE_DIR}/bundle-verified"
# Artifacts the bundle directory never holds on the node (see Bundle.shipped).
STORED_ELSEWHERE = ("model",)


@dataclass(frozen=True)
class Bundle:
    root: Path  # on the machine running pyinfra
    data: dict  # its verified manifest
    remote: str  # where it lives on the node

    def artifacts(self, *kinds: str) -> list[dict]:
        return [a for a in self.data["artifacts"] if a["kind"] in kinds]

    def shipped(self) -> list[dict]:
        """What goes into the bundle directory on the node: every file but the models, which
        go straight into the model store under their blob names (the models step), so that
        the node holds each model once."""
        return [a for a in self.data["artifacts"] if a["kind"] not in STORED_ELSEWHERE]


def current(missing: str) -> Bundle | None:
    """The configured bundle, verified (once per run); None, with a noop saying ``missing``,
    when bundle_dir is empty. Steps that install from the bundle start with this."""
    s = settings(DEFAULTS)
    if not s["bundle_dir"]:
        host.noop(f"no bundle_dir set: {missing}")
        return None
    root = (ROOT / s["bundle_dir"]).resolve()
    signers = str(ROOT / s["bundle_allowed_signers"]) if s["bundle_allowed_signers"] else ""
    return Bundle(
        root,
        local_bundle(root, s["bundle_dir"], s["bundle_sha256"], signers, s["bundle_deep_check"]),
        s["bundle_remote_dir"],
    )


@cache
def local_bundle(
    root: Path,
    bundle_dir: str,
    pinned_sha256: str = "",
    allowed_signers: str = "",
    deep: bool = False,
) -> dict:
    """The verified local manifest: every field valid, the manifest itself pinned or signed,
    then every file's size and sha256; raises AirnodeError naming what is wrong. Once per run,
    however many steps and hosts use it; a file whose status is the one it had when last
    hashed here is not read again (airnode/bundle/digests.py) unless ``deep``."""
    try:
        data = manifest.load(root)
    except manifest.ManifestError as e:
        raise AirnodeError(f"bundle_dir = {bundle_dir!r}: {e}") from None
    try:
        how = trust.check(root, pinned_sha256, allowed_signers)
    except trust.TrustError as e:
        raise AirnodeError(f"bundle_dir = {bundle_dir!r}: {e}; nothing was changed") from None
    logger.info(f"bundle {root}: trusted ({how})")
    cache = digests.DigestCache(None) if deep else digests.cache_for(root, CACHE)
    report = manifest.verify(root, data, check_extra=False, digest=cache.sha256)
    cache.save()
    if cache.hashed:
        logger.info(f"bundle {root}: {manifest.human(cache.hashed)} hashed")
    if not report.ok:
        raise AirnodeError(
            f"bundle {root} is not intact; nothing was changed:\n  - "
            + "\n  - ".join(report.lines())
            + "\n  (re-run `airnode bundle fetch` on the connected machine)"
        )
    return data


@cache
def _tarball_checked(path: Path, sha256: str) -> unpack.Checked:
    return unpack.check_tarball(path)


def safe_to_unpack(b: Bundle, tarball: dict) -> int:
    """Every member of a release tarball checked on this machine before the node unpacks it as
    root (airnode/bundle/unpack.py); once per run and tarball, and only when it is about to be
    unpacked, never on a no-op. The bytes unpacking it writes (preflight counts them)."""
    try:
        return _tarball_checked(b.root / tarball["file"], tarball["sha256"]).size
    except unpack.UnsafeTarball as e:
        raise AirnodeError(f"bundle {b.root}: {e}; nothing was changed") from None


def stats_command(path: str) -> str:
    """The status of every file of the bundle directory on the node (no byte read)."""
    return (
        f"cd {shlex.quote(path)} 2>/dev/null && "
        f"find . -type f -printf {shlex.quote(digests.STAT_FORMAT)} || true"
    )


RECORD_READ = f"cat {RECORD} 2>/dev/null || true"


def hash_command(path: str, artifacts: list[dict]) -> str:
    files = " ".join(shlex.quote(a["file"]) for a in artifacts)
    return f"cd {shlex.quote(path)} && sha256sum -- {files} 2>/dev/null || true"


def node_plan(b: Bundle) -> digests.NodePlan:
    """Which bundle files the node has as checked, which it lacks: from their status and the
    record of the last check there; only files whose status changed are hashed there (one
    read, none on a no-op), all of them with bundle_deep_check."""
    deep = settings(DEFAULTS)["bundle_deep_check"]
    plan = digests.node_plan(
        b.shipped(),
        digests.parse_stats(remote(stats_command(b.remote))),
        digests.parse_record(remote(RECORD_READ)),
        deep,
    )
    if plan.rehash:
        sums = parse_checksums(remote(hash_command(b.remote, plan.rehash)))
        for a in plan.rehash:
            if sums.get(a["file"]) != a["sha256"]:
                plan.upload.append(a)
    return plan


def partial_bytes(stats: dict[str, str], name: str, size: int) -> int:
    """What a cut upload left of a file (its .partial) that the next upload resumes from: none
    when there is none or it is longer than the file (airnode/transfer.py starts over)."""
    from airnode.transfer import start_offset

    first = stats.get(name + ship.PARTIAL, "").split("\t")[0]
    return start_offset(int(first) if first.isdigit() else None, size)


def disk_needs(b: Bundle) -> list[sizing.Need]:
    """What this run writes into the bundle directory: the files to upload (models go to the
    store), less what cut uploads left of them."""
    stats = digests.parse_stats(remote(stats_command(b.remote)))
    todo = node_plan(b).upload
    n = sum(a["size"] - partial_bytes(stats, a["file"], a["size"]) for a in todo)
    return [sizing.Need(b.remote, n, "bundle files")]


def record_command(remote_dir: str, artifacts: list[dict]) -> str:
    return script(
        "bundle-record.sh", RECORD, remote_dir, *(f"{a['file']}={a['sha256']}" for a in artifacts)
    )


def reads(b: Bundle | None) -> list[str]:
    if b is None:
        return []
    return [
        stats_command(b.remote),
        RECORD_READ,
        file_state_read(f"{b.remote}/{manifest.MANIFEST}"),
    ]


@deploy("Offline bundle", data_defaults=DEFAULTS)
def bundle():
    b = current("skipping the offline bundle")
    if b is None:
        return
    root, data, remote_dir = b.root, b.data, b.remote
    problem = ship.arch_problem(data["arch"], profile().arch)
    if problem:
        raise AirnodeError(f"{host.name}: {problem}; nothing was changed")

    plan = node_plan(b)
    todo = plan.upload
    if todo:
        # the directory and the sub-directories files go into, recorded when airnode makes
        # them: teardown removes those, and of a directory that was there before only the
        # files shipped into it
        subdirs = sorted(
            {f"{remote_dir}/{a['file'].rsplit('/', 1)[0]}" for a in todo if "/" in a["file"]}
        )
        owned_dirs(
            [remote_dir, *subdirs],
            "Bundle directory",
            "755",
            files_to_come=[
                f"{remote_dir}/{f}" for a in todo for f in (a["file"], a["file"] + ship.PARTIAL)
            ]
            + [f"{remote_dir}/{manifest.MANIFEST}"],
        )
    for a in todo:
        # streamed to <file>.partial (resumed if a cut run left part of it), checked below,
        # then renamed: a file under its name on the node is always whole
        stream_upload(
            src=str(root / a["file"]),
            dest=f"{remote_dir}/{a['file']}{ship.PARTIAL}",
            label=a["file"],
            name=f"Upload {a['file']} ({manifest.human(a['size'])})",
        )
    if todo or plan.stale_record:
        # the record of what passed, written only after sha256sum -c did: the next run
        # trusts a file by its status only if it is still the one recorded here
        server.shell(
            name=f"Verify {len(todo)} uploaded file(s) on the node (sha256) and record them",
            commands=[
                *([ship.place_command(remote_dir, todo)] if todo else []),
                record_command(remote_dir, b.shipped()),
            ],
        )
    # The manifest goes last: on the node it means "everything listed here arrived intact".
    put_local(
        root / manifest.MANIFEST,
        f"{remote_dir}/{manifest.MANIFEST}",
        "Bundle manifest",
        manifest.sha256_file(root / manifest.MANIFEST),
    )
