#!/usr/bin/env bash
# mindrec's stores and the ANN libraries a user could pick instead, on the same vectors and the
# same protocol, in one run (issue 14): for each noise level, bench_store --search-only exports
# its data (items, every user's interests, the exact merged top-50) and times mindrec's stores
# from C++; benchmarks/ann_peers.py then times every system the same way, on one parameter grid:
# mindrec through its Python package (.venv) beside faiss-cpu (newest from PyPI; it reports
# which SIMD build it loaded), hnswlib and usearch from a venv (cached per machine), each user's
# interests in one call from Python, the merge outside the timed span (review C3, C4). Then,
# per noise level, each system's lowest p99 at recall >= 0.95 and mindrec's ratio to the best
# peer, from that one harness.
#
#   benchmarks/ann_peers.sh [--items N] [--users U] [--noise "0.6 1.5"] [--quick] [--pq] [--build DIR]
# The full run: 367,983 items, 2,000 users (p50/p99 over the first 1,000), both noise levels.
# --quick: CI's small version (fewer settings; use with --items 20000 --users 300).
# --pq: the compressed lists instead: mindrec's IVF-SQ8 (its own 8-bit scan) and IVF-PQ fast-scan
# (its own 4-bit scan) against faiss-cpu's IVF-PQ fast-scan, each interest's 4 x 50 best
# re-ranked exactly on both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
items=367983 users=2000 noises="0.6 1.5" quick="" build=build pq="" rerank=() systems=faiss,hnswlib,usearch
while [ $# -gt 0 ]; do
  case "$1" in
    --items) items=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --noise) noises=$2; shift 2 ;;
    --quick) quick=--quick; shift ;;
    --pq) pq=1; shift ;;
    --build) build=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
# shellcheck source=benchmarks/lib.sh
. benchmarks/lib.sh
venv=$(peers_venv)
nlist=4096
[ "$items" -lt 200000 ] && nlist=256   # ~sqrt(n) lists for the small version
if [ -n "$quick" ]; then
  mr="flat,faiss:IVF$nlist,Flat?nprobe=16,faiss:IVF$nlist,Flat?nprobe=64,hnsw:M=16?ef=64,hnsw:M=16?ef=128"
else
  mr="flat,faiss:IVF$nlist,Flat?nprobe=16,faiss:IVF$nlist,Flat?nprobe=32,faiss:IVF$nlist,Flat?nprobe=64,faiss:IVF$nlist,Flat?nprobe=128"
  mr+=",hnsw:M=16?ef=32,hnsw:M=16?ef=64,hnsw:M=16?ef=96,hnsw:M=16?ef=128,hnsw:M=16?ef=256"
  mr+=",hnsw:M=32?ef=32,hnsw:M=32?ef=64,hnsw:M=32?ef=80,hnsw:M=32?ef=96,hnsw:M=32?ef=128,hnsw:M=32?ef=256"
