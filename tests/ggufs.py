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
