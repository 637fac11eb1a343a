#!/bin/sh
# k0s reset, retried while mounts under /var/lib/k0s are still busy; fail saying where to look.
#   k0s-reset.sh K0S CRI_SOCKET CONFIG ATTEMPTS [PAUSE_SECONDS]
# The CRI socket: without it k0s reset cleans up its own bundled containerd, not the system one
# the pods ran on. CONFIG empty: none (a worker has no k0s.yaml: its config is the controller's).
set -u
k0s=$1 socket=$2 config=$3 n=$4 pause=${5:-5}
i=1
while [ "$i" -le "$n" ]; do
  if "$k0s" reset --cri-socket="$socket" ${config:+"--config=$config"}; then
    exit 0
  fi
  echo "k0s reset failed (attempt $i of $n): retrying" >&2
  i=$((i + 1))
  [ "$i" -gt "$n" ] || sleep "$pause"
done
echo "k0s reset failed $n times: see the mounts under /var/lib/k0s" >&2
exit 1
