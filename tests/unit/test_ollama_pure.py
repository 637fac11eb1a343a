"""Ollama on a node, the pure parts: tarball layouts (unpacked for real with tar/zstd here),
model names and the store layout, which models need seeding, the ollama user's ids, the
server's environment."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from airnode import ollama, scripts
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
    # the stand-in is a zipapp (tests/upstream.py python_binary), its source stored as it is
    assert f'VERSION = "{version}"'.encode() in (d / "bin" / "ollama").read_bytes()


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


def manifest(gguf_sha: str, config: str = "c" * 64) -> str:
    return json.dumps(
        {
            "schemaVersion": 2,
            "config": {"digest": "sha256:" + config, "size": 1},
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
        "four:1": None,  # no manifest
        "five:1": manifest(a, config="9" * 64),  # its config blob is gone: Ollama says 404
    }
    models.append({"name": "five:1", "sha256": a, "size": 100})
    blobs = {
        f"sha256-{a}": 100,
        f"sha256-{c}": 50,
        f"sha256-{'c' * 64}": 1,
        f"sha256-{'d' * 64}": 9,
    }
    assert [m["name"] for m in ollama.models_to_seed(models, manifests, blobs)] == [
        "two:1",
        "three:1",
        "four:1",
        "five:1",
    ]
    del blobs[f"sha256-{'d' * 64}"]  # a layer's blob gone (its template): registered again
    assert "one:1" in [m["name"] for m in ollama.models_to_seed(models, manifests, blobs)]
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


@pytest.mark.parametrize(
    "n, shown",
    # ollama/ollama format/format.go HumanNumber, and SmolLM2-135M's parameter count
    [(0, "0"), (999, "999"), (1000, "1K"), (1_000_000, "1M"), (125_700_000, "125.70M"),
     (134_515_008, "134.52M"), (1_000_000_000, "1B"), (2_500_000_000, "2.5B"),
     (7_000_000_000, "7B")],
)  # fmt: skip
def test_parameter_counts_read_as_ollama_shows_them(n, shown):
    assert ollama.human_number(n) == shown


def test_a_registration_is_what_create_writes_around_the_gguf():
    m = {"name": "tiny:1", "sha256": "a" * 64, "size": 1234}
    r = ollama.registration(m, "llama", 134_515_008, 7)
    cfg_digest, cfg = r.blobs[0]
    config = json.loads(cfg)
    assert config == {
        "model_format": "gguf",
        "model_family": "llama",
        "model_families": ["llama"],
        "model_type": "134.52M",
        "file_type": "Q8_0",
        "architecture": "amd64",
        "os": "linux",
    }
    assert len(r.blobs) == 1 and r.manifest_path == "registry.ollama.ai/library/tiny/1"
    man = json.loads(r.manifest)
    assert man["config"] == {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "digest": f"sha256:{cfg_digest}",
        "size": len(cfg),
    }
    assert man["layers"] == [
        {"mediaType": ollama.MODEL_MEDIA_TYPE, "digest": f"sha256:{'a' * 64}", "size": 1234}
    ]
    assert ollama.model_digest(r.manifest.decode()) == "a" * 64
    # F32 (0) and a value Ollama does not name read as it shows them
    assert json.loads(ollama.registration(m, "llama", 5, 0).blobs[0][1])["file_type"] == "unknown"
    assert json.loads(ollama.registration(m, "x", 5, 99).blobs[0][1])["file_type"] == "unknown"


def test_architectures_create_renders_itself_get_its_renderer_parser_and_stop_words():
    m = {"name": "me/g4", "sha256": "b" * 64, "size": 9}
    r = ollama.registration(m, "gemma4", 10, 15)
    config = json.loads(r.blobs[0][1])
    assert (config["renderer"], config["parser"]) == ("gemma4", "gemma4")
    params_digest, params = r.blobs[1]
    assert json.loads(params) == {"stop": ["<turn|>"]}
    layers = json.loads(r.manifest)["layers"]
    assert layers[1] == {
        "mediaType": "application/vnd.ollama.image.params",
        "digest": f"sha256:{params_digest}",
        "size": len(params),
    }
    assert r.manifest_path == "registry.ollama.ai/me/g4/latest"
    nemo = json.loads(ollama.registration(m, "nemotron_h_moe", 10, 15).blobs[0][1])
    assert nemo["renderer"] == nemo["parser"] == "nemotron-3-nano"


def register(store, args):
    owner = f"{os.getuid()}:{os.getgid()}"
    return subprocess.run(
        ["sh", "-c", scripts.ollama_register(str(store), owner, args)],
        capture_output=True,
        text=True,
    )


def test_the_register_script_puts_blobs_then_manifests_in_place(tmp_path):
    regs = [
        ollama.registration({"name": n, "sha256": "a" * 64, "size": 3}, "llama", 10, 2)
        for n in ("tiny:1", "me/other")
    ]
    r = register(tmp_path, ollama.register_args(regs))
    assert r.returncode == 0, r.stderr
    for reg in regs:
        path = tmp_path / "manifests" / reg.manifest_path
        assert path.read_bytes() == reg.manifest
        assert oct(path.stat().st_mode)[-3:] == "644"
        digest, data = reg.blobs[0]
        assert (tmp_path / "blobs" / f"sha256-{digest}").read_bytes() == data
    assert not list(tmp_path.glob(".airnode-register*"))  # the temporary file is gone
    assert oct((tmp_path / "manifests" / "registry.ollama.ai" / "me").stat().st_mode)[-3:] == "755"


@pytest.mark.parametrize(
    "args, error",
    [
        (["blob", "0" * 64, "not that"], "its content has another sha256"),
        (["manifest", "../../etc/x", "{}"], "bad name ../../etc/x"),
        (["manifest", "/etc/x", "{}"], "bad name /etc/x"),
        (["layer", "x/y", "{}"], "unknown kind layer"),
        (["blob", "0" * 64], "arguments come in threes"),
    ],
)
def test_the_register_script_refuses_what_is_not_a_blob_or_manifest(tmp_path, args, error):
    (tmp_path / "store").mkdir()
    r = register(tmp_path / "store", args)
    assert r.returncode != 0 and error in r.stderr
    assert not list((tmp_path / "store" / "blobs").iterdir())
    assert not (tmp_path / "etc").exists() and not (tmp_path / "store" / "manifests").exists()


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


def test_a_clusters_nodes_share_the_ollama_ids():
    from airnode import ollama

    def node(users: dict[str, int], groups: dict[str, int] | None = None):
        return users, groups if groups is not None else dict(users)

    base = {"root": 0, "systemd-network": 998, "sshd": 105}
    # none has it: the highest system id free on every node
    got = ollama.cluster_ids({"c": node(base), "w": node({**base, "etcd": 999})})
    assert got == (997, 997)  # 999 is free on c alone, taken on w
    # one has it: the others take its ids
    assert ollama.cluster_ids({"c": node({**base, "ollama": 990}), "w": node(base)}) == (990, 990)
    with pytest.raises(
        ValueError, match=r"other ids on the nodes of this cluster \(c: 990:990, w: 991:991\)"
    ):
        ollama.cluster_ids({"c": node({**base, "ollama": 990}), "w": node({**base, "ollama": 991})})
    with pytest.raises(
        ValueError, match="w: uid/gid 990:990 of the ollama user on the other nodes is taken there"
    ):
        ollama.cluster_ids({"c": node({**base, "ollama": 990}), "w": node({**base, "kine": 990})})
    # a node with the group and no user: its gid is kept, the uid free on every node (as on one
    # node, where useradd joins the existing group)
    grouped = node(base, {**base, "ollama": 900})
    assert ollama.cluster_ids({"c": grouped, "w": node(base)}) == (999, 900)
    assert ollama.cluster_ids({"c": grouped, "w": node({**base, "ollama": 900})}) == (900, 900)
    with pytest.raises(ValueError, match="c: the ollama group has gid 900 there, the ollama user"):
        ollama.cluster_ids({"c": grouped, "w": node({**base, "ollama": 901})})
    with pytest.raises(
        ValueError, match=r"other gids on the nodes of this cluster \(c: 900, w: 901"
    ):
        ollama.cluster_ids({"c": grouped, "w": node(base, {**base, "ollama": 901})})
    with pytest.raises(
        ValueError, match="w: gid 900 of the ollama group on the other nodes is taken"
    ):
        ollama.cluster_ids({"c": grouped, "w": node(base, {**base, "kine": 900})})


def _run_account(tmp_path, existing: str) -> list[str]:
    """The account commands under sh with getent/groupadd/useradd/usermod/install/chown
    replaced by scripts that log their arguments; ``existing``: 'group', 'user' (and group),
    or '' for a bare host (whose home directory is missing)."""
    import subprocess

    tmp_path = tmp_path / (existing or "bare")
    bin_ = tmp_path / "bin"
    bin_.mkdir(parents=True)
    log = tmp_path / "log"
    for tool in ("groupadd", "useradd", "usermod", "install", "chown"):
        (bin_ / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\n')
    (bin_ / "getent").write_text(
        "#!/bin/sh\n"
        f'case "$1" in group) [ -n "{existing}" ];; passwd) [ "{existing}" = user ];; esac\n'
    )
    for p in bin_.iterdir():
        p.chmod(0o755)
    home = tmp_path / "no-home-yet"
    script = "\n".join(ollama.account_commands(990, 991)).replace(
        f"[ -d {ollama.HOME} ]", f"[ -d {home} ]"
    )
    subprocess.run(["sh", "-e", "-c", script], env={"PATH": f"{bin_}:/usr/bin:/bin"}, check=True)
    return log.read_text().splitlines()


def test_the_ollama_account_is_made_where_missing_and_adjusted_where_not(tmp_path):
    home = ollama.HOME
    assert _run_account(tmp_path, "") == [
        "groupadd --system --gid 991 ollama",
        f"useradd --system --uid 990 --gid 991 --home-dir {home} --create-home --shell /bin/false "
        "ollama",
        f"install -d -m 755 {home}",
        f"chown ollama:ollama {home}",
    ]
    # an existing user (made by hand, or by Ollama's install.sh): given our home, shell, group
    assert _run_account(tmp_path, "user")[:1] == [
        f"usermod --gid 991 --home {home} --shell /bin/false ollama"
    ]
    assert "groupadd" not in " ".join(_run_account(tmp_path, "group"))
