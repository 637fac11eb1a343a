"""Model sizing against hand-computed cases, on real GGUF headers."""

from __future__ import annotations

import pytest

from airnode.sizing import (
    MIB,
    OVERHEAD_MIB,
    kv_cache_bytes,
    need_bytes,
    plan,
    read_gguf,
    table,
)
from tests.ggufs import llama3_8b_shaped, smollm2

SMOLLM2 = smollm2()


@pytest.fixture(scope="module")
def smol():
    return read_gguf(SMOLLM2, "smollm2:135m")


def test_real_gguf_header(smol):
    assert (smol.arch, smol.layers, smol.heads, smol.kv_heads, smol.embedding, smol.head_dim) == (
        "llama",
        30,
        9,
        3,
        576,
        64,
    )
    assert smol.quant == "Q4_1" and smol.context_train == 8192
    assert smol.params == 134_515_008  # "135M"
    assert smol.weights_bytes == 96_576_768


def test_kv_cache_by_hand(smol):
    # 2 x 30 layers x 4096 ctx x 3 kv heads x 64 dims x 2 bytes (f16) = 94,371,840 bytes = 90 MiB
    assert kv_cache_bytes(smol, 4096, 1) == 94_371_840
    assert kv_cache_bytes(smol, 4096, 4) == 4 * 94_371_840
    assert kv_cache_bytes(smol, 4096, 1, "q8_0") == 94_371_840 * 34 // 32 // 2


def test_need_by_hand(smol):
    assert need_bytes(smol, 4096, 1) == 96_576_768 + 94_371_840 + OVERHEAD_MIB * MIB


@pytest.fixture(scope="module")
def llama3_8b_shape(tmp_path_factory):
    """A GGUF with Llama-3-8B's attention shape (tiny tensors)."""
    path = llama3_8b_shaped(tmp_path_factory.mktemp("gguf") / "l3.gguf")
    return read_gguf(path, "llama3-shape")


def test_llama3_8b_kv_cache_is_one_gib_per_8k_slot(llama3_8b_shape):
    m = llama3_8b_shape
    assert (m.head_dim, m.kv_heads, m.quant) == (128, 8, "Q8_0")
    # 2 x 32 x 8192 x 8 x 128 x 2 bytes = 1 GiB per slot
    assert kv_cache_bytes(m, 8192, 1) == 1024 * MIB
    assert kv_cache_bytes(m, 8192, 4) == 4096 * MIB
    assert m.weights_bytes == 64 * 32 * 4


def test_plan_says_what_to_change(smol, llama3_8b_shape):
    fits = plan([smol, llama3_8b_shape], memory_mb=4096, reserved_mb=2048, context=8192, parallel=4)
    small, big = fits
    assert small.ok and small.advice == ""
    assert not big.ok and big.available == 2048 * MIB
    assert big.need == 64 * 32 * 4 + 4096 * MIB + OVERHEAD_MIB * MIB
    assert "context 4096 (-2048 MiB)" in big.advice
    assert "3 parallel slot(s) (-1024 MiB)" in big.advice
    assert (
        "OLLAMA_KV_CACHE_TYPE=q8_0" in big.advice and "smaller quantization than Q8_0" in big.advice
    )
    text = table(fits)
    assert text.splitlines()[0].split()[:4] == ["MODEL", "QUANT", "NEEDED", "AVAILABLE"]
    assert "smollm2:135m" in text and "fits" in text and f"{big.need // MIB} MiB" in text


PATHS = ["/var/lib/airnode/bundle", "/var/lib/airnode/models", "/opt/airnode/ollama"]


def test_needs_on_one_filesystem_add_up_and_are_named():
    from airnode.sizing import Need, disk_problems

    df = [
        "/dev/vda1 9437184 /var/lib",
        "/dev/vda1 9437184 /var/lib",
        "/dev/vda1 9437184 /opt",
    ]
    needs = [
        Need(PATHS[0], 3 * MIB, "bundle files"),
        Need(PATHS[1], 4 * MIB, "models"),
        Need(PATHS[2], 0, "Ollama v0.13.5 unpacked"),  # nothing to write: not named
    ]
    assert disk_problems(df, PATHS, needs) == []
    needs.append(Need(PATHS[2], 3 * MIB, "Ollama v0.13.5 unpacked"))
    assert disk_problems(df, PATHS, needs) == [
        "not enough disk on /var/lib (/dev/vda1): bundle files 3.0 MiB + models 4.0 MiB + "
        "Ollama v0.13.5 unpacked 3.0 MiB = 10.0 MiB, 9.0 MiB free"
    ]


def test_needs_on_other_filesystems_are_counted_apart():
    from airnode.sizing import Need, disk_problems

    df = ["/dev/vda1 6291456 /var/lib", "/dev/vdb1 4194304 /srv", "/dev/vda1 6291456 /opt"]
    needs = [Need(PATHS[0], 5 * MIB, "bundle files"), Need(PATHS[1], 5 * MIB, "models")]
    assert disk_problems(df, PATHS, needs) == [
        "not enough disk on /srv (/dev/vdb1): models 5.0 MiB = 5.0 MiB, 4.0 MiB free"
    ]
    assert disk_problems(["garbage"], PATHS, needs) == []  # unreadable df: no refusal


