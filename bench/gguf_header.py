"""What reading a model's GGUF header costs a deploy, before and after airnode remembers it
by the model's sha256 (airnode/sizing.py model_info): run on this machine.

    .venv/bin/python bench/gguf_header.py [--tokens 128256 --merges 280147 --runs 3]

Writes a GGUF with the `gguf` library whose header holds a tokenizer of the size given
(Llama 3's by default: 128,256 tokens and 280,147 merges) and one small tensor, then times
sizing.read_gguf (what each of preflight, the model server and the seeding step did, so three
times a run) against sizing.model_info on a fresh process's first call (the cache on disk)
and on a second call (in memory). The weights do not matter here: the header is parsed, the
tensor data is not read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airnode import sizing
from tests.ggufs import llama3_8b_shaped


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokens", type=int, default=128256)
    ap.add_argument("--merges", type=int, default=280147)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="airnode-gguf-") as d:
        path, cache = Path(d) / "model.gguf", Path(d) / "cache"
        llama3_8b_shaped(path, args.tokens, args.merges)
        sha = "0" * 64
        read, disk, memory = [], [], []
        for _ in range(args.runs):
            read.append(timed(lambda: sizing.read_gguf(path, "m")))
            sizing._KNOWN.clear()  # a new run: what is on disk only
            (cache / "gguf" / f"{sha}.json").unlink(missing_ok=True)
            sizing.model_info(path, "m", sha, cache)  # the first run ever reads it once
            sizing._KNOWN.clear()
            disk.append(timed(lambda: sizing.model_info(path, "m", sha, cache)))
            memory.append(timed(lambda: sizing.model_info(path, "m", sha, cache)))
        size = path.stat().st_size
    print(f"GGUF header with {args.tokens} tokens, {args.merges} merges ({size / 2**20:.1f} MiB)")
    print(f"  read_gguf (each read before, 3 a run):   {statistics.median(read):8.3f} s")
    print(f"  model_info, a later run (cache on disk): {statistics.median(disk):8.3f} s")
    print(f"  model_info, again in the same run:       {statistics.median(memory):8.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
