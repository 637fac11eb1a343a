"""What a real-size model costs a node, measured (issue 16): the same deploy on fresh lab VMs
with bundles that differ only in one model's size (random-weight GGUFs llama.cpp still loads:
tests/ggufs.sized_llama, 128 experts of which one runs per token, so that the health check's
answer costs the same at every size and the rows compare what the size costs the deploy).

    .venv/bin/python bench/scale.py --sizes 16M,1G,4G [--noops 3] [--json bench/scale.json]

For each size, on a fresh lab VM (QEMU/TCG here: absolute times are the emulator's; compare
the sizes with one another), whose /var/lib/airnode is a data disk big enough for the model:
- first converge: wall time of `pyinfra inventories/lab.py deploys/node.py`;
- no-op re-run: median wall time of --noops runs (page caches warm);
- bytes read from disk during one more no-op run with both sides' page caches dropped first:
  by pyinfra and everything it ran here (getrusage of children: ru_inblock), and by the node
  (/proc/diskstats of its disks): a no-op that hashed the bundle would read the model;
- node disk: the model store's blobs and the bundle directory (du), against the model's bytes;
- transfer: the first converge's upload rate of the model (airnode/transfer.py's own line)
  and OpenSSH scp of the same file to the same node right after, side by side.

Needs root (QEMU, dropping page caches), the test tooling (`./dev test` installs it) and
about 3x the largest size free in /var/tmp.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airnode import lab  # noqa: E402
from airnode.bundle.manifest import human  # noqa: E402

PYINFRA = str(Path(sys.executable).parent / "pyinfra")
MODEL = "bench:1"
SCP_COPY = "/var/lib/airnode/scp-copy"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    m = re.fullmatch(r"([0-9]+)([KMG])", text.strip())
    if not m:
        raise SystemExit(f"--sizes: {text!r} is not like 16M, 1G, 4G")
    return int(m.group(1)) << {"K": 10, "M": 20, "G": 30}[m.group(2)]


def build_bundle(work: Path, size: int) -> tuple[Path, Path]:
    from tests.ggufs import sized_llama
    from tests.oci import busybox_layout
    from tests.registry import Registry
    from tests.upstream import make_runtime_bundle

    gguf = sized_llama(work / "model.gguf", size)
    with Registry(work / "registry") as reg:
        ref = reg.push_layout(busybox_layout(work / "layout", tag="1"), "1", "airnode/busybox:1")
        make_runtime_bundle(work / "bundle", ref, reg.host, models={MODEL: gguf.read_bytes()})
    return work / "bundle", gguf


def deploy(inst: lab.Instance, bundle: Path) -> tuple[subprocess.CompletedProcess, float, int, int]:
    """One run of the real CLI; (result, seconds, bytes its process tree read from disk,
    operations that changed something)."""
    from airnode.bundle import trust

    env = dict(os.environ, AIRNODE_LAB_DIR=str(inst.dir))
    argv = [
        PYINFRA,
        "-y",
        "--json",
        "--data",
        f"bundle_dir={bundle}",
        "--data",
        f"bundle_sha256={trust.digest(bundle)}",
        "--data",
        "preflight_reserved_mb=256",
        "--data",
        "model_server_check_timeout=3600",
        "--data",
        "model_server_rollout_timeout=3600",
        str(ROOT / "inventories/lab.py"),
        str(ROOT / "deploys/node.py"),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_inblock
    t = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd="/")
    seconds = time.monotonic() - t
    read = (resource.getrusage(resource.RUSAGE_CHILDREN).ru_inblock - before) * 512
    if r.returncode != 0:
        raise SystemExit(f"deploy failed:\n{r.stderr[-4000:]}")
    changed = sum(1 for op in json.loads(r.stdout)["results"]["operations"] if op["success"])
    return r, seconds, read, changed


def node_disk_read(inst: lab.Instance) -> int:
    out = inst.ssh("awk '$3 ~ /^vd[a-z]$/ {s += $6} END {print s}' /proc/diskstats").stdout
    return int(out.strip() or 0) * 512


def drop_caches(inst: lab.Instance) -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")
    inst.ssh("sync; echo 3 > /proc/sys/vm/drop_caches")


def du(inst: lab.Instance, path: str) -> int:
    out = inst.ssh(f"du -sb {path} 2>/dev/null | cut -f1; true").stdout.strip()
    return int(out or 0)


def scp_rate(inst: lab.Instance, src: Path) -> float:
    t = time.monotonic()
    subprocess.run(
        # onto the data disk, beside the store (the guest's root filesystem is smaller than 4 GiB)
        ["scp", "-q", "-F", str(inst.ssh_config), str(src), f"{lab.SSH_ALIAS}:{SCP_COPY}"],
        check=True,
    )
    rate = src.stat().st_size / (time.monotonic() - t)
    inst.ssh(f"rm -f {SCP_COPY}")
    return rate


def upload_rate(stderr: str) -> float | None:
    """airnode/transfer.py's line for the model: '<label>: <size> sent in <s>s (<rate>/s...'."""
    m = re.search(rf"model {re.escape(MODEL)}: .* sent in ([0-9.]+)s", stderr)
    return None if not m else float(m.group(1))


def one_size(size: int, noops: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"airnode-scale-{size >> 20}M-", dir="/var/tmp"))
    inst = None
    try:
        log(f"{human(size)}: building the bundle")
        bundle, gguf = build_bundle(work, size)
        disk = work / "data.img"
        with open(disk, "wb") as f:
            f.truncate(max(3 * size, 2 << 30))
        subprocess.run(["mkfs.ext4", "-q", "-F", str(disk)], check=True)
        memory = max(4096, 2 * (size >> 20) + 3072)
        inst = lab.start(f"{work}/vm", memory=memory, data_disk=disk)
        inst.ssh("mkdir -p /var/lib/airnode && mount /dev/vdb /var/lib/airnode")
        log(f"{human(size)}: first converge")
        first, first_s, _, _ = deploy(inst, bundle)
        sent_s = upload_rate(first.stderr)
        times = []
        for i in range(noops):
            _, s, _, changed = deploy(inst, bundle)
            if changed:
                raise SystemExit(f"no-op run {i + 1} changed {changed} operation(s)")
            times.append(s)
        drop_caches(inst)
        node_before = node_disk_read(inst)
        _, cold_s, control_read, _ = deploy(inst, bundle)
        node_read = node_disk_read(inst) - node_before
        scp = scp_rate(inst, gguf)
        blobs = du(inst, "/var/lib/airnode/models/blobs")
        bundle_dir = du(inst, "/var/lib/airnode/bundle")
        model = gguf.stat().st_size
        return {
            "size": model,
            "first_converge_s": round(first_s, 1),
            "noop_median_s": round(statistics.median(times), 2),
            "noop_runs_s": [round(x, 2) for x in times],
            "noop_cold_s": round(cold_s, 1),
            "noop_cold_read_control": control_read,
            "noop_cold_read_node": node_read,
            "store_blobs_bytes": blobs,
            "bundle_dir_bytes": bundle_dir,
            "store_vs_model": round(blobs / model, 3),
            "upload_rate": round(model / sent_s) if sent_s else None,
            "scp_rate": round(scp),
            "upload_vs_scp": round(model / sent_s / scp, 2) if sent_s else None,
        }
    finally:
        if inst is not None:
            inst.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="16M,1G,4G")
    ap.add_argument("--noops", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    for s in args.sizes.split(","):
        rows.append(one_size(parse_size(s), args.noops))
        print(json.dumps(rows[-1]), flush=True)  # each size as it is measured
    base = rows[0]["noop_median_s"]
    print(
        f"{'model':>9} {'first':>8} {'no-op':>7} {'vs 1st':>8} {'read (cold no-op)':>24} "
        f"{'store/model':>11} {'bundle dir':>10} {'upload':>11} {'scp':>11} {'ratio':>5}"
    )
    for r in rows:
        print(
            f"{human(r['size']):>9} {r['first_converge_s']:>7}s {r['noop_median_s']:>6}s "
            f"{r['noop_median_s'] / base:>7.2f}x "
            f"{human(r['noop_cold_read_control']) + ' / ' + human(r['noop_cold_read_node']):>24} "
            f"{r['store_vs_model']:>10}x {human(r['bundle_dir_bytes']):>10} "
            f"{human(r['upload_rate'] or 0) + '/s':>11} {human(r['scp_rate']) + '/s':>11} "
            f"{r['upload_vs_scp'] or 0:>5}"
        )
    print("read (cold no-op): bytes read from disk by the control machine / by the node")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
