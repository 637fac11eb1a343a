"""Paths anchored to the project checkout, so every entry point works from any cwd."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ROOT / "files"
TEMPLATES = ROOT / "templates"
INVENTORIES = ROOT / "inventories"
DEPLOYS = ROOT / "deploys"

# Where lab VM images are cached (keyed by recipe hash) and where running instances live.
CACHE = Path(os.environ.get("AIRNODE_CACHE", Path.home() / ".cache" / "airnode"))
LAB_INSTANCES = Path(os.environ.get("AIRNODE_LAB_HOME", ROOT / ".lab"))


def write_json_atomically(path: Path, data: object) -> None:
    """``data`` as JSON at ``path``, whole or not at all (a temporary file beside it, renamed
    over it): a cache entry that another run reads meanwhile, or a run cut while writing, never
    sees half of it."""
    import json
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
