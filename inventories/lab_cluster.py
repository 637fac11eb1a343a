"""A lab cluster: lab VMs on one isolated network of their own, the first the controller, the
others its workers (`airnode lab start --name lab-N --cluster lab --index N`, N = 1, 2, ...).

Targets the cluster named $AIRNODE_LAB_CLUSTER (default "lab"); the tests boot their own
under $AIRNODE_LAB_HOME. Each VM is reached over its SSH port forward on 127.0.0.1, and the
cluster's nodes reach one another on 10.77.0.N (k0s_node_address).
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airnode import lab

_vms = lab.cluster_instances(os.environ.get("AIRNODE_LAB_CLUSTER", "lab"))


def _host(vm: lab.Instance) -> tuple[str, dict]:
    return (
        vm.info["hostname"],
        {
            "ssh_hostname": "127.0.0.1",
            "ssh_port": vm.port,
            "ssh_user": "root",
            "ssh_key": str(vm.key),
            "ssh_known_hosts_file": "/dev/null",
            "ssh_strict_host_key_checking": "no",
            "ssh_allow_agent": False,
            "ssh_look_for_keys": False,
            "k0s_node_address": vm.info["address"],
        },
    )


controllers = [_host(_vms[0])]
workers = [_host(vm) for vm in _vms[1:]]
