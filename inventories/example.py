"""A real node. Copy to inventories/<site>.py and edit. Run:
    pyinfra inventories/<site>.py deploys/node.py --dry    # show what would change
    pyinfra inventories/<site>.py deploys/node.py
Settings for all hosts go in inventories/group_data/all.py; per-host ones in the dict below.
"""

nodes = [
    (
        "node1.example.internal",
        {
            "ssh_user": "root",
            # "ssh_key": "~/.ssh/id_ed25519",
            # "zram_fraction": 0.5,
        },
    ),
]
