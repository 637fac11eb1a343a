"""The lab VM: a throwaway, air-gapped Debian guest on this machine (`airnode lab start`).

Targets $AIRNODE_LAB_DIR when set (the tests boot their own instances), else the default one.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airnode import lab

_vm = lab.current()

lab_vm = [
    (
        "airnode-lab",
        {
            "ssh_hostname": "127.0.0.1",
            "ssh_port": _vm.port,
            "ssh_user": "root",
            "ssh_key": str(_vm.key),
            "ssh_known_hosts_file": "/dev/null",
            "ssh_strict_host_key_checking": "no",
            "ssh_allow_agent": False,
            "ssh_look_for_keys": False,
        },
    ),
]
