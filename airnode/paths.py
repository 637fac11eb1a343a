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
