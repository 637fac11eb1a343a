"""Ollama on a node, the pure parts: tarball layouts (unpacked for real with tar/zstd here),
model names and the store layout, which models need seeding, the ollama user's ids, the
server's environment."""

from __future__ import annotations

import json
import subprocess

import pytest

from airnode import ollama
from airnode.steps import node_defaults
from tests.upstream import ollama_tarball, tar_bytes

DEFAULTS = node_defaults()  # the model server's settings with Ollama's


@pytest.mark.parametrize("version, kind", [("v0.13.5", ".tgz"), ("v0.14.1", ".tar.zst")])
def test_both_release_layouts_unpack_into_their_version_directory(tmp_path, version, kind):
    name = f"ollama-linux-amd64{kind}"
    (tmp_path / name).write_bytes(ollama_tarball(version))
    assert ollama.tarball_kind(name) == kind
    script = ollama.install_script(str(tmp_path / name), "ab" * 32, str(tmp_path / "opt"), version)
    subprocess.run(["sh", "-c", script], check=True)
    d = tmp_path / "opt" / version
    assert (d / "bin" / "ollama").stat().st_mode & 0o111
    assert (d / "lib" / "ollama" / "libggml-base.so").is_file()
    assert (d / ".airnode-sha256").read_text().strip() == "ab" * 32
    assert not (tmp_path / "opt" / f"{version}.tmp").exists()
    # the double's version is baked in, as upstream's binary carries its own
    assert f'VERSION = "{version}"' in (d / "bin" / "ollama").read_text()


