#!/bin/sh
# Wait (bounded) until the node is Ready; fail saying where to look.
#   k0s-ready-wait.sh K0S UNIT SECONDS
# k0s kubectl answers only once the API server is up: each try is short, the whole is bounded.
set -u
k0s=$1 unit=$2 t=$3
end=$(( $(date +%s) + t ))
until "$k0s" kubectl wait node --all --for=condition=Ready --timeout=10s >/dev/null 2>&1; do
  if [ "$(date +%s)" -ge "$end" ]; then
    echo "k0s node not Ready after ${t}s: see journalctl -u $unit and k0s kubectl get nodes" >&2
    exit 1
  fi
  sleep 5
done
