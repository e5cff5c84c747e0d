#!/usr/bin/env bash
# check-contract: fails when the protobuf contract does not lint or when gen/ is not what `buf generate` makes of it.
set -euo pipefail
cd "$(dirname "$0")/.."
npx buf lint
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
npx buf generate --output "$fresh"
if ! diff -r "$fresh/gen" gen >/dev/null; then
  diff -r "$fresh/gen" gen | head -20 >&2
  echo "gen/ is stale: run 'npm run generate' and commit the result" >&2
  exit 1
fi
echo "contract: buf lint clean, gen/ up to date"
