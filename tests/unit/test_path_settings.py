"""Path settings name directories airnode chowns, fills and - when it made them - removes: the
rules refuse system and home directories, mount roots and overlapping settings, naming the key,
the value and what is allowed, before any change."""

from __future__ import annotations

import pytest

from airnode import config, steps

PATH_KEYS = (
    "bundle_remote_dir",
    "model_server_store_dir",
    "open_webui_data_dir",
    "ollama_install_dir",
)
REFUSED = [
    "/var/lib",
    "/home/admin",
    "/home/admin/models",
    "/root/airnode",
    "/mnt/usb",
    "/media/stick",
    "/etc/ssh",
    "/usr/local/airnode",
    "/tmp/airnode",
    "/var/lib/k0s/x",
    "/var/lib/containerd/models",
    "/var/lib/dpkg/x",
    "/var/log/airnode",
    "/opt",
    "/srv",
    "/var/lib/airnode",
    "/var/lib/airnode/../../etc",
    "/boot/efi",
    "/proc/1",
    "/",
    "relative/path",
    "/srv/air node",
    "/srv/$(id)",
]
ALLOWED = [
    "/var/lib/airnode/bundle",
    "/var/lib/airnode/models",
    "/srv/airnode",
    "/mnt/usb/airnode-bundle",
    "/opt/airnode/ollama",
    "/data/models",
    "/var/lib/ollama",
]


@pytest.mark.parametrize("key", PATH_KEYS)
@pytest.mark.parametrize("value", REFUSED)
def test_system_home_and_mount_root_directories_are_refused(key, value):
    with pytest.raises(config.SettingError) as e:
        steps.check({key: value})
    assert str(e.value).startswith(f"{key} = {value!r} is not allowed: ")
    assert "outside system and home directories" in str(e.value)


@pytest.mark.parametrize("key", PATH_KEYS)
@pytest.mark.parametrize("value", ALLOWED)
def test_directories_of_their_own_are_allowed(key, value):
    assert steps.check({key: value}) == {key: value}


DEFAULTS = {
    "bundle_remote_dir": "/var/lib/airnode/bundle",
    "model_server_store_dir": "/var/lib/airnode/models",
    "open_webui_data_dir": "/var/lib/airnode/open-webui",
    "ollama_install_dir": "/opt/airnode/ollama",
    "open_webui": True,
}


def test_the_defaults_do_not_overlap():
    assert config.path_overlaps(DEFAULTS) == []


@pytest.mark.parametrize(
    "change, pair",
    [
        (
            {"bundle_remote_dir": "/srv/airnode", "model_server_store_dir": "/srv/airnode/models"},
            "bundle_remote_dir = '/srv/airnode' and model_server_store_dir = '/srv/airnode/models' "
            "overlap",
        ),
        (
            {"open_webui_data_dir": "/var/lib/airnode/models/webui"},
            "model_server_store_dir = '/var/lib/airnode/models' and open_webui_data_dir = "
            "'/var/lib/airnode/models/webui' overlap",
        ),
        ({"model_server_store_dir": "/srv/m", "bundle_remote_dir": "/srv/m"}, "overlap"),
        ({"ollama_install_dir": "/var/lib/airnode/bundle/ollama"}, "ollama_install_dir"),
    ],
)
def test_overlapping_path_settings_are_refused_together(change, pair):
    problems = config.path_overlaps({**DEFAULTS, **change})
    assert len(problems) == 1 and pair in problems[0]
    assert "give each a directory of its own" in problems[0]


def test_open_webuis_directory_counts_only_when_open_webui_is_on():
    off = {**DEFAULTS, "open_webui": False, "open_webui_data_dir": "/var/lib/airnode/models/w"}
    assert config.path_overlaps(off) == []


@pytest.mark.parametrize(
    "flags",
    [
        ["--force"],
        ["--force=true"],
        ["--debug", "--force=1"],
        ["--labels=a b"],
        ["--x=$(id)\n"],
        ["-f"],
    ],
)
def test_k0s_extra_install_flags_refuse_force_in_any_spelling(flags):
    with pytest.raises(config.SettingError, match="without --force"):
        steps.check({"k0s_extra_install_flags": flags})


def test_k0s_extra_install_flags_take_plain_flags():
    flags = ["--debug", "--labels=airnode.io/role=llm", "--kubelet-extra-args=--max-pods=50"]
    assert steps.check({"k0s_extra_install_flags": flags})["k0s_extra_install_flags"] == flags
