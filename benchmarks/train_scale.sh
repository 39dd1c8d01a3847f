#!/usr/bin/env bash
# What the catalogue's size costs training (issue 28 item 4): clicks/s of `mindrec train` at
# ITEMS items against the Books shape (367,983 items), every other thing equal: click logs of
# the same length and the same users (bench_scale gen-clicks, one over each catalogue), the
# same BATCHES batches of 128 from the start of an epoch, bench_cycle.sh's config (128
# negatives, lazy Adam, 2 threads, --no-eval). bench_cycle.sh compares a full epoch over its
# 100M-click log with a Books-shape epoch over 5M clicks (a shorter log, fewer users): this
# isolates the catalogue. With --huge-pages-ab each shape also runs with MINDREC_HUGE_PAGES=0
# (the training arrays on 4 KiB pages; same binary), the arms alternated for --rounds rounds.
# Last line per arm:
#   huge_pages=H items_clicks_per_s=A books_clicks_per_s=B ratio=A/B
#
#   benchmarks/train_scale.sh [--items 20000000] [--clicks 100000000] [--users CLICKS/20]
#     [--batches 100000] [--rounds 1] [--huge-pages-ab] [--dir D] [--build DIR]
# CI-sized: --items 200000 --clicks 400000 --batches 200
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
items=20000000 clicks=100000000 users=0 batches=100000 rounds=1 ab=0 dir="" build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --items) items=$2; shift 2 ;;
    --clicks) clicks=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --huge-pages-ab) ab=1; shift ;;
    --dir) dir=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$users" = 0 ] && users=$((clicks / 20))
require_built "$build/benchmarks/bench_scale" "$build/tools/mindrec"
work_dir train-scale
books=367983
echo "== train_scale: $items items against the Books shape ($books), logs of $clicks clicks of $users users," \
  "$batches batches of 128; $(nproc) cores; $(date -u +%F); $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
for n in "$items" "$books"; do
  mkdir -p "$dir/log-$n"
  [ -s "$dir/log-$n/clicks.txt" ] ||
    "$build/benchmarks/bench_scale" gen-clicks --lines "$clicks" --users "$users" --items "$n" --out "$dir/log-$n/clicks.txt" > /dev/null
  cat > "$dir/train-$n.yaml" <<EOF
runner: {train_data_dir: $dir/log-$n, test_data_dir: $dir/log-$n, train_batch_size: 128, epochs: 1, batches_per_epoch: $batches, seed: 2021, model_save_path: $dir/out-$n}
hyper_parameters: {item_count: $n, embedding_dim: 64, hidden_size: 64, neg_samples: 128, optimizer: {lazy: true}}
EOF
done
arms=1
[ "$ab" = 1 ] && arms="1 0"
declare -A rate
for round in $(seq 1 "$rounds"); do
  for hp in $arms; do
    for n in "$items" "$books"; do
      log="$dir/train-$n-hp$hp-r$round.log"
      MINDREC_HUGE_PAGES=$hp /usr/bin/time -f "%e s wall, %M KB peak" "$build/tools/mindrec" train \
        --config "$dir/train-$n.yaml" --no-eval > "$log" 2>&1 || { cat "$log" >&2; exit 1; }
      rm -rf "$dir/out-$n"
      r=$(sed -n 's/^epoch 1: loss [0-9.e+-]*, \([0-9.]*\) samples\/s.*/\1/p' "$log")
      [ -n "$r" ] || { cat "$log" >&2; echo "train_scale.sh: no 'epoch 1: ... samples/s' line in $log" >&2; exit 1; }
      echo "  round $round huge_pages=$hp $n items: $r clicks/s ($(tail -1 "$log"))"
      rate[$hp,$n]="${rate[$hp,$n]:-} $r"
    done
  done
done
mean() { awk '{ s = 0; for (i = 1; i <= NF; ++i) s += $i; printf "%.0f", s / NF }' <<<"$1"; }
for hp in $arms; do
  a=$(mean "${rate[$hp,$items]}") b=$(mean "${rate[$hp,$books]}")
  echo "huge_pages=$hp items_clicks_per_s=$a books_clicks_per_s=$b ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')"
done
