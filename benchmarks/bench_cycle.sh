#!/usr/bin/env bash
# The nightly cycle of a shop on one machine (issue 28), each step timed with its peak
# resident memory (in tables: one table = ITEMS x 64 float32) and its throughput:
#   1. data: a synthetic model of ITEMS x 64 with clustered, diffuse item vectors (the
#      ann_target.sh data's generator, noise 1.5: bench_scale gen-weights --noise) and a click
#      log of CLICKS lines over the ITEMS items (bench_scale gen-clicks);
#   2. `mindrec train`: one epoch with lazy Adam, an epoch being one pass over the log
#      (runner.batches_per_epoch = CLICKS / 128; clicks/s = training examples per second, one per
#      click taken as a target, the tool's own count), and the same on the Books shape (367,983
#      items, min(CLICKS, BOOKS_CLICKS) clicks) for the ratio the issue asks for; dense Adam on
#      DENSE_BATCHES batches at both sizes (a dense pass updates every row's moments each
#      batch: at 20M items a full epoch of it would take days, so its rate is measured, not a pass);
#   3. `mindrec index` of the diffuse model: hnsw, IVF + 4-bit PQ, IVF + Flat, flat (items/s of
#      the build as the tool reports it; wall includes reading the weights);
#   4. store load (flat and hnsw files): GB/s from the page cache and after evicting the file;
#   5. POST /admin/reload while a client recalls: mindrec-serve serves the trained model
#      ("yesterday": its weights and a flat index of them) and reloads the diffuse model with
#      its flat index ("tonight"); reload seconds, recall p99 before and during, errors.
# Last line:
#   train_clicks_per_s=A hnsw_items_per_s=B ivfpq_items_per_s=C load_gb_per_s=D reload_s=E
# (A: lazy Adam at ITEMS; D: the lower of flat's and hnsw's evicted loads).
#
# Full size (the benchmark; about 12 GB of disk, hours on 2 cores):
#   benchmarks/bench_cycle.sh
# Small version (CI): benchmarks/bench_cycle.sh --items 100000 --clicks 400000
#
#   [--items N] [--clicks N] [--users U] [--books-clicks N] [--dense-batches B] [--nlist L] [--hnsw SPEC]
#   [--dir D] [--build DIR]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
items=20000000 clicks=100000000 users=0 books_clicks=5000000 dense_batches=100 nlist=0 dir="" build=build
hnsw="hnsw:M=32,ef_construction=64?ef=128"
while [ $# -gt 0 ]; do
  case "$1" in
    --items) items=$2; shift 2 ;;
    --clicks) clicks=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --books-clicks) books_clicks=$2; shift 2 ;;
    --dense-batches) dense_batches=$2; shift 2 ;;
    --nlist) nlist=$2; shift 2 ;;
    --hnsw) hnsw=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$users" = 0 ] && users=$((clicks / 20))
[ "$books_clicks" -gt "$clicks" ] && books_clicks=$clicks
# Lists: the power of two nearest 2 sqrt(items) (8,192 at 20M, 512 at 100k). At 20M, 8,192 lists
# gave the recall of 16,384 at a lower single-user p99, and 4,096 a higher p99 at equal recall
# (RESULTS "The nightly cycle": the list count at 20M); the first fill's products halve with them.
if [ "$nlist" = 0 ]; then
  nlist=$(awk -v n="$items" 'BEGIN { l = 2 * sqrt(n); p = 1; while (p * 2 <= l * 1.41) p *= 2; print p }')
