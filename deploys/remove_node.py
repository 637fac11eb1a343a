"""Take a worker out of its cluster:
    pyinfra INVENTORY deploys/remove_node.py --data remove_node=HOST

HOST is a host of the inventory's `workers` group. Checked before any change (HOST is a worker
here, the model server's replicas fit the nodes that stay); then the controller drains HOST,
starts its replica (if it holds one) again on a node that stays, deletes HOST's model store
volume and its Node object; then HOST is torn down as deploys/teardown.py would (its model store
is kept). Nothing changes on the other nodes. Afterwards take HOST out of `workers`: a re-run
of deploys/node.py then changes nothing (docs/cluster.md, "Growing and shrinking").
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from any cwd

from airnode.steps.remove_node import check_removal, leaving, release_node
from airnode.steps.teardown import (
    remove_containerd,
    remove_k0s,
    remove_ollama,
    remove_state,
    remove_workloads,
    restore_host,
    restore_units,
)

check_removal()  # remove_node names a worker; the replicas fit the nodes that stay
release_node()  # on the controller: drain, the replica moved, the volume and the Node deleted
if leaving():  # then, on that worker alone, the teardown's steps (deploys/teardown.py)
    remove_workloads()  # a worker: nothing (the workloads are the controller's)
    remove_k0s()  # k0s stop, k0s reset, binary, config
    remove_ollama()  # versions, links; the model store and its user stay
    remove_containerd()  # only if airnode installed it
    restore_units()  # runtimes airnode disabled, back as they were
    restore_host()  # zram off, sysctls and modules as before, disk swap, /etc/hosts
    remove_state()  # /var/lib/airnode, all but the model store
