#!/bin/sh
# Can this node reach ADDR on each PORT? One line per port:
#   PORT open | PORT refused (the host answered: nothing listens there yet)
#   | PORT unreachable: WHY (timed out, no route: a firewall or another network)
#   reach.sh ADDR SECONDS PORT...
# bash's /dev/tcp makes the connection (Debian and Ubuntu have bash; nc is not always there).
set -u
addr=$1 t=$2
shift 2
for port in "$@"; do
  # shellcheck disable=SC2016 # $0 and $1 are the inner bash's own arguments
  if err=$(timeout "$t" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$addr" "$port" 2>&1); then
    echo "$port open"
  elif [ $? -eq 124 ]; then
    echo "$port unreachable: timed out after ${t}s"
  else
    case $err in
      *refused*) echo "$port refused" ;;
      *) echo "$port unreachable: ${err##*: }" ;;
    esac
  fi
done
