"""The life of a node, top to bottom: pyinfra inventories/<site>.py deploys/node.py

Each line is one step (an Ansible role each): airnode/steps/<step>.py holds the step, its
settings and their defaults. Preflight checks the host and every setting before any change.
Steps that install from the offline bundle do nothing while bundle_dir is empty. Hosts in a
`controllers` / `workers` group make one cluster (docs/cluster.md); the others single nodes.
The system user `ollama` is made before k0s: `k0s install controller` creates system users of its
own, and the uid chosen for `ollama` at plan time (the model server's runAsUser) must still be
free when useradd runs.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from any cwd

from airnode.steps.bundle import bundle
from airnode.steps.containerd import containerd
from airnode.steps.hostname import hostname
from airnode.steps.images import images
from airnode.steps.k0s import k0s
from airnode.steps.kernel import kernel
from airnode.steps.model_server import model_server
from airnode.steps.models import models
from airnode.steps.monitoring import monitoring
from airnode.steps.ollama import ollama
from airnode.steps.preflight import preflight
from airnode.steps.record import record
from airnode.steps.swap_off import swap_off
from airnode.steps.zram import zram

preflight()  # facts, settings, support: refuse before any change
record()  # the host as it was, for teardown (first run only)
bundle()  # the offline bundle: verified here first, shipped, verified on the node
swap_off()  # every disk swap off, for good
zram()  # zram swap sized from real memory, before the container runtime
kernel()  # br_netfilter, overlay, forwarding and bridge sysctls, live and at boot
hostname()  # the hostname resolves locally
containerd()  # containerd from the bundle: CRI on, SystemdCgroup, restarted only on change
images()  # every image of the bundle in containerd's k8s.io namespace
ollama()  # Ollama from its release tarball; the store's owner `ollama`, made before k0s
models()  # the bundle's GGUF models seeded into the model store, offline
k0s()  # k0s on that containerd: a single node, or the controller and workers joining it
monitoring()  # kube-prometheus (once, from the controller): setup/, CRDs, the rest; dashboards
model_server()  # a StatefulSet on each node's model store; rollout, health and smoke check
