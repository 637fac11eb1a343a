"""The lab VM: a real, disposable, air-gapped Debian guest under QEMU.

The image (Debian bookworm, systemd, sshd, its own kernel) is built once with mmdebstrap and
cached under ``$AIRNODE_CACHE/lab/`` keyed by the hash of its recipe. Every instance runs a
throwaway qcow2 overlay on top of it (resumed from a boot saved once, see below), with user
networking restricted to a single SSH port forward on 127.0.0.1: the guest has no egress at
all.

Nothing here imports pyinfra.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airnode.paths import CACHE, FILES, LAB_INSTANCES

# Everything that decides the image's content. Change anything here (or in the customize
# script) and the cache key changes, so the next start builds a new image.
RECIPE: dict[str, Any] = {
    "suite": "bookworm",
    "variant": "minbase",
    "mirror": os.environ.get("AIRNODE_LAB_MIRROR", "http://deb.debian.org/debian"),
    "packages": [
        "systemd-sysv",
        "udev",
        "dbus",
        "openssh-server",
        "linux-image-amd64",
        "initramfs-tools",
        "iproute2",
        "kmod",
        "util-linux",
        "procps",
        "sudo",
        "ca-certificates",
        "zstd",
        # for the test doubles only (tests/doubles/): customize.sh takes `python3` off PATH,
        # so a deploy step that needed Python on the node would fail here as on a real node
        "python3",
        "python3-yaml",
        # for the llama-server stand-in only (tests/doubles/llama-server: xllamacpp needs it)
        "libgomp1",
    ],
    "size": "4G",
    "hostname": "airnode-lab",
}
CUSTOMIZE = FILES / "lab" / "customize.sh"
SSH_ALIAS = "airnode-lab"


class LabError(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[lab] {msg}", file=sys.stderr, flush=True)


def recipe_hash() -> str:
    h = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode())
    h.update(CUSTOMIZE.read_bytes())
    return h.hexdigest()[:16]


def image_dir() -> Path:
    return CACHE / "lab" / f"{RECIPE['suite']}-{recipe_hash()}"


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, **kw)


@contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Hold an exclusive lock named ``name`` under the cache: test workers running side by side
    (./dev test) build a shared cache entry once, the others wait for it."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_image() -> Path:
    """Return the cached image directory, building it first when the recipe is new."""
    dest = image_dir()
    if (dest / "ready").exists():
        return dest
    with cache_lock("lab-image"):
        return _build_image(dest)


def _build_image(dest: Path) -> Path:
    if (dest / "ready").exists():  # built by another worker while this one waited
        return dest
    for tool in ("mmdebstrap", "mkfs.ext4", "qemu-img", "ssh-keygen"):
        if not shutil.which(tool):
            raise LabError(
                f"{tool} not found: install mmdebstrap, e2fsprogs, qemu-utils "
                "and openssh-client (apt-get install ...)"
            )
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=dest.parent))
    try:
        started = time.monotonic()
        log(f"building image {dest.name} (once per recipe) ...")
        _run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "airnode-lab",
                "-f",
                str(work / "id_ed25519"),
            ]
        )
        rootfs = work / "rootfs"
        env = dict(
            os.environ,
            AIRNODE_LAB_PUBKEY=(work / "id_ed25519.pub").read_text().strip(),
            AIRNODE_LAB_HOSTNAME=RECIPE["hostname"],
        )
        _run(
            [
                "mmdebstrap",
                "--quiet",
                f"--variant={RECIPE['variant']}",
                "--include=" + ",".join(RECIPE["packages"]),
                f'--customize-hook={shlex.quote(str(CUSTOMIZE))} "$1"',
                RECIPE["suite"],
                str(rootfs),
                RECIPE["mirror"],
            ],
            env=env,
        )
        boot = rootfs / "boot"
        kernel = sorted(boot.glob("vmlinuz-*"))[-1]
        initrd = sorted(boot.glob("initrd.img-*"))[-1]
        shutil.copy(kernel, work / "vmlinuz")
        shutil.copy(initrd, work / "initrd.img")
        _run(
            [
                "mkfs.ext4",
                "-q",
                "-L",
                "airnode-root",
                "-d",
                str(rootfs),
                str(work / "root.raw"),
                RECIPE["size"],
            ]
        )
        shutil.rmtree(rootfs)
        _run(
            ["qemu-img", "convert", "-O", "qcow2", str(work / "root.raw"), str(work / "root.qcow2")]
        )
        (work / "root.raw").unlink()
        (work / "recipe.json").write_text(json.dumps(RECIPE, indent=2, sort_keys=True))
        (work / "ready").write_text(f"{time.monotonic() - started:.1f}\n")
        if dest.exists():
            shutil.rmtree(dest)
        work.rename(dest)
        log(f"image ready in {float((dest / 'ready').read_text()):.0f}s: {dest}")
        return dest
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _kvm_failed_mark() -> Path:
    return CACHE / "lab" / "kvm-failed"


def kvm_usable() -> bool:
    """/dev/kvm is there, and KVM has not already failed to boot the guest since this host
    booted (a host that hangs KVM guests keeps doing so: each try costs 20 s)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    try:
        return _kvm_failed_mark().read_text().strip() != _boot_id()
    except OSError:
        return True


