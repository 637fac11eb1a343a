import pytest

from airnode.preflight import HostFacts, check_host, kernel_version, parse_profile

PROFILE = """\
arch=x86_64
kernel=6.1.0-50-amd64
systemd=yes
mem_kb=2011588
module:zram available
module:br_netfilter loaded
module:overlay builtin
os-release:PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
os-release:ID=debian
os-release:VERSION_ID="12"
""".splitlines()


def good() -> HostFacts:
    return parse_profile(PROFILE)


def test_parse_profile():
    f = good()
    assert (f.arch, f.kernel, f.systemd, f.memory_mb) == ("x86_64", "6.1.0-50-amd64", True, 1964)
    assert f.os_release["ID"] == "debian"
    assert f.os_release["PRETTY_NAME"] == "Debian GNU/Linux 12 (bookworm)"
    assert f.modules == {"zram": "available", "br_netfilter": "loaded", "overlay": "builtin"}


def test_supported_host_has_no_problems():
    assert check_host(good(), 1024, 180) == []


def test_ubuntu_and_derivatives_are_supported():
    f = good()
    f.os_release = {"ID": "linuxmint", "ID_LIKE": "ubuntu debian"}
    assert check_host(f, 1024, 100) == []


@pytest.mark.parametrize(
    "change, expected",
    [
        (dict(arch="riscv64"), "architecture 'riscv64' is not supported"),
        (
            dict(os_release={"ID": "fedora", "PRETTY_NAME": "Fedora 41"}),
            "'Fedora 41' is not Debian",
        ),
        (dict(systemd=False), "systemd is not the init system"),
        (dict(memory_mb=700), "memory 700 MiB is below preflight_min_memory_mb = 1024"),
        (
            dict(modules={"zram": "missing", "br_netfilter": "loaded", "overlay": "loaded"}),
            "kernel module 'zram' is not available",
        ),
        (dict(kernel="5.4.0-150-generic"), "zram_swappiness = 180 needs kernel >= 5.8"),
    ],
)
def test_each_problem_is_named(change, expected):
    f = good()
    for k, v in change.items():
        setattr(f, k, v)
    problems = check_host(f, 1024, 180)
    assert len(problems) == 1 and expected in problems[0]


def test_all_problems_at_once():
    f = good()
    f.arch, f.systemd = "mips", False
    assert len(check_host(f, 1024, 180)) == 2


@pytest.mark.parametrize(
    "release, version",
    [
        ("6.1.0-50-amd64", (6, 1)),
        ("5.15.0-1034-raspi", (5, 15)),
        ("4.19.0", (4, 19)),
        ("6.8.0-rc1", (6, 8)),
        ("6", (6, 0)),
    ],
)
def test_kernel_version(release, version):
    assert kernel_version(release) == version
