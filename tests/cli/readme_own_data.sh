#!/usr/bin/env bash
# CI: the README's "Your own data in five commands" block, run as written from the top of the
# repository (in mine-ci/ instead of mine/, on a free port instead of 8000), must work and end
# with the answer it shows: the first user recalled, the second (no clicks) the popular items.
set -euo pipefail
cd "$(dirname "$0")/../.."
block=$(awk '/^## Your own data in five commands/{f=1} f&&/^```sh/{g=1;next} g&&/^```/{exit} g' README.md)
[ -n "$block" ] || { echo "README: no 'Your own data in five commands' block"; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
block=${block//mine/mine-ci}
block=${block//8000/$port}
rm -rf mine-ci
trap 'rm -rf mine-ci' EXIT
out=$(bash -c "set -e; $block" 2>&1) || { echo "$out"; echo "README block failed"; exit 1; }
echo "$out" | tail -4
echo "$out" | grep -q '"fallback":\[false,true\]' || { echo "README block: no recall answer with the fallback"; exit 1; }
echo "README's own-data block: ok"
