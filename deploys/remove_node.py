"""Take a worker out of its cluster:
    pyinfra INVENTORY deploys/remove_node.py --data remove_node=HOST

HOST is a host of the inventory's `workers` group. Checked before any change (HOST is a worker
here, the model server's replicas fit the nodes that stay); then the controller drains HOST,
starts its replica (if it holds one) again on a node that stays, deletes HOST's model store
volume and its Node object; then HOST is torn down as deploys/teardown.py would (its model store
is kept). The other nodes keep running as they were (a store held by a replica scaled away
earlier may be freed for the moved one). Afterwards take HOST out of `workers`: a re-run
of deploys/node.py then changes nothing (docs/cluster.md, "Growing and shrinking").
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from any cwd

from airnode.steps.remove_node import check_removal, controller_done, leaving, release_node
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
# then, on that worker alone, the teardown's steps (deploys/teardown.py); each only if the
# controller's part went through (a refused drain leaves the worker as it was, cordoned)
if leaving():
    remove_workloads(_if=controller_done)  # a worker: nothing (the controller's workloads)
    remove_k0s(_if=controller_done)  # k0s stop, k0s reset, binary, config
    remove_ollama(_if=controller_done)  # versions, links; the model store and its user stay
    remove_containerd(_if=controller_done)  # only if airnode installed it
    restore_units(_if=controller_done)  # runtimes airnode disabled, back as they were
    restore_host(_if=controller_done)  # zram off, sysctls, modules, disk swap, /etc/hosts
    remove_state(_if=controller_done)  # /var/lib/airnode, all but the model store
