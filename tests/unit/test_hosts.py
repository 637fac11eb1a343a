from airnode import hosts

STOCK = [
    "127.0.0.1\tlocalhost",
    "::1\t\tlocalhost ip6-localhost ip6-loopback",
    "# 127.0.1.1 node1  (commented out)",
]


def test_commented_lines_do_not_count():
    assert not hosts.hostname_resolves(STOCK, "node1")


def test_any_line_naming_the_host_counts():
    assert hosts.hostname_resolves(STOCK + ["127.0.1.1 node1.lab node1"], "node1")
    assert hosts.hostname_resolves(STOCK + ["192.168.1.5  node1  # static"], "node1")


def test_short_name_alone_does_not_resolve_the_fqdn():
    assert not hosts.hostname_resolves(STOCK + ["127.0.1.1 node1"], "node1.lab")


def test_hosts_line():
    assert hosts.hosts_line("127.0.1.1", "node1") == "127.0.1.1 node1"
    assert hosts.hosts_line("127.0.1.1", "node1.lab") == "127.0.1.1 node1.lab node1"
