"""What a no-op re-run pays to check a big bundle, before and after the digest records
(airnode/bundle/digests.py): run on this machine, with real files of the size you give.

    .venv/bin/python bench/digests.py --gib 4 --runs 3

Control side: manifest.verify reading every byte (before; still what bundle_deep_check does)
against the digest cache (after). Node side, here on the same disk: `sha256sum` over the
bundle directory (the old per-run read) against `find -printf` of every file's status and
the record (the new one). Page cache: warm after the first pass (what a re-run usually
finds); --cold drops it before each timing (needs root).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airnode.bundle import digests, manifest
from airnode.paths import FILES


def make_bundle(root: Path, gib: float) -> list[dict]:
    """A model-sized file of random bytes plus a few small ones, with their sha256."""
    (root / "models").mkdir(parents=True)
    (root / "k0s").mkdir()
    big = root / "models" / "big.gguf"
    chunk = os.urandom(1 << 20)
    with open(big, "wb") as f:
        for _ in range(int(gib * 1024)):
            f.write(chunk)
    for i in range(20):
        (root / "k0s" / f"small-{i}").write_bytes(os.urandom(1 << 16))
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            rel = p.relative_to(root).as_posix()
            out.append(
                {
                    "file": rel,
                    "size": p.stat().st_size,
                    "sha256": manifest.sha256_file(p),
                    "kind": "model",
                    "name": rel,
                    "version": "",
                }
            )
    return out


def drop_caches(cold: bool) -> None:
    if cold:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def timed(fn, runs: int, cold: bool) -> float:
    times = []
    for _ in range(runs):
        drop_caches(cold)
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gib", type=float, default=4.0, help="size of the big file (GiB)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="drop the page cache before each run")
    ap.add_argument("--dir", default=None, help="where to write the files (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp) / "bundle"
        t = time.perf_counter()
        arts = make_bundle(root, args.gib)
        total = sum(a["size"] for a in arts)
        print(
            f"bundle: {len(arts)} files, {total / 2**30:.2f} GiB "
            f"(written and hashed once in {time.perf_counter() - t:.1f} s)"
        )
        data = {"artifacts": arts}
        store = Path(tmp) / "digests.json"

        def full():
            assert manifest.verify(root, data, check_extra=False).ok

        warm = digests.DigestCache(store)
        manifest.verify(root, data, check_extra=False, digest=warm.sha256)
        warm.save()

        def cached():
            c = digests.DigestCache(store)
            assert manifest.verify(root, data, check_extra=False, digest=c.sha256).ok
            assert c.hashed == 0

        rec = Path(tmp) / "bundle-verified"
        script = (FILES / "bundle-record.sh").read_text()
        subprocess.run(
            [
                "sh",
                "-c",
                script,
                "bundle-record.sh",
                str(rec),
                str(root),
                *(f"{a['file']}={a['sha256']}" for a in arts),
            ],
            check=True,
        )

        def node_old():
            subprocess.run(
                f"cd {root} && find . -type f -print0 | xargs -0 -r sha256sum",
                shell=True,
                check=True,
                capture_output=True,
            )

        def node_new():
            out = subprocess.run(
                f"cd {root} && find . -type f -printf '{digests.STAT_FORMAT}'; cat {rec}",
                shell=True,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            stats = digests.parse_stats(out)
            plan = digests.node_plan(arts, stats, digests.parse_record(rec.read_text()), False)
            assert len(plan.ok) == len(arts)

        rows = {
            "control: read every byte (before; bundle_deep_check)": timed(
                full, args.runs, args.cold
            ),
            "control: digest cache (after)": timed(cached, args.runs, args.cold),
            "node: sha256sum over the directory (before)": timed(node_old, args.runs, args.cold),
            "node: find -printf + record (after)": timed(node_new, args.runs, args.cold),
        }
    print(f"median of {args.runs}, page cache {'cold' if args.cold else 'warm'}:")
    for what, s in rows.items():
        print(f"  {what:<55} {s:9.3f} s")
    print(
        json.dumps(
            {"gib": args.gib, "runs": args.runs, "cold": args.cold, "seconds": rows}, indent=None
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
