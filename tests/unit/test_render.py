from airnode.render import render


def zram_unit(**over):
    values = dict(size_bytes=1029701632, size_mib=982, algorithm="zstd", priority=100)
    values.update(over)
    return render("airnode-zram.service.j2", **values)


def directives(text):
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_zram_unit_is_a_oneshot_that_creates_and_tears_down_the_device():
    d = directives(zram_unit())
    assert "Type=oneshot" in d and "RemainAfterExit=yes" in d
    assert "ExecStart=zramctl /dev/zram0 --algorithm zstd --size 1029701632" in d
    assert d.index("ExecStartPre=modprobe zram") < d.index("ExecStartPre=udevadm settle")
    assert "ExecStart=swapon --priority 100 /dev/zram0" in d
    assert d.index("ExecStop=swapoff /dev/zram0") < d.index(
        "ExecStop=sh -c 'echo 1 > /sys/block/zram0/reset'"
    )
    assert "WantedBy=multi-user.target" in d
    before = next(x for x in d if x.startswith("Before="))
    assert "containerd.service" in before and "k0scontroller.service" in before


def test_zram_unit_changes_with_size_and_algorithm_only():
    base = zram_unit()
    assert zram_unit() == base  # deterministic: no timestamps
    assert (
        zram_unit(
            algorithm="lzo-rle",
        )
        != base
    )
    assert "--algorithm lzo-rle" in zram_unit(algorithm="lzo-rle")
    assert zram_unit(size_bytes=2 * 1029701632, size_mib=1964) != base


def test_sysctl_conf():
    text = render("sysctl.conf.j2", step="kernel", settings={"b.y": 1, "a.x": 0})
    assert directives(text) == ["a.x = 0", "b.y = 1"]


def test_modules_load_conf():
    text = render("modules-load.conf.j2", step="kernel", modules=("br_netfilter", "overlay"))
    assert directives(text) == ["br_netfilter", "overlay"]


def test_k0s_config_is_an_air_gapped_cluster_config():
    import yaml

    cfg = yaml.safe_load(
        render(
            "k0s.yaml.j2",
            network_provider="kuberouter",
            pull_policy="Never",
            node_ports_on_lan=False,
        )
    )
    assert cfg["kind"] == "ClusterConfig" and cfg["apiVersion"] == "k0s.k0sproject.io/v1beta1"
    assert cfg["spec"]["images"]["default_pull_policy"] == "Never"
    assert cfg["spec"]["telemetry"]["enabled"] is False
    assert cfg["spec"]["network"]["provider"] == "kuberouter"
    # the kubelet's cgroup driver matches containerd's SystemdCgroup = true (containerd < 2.0
    # does not tell the kubelet), through k0s's default worker profile
    assert cfg["spec"]["workerProfiles"] == [
        {"name": "default", "values": {"cgroupDriver": "systemd"}}
    ]


def test_k0s_yaml_keeps_node_ports_on_127_0_0_1_unless_opened_to_the_lan():
    import yaml

    from airnode.render import render

    def network(lan):
        return yaml.safe_load(
            render(
                "k0s.yaml.j2",
                network_provider="kuberouter",
                pull_policy="Never",
                node_ports_on_lan=lan,
            )
        )["spec"]["network"]

    assert network(False) == {
        "provider": "kuberouter",
        "kubeProxy": {"nodePortAddresses": ["127.0.0.0/8"]},
    }
    assert network(True) == {"provider": "kuberouter"}