fi
if [ -n "$pq" ]; then
  mr="flat,faiss:IVF$nlist,SQ8?nprobe=16,faiss:IVF$nlist,SQ8?nprobe=32,faiss:IVF$nlist,SQ8?nprobe=64,faiss:IVF$nlist,SQ8?nprobe=128"
  mr+=",faiss:IVF$nlist,PQ32x4fs?nprobe=16,faiss:IVF$nlist,PQ32x4fs?nprobe=32,faiss:IVF$nlist,PQ32x4fs?nprobe=64,faiss:IVF$nlist,PQ32x4fs?nprobe=128"
  [ -n "$quick" ] && mr="flat,faiss:IVF$nlist,SQ8?nprobe=16,faiss:IVF$nlist,PQ32x4fs?nprobe=16"
  rerank=(--rerank 4) systems=faiss-pq
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# mindrec's Python package (.venv, built by scripts/setup.sh from this tree) is timed by the same
# harness as the peers: its package directory alone goes on the peers' venv's path.
site=$(ls -d .venv/lib/python3*/site-packages/mindrec 2>/dev/null | head -1)
[ -n "$site" ] || { echo "mindrec's Python package is not in .venv (scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$work/pkg" && ln -s "$PWD/$site" "$work/pkg/mindrec"
specs="hnsw:M=16,ef_construction=200;hnsw:M=32,ef_construction=200;faiss:IVF$nlist,Flat"
[ -n "$quick" ] && specs="hnsw:M=16,ef_construction=200;faiss:IVF$nlist,Flat"
[ -n "$pq" ] && specs="faiss:IVF$nlist,SQ8;faiss:IVF$nlist,PQ32x4fs"
systems="mindrec,$systems"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u +%F)"
for noise in $noises; do
  dir=$work/noise-$noise
  mkdir -p "$dir"
  echo "== noise $noise: mindrec (bench_store --search-only)"
  "$build/benchmarks/bench_store" --items "$items" --users "$users" --noise "$noise" --search-only \
    --export "$dir" "${rerank[@]}" --backends "$mr" | tee "$dir/mindrec.txt"
  echo "== noise $noise: peers (benchmarks/ann_peers.py)"
  PYTHONPATH="$work/pkg" "$venv/bin/python" benchmarks/ann_peers.py "$dir" --nlist "$nlist" --systems "$systems" \
    --mindrec-specs "$specs" $quick | tee "$dir/peers.txt"
  python3 - "$dir" "$noise" <<'PY'
import sys
d, noise = sys.argv[1], sys.argv[2]
def rows(path, cols):
    for line in open(path):
        c = [x.strip() for x in line.strip().strip("|").split("|")]
        if len(c) == cols and c[0] and not c[0].startswith(("store", "system", "---")):
            yield c
best = {}
# Every row of peers.txt comes from the one harness (mindrec through its Python package, like the
# peers); bench_store's C++ timings of mindrec (mindrec.txt) are shown apart, not compared.
for c in rows(f"{d}/peers.txt", 5):     # system and setting | recall | users/s | p50 | p99
    w = c[0].split()
    fam = " ".join(w[:2]) if w[0] in ("faiss-cpu", "mindrec") else w[0]
    if w[0] == "mindrec" and w[1].startswith("hnsw"): fam = "mindrec hnsw"
    cand = (float(c[4]), float(c[3]), float(c[1]), c[0])
    if float(c[1]) >= 0.95 and (fam not in best or cand < best[fam]): best[fam] = cand
print(f"\nnoise {noise}: each system's lowest p99 at recall >= 0.95 (one harness, one grid)")
print("| system | setting | recall | p50 ms | p99 ms |\n|---|---|---:|---:|---:|")
for fam, (p99, p50, r, name) in sorted(best.items(), key=lambda kv: kv[1][0]):
    print(f"| {fam} | {name} | {r:.3f} | {p50:.3f} | {p99:.3f} |")
mine = [v for k, v in best.items() if k.startswith("mindrec")]
peers = [v for k, v in best.items() if not k.startswith("mindrec")]
if mine and peers:
    m, p = min(mine), min(peers)
    print(f"noise {noise}: mindrec's best p99 at recall >= 0.95 is {m[0]:.3f} ms ({m[3]}); the best peer's {p[0]:.3f} ms "
          f"({p[3]}): ratio peer/mindrec {p[0] / m[0]:.2f}")
else:
    print(f"noise {noise}: " + ("no peer" if not peers else "no mindrec store") + " reached recall 0.95")
cpp = {}
for c in rows(f"{d}/mindrec.txt", 8):   # store | build | items/s | MiB | recall | users/s | p50 | p99
    fam = "hnsw" if c[0].startswith("hnsw") else c[0].split("?")[0]
    cand = (float(c[7]), float(c[6]), float(c[4]), c[0])
    if float(c[4]) >= 0.95 and (fam not in cpp or cand < cpp[fam]): cpp[fam] = cand
for fam, (p99, p50, r, name) in sorted(cpp.items()):
    print(f"(bench_store, C++ caller, merge included) {name}: recall {r:.3f}, p50 {p50:.3f} ms, p99 {p99:.3f} ms")
PY
done
