#!/bin/sh
# Wait (bounded) until a node is Ready; fail saying where to look.
#   k0s-ready-wait.sh K0S UNIT SECONDS [NODE]     (no NODE: every node)
# k0s kubectl answers only once the API server is up: each try is short, the whole is bounded.
# Run on the controller (a worker's node is waited for there: a worker has no admin kubeconfig).
set -u
k0s=$1 unit=$2 t=$3 node=${4:-}
end=$(( $(date +%s) + t ))
if [ -n "$node" ]; then what="node/$node"; else what="node --all"; fi
# shellcheck disable=SC2086 # $what is "node/NAME" or "node --all": two words on purpose
until "$k0s" kubectl wait $what --for=condition=Ready --timeout=10s >/dev/null 2>&1; do
  if [ "$(date +%s)" -ge "$end" ]; then
    echo "k0s node ${node:-(all)} not Ready after ${t}s: see journalctl -u $unit and k0s kubectl get nodes" >&2
    exit 1
  fi
  sleep 5
done
