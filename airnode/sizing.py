"""Sizing computed from the host's real memory. Pure: imports nothing from pyinfra."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from airnode.paths import write_json_atomically

MIB = 1024 * 1024


def zram_size_bytes(memory_mb: int, fraction: float, max_mb: int) -> int:
    """Size of the zram swap device.

    ``memory_mb`` is the host's total memory in MiB (``MemTotal``, as pyinfra's Memory fact
    reports it); the device gets ``fraction`` of it, rounded down to whole MiB, capped at
    ``max_mb`` MiB unless ``max_mb`` is 0. At least 1 MiB.
    """
    if memory_mb <= 0:
        raise ValueError(f"memory_mb must be positive, got {memory_mb}")
    size_mb = int(memory_mb * fraction)
    if max_mb:
        size_mb = min(size_mb, max_mb)
    return max(size_mb, 1) * MIB


# --- Will a model fit? -------------------------------------------------------------------
# need = weights + KV cache + overhead, where
#   weights  = the GGUF's tensor data (what is loaded),
#   KV cache = 2 (K and V) x layers x context x kv_heads x head_dim x bytes per element
#              x parallel slots (Ollama's OLLAMA_NUM_PARALLEL: one context per slot),
#   overhead = OVERHEAD_MIB for compute buffers and the runtime.
# available = MemTotal - preflight_reserved_mb (k0s, containerd, monitoring). zram is not counted:
# it is compressed swap, slow for weights, and reported separately.

OVERHEAD_MIB = 512
KV_BYTES_PER_ELEMENT = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    arch: str
    params: int
    quant: str
    layers: int
    heads: int
    kv_heads: int
    embedding: int
    head_dim: int
    context_train: int
    weights_bytes: int
    file_type: int | None = None  # general.file_type (llama_ftype), None if the header has none


def read_gguf(path, name: str | None = None) -> ModelInfo:
    """Read what sizing needs from a GGUF header (and tensor table) with the `gguf` library."""
    from pathlib import Path

    import gguf

    r = gguf.GGUFReader(str(path))

    def field(key, default=None):
        f = r.fields.get(key)
        return default if f is None else f.contents()

    arch = field("general.architecture")
    if not arch:
        raise ValueError(f"{path}: no general.architecture in the GGUF header")
    layers = int(field(f"{arch}.block_count", 0))
    heads = int(field(f"{arch}.attention.head_count", 0) or 0)
    kv_heads = int(field(f"{arch}.attention.head_count_kv", heads) or heads)
    embedding = int(field(f"{arch}.embedding_length", 0))
    head_dim = int(field(f"{arch}.attention.key_length", 0) or (embedding // heads if heads else 0))
    ftype = field("general.file_type")
    try:
        quant = (
            gguf.LlamaFileType(int(ftype)).name.removeprefix("MOSTLY_")
            if ftype is not None
            else "unknown"
        )
    except ValueError:
        quant = f"file_type {ftype}"
    return ModelInfo(
        name=name or Path(path).stem,
        arch=arch,
        params=int(sum(int(t.n_elements) for t in r.tensors)),
        quant=quant,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        embedding=embedding,
        head_dim=head_dim,
        context_train=int(field(f"{arch}.context_length", 0)),
        weights_bytes=int(sum(int(t.n_bytes) for t in r.tensors)),
        file_type=None if ftype is None else int(ftype),
    )


_KNOWN: dict[str, ModelInfo] = {}


def model_info(path, name: str, sha256: str, cache_dir: Path | None) -> ModelInfo:
    """read_gguf, remembered by the file's sha256 (the bundle's, checked against the file before
    any step reads it): in memory for the rest of the run, and under ``cache_dir``/gguf for the
    next runs. The `gguf` library builds every field of the header in Python, the tokenizer's
    vocabulary and merges too: about 8 s of CPU for SmolLM2-135M's 49,152 tokens here, three
    times a run, and more the larger the vocabulary (cProfile of a lab deploy's plan phase found
    it was most of a no-op run's time; bench/gguf_header.py measures it)."""
    hit = _KNOWN.get(sha256)
    if hit is not None:
        return replace(hit, name=name)
    store = None
    if cache_dir is not None and re.fullmatch(r"[0-9a-f]{64}", sha256):
        store = Path(cache_dir) / "gguf" / f"{sha256}.json"
    info = None
    if store is not None:
        try:
            info = ModelInfo(**{**json.loads(store.read_text()), "name": name})
        except (OSError, ValueError, TypeError):
            info = None
    if info is None:
        info = read_gguf(path, name)
        if store is not None:
            with contextlib.suppress(OSError):  # a read-only cache costs time, not correctness
                write_json_atomically(store, asdict(info))
    _KNOWN[sha256] = info
    return info


def kv_cache_bytes(m: ModelInfo, context: int, parallel: int, kv_type: str = "f16") -> int:
    per_element = KV_BYTES_PER_ELEMENT[kv_type]
    return int(2 * m.layers * context * m.kv_heads * m.head_dim * per_element * parallel)


def need_bytes(m: ModelInfo, context: int, parallel: int, kv_type: str = "f16") -> int:
    return m.weights_bytes + kv_cache_bytes(m, context, parallel, kv_type) + OVERHEAD_MIB * MIB


@dataclass
class Fit:
    model: ModelInfo
    need: int
    available: int
    advice: str

    @property
    def ok(self) -> bool:
        return self.need <= self.available


def plan(
    models: list[ModelInfo],
    memory_mb: int,
    reserved_mb: int,
    context: int,
    parallel: int,
    kv_type: str = "f16",
) -> list[Fit]:
    available = max(memory_mb - reserved_mb, 0) * MIB
    fits = []
    for m in models:
        need = need_bytes(m, context, parallel, kv_type)
        advice = ""
        if need > available:
            tips = []
            if context > 2048:
                saved = kv_cache_bytes(m, context, parallel, kv_type) - kv_cache_bytes(
                    m, context // 2, parallel, kv_type
                )
                tips.append(f"context {context // 2} (-{saved // MIB} MiB)")
            if parallel > 1:
                saved = kv_cache_bytes(m, context, 1, kv_type)  # one slot's context
                tips.append(f"{parallel - 1} parallel slot(s) (-{saved // MIB} MiB)")
            if kv_type == "f16":
                saved = kv_cache_bytes(m, context, parallel) - kv_cache_bytes(
                    m, context, parallel, "q8_0"
                )
                tips.append(f"OLLAMA_KV_CACHE_TYPE=q8_0 (-{saved // MIB} MiB)")
            tips.append(
                f"a smaller quantization than {m.quant} (weights are {m.weights_bytes // MIB} MiB)"
            )
            advice = "; ".join(tips)
        fits.append(Fit(m, need, available, advice))
    return fits


def columns(rows: Sequence[tuple[str, ...]]) -> str:
    """Rows as left-aligned columns two spaces apart (the first row: the headings)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows
    )


def table(fits: list[Fit]) -> str:
    rows = [("MODEL", "QUANT", "NEEDED", "AVAILABLE", "WHAT TO CHANGE")]
    for f in fits:
        rows.append(
            (
                f.model.name,
                f.model.quant,
                f"{f.need // MIB} MiB",
                f"{f.available // MIB} MiB",
                f.advice or "fits",
            )
        )
    return columns(rows)


def disk_command(paths: list[str]) -> str:
    """Free space of the filesystem holding each path (or its nearest existing parent):
    one line '<filesystem> <free bytes> <path>' each."""
    import shlex

    return "; ".join(
        f'p={shlex.quote(p)}; while [ ! -e "$p" ]; do p=$(dirname "$p"); done; '
        'df -P -B1 "$p" | awk -v p="$p" \'NR==2 {print $1, $4, p}\''
        for p in paths
    )


@dataclass(frozen=True)
class Need:
    """Bytes a run will write on the node, where, and what they are (each step says its own:
    ``disk_needs`` beside ``reads``)."""

    path: str  # one of the paths disk_command was given
    bytes: int
    what: str


def disk_problems(df_lines: list[str], paths: list[str], needs: list[Need]) -> list[str]:
    """df_lines: disk_command(paths) output, a line per path. Needs on one filesystem add up,
    whichever of the paths they name; a filesystem that cannot hold its sum is a problem naming
    each need."""
    from airnode.bundle.manifest import human

    rows = [line.split(None, 2) for line in df_lines if len(line.split(None, 2)) == 3]
    if len(rows) != len(paths) or not all(r[1].isdigit() for r in rows):
        return []  # unreadable: not a reason to refuse
    row_of = dict(zip(paths, rows, strict=True))  # path -> (filesystem, free, where)
    groups: dict[str, list[Need]] = {}
    for need in needs:
        if need.bytes > 0:
            groups.setdefault(row_of[need.path][0], []).append(need)
    out = []
    for fs, items in groups.items():
        _, free_text, where = row_of[items[0].path]
        free = int(free_text)
        total = sum(n.bytes for n in items)
        if total > free:
            out.append(
                f"not enough disk on {where} ({fs}): "
                + " + ".join(f"{n.what} {human(n.bytes)}" for n in items)
                + f" = {human(total)}, {human(free)} free"
            )
    return out


# --- Will a model fit in VRAM? ------------------------------------------------------------
# The same need without the host's overhead: weights + KV cache, against the memory of the
# GPUs the model server gets less GPU_RESERVE_MIB each (the CUDA context and compute buffers).
# The device plugin may give any N of the host's GPUs: the N smallest are counted. Both
# backends split a model's layers across several GPUs (llama.cpp's --split-mode layer, its
# default; Ollama places layers GPU by GPU) and run the layers that do not fit on the CPU.
GPU_RESERVE_MIB = 512


@dataclass(frozen=True)
class GpuFit:
    model: ModelInfo
    need: int  # bytes: weights + KV cache
    vram: int  # bytes usable on the GPUs counted
    gpus: int

    @property
    def ok(self) -> bool:
        return self.need <= self.vram

    @property
    def layers_on_gpu(self) -> int:
        """All layers when it fits; else as many as the VRAM holds at the average layer's
        share of the need (the rest run on the CPU)."""
        layers = max(self.model.layers, 1)
        if self.ok:
            return layers
        return min(layers, int(self.vram // (self.need / layers)))


def gpu_plan(
    models: list[ModelInfo],
    gpu_mib: list[int],
    gpus: int,
    context: int,
    parallel: int,
    kv_type: str = "f16",
) -> list[GpuFit]:
    counted = sorted(gpu_mib)[:gpus]
    vram = sum(max(m - GPU_RESERVE_MIB, 0) for m in counted) * MIB
    return [
        GpuFit(m, m.weights_bytes + kv_cache_bytes(m, context, parallel, kv_type), vram, gpus)
        for m in models
    ]


def gpu_table(fits: list[GpuFit]) -> str:
    rows = [("MODEL", "QUANT", "NEEDED", "VRAM", "LAYERS ON GPU")]
    for f in fits:
        layers = max(f.model.layers, 1)
        on = f.layers_on_gpu
        rows.append(
            (
                f.model.name,
                f.model.quant,
                f"{f.need // MIB} MiB",
                f"{f.vram // MIB} MiB on {f.gpus} GPU(s)",
                f"{on}/{layers}" + ("" if on == layers else f" ({layers - on} on the CPU)"),
            )
        )
    return columns(rows)