def test_a_tarball_without_bin_ollama_fails_and_leaves_no_version_behind(tmp_path):
    (tmp_path / "x.tgz").write_bytes(tar_bytes({"README": b"not ollama"}, gz=True))
    r = subprocess.run(
        [
            "sh",
            "-c",
            ollama.install_script(
                str(tmp_path / "x.tgz"), "0" * 64, str(tmp_path / "opt"), "v9.9.9"
            ),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0
    assert "no executable bin/ollama in the tarball" in r.stderr
    assert not (tmp_path / "opt" / "v9.9.9").exists()


def test_tarball_kind_refuses_other_files():
    with pytest.raises(ValueError, match="not an Ollama release tarball"):
        ollama.tarball_kind("ollama-linux-amd64.zip")
    assert (
        ollama.extract_command("/b/o.tar.zst", "/d")
        == "zstd -dc /b/o.tar.zst | tar -x --no-same-owner --no-same-permissions -C /d"
    )
    # as root, GNU tar keeps the archive's owners and permission bits unless told not to
    assert (
        ollama.extract_command("/b/o.tgz", "/d")
        == "tar -xz --no-same-owner --no-same-permissions -f /b/o.tgz -C /d"
    )


@pytest.mark.parametrize(
    "name, path",
    [
        ("smollm2:135m", "/s/manifests/registry.ollama.ai/library/smollm2/135m"),
        ("llama3", "/s/manifests/registry.ollama.ai/library/llama3/latest"),
        ("me/my-model:q4_0", "/s/manifests/registry.ollama.ai/me/my-model/q4_0"),
    ],
)
def test_model_names_map_to_ollamas_manifest_paths(name, path):
    assert ollama.manifest_path("/s", name) == path


@pytest.mark.parametrize("bad", ["Llama3", "a b", "../x", "x:", ":tag", "a/b/c:1", ""])
def test_bad_model_names_are_refused_with_the_rule(bad):
    with pytest.raises(ValueError, match=r"\[namespace/\]model\[:tag\]"):
        ollama.split_name(bad)


def manifest(gguf_sha: str) -> str:
    return json.dumps(
        {
            "schemaVersion": 2,
            "config": {"digest": "sha256:" + "c" * 64, "size": 1},
            "layers": [
                {
                    "mediaType": "application/vnd.ollama.image.template",
                    "digest": "sha256:" + "d" * 64,
                    "size": 9,
                },
                {"mediaType": ollama.MODEL_MEDIA_TYPE, "digest": f"sha256:{gguf_sha}", "size": 100},
            ],
        }
    )


def test_models_to_seed_are_those_missing_changed_or_with_a_damaged_blob():
    a, b, c = ("a" * 64, "b" * 64, "e" * 64)
    models = [
        {"name": "one:1", "sha256": a, "size": 100},
        {"name": "two:1", "sha256": b, "size": 100},
        {"name": "three:1", "sha256": c, "size": 100},
        {"name": "four:1", "sha256": a, "size": 100},
    ]
    manifests = {
        "one:1": manifest(a),  # present, same digest: left alone
        "two:1": manifest(a),  # points at another GGUF: re-create
        "three:1": manifest(c),  # blob is short: re-create
        "four:1": None,
    }  # no manifest
    blobs = {f"sha256-{a}": 100, f"sha256-{c}": 50}
    assert [m["name"] for m in ollama.models_to_seed(models, manifests, blobs)] == [
        "two:1",
        "three:1",
        "four:1",
    ]
    assert ollama.model_digest("not json") is None
    assert ollama.model_digest(manifest(a)) == a


def test_the_store_listing_round_trips_through_its_parser():
    cmd = ollama.store_listing_command("/s", ["tiny:1", "me/x"])
    assert "/s/manifests/registry.ollama.ai/library/tiny/1" in cmd
    assert "/s/manifests/registry.ollama.ai/me/x/latest" in cmd
    text = manifest("a" * 64)
    lines = [
        "@@manifest tiny:1",
        *text[:40].split("\n"),
        text[40:],
        "",
        "@@manifest me/x",
        "",
        "@@blobs",
        f"sha256-{'a' * 64} 100",
        "garbage",
    ]
    manifests, blobs = ollama.parse_store_listing(lines)
    assert ollama.model_digest(manifests["tiny:1"]) == "a" * 64
    assert manifests["me/x"] is None
    assert blobs == {f"sha256-{'a' * 64}": 100}


def test_the_ollama_user_gets_the_ids_useradd_would_pick():
    users, groups = ollama.parse_ids(
        [
            "root:x:0:0:root:/root:/bin/bash",
            "systemd-network:x:998:998::/:/usr/sbin/nologin",
            "@@group",
            "root:x:0:",
            "systemd-journal:x:999:",
        ]
    )
    assert users == {"root": 0, "systemd-network": 998} and groups["systemd-journal"] == 999
    assert ollama.pick_system_id(set(users.values()), set(groups.values())) == 997
    with pytest.raises(ValueError, match="no free system uid/gid"):
        ollama.pick_system_id(set(range(100, 1000)), set())


def test_server_environment_comes_from_the_settings():
    env = ollama.server_env(
        {
            **DEFAULTS,
            "ollama_keep_alive": "-1",
            "ollama_num_parallel": 2,
            "ollama_flash_attention": True,
            "ollama_extra_env": {"OLLAMA_DEBUG": 1},
        }
    )
    assert env == {
        "OLLAMA_KEEP_ALIVE": "-1",
        "OLLAMA_NUM_PARALLEL": "2",
        "OLLAMA_MAX_LOADED_MODELS": "1",
        "OLLAMA_CONTEXT_LENGTH": "4096",
        "OLLAMA_FLASH_ATTENTION": "1",
        "OLLAMA_KV_CACHE_TYPE": "f16",
        "OLLAMA_NOPRUNE": "1",
        "OLLAMA_DEBUG": "1",
    }


def test_seed_script_binds_127_0_0_1_and_always_stops_its_server():
    script = ollama.seed_script(
        "/opt/o/current/bin/ollama",
        "/var/lib/airnode/models",
        11435,
        60,
        [("tiny:1", "/m/tiny_1.Modelfile")],
    )
    assert "--setenv=OLLAMA_HOST=127.0.0.1:11435" in script
    assert "--uid=ollama" in script and "--setenv=OLLAMA_NOPRUNE=1" in script
    assert "trap 'systemctl stop airnode-ollama-seed.service" in script
    assert "/opt/o/current/bin/ollama create tiny:1 -f /m/tiny_1.Modelfile" in script
    r = subprocess.run(["sh", "-n", "-c", script])  # POSIX sh syntax (dash on Debian)
    assert r.returncode == 0


def test_modelfile_names_the_bundles_gguf():
    assert ollama.modelfile("/b/models/x.gguf").endswith("FROM /b/models/x.gguf\n")
    assert ollama.modelfile_name("me/x:1") == "me_x_1.Modelfile"


def test_only_directories_airnode_unpacked_are_listed_for_removal(tmp_path):
    base = tmp_path / "ollama"
    for d in ("v0.13.5", "v0.14.1", "v0.15.0.tmp", "somebody-elses"):
        (base / d).mkdir(parents=True)
    for d in ("v0.13.5", "v0.14.1"):
        (base / d / ".airnode-sha256").write_text("x")
    (base / "current").symlink_to("v0.14.1")  # the link is never a version to remove
    out = subprocess.run(
        ["sh", "-c", ollama.versions_command(str(base))], capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(out) == ["v0.13.5", "v0.14.1", "v0.15.0.tmp"]
    assert (
        subprocess.run(
            ["sh", "-c", ollama.versions_command(str(tmp_path / "none"))],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        == ""
    )


def test_a_gguf_stored_as_another_layer_type_counts_as_present():
    sha = "f" * 64
    projector = json.dumps(
        {
            "layers": [
                {
                    "mediaType": "application/vnd.ollama.image.projector",
                    "digest": f"sha256:{sha}",
                    "size": 7,
                }
            ]
        }
    )
    model = {"name": "vision:1", "sha256": sha, "size": 7}
    assert ollama.models_to_seed([model], {"vision:1": projector}, {f"sha256-{sha}": 7}) == []


def test_flash_attention_auto_leaves_the_variable_unset():
    env = ollama.server_env({**DEFAULTS})
    assert "OLLAMA_FLASH_ATTENTION" not in env
    assert (
        ollama.server_env({**DEFAULTS, "ollama_flash_attention": False})["OLLAMA_FLASH_ATTENTION"]
        == "0"
    )
