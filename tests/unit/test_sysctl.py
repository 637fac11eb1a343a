from airnode import sysctl


def test_changes_include_missing_and_different_values():
    current = {"net.ipv4.ip_forward": 0, "vm.swappiness": 180}
    wanted = {
        "net.ipv4.ip_forward": 1,
        "vm.swappiness": 180,
        "net.bridge.bridge-nf-call-iptables": 1,
    }
    assert sysctl.changes(current, wanted) == {
        "net.ipv4.ip_forward": 1,
        "net.bridge.bridge-nf-call-iptables": 1,
    }
    assert sysctl.changes(wanted, wanted) == {}


def test_command():
    assert sysctl.command({"b": 1, "a": 0}) == "sysctl -q -w a=0 b=1"