# --- VRAM (model_server_gpus > 0) ---------------------------------------------------------
def test_vram_need_by_hand_counts_the_smallest_gpus_less_their_reserve(smol):
    from airnode.sizing import GPU_RESERVE_MIB, gpu_plan

    # weights 96,576,768 + KV 94,371,840 = 190,948,608 bytes (182.1 MiB): no host overhead
    [f] = gpu_plan([smol], [81_559, 1_024, 143_771], 2, 4096, 1)
    assert f.need == 96_576_768 + 94_371_840
    # any 2 of the 3 GPUs may be allotted: the two smallest count, each less its reserve
    assert f.vram == (1_024 - GPU_RESERVE_MIB + 81_559 - GPU_RESERVE_MIB) * MIB
    assert f.ok and f.layers_on_gpu == 30


def test_a_model_too_big_for_the_vram_has_its_layers_split_with_the_cpu(smol):
    from airnode.sizing import GPU_RESERVE_MIB, gpu_plan, gpu_table

    # 100 MiB of usable VRAM for 182.1 MiB: 30 layers x 100/182.1 = 16.47 -> 16 on the GPU
    [f] = gpu_plan([smol], [GPU_RESERVE_MIB + 100], 1, 4096, 1)
    assert not f.ok and f.layers_on_gpu == 16
    text = gpu_table([f])
    assert text.splitlines()[0].split() == [
        "MODEL",
        "QUANT",
        "NEEDED",
        "VRAM",
        "LAYERS",
        "ON",
        "GPU",
    ]
    assert "smollm2:135m  Q4_1   182 MiB  100 MiB on 1 GPU(s)  16/30 (14 on the CPU)" in text
    # a GPU smaller than its reserve holds nothing
    [g] = gpu_plan([smol], [256], 1, 4096, 1)
    assert g.vram == 0 and g.layers_on_gpu == 0


def test_preflight_refuses_llama_server_all_layers_but_warns_for_ollama(smol):
    from airnode import gpu
    from airnode.steps import declared
    from airnode.steps.preflight import vram_check

    values = {k: s.default for k, s in declared().items()}
    small = gpu.parse(["gpu-smi:0, GPU-1, NVIDIA T400, 600, 550.54.14"])  # 88 MiB usable
    big = gpu.parse(["gpu-smi:0, GPU-1, NVIDIA H200, 143771, 550.54.14"])
    ollama = {**values, "model_server_gpus": 1}
    llama = {**ollama, "model_server": "llama-server"}
    assert vram_check(values, [smol], small) == ([], "")  # no GPU asked for
    assert vram_check(llama, [smol], big) == ([], "")
    [problem], warning = vram_check(llama, [smol], small)
    assert "do not fit in the VRAM of model_server_gpus = 1" in problem and not warning
    # the table, with the layers that would have to go to the CPU (30 x 88 / 182.1 = 14.5)
    assert "--n-gpu-layers all" in problem and "14/30 (16 on the CPU)" in problem
    # the operator's own layer count, or Ollama: the rest runs on the CPU; a warning
    own = {**llama, "llama_server_extra_args": ["--n-gpu-layers", "10"]}
    for v in (own, ollama):
        problems, warning = vram_check(v, [smol], small)
        assert problems == [] and "the layers that do not run on the CPU, slowly" in warning
        assert "14/30 (16 on the CPU)" in warning
    assert vram_check(ollama, [smol], gpu.GpuFacts()) == ([], "")  # no nvidia-smi


def test_a_models_header_is_read_once_and_remembered_by_its_sha256(tmp_path, monkeypatch):
    from airnode import sizing

    path = smollm2()
    sha = "ab" * 32
    monkeypatch.setattr(sizing, "_KNOWN", {})
    first = sizing.model_info(path, "smollm2:135m", sha, tmp_path)
    assert first == sizing.read_gguf(path, "smollm2:135m")
    assert (tmp_path / "gguf" / f"{sha}.json").exists()

    def no_reading(*a, **k):
        raise AssertionError("the GGUF was read again")

    monkeypatch.setattr(sizing, "read_gguf", no_reading)
    # the same run, under another name (one file, two names): from memory
    assert sizing.model_info(path, "other", sha, tmp_path).name == "other"
    # the next run (a new process): from the cache on disk, the same figures
    monkeypatch.setattr(sizing, "_KNOWN", {})
    again = sizing.model_info(path, "smollm2:135m", sha, tmp_path)
    assert again == first
    # a sha256 that is not one names no cache file (the bundle's value, never a path)
    monkeypatch.setattr(sizing, "_KNOWN", {})
    with pytest.raises(AssertionError, match="read again"):
        sizing.model_info(path, "x", "../../etc/passwd", tmp_path)
