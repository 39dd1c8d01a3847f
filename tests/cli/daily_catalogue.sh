#!/usr/bin/env bash
# CI: the README's "A catalogue that changes daily" block, run as written from the top of the
# repository (in daily-ci/ instead of daily/, on a free port instead of 8000). Checks what a
# client sees: raw ids (SKUs) in every answer; SKU-17, new on day 2, unknown before the reload
# and known after it; every item of day 1 keeps its dense id on day 2 (the catalogues compared
# line by line), and the reloaded server answers only active items of day 2's catalogue.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/cli/readme_block.sh
readme_block "A catalogue that changes daily" daily
echo "$out" | tail -6
before=$(echo "$out" | grep '^{"fallback"' | sed -n 1p)
after=$(echo "$out" | grep '^{"fallback"' | sed -n 2p)
[ -n "$before" ] && [ -n "$after" ] || { echo "README block: no two recall answers"; exit 1; }
echo "$before" | grep -q '"unknown":\[\["SKU-17"\]\]' || { echo "before the reload SKU-17 should be unknown: $before"; exit 1; }
echo "$after" | grep -q '"unknown":\[\[\]\]' || { echo "after the reload SKU-17 should be known: $after"; exit 1; }
python3 - "$before" "$after" daily-ci/day1/data/catalogue.csv daily-ci/day2/data/catalogue.csv <<'PY'
import csv, json, sys
before, after = json.loads(sys.argv[1]), json.loads(sys.argv[2])
def rows(path):
    with open(path) as f:
        return {r["raw_id"]: (int(r["id"]), r["status"]) for r in csv.DictReader(f)}
day1, day2 = rows(sys.argv[3]), rows(sys.argv[4])
moved = [raw for raw, (i, _) in day1.items() if day2.get(raw, (None,))[0] != i]
assert not moved, f"{len(moved)} items changed their dense id between the days, e.g. {moved[:3]}"
assert max(i for i, _ in day2.values()) > max(i for i, _ in day1.values()), "day 2 added no item"
assert day2["SKU-17"][0] > max(i for i, _ in day1.values()), "a new item did not get an id after the largest"
for answer, day in ((before, day1), (after, day2)):
    ids = answer["ids"][0]
    assert len(ids) == 5 and all(isinstance(x, str) and x.startswith("SKU-") for x in ids), ids
    assert all(day[x][1] == "active" for x in ids), ids
print(f"daily catalogue: {len(day1)} items kept their ids, {len(day2) - len(day1)} new; answers in SKUs before and after the reload")
PY
echo "$out" | grep -q '^user 0 (hist SKU-1,SKU-2,SKU-17): SKU-' || { echo "the CLI did not answer in SKUs"; exit 1; }
echo "README's daily catalogue block: ok"
