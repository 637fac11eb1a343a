"""A cluster of pyinfra @fake hosts, from $AIRNODE_FAKE_CLUSTER (JSON): {group: {host:
{"responses": {command substring: stdout}, "data": {setting: value}}}}, the groups being the
inventory's (controllers, workers, nodes). Lets the real CLI run preflight over a cluster this
machine cannot boot, and prove it stops before the execute phase."""

import json
import os

_SPEC = json.loads(os.environ.get("AIRNODE_FAKE_CLUSTER", "{}"))


def _hosts(group: str) -> list:
    return [
        (
            f"@fake/{name}",
            {
                "fake_delay": 0,
                "fake_delay_jitter": 0,
                "fake_responses": spec.get("responses", {}),
                **spec.get("data", {}),
            },
        )
        for name, spec in _SPEC.get(group, {}).items()
    ]


controllers = _hosts("controllers")
workers = _hosts("workers")
nodes = _hosts("nodes")
