#!/bin/sh
# Make a Secret from an uploaded file unless it exists, then remove the file (whatever happens).
#   admin-secret.sh KUBECTL NAMESPACE SECRET KEY FILE
# The file's content (a password) never reaches a command line: kubectl reads it.
set -u
kubectl=$1 ns=$2 secret=$3 key=$4 file=$5
chmod 600 "$file"
# shellcheck disable=SC2086
if $kubectl -n "$ns" get secret "$secret" >/dev/null 2>&1 ||
  $kubectl -n "$ns" create secret generic "$secret" --from-file="$key=$file" >/dev/null; then
  rc=0
else
  rc=1
fi
rm -f "$file"
exit $rc
