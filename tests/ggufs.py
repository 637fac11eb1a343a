"""Small GGUF files with a real model's header shape, written with the `gguf` library."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def llama3_8b_shaped(path: Path) -> Path:
    """Llama-3-8B's attention shape (32 layers, 32 heads, 8 KV heads, 4096 wide, 8k context,
    Q8_0) over one tiny tensor: 64 x 32 float32 = 8 KiB of weights."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(32)
    w.add_head_count(32)
    w.add_head_count_kv(8)
    w.add_embedding_length(4096)
    w.add_context_length(8192)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_tensor("token_embd.weight", np.zeros((64, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def tiny_llama(path: Path, seed: int = 0) -> Path:
    """A valid, tiny llama-architecture GGUF (2 layers, 64 wide, 4 heads, 2 KV heads, 512
    context, random F32 weights, about 40 KiB): small to ship, negligible to size."""
    import gguf

    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(2)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_embedding_length(64)
    w.add_context_length(512)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    for i in range(2):
        w.add_tensor(f"blk.{i}.attn_q.weight", rng.standard_normal((64, 64), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
