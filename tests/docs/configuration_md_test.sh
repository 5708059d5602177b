#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# docs/configuration.md is generated from the key registry: it must be what
# `streamrelay --list-keys --format markdown` prints, byte for byte, so that
# the reference users read is the table the relay validates with.
#   configuration_md_test.sh STREAMRELAY_BIN SOURCE_DIR
set -eu
bin=$1
doc=$2/docs/configuration.md
printed=$(mktemp)
trap 'rm -f "$printed"' EXIT
"$bin" --list-keys --format markdown >"$printed"
if ! cmp -s "$printed" "$doc"; then
  diff -u "$doc" "$printed" | head -40 >&2 || true
  echo "docs/configuration.md differs from the key registry (above: - the file, + what the relay prints)." >&2
  echo "Regenerate it: build/core/streamrelay --list-keys --format markdown > docs/configuration.md" >&2
  exit 1
fi
echo "docs/configuration.md matches streamrelay --list-keys --format markdown"
