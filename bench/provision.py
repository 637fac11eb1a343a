"""Provisioning benchmark (not a test): airnode against the seed's procedure as a plain shell
script and an equivalent Ansible playbook (ansible-core's own modules), doing the same host
preparation and runtime work on the same lab VM image.

    .venv/bin/python bench/provision.py [--runs 3] [--json bench/results.json]

For each tool and run: a fresh lab VM with a live disk swapfile; the first converge, then a
re-run with nothing to change. Measured for each: wall time; remote commands (the exec and
subsystem requests the guest's sshd logs at LogLevel DEBUG: every command or file transfer a
tool starts on the node); bytes the guest received on eth0 (everything the control machine
sent, SSH framing included). Each figure is the median of the runs. Needs root (the lab VM),
the test tooling (./dev setup) and PyPI (ansible-core goes into bench/.venv-ansible).
"""

from __future__ import annotations

import argparse
import json
import os
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
from airnode.bundle import manifest  # noqa: E402

ANSIBLE_VENV = ROOT / "bench" / ".venv-ansible"
PYINFRA = str(Path(sys.executable).parent / "pyinfra")
TOOLS = ("airnode", "shell", "ansible")
SWAP_LINE = "/swapfile\tnone\tswap\tsw\t0\t0"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def build_bundles(work: Path) -> tuple[Path, Path]:
    """The runtime bundle the tests use (Debian's containerd and runc .debs, a busybox image,
    the k0s double), without Ollama and kube-prometheus: airnode's form, and the same files flat
    for the shell script and the playbook."""
    from tests.oci import busybox_layout
    from tests.registry import Registry
    from tests.upstream import make_runtime_bundle

    with Registry(work / "registry") as reg:
        ref = reg.push_layout(busybox_layout(work / "layout", tag="1"), "1", "airnode/busybox:1")
        data = make_runtime_bundle(work / "bundle", ref, reg.host)
    keep = [a for a in data["artifacts"] if a["kind"] not in ("ollama", "kube-prometheus")]
    for a in data["artifacts"]:
        if a not in keep:
            (work / "bundle" / a["file"]).unlink()
    manifest.write(work / "bundle", data["arch"], keep, data["images"], data["spec"])
    flat = work / "flat"
    flat.mkdir()
    for a in keep:
        src = work / "bundle" / a["file"]
        name = {"k0s": "k0s", "k0s-airgap": "k0s-airgap.tar"}.get(a["kind"], src.name)
        if a["kind"] == "image":
            name = src.name  # *.oci.tar
        shutil.copy(src, flat / name)
    return work / "bundle", flat


def ensure_ansible() -> Path:
    exe = ANSIBLE_VENV / "bin" / "ansible-playbook"
    if not exe.exists():
        log("installing ansible-core into bench/.venv-ansible")
        subprocess.run([sys.executable, "-m", "venv", str(ANSIBLE_VENV)], check=True)
        subprocess.run(
            [str(ANSIBLE_VENV / "bin" / "pip"), "install", "-q", "ansible-core"], check=True
        )
    return exe


