#!/bin/sh
# Wait (bounded) for a StatefulSet's rollout; on a timeout say why, and fail.
#   rollout-wait.sh KUBECTL NAMESPACE STATEFULSET SECONDS
# A pod the scheduler cannot place says why only in its events: those are printed too, with
# the pods and the last lines of the first pod's log.
set -u
kubectl=$1 ns=$2 sts=$3 t=$4
# shellcheck disable=SC2086
k() { $kubectl "$@"; }
k -n "$ns" rollout status "statefulset/$sts" --timeout="${t}s" >/dev/null && exit 0
echo "statefulset/$sts in $ns not ready after ${t}s (model_server_rollout_timeout):" >&2
k -n "$ns" get pods >&2
k -n "$ns" get events --field-selector "involvedObject.name=$sts-0" >&2
k -n "$ns" logs "$sts-0" --tail=20 >&2
exit 1
