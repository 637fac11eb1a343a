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
