#!/bin/sh
# Wait (bounded) for a StatefulSet's rollout; on a timeout say why, and fail.
#   rollout-wait.sh KUBECTL NAMESPACE STATEFULSET SECONDS [POD [SETTING]]
# A pod the scheduler cannot place says why only in its events: those are printed too, with
# the pods and the last lines of POD's log (default: the first pod). SETTING: what sets the
# time (default model_server_rollout_timeout).
set -u
kubectl=$1 ns=$2 sts=$3 t=$4 pod=${5:-$3-0} setting=${6:-model_server_rollout_timeout}
# shellcheck disable=SC2086
k() { $kubectl "$@"; }
k -n "$ns" rollout status "statefulset/$sts" --timeout="${t}s" >/dev/null && exit 0
echo "statefulset/$sts in $ns not ready after ${t}s ($setting):" >&2
k -n "$ns" get pods >&2
k -n "$ns" get events --field-selector "involvedObject.name=$pod" >&2
k -n "$ns" logs "$pod" --tail=20 >&2
exit 1