class Guest:
    """A fresh lab VM prepared like the tests' (live swapfile), sshd logging every request."""

    def __init__(self, name: str):
        self.inst = lab.start(name)
        self.sh(
            "dd if=/dev/zero of=/swapfile bs=1M count=64 status=none && chmod 600 /swapfile"
            " && mkswap -q /swapfile && swapon /swapfile"
        )
        self.sh(f"printf '%s\\n' '{SWAP_LINE}' >> /etc/fstab")
        self.sh("echo 'LogLevel DEBUG' > /etc/ssh/sshd_config.d/bench.conf && systemctl reload ssh")
        self.inst.wait_ssh(60)  # sshd re-executes on reload: refused for a moment
        self.calibrate()

    def sh(self, cmd: str) -> str:
        return self.inst.ssh(cmd).stdout

    def counters(self) -> tuple[int, str]:
        out = self.sh(
            "cat /sys/class/net/eth0/statistics/rx_bytes; "
            "journalctl -u ssh -n 0 --show-cursor --no-pager | tail -1"
        )
        rx, cursor = out.splitlines()[:2]
        return int(rx), cursor.split("cursor: ", 1)[1]

    def since(self, cursor: str) -> int:
        out = self.sh(
            f"journalctl -u ssh --after-cursor='{cursor}' --no-pager -o cat | "
            "grep -cE 'session_input_channel_req: session [0-9]+ req (exec|subsystem)'"
            " || true"
        )
        return int(out.strip() or 0)

    def measure(self, argv: list[str], env: dict | None = None, stdin=None) -> dict:
        rx0, cursor = self.counters()
        started = time.monotonic()
        r = subprocess.run(
            argv, env=env, stdin=stdin, capture_output=True, text=True, cwd=ROOT, timeout=3600
        )
        seconds = time.monotonic() - started
        if r.returncode != 0:
            raise RuntimeError(
                f"{argv[0]} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
            )
        commands = self.since(cursor)
        rx1, _ = self.counters()
        # our own two reads after the run (their exec requests, their SSH connections) are
        # in the figures: `baseline` measures them on an empty command, and they are taken off
        base = getattr(self, "baseline", {"commands": 0, "bytes": 0})
        return {
            "seconds": round(seconds, 1),
            "commands": commands - base["commands"],
            "bytes": rx1 - rx0 - base["bytes"],
            "output": r.stdout[-4000:] + r.stderr[-4000:],
        }

    def calibrate(self) -> None:
        self.baseline = {"commands": 0, "bytes": 0}
        runs = [self.measure(["true"]) for _ in range(3)]
        self.baseline = {
            "commands": min(r["commands"] for r in runs),
            "bytes": min(r["bytes"] for r in runs),
        }

    def stop(self) -> None:
        self.inst.stop()


def run_tool(tool: str, guest: Guest, bundle: Path, flat: Path, work: Path) -> dict:
    ssh_config = str(guest.inst.ssh_config)
    env = dict(os.environ, AIRNODE_LAB_DIR=str(guest.inst.dir))
    if tool == "airnode":
        argv = [
            PYINFRA,
            "-y",
            str(ROOT / "inventories/lab.py"),
            str(ROOT / "bench/airnode_runtime.py"),
            "--data",
            f"bundle_dir={bundle}",
            "--data",
            "preflight_reserved_mb=256",
        ]

        def once():
            return guest.measure(argv, env=env)
    elif tool == "shell":
        script = str(ROOT / "bench/seed.sh")

        def once():
            # the plain procedure: copy the files, run the script (every time: it knows no
            # "already there")
            copy = [
                "sh",
                "-c",
                f"ssh -F {ssh_config} {lab.SSH_ALIAS} mkdir -p /root/bench-bundle"
                f" && scp -q -F {ssh_config} {flat}/* {lab.SSH_ALIAS}:/root/bench-bundle/"
                f" && ssh -F {ssh_config} {lab.SSH_ALIAS} sh -s < {script}",
            ]
            return guest.measure(copy)
    else:
        exe = ensure_ansible()
        inv = work / f"inventory-{guest.inst.dir.name}.yml"
        inv.write_text(
            json.dumps(
                {
                    "all": {
                        "hosts": {
                            "node": {
                                "ansible_host": lab.SSH_ALIAS,
                                "ansible_user": "root",
                                "ansible_python_interpreter": "/usr/bin/python3.11",
                                "ansible_ssh_common_args": f"-F {ssh_config}",
                            }
                        }
                    }
                }
            )
        )
        argv = [
            str(exe),
            "-i",
            str(inv),
            str(ROOT / "bench/ansible/playbook.yml"),
            "-e",
            f"local_bundle={flat}",
        ]
        aenv = dict(
            os.environ,
            ANSIBLE_HOST_KEY_CHECKING="False",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_RETRY_FILES_ENABLED="False",
        )

        def once():
            return guest.measure(argv, env=aenv)

    first = once()
    noop = once()
    return {"first": first, "noop": noop}


