#!/bin/sh
# Record the status of the bundle's files after sha256sum -c passed on the node:
#   bundle-record.sh RECORD DIR PATH=SHA256...
# one line per file, PATH relative to DIR:
#   v1 <TAB> PATH <TAB> size <TAB> mtime <TAB> ctime <TAB> inode <TAB> SHA256
# (GNU find's %s %T@ %C@ %i, as the read in airnode/steps/bundle.py prints them). The next run
# hashes again only a file whose status differs from its line (airnode/bundle/digests.py).
set -eu
record=$1 dir=$2
shift 2
cd "$dir"
mkdir -p "$(dirname "$record")"
tmp="$record.tmp"
: > "$tmp"
for pair in "$@"; do
  path=${pair%=*} sha=${pair##*=}
  st=$(find "./$path" -maxdepth 0 -type f -printf '%s\t%T@\t%C@\t%i' 2>/dev/null || true)
  if [ -z "$st" ]; then
    echo "bundle-record.sh: $dir/$path is not a regular file" >&2
    rm -f "$tmp"
    exit 1
  fi
  printf 'v1\t%s\t%s\t%s\n' "$path" "$st" "$sha" >> "$tmp"
done
mv "$tmp" "$record"
