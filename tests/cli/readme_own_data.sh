#!/usr/bin/env bash
# CI: the README's "Your own data in five commands" block, run as written from the top of the
# repository (in mine-ci/ instead of mine/, on a free port instead of 8000), must work and end
# with the answer it shows: the first user recalled, the second (no clicks) the popular items.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/cli/readme_block.sh
readme_block "Your own data in five commands" mine
echo "$out" | tail -4
echo "$out" | grep -q '"fallback":\[false,true\]' || { echo "README block: no recall answer with the fallback"; exit 1; }
echo "README's own-data block: ok"
