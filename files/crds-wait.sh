#!/bin/sh
# Wait (bounded) until every CustomResourceDefinition is Established; fail saying so.
#   crds-wait.sh KUBECTL SECONDS
set -u
kubectl=$1 t=$2
# shellcheck disable=SC2086
$kubectl wait --for condition=Established --all CustomResourceDefinition --timeout="${t}s" \
  >/dev/null && exit 0
echo "kube-prometheus CRDs not Established after ${t}s (monitoring_crd_timeout): see k0s kubectl get crd" >&2
exit 1
