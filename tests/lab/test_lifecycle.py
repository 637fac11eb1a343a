"""A node's life on a real, air-gapped guest: runs killed at several points and re-run to a
clean second pass, an upgrade of k0s, containerd and kube-prometheus in one bundle, and teardown
back to the host as it was before the first deploy (the model store kept, then purged).

The guest starts with a live disk swapfile, a docker.service (a stand-in, enabled and running)
and an fstab with lines of its own. Real: the guest, systemd, dpkg, Debian's containerd and runc
(the upgrade is Debian's own .deb repacked with a higher version), swap, sysctls, modules, files.
Doubles: k0s and Ollama (tests/doubles/)."""

from __future__ import annotations

import shlex

import pytest

from airnode.sizing import zram_size_bytes
from tests.ggufs import tiny_llama
from tests.oci import busybox_layout
from tests.registry import Registry
from tests.upstream import bumped_deb, debian_debs, make_runtime_bundle

pytestmark = pytest.mark.lab
# the bundle goes to a directory the site had before airnode, with files of its own (a USB
# stick's copy, a shared data directory): teardown must leave it and them, taking only its own
SITE_DIR = "/var/lib/site-data"
SETTINGS = ("--data", "preflight_reserved_mb=256", "--data", f"bundle_remote_dir={SITE_DIR}")
SITE_FILES = {
    f"{SITE_DIR}/README.site": "the site's own notes\n",
    f"{SITE_DIR}/models/keep-me.txt": "a file of the site's, in a directory airnode "
    "also ships into\n",
}
SWAP_LINE = "/swapfile\tnone\tswap\tsw\t0\t0"
PURGE = ("--data", "teardown_purge_models=yes, delete every model")
# What a deploy can touch, as a sorted text: files (type, path, link target, sha256), installed
# packages, unit files, active units, swaps, the sysctls and modules airnode changes. Left out:
# dpkg's, apt's and systemd's own state, logs, caches, ld.so.cache and the passwd/group
# backups (passwd- ...) that useradd/userdel rewrite.
FINGERPRINT = r"""
P='\( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/lib/systemd -o -path /var/log
 -o -path /var/cache -o -path /var/lib/private -o -path /etc/ld.so.cache -o -name '*-'
 -o -path /var/lib/airnode/models \) -prune'
eval "find /etc /usr/local /opt /var/lib /usr/share/ollama -xdev $P -o -printf '%y %p %l\n'" \
  2>/dev/null | sort
eval "find /etc /usr/local /opt /var/lib /usr/share/ollama -xdev $P -o -type f -print0" \
  2>/dev/null | sort -z | xargs -0 -r sha256sum
dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\n' | grep ' ii' | sort
systemctl list-unit-files --no-legend --no-pager | sort
for u in docker.service containerd.service airnode-zram.service k0scontroller.service; do
  echo "$u $(systemctl is-active $u)"; done
awk '{print $1, $2}' /proc/swaps
sysctl vm.swappiness vm.page-cluster net.ipv4.ip_forward
for m in zram br_netfilter overlay; do grep -q "^$m " /proc/modules && echo "module $m"; done
true
"""


@pytest.fixture(scope="module")
def life(node, tmp_path_factory):
    node.sh(
        "dd if=/dev/zero of=/swapfile bs=1M count=64 status=none && chmod 600 /swapfile"
        " && mkswap -q /swapfile && swapon /swapfile"
    )
    node.sh(f"printf '%s\\n# a line of the site, kept as is\\n' '{SWAP_LINE}' >> /etc/fstab")
    node.sh(
        "printf '[Service]\\nExecStart=/bin/sleep infinity\\n[Install]\\n"
        "WantedBy=multi-user.target\\n' > /etc/systemd/system/docker.service && "
        "systemctl daemon-reload && systemctl enable -q --now docker.service"
    )
    for path, text in SITE_FILES.items():
        node.sh(f"mkdir -p {path.rsplit('/', 1)[0]} && printf %s {shlex.quote(text)} > {path}")
    work = tmp_path_factory.mktemp("life")
    models = {"tiny:1": tiny_llama(work / "m.gguf").read_bytes()}
    newer = [bumped_deb(d, "+airnode1", work / "debs") for d in debian_debs()]
    with Registry(work / "registry") as reg:
        ref = reg.push_layout(busybox_layout(work / "layout", tag="1"), "1", "airnode/busybox:1")
        make_runtime_bundle(work / "base", ref, reg.host, models=models)
        make_runtime_bundle(
            work / "upgrade",
            ref,
            reg.host,
            models=models,
            k0s_version="v1.36.4+k0s.0",  # the stand-in under a next patch tag
            kp_version="v0.18.1",
            debs=newer,
        )
    return {"before": node.sh(FINGERPRINT), "base": work / "base", "upgrade": work / "upgrade"}


