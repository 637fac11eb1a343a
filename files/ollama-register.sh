#!/bin/sh
# Register models in an Ollama store as `ollama create` leaves them, without running it.
#   ollama-register.sh STORE OWNER:GROUP (blob SHA256 CONTENT | manifest PATH CONTENT)...
# Each CONTENT is written to STORE/.airnode-register.tmp (on the store's filesystem, outside
# blobs/ and manifests/ where Ollama looks), given OWNER:GROUP and mode 644, then renamed into
# place: a blob to STORE/blobs/sha256-SHA256 once its sha256 is checked, a manifest to
# STORE/manifests/PATH (registry/namespace/model/tag), its directories made and given to OWNER.
# Blobs come first on the command line: Ollama never reads a manifest whose blobs are not there.
set -eu
store=$1 owner=$2
shift 2
tmp=$store/.airnode-register.tmp
trap 'rm -f -- "$tmp"' EXIT
owned_dir() {  # a directory this script makes is OWNER's, mode 755; one already there is kept
  [ -d "$1" ] || { mkdir -m 755 -- "$1"; chown -- "$owner" "$1"; }
}
owned_dir "$store/blobs"
while [ $# -ge 3 ]; do
  kind=$1 name=$2 content=$3
  shift 3
  case $name in /*|*..*|"") echo "ollama-register.sh: bad name $name" >&2; exit 2 ;; esac
  printf '%s' "$content" > "$tmp"
  case $kind in
    blob)
      if ! printf '%s  %s\n' "$name" "$tmp" | sha256sum -c --quiet - >/dev/null 2>&1; then
        echo "ollama-register.sh: blob $name: its content has another sha256" >&2
        exit 1
      fi
      dest=$store/blobs/sha256-$name ;;
    manifest)
      dir=$store/manifests
      owned_dir "$dir"
      old_ifs=$IFS
      IFS=/
      # the path's parts, split on / (names were checked: no spaces, no globs)
      # shellcheck disable=SC2086
      set -f
      for part in ${name%/*}; do
        dir=$dir/$part
        owned_dir "$dir"
      done
      set +f
      IFS=$old_ifs
      dest=$store/manifests/$name ;;
    *) echo "ollama-register.sh: unknown kind $kind (blob or manifest)" >&2; exit 2 ;;
  esac
  chown -- "$owner" "$tmp"
  chmod 644 "$tmp"
  mv -f -- "$tmp" "$dest"
done
if [ $# -ne 0 ]; then
  echo "ollama-register.sh: arguments come in threes: KIND NAME CONTENT" >&2
  exit 2
fi
