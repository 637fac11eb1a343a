"""The host-preparation and runtime steps of deploys/node.py, alone: what bench/provision.py
measures against the seed's shell script and an Ansible playbook doing the same work."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from any cwd

from airnode.steps.bundle import bundle
from airnode.steps.containerd import containerd
from airnode.steps.hostname import hostname
from airnode.steps.images import images
from airnode.steps.k0s import k0s
from airnode.steps.kernel import kernel
from airnode.steps.preflight import preflight
from airnode.steps.record import record
from airnode.steps.swap_off import swap_off
from airnode.steps.zram import zram

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