def _remember_kvm_failed() -> None:
    mark = _kvm_failed_mark()
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.write_text(_boot_id() + "\n")


@dataclass
class Instance:
    dir: Path

    @property
    def info(self) -> dict:
        return json.loads((self.dir / "info.json").read_text())

    @property
    def port(self) -> int:
        return self.info["port"]

    @property
    def key(self) -> Path:
        return Path(self.info["key"])

    @property
    def ssh_config(self) -> Path:
        return self.dir / "ssh_config"

    @property
    def mux(self) -> Path:
        """The socket of the VM's shared SSH connection (see _shared_connection)."""
        return self.dir / "mux"

    @property
    def console(self) -> Path:
        return self.dir / "console.log"

    def pid(self) -> int | None:
        try:
            pid = int((self.dir / "qemu.pid").read_text())
            # a stale pid file (host rebooted) may name another process: check it is ours
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            return pid if str(self.dir / "disk.qcow2").encode() in b"".join(cmdline) else None
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None

    def ssh_argv(self, *command: str) -> list[str]:
        return ["ssh", "-F", str(self.ssh_config), SSH_ALIAS, *command]

    def tunnel(self, remote_port: int) -> Tunnel:
        """127.0.0.1:<free port> here forwarded (ssh -L) to 127.0.0.1:remote_port on the
        guest, for as long as the returned context lasts."""
        return Tunnel(self, remote_port)

    def ssh(
        self, command: str, check: bool = True, timeout: float = 600, input: str | None = None
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.ssh_argv(command),
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
            input=input,
        )

    def console_tail(self, lines: int = 40) -> str:
        try:
            text = self.console.read_text(errors="replace")
        except FileNotFoundError:
            return "(no console output)"
        return "\n".join(text.splitlines()[-lines:])

    def wait_ssh(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise LabError(
                    "QEMU exited during boot. Guest console (tail):\n" + self.console_tail()
                )
            try:
                r = subprocess.run(
                    self.ssh_argv(*OWN_CONNECTION, "-o", "ConnectTimeout=5", "true"),
                    capture_output=True,
                    timeout=30,
                )
                if r.returncode == 0:
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(2)
        raise LabError(
            f"no SSH on 127.0.0.1:{self.port} after {timeout:.0f}s. "
            "Guest console (tail):\n" + self.console_tail()
        )

    def wait_console(self, timeout: float) -> None:
        """The guest's kernel prints to its serial console within a second or two of a good
        start; a guest the accelerator cannot run prints nothing at all."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.console.exists() and self.console.stat().st_size > 0:
                return
            time.sleep(0.5)
        raise LabError(f"no output on the guest console after {timeout:.0f}s")

    def boot_id(self) -> str:
        return self.ssh("cat /proc/sys/kernel/random/boot_id", timeout=60).stdout.strip()

    def wait_booted(self, timeout: float) -> str:
        """Wait until systemd has started (or failed) every unit of the boot; returns its state
        ("running", or "degraded" when a unit failed: the caller's checks then say which)."""
        r = self.ssh("systemctl is-system-running --wait", check=False, timeout=timeout)
        return r.stdout.strip()

    def hmp(self, command: str, timeout: float = 600) -> str:
        """Run a QEMU monitor command and return what it printed (waits for the next prompt:
        a `migrate` without -d holds the monitor until the migration ends)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(str(self.dir / "monitor.sock"))

            def until_prompt() -> bytes:
                buf = b""
                while not buf.endswith(b"(qemu) "):
                    chunk = s.recv(65536)
                    if not chunk:
                        raise LabError(f"QEMU's monitor closed during {command!r}")
                    buf += chunk
                return buf

            until_prompt()
            s.sendall(command.encode() + b"\n")
            return until_prompt().decode(errors="replace")

    def monitor(self, command: str) -> None:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.dir / "monitor.sock"))
            s.sendall(command.encode() + b"\n")
            time.sleep(0.5)

    def reboot(self, timeout: float = 300) -> float:
        """Reboot the guest cleanly (systemctl reboot); hard-reset it if that hangs.

        Returns the seconds until the new boot finished starting its units: SSH answers while
        other units of multi-user.target (airnode-zram's oneshot among them) may still be
        starting, so "after a reboot" means after `systemctl is-system-running --wait`.
        """
        before = self.boot_id()
        started = time.monotonic()
        self.ssh("sync; systemd-run --on-active=1 systemctl reboot", check=False, timeout=60)
        self.close_ssh()  # the shared connection belongs to the boot that ends
        deadline = started + timeout
        reset_sent = False
        while True:
            time.sleep(3)
            try:
                r = subprocess.run(
                    self.ssh_argv(
                        *OWN_CONNECTION,
                        "-o",
                        "ConnectTimeout=5",
                        "cat /proc/sys/kernel/random/boot_id",
                    ),
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                if r.returncode == 0 and r.stdout.strip() != before:
                    self.wait_booted(max(30.0, deadline - time.monotonic()))
                    return time.monotonic() - started
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                if reset_sent:
                    raise LabError(
                        "guest did not come back after reboot. Console (tail):\n"
                        + self.console_tail()
                    )
                log("clean reboot hung; sending system_reset")
                self.monitor("system_reset")
                reset_sent = True
                deadline = time.monotonic() + timeout

    def close_ssh(self) -> None:
        """End the VM's shared SSH connection, if there is one (the next ssh makes a new)."""
        if self.mux.exists():
            with contextlib.suppress(subprocess.TimeoutExpired):
                subprocess.run(
                    self.ssh_argv("-O", "exit"), capture_output=True, timeout=10, check=False
                )

    def stop(self, remove: bool = True) -> None:
        self.close_ssh()
        pid = self.pid()
        if pid:
            try:
                self.monitor("quit")
            except OSError:
                os.kill(pid, 15)
            for _ in range(50):
                if self.pid() is None:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, 9)
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)


class Tunnel:
    def __init__(self, inst: Instance, remote_port: int):
        self.inst, self.remote_port = inst, remote_port
        self.port = free_port()

    def __enter__(self) -> str:
        self.proc = subprocess.Popen(
            [
                "ssh",
                "-F",
                str(self.inst.ssh_config),
                "-N",
                *OWN_CONNECTION,
                "-o",
                "ExitOnForwardFailure=yes",
                "-L",
                f"127.0.0.1:{self.port}:127.0.0.1:{self.remote_port}",
                SSH_ALIAS,
            ],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LabError(f"ssh -L to port {self.remote_port} of the lab VM failed")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return f"http://127.0.0.1:{self.port}"
            except OSError:
                time.sleep(0.2)
        self.proc.terminate()
        raise LabError(f"ssh -L to port {self.remote_port} of the lab VM did not come up")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def instance(name: str = "default") -> Instance:
    return Instance(LAB_INSTANCES / name)


def cluster_instances(name: str, home: Path | None = None) -> list[Instance]:
    """The running VMs of lab cluster ``name`` (under $AIRNODE_LAB_HOME), in index order."""
    found = []
    root = home or LAB_INSTANCES
    for info in sorted(root.glob("*/info.json")) if root.is_dir() else []:
        inst = Instance(info.parent)
        data = inst.info
        if data.get("cluster") == name and inst.pid() is not None:
            found.append((int(data["address"].rsplit(".", 1)[1]), inst))
    if not found:
        raise LabError(
            f"no VM of lab cluster {name!r} is running under {root}: start them with "
            f"`airnode lab start --name {name}-1 --cluster {name} --index 1` (then 2, ...)"
        )
    return [inst for _, inst in sorted(found, key=lambda t: t[0])]


def current() -> Instance:
    """The instance the lab inventory targets: $AIRNODE_LAB_DIR, else the default one."""
    d = os.environ.get("AIRNODE_LAB_DIR")
    inst = Instance(Path(d)) if d else instance()
    if not (inst.dir / "info.json").exists() or inst.pid() is None:
        raise LabError(f"no lab VM is running in {inst.dir}: start one with `airnode lab start`")
    return inst


# -- lab clusters: several VMs on one isolated network of their own ------------------------
# Each VM keeps its SSH port forward (QEMU user networking, restricted: no egress) and gets a
# second NIC on a QEMU socket network: a multicast group on 127.0.0.1 that only the guests of
# one cluster join (its port derives from the cluster's name). Nothing routes out of it.
CLUSTER_SUBNET = "10.77.0"  # VM n (1, 2, ...) is 10.77.0.n/24 on eth1
CLUSTER_GROUP = "230.0.0.1"


@dataclass(frozen=True)
class ClusterNet:
    """Where a lab VM sits on its cluster's network: the cluster's name and its number in it."""

    name: str
    index: int  # 1..250

    @property
    def port(self) -> int:
        return 30000 + int(hashlib.sha256(self.name.encode()).hexdigest()[:8], 16) % 20000

    @property
    def address(self) -> str:
        return f"{CLUSTER_SUBNET}.{self.index}"

    @property
    def mac(self) -> str:
        return f"52:54:00:77:00:{self.index:02x}"

    @property
    def hostname(self) -> str:
        return f"{RECIPE['hostname']}-{self.index}"

    def qemu_args(self) -> list[str]:
        return [
            "-netdev",
            f"socket,id=n1,mcast={CLUSTER_GROUP}:{self.port},localaddr=127.0.0.1",
            "-device",
            f"virtio-net-pci,netdev=n1,mac={self.mac}",
        ]

    def plug(self, inst: Instance) -> None:
        """Into a VM resumed from a saved boot (which has an empty root port, slot0): this
        NIC, hot-plugged, then the guest's side (guest_setup)."""
        netdev = self.qemu_args()[1]
        for command in (
            f"netdev_add {netdev}",
            f"device_add virtio-net-pci,netdev=n1,mac={self.mac},bus=slot0,id=nic1",
        ):
            out = inst.hmp(command, timeout=60)
            if "rror" in out:
                raise LabError(f"{command}: {out.strip()[-300:]}")
        self.configure(inst, timeout=120)

    def configure(self, inst: Instance, timeout: float = 600) -> None:
        """The guest's side (guest_setup), over SSH, once the NIC is there."""
        r = inst.ssh(self.guest_setup(), check=False, timeout=timeout)
        if r.returncode != 0:
            raise LabError(f"{inst.dir.name}: cluster network setup failed: {r.stderr}")
        log(f"{self.hostname} at {self.address} on lab cluster {self.name}")

    def guest_setup(self) -> str:
        """The guest's side, over SSH after boot (kept across reboots): its own hostname and
        the static address of its cluster NIC (systemd-networkd, matched on the MAC)."""
        network = (
            f"[Match]\nMACAddress={self.mac}\n\n[Network]\nAddress={self.address}/24\n"
            "LinkLocalAddressing=no\n"
        )
        return (
            f"echo {self.hostname} > /etc/hostname && hostname {self.hostname} && "
            f"printf '{network}' > /etc/systemd/network/20-lab-cluster.network && "
            "networkctl reload && "
            f"for i in $(seq 150); do ip -4 addr show | grep -q ' {self.address}/' && exit 0; "
            "sleep 0.2; done; echo 'the cluster NIC got no address' >&2; exit 1"
        )


def tcg_thread() -> str:
    """TCG's threading ($AIRNODE_LAB_TCG_THREAD): ``multi`` (the default) runs each vCPU on a
    host thread of its own; ``single`` runs all of a guest's vCPUs round-robin on one. With
    more guests than host cores (the test suite: two to four guests of two vCPUs on two
    cores) single is cheaper: two guests at once running the same mixed work took 43-50 s of
    CPU each instead of 54-57 s (session 14's measurement, docs/testing.md)."""
    value = os.environ.get("AIRNODE_LAB_TCG_THREAD", "multi")
    if value not in ("multi", "single"):
        raise LabError(f"AIRNODE_LAB_TCG_THREAD={value!r}: allowed values are multi, single")
    return value


def _qemu_argv(
    img: Path,
    inst: Instance,
    port: int,
    accel: str,
    memory: int,
    cpus: int,
    data_disk: Path | None = None,
    net: ClusterNet | None = None,
    slot: bool = False,
):
    """QEMU's command line. ``slot``: an empty PCIe root port (``slot0``) a cluster NIC is
    plugged into after a saved boot resumes (ClusterNet.plug)."""
    accel_args = (
        ["-accel", "kvm", "-cpu", "host"]
        if accel == "kvm"
        else ["-accel", f"tcg,thread={tcg_thread()}", "-cpu", "max"]
    )
    return [
        "qemu-system-x86_64",
        "-name",
        f"airnode-lab-{inst.dir.name}",
        "-machine",
        "q35",
        *accel_args,
        "-m",
        str(memory),
        "-smp",
        str(cpus),
        "-nodefaults",
        "-display",
        "none",
        "-kernel",
        str(img / "vmlinuz"),
        "-initrd",
        str(img / "initrd.img"),
        "-append",
        "root=/dev/vda rw console=ttyS0 net.ifnames=0 systemd.show_status=1",
        "-drive",
        f"file={inst.dir / 'disk.qcow2'},if=virtio,format=qcow2,cache=unsafe",
        *(["-drive", f"file={data_disk},if=virtio,format=raw,cache=unsafe"] if data_disk else []),
        "-netdev",
        f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
        "-device",
        "virtio-net-pci,netdev=n0",
        *(net.qemu_args() if net else []),
        *(["-device", "pcie-root-port,id=slot0,chassis=1"] if slot else []),
        "-device",
        "virtio-rng-pci",
        # a new generation ID at each start: a guest resumed from a saved boot reseeds its
        # random number generator at once (Linux's vmgenid driver), so VMs resumed from the
        # same state do not draw the same random numbers
        "-device",
        "vmgenid,guid=auto",
        "-serial",
        f"file:{inst.console}",
        "-monitor",
        f"unix:{inst.dir / 'monitor.sock'},server,nowait",
        "-pidfile",
        str(inst.dir / "qemu.pid"),
        "-daemonize",
    ]


def start(
    name: str = "default",
    memory: int = 4096,
    cpus: int = 2,
    accel: str | None = None,
    timeout: float = 600,
    data_disk: Path | None = None,
    net: ClusterNet | None = None,
) -> Instance:
    """Start a fresh throwaway copy of the lab image (resuming the saved boot when it can: see
    "a saved boot" above) and wait until SSH answers. ``data_disk``:
    a raw disk image attached as /dev/vdb (benchmarks with models bigger than the image's
    root filesystem make one with mkfs.ext4 and mount it). ``net``: a VM of a lab cluster,
    with its own hostname and address on the cluster's network (``ClusterNet``)."""
    accel = accel or os.environ.get("AIRNODE_LAB_ACCEL", "auto")
    if accel not in ("auto", "kvm", "tcg"):
        raise LabError(f"AIRNODE_LAB_ACCEL={accel!r}: allowed values are auto, kvm, tcg")
    tcg_thread()  # refused before anything starts
    img = ensure_image()
    inst = instance(name) if "/" not in name else Instance(Path(name))
    if inst.pid():
        raise LabError(f"lab VM {inst.dir} is already running (stop it with `airnode lab stop`)")
    shutil.rmtree(inst.dir, ignore_errors=True)
    inst.dir.mkdir(parents=True)
    candidates = (
        ["kvm", "tcg"]
        if accel == "auto" and kvm_usable()
        else (["tcg"] if accel == "auto" else [accel])
    )
    # a VM without a data disk, on a known accelerator, resumes a boot saved once (a cluster
    # VM's has a slot its NIC is plugged into): seconds instead of a minute or two of TCG
    # booting the kernel and systemd
    resumable = data_disk is None and len(candidates) == 1
    if (
        resumable
        and os.environ.get("AIRNODE_LAB_COLD_BOOT") != "1"
        and _resume_saved_boot(img, inst, candidates[0], memory, cpus, net)
    ):
        return inst
    _fresh_disk(img, inst)
    return _boot(img, inst, candidates, memory, cpus, timeout, data_disk, net)


def _fresh_disk(img: Path, inst: Instance) -> None:
    """A throwaway copy-on-write overlay of the image: the VM's disk."""
    (inst.dir / "disk.qcow2").unlink(missing_ok=True)
    _run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "qcow2",
            "-b",
            str(img / "root.qcow2"),
            str(inst.dir / "disk.qcow2"),
        ]
    )


