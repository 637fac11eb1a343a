import pytest

from airnode import config, steps
from airnode.steps import declared, node_defaults

ALL_DEFAULTS = node_defaults()


def test_every_default_has_a_rule_and_passes_it():
    every = {k: s.default for k, s in declared().items()}
    assert set(ALL_DEFAULTS) < set(every)  # and the teardown's
    assert steps.check(every) == every


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("zram_algorithm", "lz5", "one of zstd, lzo-rle"),
        ("zram_fraction", 0, "> 0"),
        ("zram_fraction", -0.5, "> 0"),
        ("zram_fraction", 2.5, "<= 2"),
        ("zram_fraction", "half", "a number"),
        ("zram_fraction", True, "a number"),
        ("zram_max_mb", -1, ">= 0"),
        ("zram_max_mb", 1.5, "an integer"),
        ("zram_swappiness", 201, "<= 200"),
        ("zram_priority", -5, ">= 0"),
        ("hostname_address", "10.0.0.1", "loopback"),
        ("containerd_sandbox_image", 'registry.k8s.io/pause:3.10"\nx', "registry/name:tag"),
        ("containerd_sandbox_image", "pause", "registry/name:tag"),
        ("hostname_address", "127.0.0.300", "loopback"),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(key, value, allowed):
    with pytest.raises(config.SettingError) as e:
        steps.check({key: value})
    msg = str(e.value)
    assert msg.startswith(f"{key} = {value!r}")
    assert allowed in msg


@pytest.mark.parametrize(
    "key, value",
    [
        ("zram_algorithm", "lzo-rle"),
        ("zram_fraction", 2),
        ("zram_fraction", 0.01),
        ("zram_max_mb", 0),
        ("hostname_address", "127.0.0.1"),
    ],
)
def test_edge_values_accepted(key, value):
    assert steps.check({key: value}) == {key: value}


def test_check_all_reports_every_bad_value():
    errors = config.check_all(
        {"zram_algorithm": "x", "zram_fraction": 3, "zram_max_mb": 1}, declared()
    )
    assert sorted(e.key for e in errors) == ["zram_algorithm", "zram_fraction"]


def test_unknown_rule_is_a_programming_error():
    with pytest.raises(KeyError):
        steps.check({"no_such_setting": 1})


def test_typos_are_found_with_a_suggestion():
    keys = ["zram_fracton", "zram_fraction", "ssh_port", "_private", "site_name", "zram_bogus"]
    found = config.unknown_keys(keys, ALL_DEFAULTS, ("ssh_",))
    assert "zram_fracton (did you mean zram_fraction?)" in found
    assert "zram_bogus" in found
    assert not any(
        k.startswith(("zram_fraction ", "ssh_port", "_private", "site_name")) for k in found
    )


@pytest.mark.parametrize(
    "key, value",
    [
        ("ollama_install_dir", "/opt"),  # would own all of /opt
        ("ollama_install_dir", "/opt/air node"),  # a space: never in a shell command
        ("ollama_install_dir", "/opt/airnode/"),  # trailing slash
        ("model_server_store_dir", "/var/lib/airnode"),  # the state directory itself
        ("model_server_store_dir", "/var/lib/k0s/models"),  # wiped by k0s reset
        ("bundle_remote_dir", "/var/lib/airnode//bundle"),
        ("containerd_sandbox_image", "pause"),
        ("model_server_check_url", "ftp://x"),
        ("ollama_flash_attention", "yes"),
    ],
)
def test_paths_and_values_airnode_could_misuse_are_refused(key, value):
    with pytest.raises(config.SettingError):
        steps.check({key: value})


def test_kv_cache_quantization_without_flash_attention_is_refused():
    from airnode.steps.preflight import cross_checks

    values = {**ALL_DEFAULTS, "ollama_kv_cache_type": "q8_0", "ollama_flash_attention": False}
    assert "needs flash attention" in cross_checks(values)[0]
    assert cross_checks({**values, "ollama_flash_attention": "auto"}) == []


def test_the_sandbox_image_is_k0s_own_pause_image_by_default():
    from airnode.containerd import sandbox_image

    k0s = ["quay.io/k0sproject/kube-proxy:v1.34.1", "registry.k8s.io/pause:3.10.1"]
    assert sandbox_image("auto", k0s) == "registry.k8s.io/pause:3.10.1"
    assert sandbox_image("registry.k8s.io/pause:3.9", k0s) == "registry.k8s.io/pause:3.9"
    with pytest.raises(ValueError, match="lists no pause image"):
        sandbox_image("auto", ["quay.io/k0sproject/kube-proxy:v1.34.1"])


@pytest.mark.parametrize("name", ["OLLAMA_HOST", "OLLAMA_MODELS", "OLLAMA_NOPRUNE"])
def test_ollama_extra_env_cannot_override_what_airnode_sets(name):
    # OLLAMA_NOPRUNE=0 would let `ollama serve` prune, at start, llama-server's blobs and
    # anything seeded that no manifest names
    with pytest.raises(config.SettingError, match=name):
        steps.check({"ollama_extra_env": {name: "0"}})
    assert steps.check({"ollama_extra_env": {"OLLAMA_DEBUG": "1"}})
