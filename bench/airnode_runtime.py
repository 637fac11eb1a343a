"""The host-preparation and runtime steps of deploys/node.py, alone: what bench/provision.py
measures against the seed's shell script and an Ansible playbook doing the same work."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from any cwd

from airnode.steps.bundle import bundle  # noqa: E402
from airnode.steps.containerd import containerd  # noqa: E402
from airnode.steps.hostname import hostname  # noqa: E402
from airnode.steps.images import images  # noqa: E402
from airnode.steps.k0s import k0s  # noqa: E402
from airnode.steps.kernel import kernel  # noqa: E402
from airnode.steps.preflight import preflight  # noqa: E402
from airnode.steps.record import record  # noqa: E402
from airnode.steps.swap_off import swap_off  # noqa: E402
from airnode.steps.zram import zram  # noqa: E402

preflight()
record()
bundle()
swap_off()
zram()
kernel()
hostname()
containerd()
images()
k0s()