# -- a saved boot ------------------------------------------------------------------------------
# Booting the guest under TCG takes 50 s on an idle 2-core host and about 110 s beside another
# VM (the test suite boots one per lab module). Instead, a plain VM is booted once, left until
# systemd has started every unit, stopped, and its RAM and devices saved with QEMU's migration
# stream (`migrate "exec:cat > FILE"`; QEMU 7.2 has no file: URI), beside its overlay disk as it
# was at that moment. Each later start copies that overlay and resumes the stream
# (`-incoming "exec:cat FILE"`): the same QEMU, the same command line but the SSH port, so the
# same devices; saved stopped, it is continued once loaded. The guest's clock stood still
# while saved: it is set to the host's at resume.
# Saved per image, accelerator, memory, CPUs, QEMU version and command line (the key below);
# a save or resume that fails is remembered (`.failed` beside it) and the VM boots as before.
def _qemu_version() -> str:
    return subprocess.run(
        ["qemu-system-x86_64", "--version"], capture_output=True, text=True, check=True
    ).stdout


def saved_boot_dir(img: Path, accel: str, memory: int, cpus: int, slot: bool = False) -> Path:
    template = _qemu_argv(img, Instance(Path("/vm")), 0, accel, memory, cpus, slot=slot)
    key = hashlib.sha256(json.dumps([_qemu_version(), template]).encode()).hexdigest()[:16]
    return img / "saved-boot" / f"{accel}-{memory}m-{cpus}cpu{'-slot' * slot}-{key}"


