"""A pyinfra @fake host whose facts come from $AIRNODE_FAKE_HOST (JSON: command substring ->
stdout). Lets the real CLI run preflight against hosts this machine cannot boot (other
architectures, distros, kernels) and prove it stops before the execute phase."""

import json
import os

hosts = [
    (
        "@fake/node",
        {
            "fake_delay": 0,
            "fake_delay_jitter": 0,
            "fake_responses": json.loads(os.environ.get("AIRNODE_FAKE_HOST", "{}")),
        },
    )
]
