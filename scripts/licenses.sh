#!/usr/bin/env bash
# Lists the licence of every module Portal's packages and tests are built
# from (go list -tags up -deps -test ./...: the "up" build has every
# dependency), and deploy/helm/check's (Helm's library, k8s.io/api), read from the LICENSE (or COPYING) file
# of each module's directory in the module cache, and fails on a module
# whose licence is unknown or incompatible with Portal's Apache-2.0.
#   allowed: Apache-2.0, MIT, BSD-2-Clause, BSD-3-Clause, ISC, MPL-2.0, Unlicense (public domain)
#            (file-level copyleft: used unmodified, as a library)
#   refused: GPL, LGPL, AGPL, and any file this script cannot classify.
# LICENSES_VERBOSE=1 prints every module, not only the count per licence.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

classify() { # classify FILE: prints an SPDX id or "unknown"
  local f=$1
  # MPL-2.0 first: its text names the GNU licences it is compatible with.
  if grep -q 'Mozilla Public License,\? [Vv]ersion 2.0' "$f"; then echo MPL-2.0
  elif grep -qiE 'GNU (AFFERO |LESSER )?GENERAL PUBLIC LICENSE' "$f"; then echo GPL-family
  elif grep -q 'Apache License' "$f" && grep -q 'Version 2.0' "$f"; then echo Apache-2.0
  elif grep -q 'Permission is hereby granted, free of charge' "$f"; then echo MIT
  elif grep -q 'Permission to use, copy, modify, and/\?or distribute' "$f"; then echo ISC
  elif grep -q 'This is free and unencumbered software released into the public domain' "$f"; then echo Unlicense
  elif grep -q 'Redistribution and use in source and binary forms' "$f"; then
    if grep -qiE 'Neither the name|names of its contributors|name of the copyright holder' "$f"; then echo BSD-3-Clause; else echo BSD-2-Clause; fi
  else echo unknown
  fi
}

# --classify FILE...: print what each file is taken for, and stop.
if [ "${1:-}" = --classify ]; then
  shift
  for f; do printf '%s %s\n' "$(classify "$f")" "$f"; done
  exit 0
fi

main=$(go list -m)
bad=0
declare -A count
while read -r path dir; do
  { [ "$path" = "$main" ] || [ "$path" = "$main/deploy/helm/check" ]; } && continue
  # A module go.mod replaces with a directory of this repository
  # (third_party/) is Portal's own code, under Portal's licence.
  case $dir in "$PWD"/*) count[Portal]=$(( ${count[Portal]:-0} + 1 )); continue ;; esac
  lic=
  for f in "$dir"/LICENSE "$dir"/LICENSE.* "$dir"/LICENCE "$dir"/COPYING "$dir"/License "$dir"/license; do
    [ -f "$f" ] || continue
    lic=$(classify "$f")
    break
  done
  [ -n "$lic" ] || lic="unknown (no LICENSE file in $dir)"
  count[${lic%% *}]=$(( ${count[${lic%% *}]:-0} + 1 ))
  case $lic in
    Apache-2.0|MIT|BSD-2-Clause|BSD-3-Clause|ISC|MPL-2.0|Unlicense)
      [ "${LICENSES_VERBOSE:-}" = 1 ] && printf '  %-14s %s\n' "$lic" "$path" ;;
    *)
      printf 'licenses: %s: %s: REFUSED\n' "$path" "$lic" >&2
      bad=1 ;;
  esac
done < <(for m in . deploy/helm/check; do
  (cd "$m" && go list -tags up -deps -test -f '{{with .Module}}{{.Path}} {{.Dir}}{{end}}' ./...)
done | sort -u)

for l in "${!count[@]}"; do printf 'licenses: %3d modules %s\n' "${count[$l]}" "$l"; done | sort
if [ "$bad" -ne 0 ]; then
  echo "licenses: a dependency's licence is unknown or incompatible with Apache-2.0 (see above)" >&2
  exit 1
fi
echo "licenses: every dependency's licence is compatible with Apache-2.0"
