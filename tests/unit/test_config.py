import pytest

from airnode import config
from airnode.steps.preflight import ALL_DEFAULTS, TEARDOWN_DEFAULTS


def test_every_default_has_a_rule_and_passes_it():
    every = {**ALL_DEFAULTS, **TEARDOWN_DEFAULTS}
    assert set(every) == set(config.RULES)
    assert config.check(every) == every


@pytest.mark.parametrize("key, value, allowed", [
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
    ("hosts_address", "10.0.0.1", "loopback"),
    ("containerd_sandbox_image", 'registry.k8s.io/pause:3.10"\nx', "registry/name:tag"),
    ("containerd_sandbox_image", "pause", "registry/name:tag"),
    ("hosts_address", "127.0.0.300", "loopback"),
])
def test_bad_values_name_key_value_and_what_is_allowed(key, value, allowed):
    with pytest.raises(config.SettingError) as e:
        config.check({key: value})
    msg = str(e.value)
    assert msg.startswith(f"{key} = {value!r}")
    assert allowed in msg


@pytest.mark.parametrize("key, value", [
    ("zram_algorithm", "lzo-rle"), ("zram_fraction", 2), ("zram_fraction", 0.01),
    ("zram_max_mb", 0), ("hosts_address", "127.0.0.1"),
])
def test_edge_values_accepted(key, value):
    assert config.check({key: value}) == {key: value}


def test_check_all_reports_every_bad_value():
    errors = config.check_all({"zram_algorithm": "x", "zram_fraction": 3, "zram_max_mb": 1})
    assert sorted(e.key for e in errors) == ["zram_algorithm", "zram_fraction"]


def test_unknown_rule_is_a_programming_error():
    with pytest.raises(KeyError):
        config.check({"no_such_setting": 1})


def test_typos_are_found_with_a_suggestion():
    keys = ["zram_fracton", "zram_fraction", "ssh_port", "_private", "site_name", "zram_bogus"]
    found = config.unknown_keys(keys, ALL_DEFAULTS, ("ssh_",))
    assert "zram_fracton (did you mean zram_fraction?)" in found
    assert "zram_bogus" in found
    assert not any(k.startswith(("zram_fraction ", "ssh_port", "_private", "site_name"))
                   for k in found)