def _save_boot(img: Path, accel: str, memory: int, cpus: int, slot: bool) -> Path | None:
    """The saved boot for these settings, made now (a boot, then the save) if missing; None
    when the guest could not be booted cleanly or QEMU could not save it. ``slot``: with an
    empty PCIe root port, for a cluster VM's NIC."""
    dest = saved_boot_dir(img, accel, memory, cpus, slot)
    if (dest / "ready").exists():
        return dest
    failed = _failed_mark(dest)
    if failed.exists():
        return None  # tried once and failed: every start boots (no second boot per start)
    with cache_lock("lab-saved-boot"):
        if (dest / "ready").exists():
            return dest
        if failed.exists():
            return None
        dest.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".saving-", dir=dest.parent))
        inst = Instance(work / "vm")
        inst.dir.mkdir()
        started = time.monotonic()
        try:
            _fresh_disk(img, inst)
            _boot(img, inst, [accel], memory, cpus, 600, None, None, slot)
            state = inst.wait_booted(300)
            if state != "running":
                _give_up(dest, f"not saving this boot: systemd says {state!r} (a unit failed)")
                return None
            inst.close_ssh()  # no session of this boot in what every resume starts from
            inst.hmp("stop")
            # HMP takes the URI in double quotes; the cache path has none of its own
            inst.hmp(f'migrate "exec:cat > {shlex.quote(str(work / "state"))}"')
            status = inst.hmp("info migrate")
            if "Migration status: completed" not in status:
                _give_up(dest, f"QEMU could not save the booted guest: {status.strip()[-300:]}")
                return None
            inst.stop(remove=False)
            (work / "vm" / "disk.qcow2").rename(work / "disk.qcow2")
            (work / "ready").write_text(f"{time.monotonic() - started:.1f}\n")
            shutil.rmtree(work / "vm")
            shutil.rmtree(dest, ignore_errors=True)
            work.rename(dest)
            log(f"saved a booted guest in {time.monotonic() - started:.0f}s: {dest}")
            return dest
        except LabError as e:
            _give_up(dest, f"not saving a boot: {e}")
            return None
        finally:
            inst.stop(remove=False)
            shutil.rmtree(work, ignore_errors=True)