def _ansible_version() -> str:
    exe = ANSIBLE_VENV / "bin" / "ansible-playbook"
    if not exe.exists():
        return "-"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout
    return out.split("[core ", 1)[1].split("]", 1)[0] if "[core " in out else out[:40]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--tools", default=",".join(TOOLS))
    p.add_argument("--json", default=str(ROOT / "bench" / "results.json"))
    args = p.parse_args(argv)
    tools = args.tools.split(",")
    lab.ensure_image()
    work = Path(tempfile.mkdtemp(prefix="airnode-bench-"))
    results: dict[str, list[dict]] = {t: [] for t in tools}
    accel = set()
    try:
        bundle, flat = build_bundles(work)
        for run in range(1, args.runs + 1):
            for tool in tools:
                log(f"run {run}/{args.runs}: {tool}")
                guest = Guest(str(work / f"vm-{tool}-{run}"))
                accel.add(guest.inst.info.get("accel", "?"))
                try:
                    r = run_tool(tool, guest, bundle, flat, work)
                finally:
                    guest.stop()
                log(
                    f"  first {r['first']['seconds']} s, {r['first']['commands']} commands; "
                    f"no-op {r['noop']['seconds']} s, {r['noop']['commands']} commands, "
                    f"{r['noop']['bytes']} bytes"
                )
                results[tool].append(r)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def med(tool, phase, key):
        return statistics.median(r[phase][key] for r in results[tool])

    rows = []
    for tool in tools:
        rows.append(
            {
                "tool": tool,
                "first_s": med(tool, "first", "seconds"),
                "first_commands": med(tool, "first", "commands"),
                "noop_s": med(tool, "noop", "seconds"),
                "noop_commands": med(tool, "noop", "commands"),
                "noop_bytes": med(tool, "noop", "bytes"),
            }
        )
    base = next((r for r in rows if r["tool"] == "airnode"), rows[0])
    head = (
        "tool",
        "first converge s",
        "commands",
        "no-op re-run s",
        "commands",
        "bytes sent on re-run",
    )
    lines = ["  ".join(f"{h:>20}" for h in head)]
    for r in rows:
        lines.append(
            "  ".join(
                f"{v:>20}"
                for v in (
                    r["tool"],
                    r["first_s"],
                    r["first_commands"],
                    r["noop_s"],
                    r["noop_commands"],
                    r["noop_bytes"],
                )
            )
        )
    for r in rows:
        if r is base:
            continue
        lines.append(
            f"{r['tool']} / airnode: first converge x{r['first_s'] / base['first_s']:.2f}, "
            f"no-op x{r['noop_s'] / base['noop_s']:.2f}, no-op commands "
            f"x{r['noop_commands'] / max(base['noop_commands'], 1):.2f}, re-run bytes "
            f"x{r['noop_bytes'] / max(base['noop_bytes'], 1):.2f}"
        )
    print("\n".join(lines))
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    machine = {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": mem_gib,
        "guest": "lab VM, 2 vCPUs, 4096 MiB, accelerator " + "/".join(sorted(accel)),
        "runs": args.runs,
        "kernel": os.uname().release,
        "ansible_core": _ansible_version(),
    }
    print(f"machine: {json.dumps(machine)}")
    Path(args.json).write_text(
        json.dumps(
            {
                "machine": machine,
                "medians": rows,
                "runs": {
                    t: [
                        {
                            k: {kk: vv for kk, vv in v.items() if kk != "output"}
                            for k, v in r.items()
                        }
                        for r in rs
                    ]
                    for t, rs in results.items()
                },
            },
            indent=2,
        )
        + "\n"
    )
    log(f"written {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