fi
require_built "$build/benchmarks/bench_scale" "$build/benchmarks/bench_reload" "$build/tools/mindrec" "$build/tools/mindrec-serve"
work_dir cycle
gen=$build/benchmarks/bench_scale
mindrec=$build/tools/mindrec
table=$((items * 64 * 4))
rows=()
slug() { tr -c 'A-Za-z0-9=._\n-' '_' <<<"$1"; }
out_of() { echo "$dir/$(slug "$1").out"; }  # the output file of a timed step
# timed NAME CMD...: runs CMD under /usr/bin/time -v (its output in $dir/NAME.out), records wall
# and peak RSS in the table.
timed() {
  local name=$1; shift
  local f
  f="$dir/$(slug "$name")"
  /usr/bin/time -v -o "$f.time" "$@" > "$f.out" 2>&1 || { cat "$f.out" >&2; exit 1; }
  sed 's/^/    /' "$f.out" | tail -3
  local peak_kb wall
  peak_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$f.time")
  wall=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "$f.time")
  last_peak_gb=$(ratio $((peak_kb * 1024)) 1e9)
  last_wall=$wall
  rows+=("| $name | $wall | $last_peak_gb | $(ratio $((peak_kb * 1024)) "$table") |")
}
echo "== cycle: $items items x 64 (one table = $(ratio "$table" 1e9) GB), $clicks clicks of $users users; $(nproc) cores; $(date -u +%F); $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
t_all=$(date +%s)

# --- 1. data
echo "-- data"
timed "gen-weights (diffuse)" "$gen" gen-weights --items "$items" --noise 1.5 --out "$dir/tonight.safetensors" --config-out "$dir/c.yaml"
mkdir -p "$dir/train" "$dir/books/train"
timed "gen-clicks" "$gen" gen-clicks --lines "$clicks" --users "$users" --items "$items" --out "$dir/train/clicks.txt"

# --- 2. training, one epoch
train_config() {  # train_config ITEMS DATA_DIR OUT LAZY BATCHES
  cat <<EOF
runner:
  train_data_dir: $2
  test_data_dir: $2
  train_batch_size: 128
  epochs: 1
  batches_per_epoch: $5
  seed: 2021
  model_save_path: $3
hyper_parameters:
  item_count: $1
  embedding_dim: 64
  hidden_size: 64
  neg_samples: 128
  optimizer:
    lazy: $4
EOF
}
samples_per_s() { sed -n 's/^epoch 1: loss [0-9.e+-]*, \([0-9.]*\) samples\/s.*/\1/p' "$(out_of "$1")"; }
echo "-- training"
"$gen" gen-clicks --lines "$books_clicks" --users $((books_clicks / 20)) --items 367983 --out "$dir/books/train/clicks.txt" > /dev/null
declare -A train
for lazy in true false; do
  if [ $lazy = true ]; then
    batches=$(( (clicks + 127) / 128 )) books_batches=$(( (books_clicks + 127) / 128 )) what="one epoch"
  else
    batches=$dense_batches books_batches=$dense_batches what="$dense_batches batches"
  fi
  train_config "$items" "$dir/train" "$dir/trained-$lazy" $lazy $batches > "$dir/train-$lazy.yaml"
  timed "train lazy=$lazy ($items items, $what)" "$mindrec" train --config "$dir/train-$lazy.yaml" --no-eval
  train[$lazy]=$(samples_per_s "train lazy=$lazy ($items items, $what)")
  train_config 367983 "$dir/books/train" "$dir/books/trained-$lazy" $lazy $books_batches > "$dir/books-$lazy.yaml"
  timed "train lazy=$lazy (Books shape, 367983 items, $books_batches batches)" "$mindrec" train --config "$dir/books-$lazy.yaml" --no-eval
  train[books_$lazy]=$(samples_per_s "train lazy=$lazy (Books shape, 367983 items, $books_batches batches)")
  echo "  optimizer.lazy $lazy: ${train[$lazy]} clicks/s at $items items ($what), ${train[books_$lazy]} on the Books shape:" \
    "$(ratio "${train[$lazy]}" "${train[books_$lazy]}")x (target >= 0.80)"
done
rm -rf "$dir/trained-false" "$dir/books"