def _failed_mark(dest: Path) -> Path:
    return dest.parent / f"{dest.name}.failed"


def _give_up(dest: Path, why: str) -> None:
    """Remember that this saved boot could not be made or resumed: later starts just boot
    (delete the .failed file beside it to try again)."""
    log(f"{why} (not tried again: {_failed_mark(dest)})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _failed_mark(dest).write_text(why + "\n")


def _resume_saved_boot(
    img: Path, inst: Instance, accel: str, memory: int, cpus: int, net: ClusterNet | None
) -> bool:
    saved = _save_boot(img, accel, memory, cpus, slot=net is not None)
    if saved is None:
        return False
    shutil.copyfile(saved / "disk.qcow2", inst.dir / "disk.qcow2")
    port = free_port()
    _write_info(inst, img, port, accel, net)
    started = time.monotonic()
    log(f"resuming a saved boot: {inst.dir.name} ({accel}, ssh 127.0.0.1:{port})")
    incoming = "exec:cat " + shlex.quote(str(saved / "state"))
    r = subprocess.run(
        [
            *_qemu_argv(img, inst, port, accel, memory, cpus, slot=net is not None),
            "-incoming",
            incoming,
        ],
        capture_output=True,
        text=True,
    )
    try:
        if r.returncode != 0:
            raise LabError(f"qemu failed to start: {r.stderr.strip()}")
        # saved stopped, so it resumes paused once the stream is in: then it runs on
        deadline = time.monotonic() + 120
        while "VM status: paused" not in inst.hmp("info status", timeout=60):
            if time.monotonic() > deadline:
                raise LabError("the saved state was not loaded within 120s")
            time.sleep(0.2)
        inst.hmp("cont", timeout=60)
        inst.wait_ssh(120)
        inst.ssh(f"date -s @{time.time():.3f} >/dev/null", timeout=60)
        if net:
            net.plug(inst)
    except (LabError, subprocess.SubprocessError) as e:
        inst.stop(remove=False)
        shutil.rmtree(saved, ignore_errors=True)
        _give_up(saved, f"the saved boot did not resume ({e}); forgotten, booting instead")
        return False
    log(f"resumed after {time.monotonic() - started:.1f}s")
    return True


def _write_info(inst: Instance, img: Path, port: int, acc: str, net: ClusterNet | None) -> None:
    (inst.dir / "info.json").write_text(
        json.dumps(
            {
                "port": port,
                "key": str(img / "id_ed25519"),
                "accel": acc,
                "image": str(img),
                **(
                    {"address": net.address, "hostname": net.hostname, "cluster": net.name}
                    if net
                    else {}
                ),
            }
        )
    )
    inst.ssh_config.write_text(
        f"Host {SSH_ALIAS}\n  HostName 127.0.0.1\n  Port {port}\n  User root\n"
        f'  IdentityFile "{img / "id_ed25519"}"\n  IdentitiesOnly yes\n'
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        "  BatchMode yes\n" + _shared_connection(inst)
    )
    inst.console.write_text("")


# Every ssh to a lab VM (the tests run thousands: testinfra, ssh, scp) shares one connection
# per VM (OpenSSH's ControlMaster): a new connection costs the TCG guest its key exchange and
# a PAM session, 4.1 s a command on a busy guest against 0.4-0.5 s over the shared one
# (measured in session 15). The master lives in the VM's directory and is closed before the VM
# stops, reboots or is saved; keepalives end one whose guest vanished (a hard reset).
UNIX_PATH_MAX = 104  # sun_path on the BSDs (108 on Linux); ssh adds 17 characters while binding


def _shared_connection(inst: Instance) -> str:
    mux = inst.mux
    if len(str(mux)) + 17 > UNIX_PATH_MAX:
        return ""  # a path too long for a socket: a connection per command, as before
    return (
        f'  ControlMaster auto\n  ControlPath "{mux}"\n  ControlPersist 60\n'
        "  ServerAliveInterval 15\n  ServerAliveCountMax 8\n"
    )


# for the checks that must make a connection of their own (is sshd up, which boot answers)
# and for port forwards that must end with their process
OWN_CONNECTION = ("-o", "ControlMaster=no", "-o", "ControlPath=none")


def _boot(
    img: Path,
    inst: Instance,
    candidates: list[str],
    memory: int,
    cpus: int,
    timeout: float,
    data_disk: Path | None,
    net: ClusterNet | None,
    slot: bool = False,
) -> Instance:
    """Boot ``inst`` (its overlay disk made) with the first accelerator that works."""
    last_error: Exception | None = None
    for acc in candidates:
        port = free_port()
        _write_info(inst, img, port, acc, net)
        started = time.monotonic()
        log(f"booting {inst.dir.name} ({acc}, {memory} MiB, {cpus} CPUs, ssh 127.0.0.1:{port})")
        try:
            r = subprocess.run(
                _qemu_argv(img, inst, port, acc, memory, cpus, data_disk, net, slot),
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                raise LabError(f"qemu ({acc}) failed to start: {r.stderr.strip()}")
            # A guest that cannot run under KVM here (e.g. a host offering only PVM) shows
            # no sign of life: give KVM a short, bounded try before falling back to TCG -
            # 20 s for a first console line (it hung silently for all 90 s here), then SSH.
            if acc != candidates[-1]:
                inst.wait_console(20)
            inst.wait_ssh(timeout if acc == candidates[-1] else 90)
            log(f"SSH up after {time.monotonic() - started:.1f}s")
            if net:
                net.configure(inst)
            return inst
        except LabError as e:
            last_error = e
            inst.stop(remove=False)
            if acc != candidates[-1]:
                if acc == "kvm":
                    _remember_kvm_failed()
                log(
                    f"{acc} boot failed; falling back to the next accelerator (KVM is not "
                    "tried again until this host reboots)"
                )
    raise LabError(str(last_error))
