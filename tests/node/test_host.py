"""Host preparation: swap, zram, kernel modules and sysctls, hostname."""


def test_no_disk_swap_is_active(host):
    swaps = host.file("/proc/swaps").content_string.splitlines()[1:]
    disk = [line.split()[0] for line in swaps if not line.startswith("/dev/zram")]
    assert disk == [], f"disk swap still active: {disk}"


def test_zram_swap_is_active_with_top_priority(host):
    swaps = [line.split() for line in host.file("/proc/swaps").content_string.splitlines()[1:]]
    zram = [s for s in swaps if s[0].startswith("/dev/zram")]
    assert zram, "no zram swap active"
    assert int(zram[0][4]) >= 100
    unit = host.service("airnode-zram.service")
    assert unit.is_enabled and unit.is_running


def test_fstab_has_no_active_disk_swap_line(host):
    for line in host.file("/etc/fstab").content_string.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "swap" and not fields[0].startswith("#"):
            assert fields[0].startswith("/dev/zram"), f"active swap line in fstab: {line}"


def test_kubernetes_kernel_modules_are_loaded_and_persisted(host):
    for module in ("br_netfilter", "overlay"):
        assert host.run(f"grep -q '^{module} ' /proc/modules").rc == 0, f"{module} not loaded"
    conf = host.file("/etc/modules-load.d/airnode-kubernetes.conf").content_string
    assert "br_netfilter" in conf and "overlay" in conf


def test_kubernetes_sysctls_are_set(host):
    for key in (
        "net.ipv4.ip_forward",
        "net.bridge.bridge-nf-call-iptables",
        "net.bridge.bridge-nf-call-ip6tables",
    ):
        assert host.sysctl(key) == 1, key


def test_the_hostname_resolves_locally(host):
    name = host.check_output("uname -n")
    assert host.run(f"getent hosts {name}").rc == 0
