#!/bin/sh
# Wait (bounded) until ADDR:PORT takes a connection: a worker, for its controller's API, before
# it asks to join (the controller's k0s may be starting in the same run).
#   api-wait.sh ADDR PORT SECONDS
set -u
addr=$1 port=$2 t=$3
end=$(( $(date +%s) + t ))
# shellcheck disable=SC2016 # $0 and $1 are the inner bash's own arguments
until timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$addr" "$port" 2>/dev/null; do
  if [ "$(date +%s)" -ge "$end" ]; then
    echo "the controller's API at $addr:$port did not answer within ${t}s: see k0s status there" >&2
    exit 1
  fi
  sleep 2
done
