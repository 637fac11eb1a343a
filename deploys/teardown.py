"""Remove a node, top to bottom: pyinfra inventories/<site>.py deploys/teardown.py

The seed's removal sequence, done safely; then everything airnode changed on the host put back
as it was before the first deploy (/var/lib/airnode/before.txt). The model store is kept unless
you ask for a purge in so many words: --data 'teardown_purge_models=yes, delete every model'.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from any cwd

from airnode.steps.teardown import (
    remove_containerd,
    remove_k0s,
    remove_ollama,
    remove_state,
    remove_workloads,
    restore_host,
    restore_units,
)

remove_workloads()  # model server, then kube-prometheus (the rest, then CRDs and namespace)
remove_k0s()  # drain, k0s stop, k0s reset (retried while mounts are busy), binary, config
remove_ollama()  # versions, links, Modelfiles; the model store and its user stay (no purge)
remove_containerd()  # only if airnode installed it: packages or static files, images, config
restore_units()  # runtimes airnode disabled (docker, cri-o) back as they were
restore_host()  # zram off, sysctls and modules as before, disk swap back on, /etc/hosts
remove_state()  # /var/lib/airnode, all but the model store