def run(node, life, which="base", *extra, label=""):
    return node.deploy("--data", f"bundle_dir={life[which]}", *SETTINGS, *extra, label=label)


def killed(node, life, fragment, *extra, delay=0.0, which="base"):
    return node.deploy_killed_at(
        fragment, "--data", f"bundle_dir={life[which]}", *SETTINGS, *extra, delay=delay
    )


def pid(node, unit):
    return node.sh(f"systemctl show -p MainPID --value {unit}").strip()


def test_a_first_deploy_killed_at_three_points_still_completes(node, life):
    # each run is cut where the previous one would have gone on; the next one picks up (the
    # models' seeding is no longer one: its files are each written whole and renamed, and a
    # cut upload's resume has its own test)
    killed(node, life, "Offline bundle | Upload kube-prometheus", delay=0.3)
    killed(node, life, "containerd | Restart containerd")
    killed(node, life, "Model server (StatefulSet) | Wait for the rollout")
    done = run(node, life, label="deploy after three cut runs")
    assert done.rc == 0, done.stderr[-3000:]
    assert "healthy, 1 model(s) listed" in done.stderr
    assert run(node, life, label="deploy after three cut runs: second pass").changed == []
    assert (
        node.sh("systemctl is-active containerd k0scontroller airnode-zram").split()
        == ["active"] * 3
    )
    assert "/swapfile" not in node.sh("cat /proc/swaps")


def test_a_run_cut_between_a_zram_change_and_the_re_create_re_creates_next_time(node, life):
    change = ("--data", "zram_fraction=0.25")
    killed(node, life, "zram swap | Re-create zram device", *change)
    again = run(node, life, "base", *change)
    assert again.rc == 0, again.stderr[-3000:]
    assert "zram swap | Re-create zram device (unit changed)" in again.changed
    mem_mb = round(int(node.sh("awk '/^MemTotal:/ {print $2}' /proc/meminfo")) / 1024)
    assert int(node.sh("cat /sys/block/zram0/disksize")) == zram_size_bytes(mem_mb, 0.25, 8192)
    assert run(node, life, "base", *change).changed == []


def test_a_run_cut_before_the_containerd_restart_restarts_next_time(node, life):
    change = (
        "--data",
        "zram_fraction=0.25",
        "--data",
        "containerd_sandbox_image=registry.k8s.io/pause:3.9",
    )
    before = pid(node, "containerd")
    killed(node, life, "containerd | Restart containerd", *change)
    assert 'sandbox_image = "registry.k8s.io/pause:3.9"' in node.sh(
        "cat /etc/containerd/config.toml"
    )
    assert pid(node, "containerd") == before  # the file changed, the daemon did not
    again = run(node, life, "base", *change)
    assert again.rc == 0, again.stderr[-3000:]
    assert "containerd | Restart containerd (installed or config changed)" in again.changed
    assert pid(node, "containerd") != before
    assert 'sandbox_image = "registry.k8s.io/pause:3.9"' in node.sh("containerd config dump")


# Where the three tests above leave the settings; the upgrade keeps them.
SETTLED = (
    "--data",
    "zram_fraction=0.25",
    "--data",
    "containerd_sandbox_image=registry.k8s.io/pause:3.9",
    "--data",
    "k0s_network_provider=calico",
)


