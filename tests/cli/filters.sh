#!/usr/bin/env bash
# Filters end to end on the command line: `index --attributes`, `recall --filter`, `eval --filter`,
# checked against what this script computes itself from the attribute rule and the data files.
#   filters.sh MINDREC CONFIG WEIGHTS VALID_DIR OUT_DIR
set -euo pipefail
cli=$1 cfg=$2 weights=$3 valid=$4 out=$5
mkdir -p "$out"
# Attributes of every item by a rule: price = id % 100, category = a/b/c by id % 3, in stock when
# the id is even; typed in the header for two columns, inferred for the third.
awk 'BEGIN { print "id,price:int64,category,in_stock:bool";
             for (i = 1; i < 367983; i++) printf "%d,%d,%s,%s\n", i, i % 100, substr("abc", i % 3 + 1, 1), (i % 2 == 0) ? "true" : "false" }' \
  > "$out/items.csv"
"$cli" index --config "$cfg" --weights "$weights" --store flat --attributes "$out/items.csv" \
  --out "$out/attr.idx" | tee "$out/index.log"
grep -q "attributes of 367982 items from .*items.csv (price:int64, category:string, in_stock:bool)" "$out/index.log"

# recall --filter: every item returned obeys the rule, and there are 20 of them.
"$cli" recall --config "$cfg" --weights "$weights" --index "$out/attr.idx" --hist 43,23,65 --hist 675,3456 --topk 20 \
  --json --filter "category == 'a' and price < 30 and in_stock" --exclude-history > "$out/recall.json"
python3 - "$out/recall.json" <<'EOF'
import json, sys
users = json.load(open(sys.argv[1]))["users"]
for u in users:
    assert len(u["items"]) == 20 and -1 not in u["items"], u
    for i in u["items"]:
        assert i % 3 == 0 and i % 100 < 30 and i % 2 == 0, (i, u)
    assert not set(u["items"]) & set(u["hist"]), u
print("recall --filter: every item allowed, none of the history")
EOF

# A malformed filter: input error (exit 4) naming the position and the token.
set +e
"$cli" recall --config "$cfg" --weights "$weights" --index "$out/attr.idx" --hist 43 --filter "price < " 2> "$out/bad.err"
code=$?
set -e
[ "$code" = 4 ] || { echo "FAIL: exit $code for a malformed filter"; exit 1; }
grep -q "filter 'price < ': position 8: 'price' is int64: expected a number, got 'end of expression'" "$out/bad.err"

# eval --filter counts only allowed targets: the counts equal those computed here.
"$cli" eval --config "$cfg" --weights "$weights" --data "$valid" --index "$out/attr.idx" --filter in_stock --no-baseline \
  --json "$out/eval.json" | tee "$out/eval.log"
python3 - "$valid" "$out/eval.json" <<'EOF'
import glob, json, os, sys
total = allowed = users = without = 0
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*"))):
    for line in open(f):
        ev = [int(t.split(":")[1]) for t in line.split() if t.startswith("eval_item:")]
        if not line.strip():
            continue
        total += len(ev)
        ok = [i for i in ev if i % 2 == 0]
        allowed += len(ok)
        if ok: users += 1
        else: without += 1
rep = json.load(open(sys.argv[2]))
assert rep["filter"] == "in_stock", rep
assert (rep["targets_total"], rep["targets_allowed"], rep["users_without_allowed_targets"], rep["users"]) == \
    (total, allowed, without, users), (rep, total, allowed, without, users)
print(f"eval --filter: {allowed} of {total} targets, {users} users ({without} without an allowed target)")
EOF
grep -q "filter: in_stock (only allowed targets counted" "$out/eval.log"
echo "filters.sh: ok"
