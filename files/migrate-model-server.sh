#!/bin/sh
# Before an apply, once: a node deployed when the model server's objects were named `ollama`
# has them replaced (the Service held the NodePort, the claim held the store's volume).
#   migrate-model-server.sh KUBECTL NAMESPACE NODE
# The StatefulSet goes first, then its claim (which waits for the pod), then the volume is
# freed for the new claim: its data stay where they are (Retain, a local path). Nothing to do
# (exit 0) on a node without a StatefulSet named ollama.
set -u
kubectl=$1 ns=$2 node=$3
# KUBECTL is "k0s kubectl": split on purpose
# shellcheck disable=SC2086
k() { $kubectl "$@"; }
k -n "$ns" get statefulset ollama >/dev/null 2>&1 || exit 0
k -n "$ns" delete statefulset ollama --wait=true >/dev/null &&
  k -n "$ns" delete service ollama --ignore-not-found >/dev/null &&
  k -n "$ns" delete probe ollama --ignore-not-found >/dev/null &&
  k -n "$ns" delete pvc models-ollama-0 --ignore-not-found --wait=true >/dev/null &&
  k patch pv "airnode-models-$node" --type=json \
    -p '[{"op":"remove","path":"/spec/claimRef"}]' >/dev/null 2>&1
exit 0
