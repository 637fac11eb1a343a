#!/bin/sh
# Put uploaded files in their place, whole or not at all.
#   place-files.sh DIR OWNER:GROUP MODE SHA256=NAME...
# Each NAME was uploaded to DIR/NAME.partial (airnode/transfer.py). All of them are checked
# against their SHA256 first; if any differs, every listed .partial is removed (the next run
# uploads them again rather than resuming onto a bad one), the failures are named on stderr, and
# nothing is renamed. Else each is given OWNER:GROUP and MODE and renamed to DIR/NAME, so a file
# under its own name is always whole.
set -eu
dir=$1 owner=$2 mode=$3
shift 3
cd "$dir"
list=""
for pair in "$@"; do
  sum=${pair%%=*} name=${pair#*=}
  case $name in /*|*..*|"") echo "place-files.sh: bad name $name" >&2; exit 2 ;; esac
  list="$list$sum  $name.partial
"
done
if ! printf '%s' "$list" | sha256sum -c --quiet - >&2; then
  for pair in "$@"; do rm -f -- "${pair#*=}.partial"; done
  exit 1
fi
for pair in "$@"; do
  name=${pair#*=}
  chown -- "$owner" "$name.partial"
  chmod -- "$mode" "$name.partial"
  mv -f -- "$name.partial" "$name"
done