# --- 3. indexes of tonight's model
echo "-- mindrec index"
build_rate() {  # items/s from "indexed N item vectors ... in S s"
  sed -n 's/^indexed \([0-9]*\) item vectors .* in \([0-9.]*\) s .*/\1 \2/p' "$(out_of "$1")" | awk '{ printf "%.0f", $1 / $2 }'
}
declare -A rate
for kind in hnsw ivfpq ivfflat flat; do
  case $kind in
    hnsw) spec=$hnsw ;;
    ivfpq) spec="faiss:IVF$nlist,PQ32x4fs" ;;
    ivfflat) spec="faiss:IVF$nlist,Flat" ;;
    flat) spec=flat ;;
  esac
  timed "index $spec" "$mindrec" index --config "$dir/c.yaml" --weights "$dir/tonight.safetensors" --store "$spec" \
    --out "$dir/$kind.idx"
  rate[$kind]=$(build_rate "index $spec")
  echo "  $spec: ${rate[$kind]} items/s (wall $last_wall with reading the weights, peak $last_peak_gb GB)"
done
rm -f "$dir/ivfpq.idx" "$dir/ivfflat.idx"

# --- 4. store load
echo "-- store load"
declare -A load
for kind in flat hnsw; do
  timed "load $kind" "$gen" load --index "$dir/$kind.idx" --repeat 2
  load[$kind]=$(sed -n 's/^load_gb_per_s_cached=[0-9.]* load_gb_per_s_evicted=\([0-9.]*\)$/\1/p' "$(out_of "load $kind")")
done
load_min=$(awk -v a="${load[flat]}" -v b="${load[hnsw]}" 'BEGIN { print (a < b) ? a : b }')
rm -f "$dir/hnsw.idx"

# --- 5. reload under traffic
echo "-- POST /admin/reload while a client recalls"
# Yesterday's model is the trained one (its own config: ReLU layer on); tonight's, the diffuse one.
"$mindrec" index --config "$dir/train-true.yaml" --weights "$dir/trained-true/last.safetensors" --store flat \
  --out "$dir/yesterday.idx" --allow-untrained-items > /dev/null
log="$dir/serve.log"
"$build/tools/mindrec-serve" --config "$dir/train-true.yaml" --weights "$dir/trained-true/last.safetensors" \
  --index "$dir/yesterday.idx" --port 0 --threads 4 --max-projection-mb 0 --quiet > "$log" 2>&1 &
pid=$!
url=$(serve_url "$log" $pid 3600) || { kill $pid 2>/dev/null; exit 1; }
port=${url##*:}
body='{"top_k": 50, "hist_item": [[11, 22, 33, 44, 55, 66, 77, 88, 99, 110]]}'
reload_body="{\"config\": \"$dir/c.yaml\", \"weights\": \"$dir/tonight.safetensors\", \"index\": \"$dir/flat.idx\"}"
hwm_before=$(awk '/^VmHWM/ {print $2}' /proc/$pid/status)
"$build/benchmarks/bench_reload" --port "$port" --recall-body "$body" --reload-body "$reload_body" \
  --before-s 3 --after-s 3 > "$dir/reload.out" 2>&1 || { cat "$dir/reload.out" >&2; kill $pid; exit 1; }
hwm=$(awk '/^VmHWM/ {print $2}' /proc/$pid/status)
rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status)
kill -TERM $pid; wait $pid 2>/dev/null || true
sed 's/^/    /' "$dir/reload.out"
reload_s=$(sed -n 's/^reload_s=\([0-9.]*\) .*/\1/p' "$dir/reload.out")
echo "  server peak RSS $(ratio $((hwm_before * 1024)) 1e9) GB before the reload, $(ratio $((hwm * 1024)) 1e9) GB" \
  "($(ratio $((hwm * 1024)) "$table") tables) with both snapshots, $(ratio $((rss * 1024)) 1e9) GB after"
rows+=("| mindrec-serve reload (both snapshots at the peak) | ${reload_s}s | $(ratio $((hwm * 1024)) 1e9) | $(ratio $((hwm * 1024)) "$table") |")

echo
echo "| step | wall | peak RSS GB | peak RSS / table |"
echo "|---|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo "== done in $(( $(date +%s) - t_all )) s"
echo "train_clicks_per_s=${train[true]} hnsw_items_per_s=${rate[hnsw]} ivfpq_items_per_s=${rate[ivfpq]} load_gb_per_s=$load_min reload_s=$reload_s"
