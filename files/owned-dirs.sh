#!/bin/sh
# Make directories airnode owns, and record the ones it creates.
#   owned-dirs.sh RECORD MODE OWNER:GROUP DIR...
# For each DIR: the top-most ancestor that does not exist yet (or DIR itself) is created
# (mkdir -p), and appended to RECORD once; a DIR that already existed is not recorded. Teardown
# removes only what RECORD lists (airnode/record.py), so a directory that was there before
# airnode - a USB stick's mount point, /srv/site-data with the site's own files - survives it.
# MODE and OWNER:GROUP are set on DIR itself.
set -eu
record=$1 mode=$2 owner=$3
shift 3
mkdir -p "$(dirname "$record")"
for dir in "$@"; do
  case $dir in /*) ;; *) echo "owned-dirs.sh: $dir is not an absolute path" >&2; exit 2 ;; esac
  top="" parent=$dir
  while [ ! -e "$parent" ] && [ ! -L "$parent" ]; do
    top=$parent
    parent=$(dirname "$parent")
  done
  mkdir -p -- "$dir"
  if [ -n "$top" ] && ! grep -qxF -- "$top" "$record" 2>/dev/null; then
    printf '%s\n' "$top" >> "$record"
  fi
  chmod -- "$mode" "$dir"
  chown -- "$owner" "$dir"
done