def test_a_run_cut_before_the_k0s_restart_restarts_and_waits_next_time(node, life):
    change = SETTLED
    before = pid(node, "k0scontroller")
    killed(node, life, "k0s | Restart k0s", *change)
    assert pid(node, "k0scontroller") == before
    again = run(node, life, "base", *change)
    assert again.rc == 0, again.stderr[-3000:]
    assert "k0s | Restart k0s (binary, flags or config changed)" in again.changed
    assert any(n.startswith("k0s | Wait until the node is Ready") for n in again.changed)
    assert pid(node, "k0scontroller") != before
    assert run(node, life, "base", *change).changed == []


def test_an_upgrade_of_k0s_containerd_and_kube_prometheus_changes_just_those(node, life):
    k0s_pid, ctd_pid = pid(node, "k0scontroller"), pid(node, "containerd")
    up = run(
        node, life, "upgrade", *SETTLED, label="deploy: k0s, containerd, kube-prometheus upgrade"
    )
    assert up.rc == 0, up.stderr[-3000:]
    changed = up.changed
    assert "k0s | Install k0s v1.36.4+k0s.0 to /usr/local/bin/k0s" in changed
    assert "k0s | Restart k0s (binary, flags or config changed)" in changed
    assert any(
        n.startswith("containerd | Install containerd 1.6.20~ds1-1+deb12u3+airnode1")
        for n in changed
    ), changed
    assert "containerd | Restart containerd (installed or config changed)" in changed
    assert (
        "kube-prometheus | Apply kube-prometheus v0.18.1 (server-side): setup, CRDs "
        "Established, the rest" in changed
    )
    steps = {n.split(" | ")[0] for n in changed}
    assert steps <= {
        "Offline bundle",
        "containerd",
        "Images into containerd",
        "k0s",
        "kube-prometheus",
    }, steps
    assert node.sh("k0s version").strip() == "v1.36.4+k0s.0"
    assert "+airnode1" in node.sh("dpkg-query -W -f='${Version}' containerd")
    assert pid(node, "k0scontroller") != k0s_pid and pid(node, "containerd") != ctd_pid
    assert run(node, life, "upgrade", *SETTLED).changed == []


def test_teardown_puts_the_host_back_and_keeps_the_model_store(node, life):
    store = node.sh("find /var/lib/airnode/models -type f | sort | xargs sha256sum")
    # the bundle went there, but not its models: they went straight into the store
    assert node.sh(f"ls {SITE_DIR}").split() != ["README.site", "models"]
    assert node.sh(f"ls {SITE_DIR}/models").split() == ["keep-me.txt"]
    run_ = node.deploy(*SETTINGS, deploy="deploys/teardown.py", label="teardown")
    assert run_.rc == 0, run_.stderr[-3000:]
    assert node.sh("find /var/lib/airnode/models -type f | sort | xargs sha256sum") == store
    after = node.sh(FINGERPRINT).splitlines()
    before = life["before"].splitlines()
    kept = [
        line
        for line in sorted(set(after) ^ set(before))
        if not any(
            k in line
            for k in (
                "/var/lib/airnode",
                "/usr/share/ollama",
                "/etc/passwd",
                "/etc/group",
                "/etc/shadow",
                "/etc/gshadow",
            )
        )
    ]
    assert kept == [], "\n".join(kept)
    assert "/swapfile" in node.sh("cat /proc/swaps")
    assert node.sh("systemctl is-active docker").strip() == "active"
    # the site's directory and its files are all there, and nothing airnode shipped into it
    for path, text in SITE_FILES.items():
        assert node.sh(f"cat {path}") == text
    assert node.sh(f"find {SITE_DIR} | sort").split() == sorted(
        [SITE_DIR, f"{SITE_DIR}/models", *SITE_FILES]
    )


def test_a_second_teardown_changes_nothing_and_a_purge_leaves_no_trace(node, life):
    assert node.deploy(*SETTINGS, deploy="deploys/teardown.py").changed == []
    purged = node.deploy(*SETTINGS, *PURGE, deploy="deploys/teardown.py", label="teardown (purge)")
    assert purged.rc == 0, purged.stderr[-3000:]
    after = node.sh(FINGERPRINT).splitlines()
    diff = sorted(set(after) ^ set(life["before"].splitlines()))
    assert diff == [], "\n".join(diff)
