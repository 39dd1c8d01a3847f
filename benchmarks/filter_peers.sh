#!/usr/bin/env bash
# Filtered search against the peers that filter inside their search (issue 27), one harness
# (benchmarks/filter_peers.py) on the diffuse set of benchmarks/ann_target.sh (bench_store
# --noise 1.5: 367,983 x 64): recall@50 against the exact top-50 among the allowed items and
# single-user p50/p99 at selectivities 50% .. 0.01% and with no filter, then per selectivity each
# system's lowest p99 at recall >= 0.95 and mindrec's ratios (to the best peer, and to its own
# unfiltered p99 at recall >= 0.95).
#
#   benchmarks/filter_peers.sh [--items N] [--users U] [--quick] [--uncached] [--build DIR]
# --quick: CI's small version (use with --items 20000 --users 200).
set -euo pipefail
cd "$(dirname "$0")/.."
items=367983 users=500 quick="" uncached="" build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --items) items=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --quick) quick=--quick; shift ;;
    --uncached) uncached=--uncached; shift ;;
    --build) build=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
# shellcheck source=benchmarks/lib.sh
. benchmarks/lib.sh
venv=$(peers_venv)
ulib=$(usearch_filter_lib "$venv")
nlist=4096
[ "$items" -lt 200000 ] && nlist=256
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
site=$(ls -d .venv/lib/python3*/site-packages/mindrec 2>/dev/null | head -1)
[ -n "$site" ] || { echo "mindrec's Python package is not in .venv (scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$work/pkg" && ln -s "$PWD/$site" "$work/pkg/mindrec"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u +%F)"
"$build/benchmarks/bench_store" --items "$items" --users "$users" --noise 1.5 --search-only --export "$work" \
  --backends flat > /dev/null
PYTHONPATH="$work/pkg" "$venv/bin/python" benchmarks/filter_peers.py "$work" --users "$users" --nlist "$nlist" \
  --systems mindrec,faiss,hnswlib,usearch --usearch-lib "$ulib" $quick $uncached | tee "$work/rows.txt"
python3 - "$work/rows.txt" <<'PY'
import re, sys
best = {}  # (selectivity, family) -> (p99, p50, recall, name)
for line in open(sys.argv[1]):
    c = [x.strip() for x in line.strip().strip("|").split("|")]
    if len(c) != 4 or not re.match(r"^[0-9.]+$", c[1]):
        continue
    w = c[0].split()
    sel = next(x for x in w if x == "none" or x.endswith("%"))
    fam = " ".join(w[:2]) if w[0] in ("mindrec", "faiss-cpu") else " ".join(w[:3]) if w[0] == "usearch" else w[0]
    fam = re.sub(r"\?.*", "", fam)
    cand = (float(c[3]), float(c[2]), float(c[1]), c[0])
    if float(c[1]) >= 0.95 and ((sel, fam) not in best or cand < best[(sel, fam)]):
        best[(sel, fam)] = cand
sels = ["none", "50%", "10%", "1%", "0.1%", "0.01%"]
print("\nper selectivity: each system's lowest p99 at recall@50 >= 0.95 (one harness, one grid)")
print("| filter | system | setting | recall | p50 ms | p99 ms |\n|---|---|---|---:|---:|---:|")
for s in sels:
    for (sel, fam), (p99, p50, r, name) in sorted(best.items(), key=lambda kv: kv[1][0]):
        if sel == s:
            print(f"| {s} | {fam} | {name} | {r:.3f} | {p50:.3f} | {p99:.3f} |")
mine_none = min((v for (sel, fam), v in best.items() if sel == "none" and fam.startswith("mindrec")), default=None)
line = []
for s in sels[1:]:
    mine = min((v for (sel, fam), v in best.items() if sel == s and fam.startswith("mindrec")), default=None)
    peer = min((v for (sel, fam), v in best.items() if sel == s and not fam.startswith("mindrec")), default=None)
    if not mine:
        print(f"{s}: no mindrec store reached recall 0.95")
        continue
    own = f", {mine[0] / mine_none[0]:.2f}x its unfiltered p99 ({mine_none[0]:.3f} ms)" if mine_none else ""
    vs = f"; best peer {peer[0]:.3f} ms ({peer[3]}): peer/mindrec {peer[0] / mine[0]:.2f}" if peer else "; no peer reached 0.95"
    print(f"{s}: mindrec best p99 {mine[0]:.3f} ms ({mine[3]}){own}{vs}")
PY
