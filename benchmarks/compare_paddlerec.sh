#!/usr/bin/env bash
# PaddleRec's own MIND (the seed system: ../shared/peers/paddlerec, PaddlePaddle 2.6.2 in its
# cached venv) and mindrec, trained side by side on the same prepared Amazon Beauty split for the
# same number of batches with the same hyper-parameters and threads, each evaluated on the
# validation users by its own evaluator (PaddleRec's models/recall/mind/infer.py; mindrec eval
# --paddlerec-compat, which counts as infer.py does). Prints each side's seconds per 100
# batches, their ratio, and both metric rows.
#
#   benchmarks/compare_paddlerec.sh [--batches N] [--threads T] [--build DIR] [--peer DIR]
#
# Defaults: 1,000 batches (one PaddleRec epoch), 1 thread (PaddleRec's CPU default), build/,
# the peer at $MINDREC_PADDLEREC_PEER, ../shared/peers/paddlerec or /work/shared/peers/paddlerec.
# Exits 77 with the reason when the peer is not on this machine. Hyper-parameters: PaddleRec's
# config_bigdata.yaml (batch 128, 1280 negatives, Adam lr 0.001, D = H = 64, L = 20, K = 4).
set -euo pipefail
cd "$(dirname "$0")/.."
batches=1000 threads=1 build=build peer=${MINDREC_PADDLEREC_PEER:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --batches) batches=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --peer) peer=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -z "$peer" ]; then
  for p in ../shared/peers/paddlerec /work/shared/peers/paddlerec; do
    [ -x "$p/run.sh" ] && { peer=$p; break; }
  done
fi
if [ -z "$peer" ] || [ ! -x "$peer/run.sh" ]; then
  echo "compare_paddlerec: PaddleRec's MIND (the peer's run.sh) is not on this machine: set MINDREC_PADDLEREC_PEER or --peer"
  exit 77
fi
cli=$build/tools/mindrec
data=output/amazon-beauty/data
[ -f "$data/dataset.json" ] || "$cli" prepare --input data/amazon-beauty/clicks.csv --out "$data" > /dev/null
item_count=$(python3 -c "import json; print(json.load(open('$data/dataset.json'))['item_count'])")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== PaddleRec MIND ($peer), $batches batches, $threads thread(s)"
PADDLE_NUM_THREADS=$threads TRAIN_DIR=$data/train VALID_DIR=$data/valid ITEM_COUNT=$item_count \
  WORK_DIR=$work/paddle bash "$peer/run.sh" "$batches" > "$work/paddle.out" 2>&1 ||
  { cat "$work/paddle.out" >&2; echo "FAIL: PaddleRec's run failed" >&2; exit 1; }
grep -E '^paddlerec_' "$work/paddle.out"
p100=$(sed -n 's/^paddlerec_seconds_per_100_batches=//p' "$work/paddle.out")
prow=$(grep '^paddlerec_infer:' "$work/paddle.out")
p_recall=$(sed -n 's/.*recall@50: \([0-9.]*\).*/\1/p' <<<"$prow")
p_ndcg=$(sed -n 's/.*ndcg@50: \([0-9.]*\).*/\1/p' <<<"$prow")
p_hit=$(sed -n 's/.*hitrate@50: \([0-9.]*\).*/\1/p' <<<"$prow")

echo "== mindrec, $batches batches, $threads thread(s)"
cat > "$work/mindrec.yaml" <<YAML
runner:
  train_data_dir: "$PWD/$data/train"
  train_batch_size: 128
  infer_batch_size: 128
  epochs: 1
  batches_per_epoch: $batches
  print_interval: 100000
  seed: 2021
  threads: $threads
hyper_parameters:
  optimizer: {class: Adam, learning_rate: 0.001}
  item_count: $item_count
  embedding_dim: 64
  hidden_size: 64
  neg_samples: 1280
  maxlen: 20
  pow_p: 1.0
  capsule: {iters: 3, max_k: 4, init_std: 1.0}
YAML
"$cli" train --config "$work/mindrec.yaml" --out "$work/mindrec" --no-eval > "$work/mindrec.out" 2>&1
m_seconds=$(awk -F, 'NR == 2 { print $3 }' "$work/mindrec/metrics.csv")
m100=$(python3 -c "print(f'{100 * $m_seconds / $batches:.3f}')")
echo "mindrec_seconds_per_100_batches=$m100"
"$cli" eval --config "$work/mindrec.yaml" --weights "$work/mindrec/last.safetensors" --data "$data/valid" \
  --topk 50 --paddlerec-compat --no-baseline --json "$work/mindrec.json" > "$work/eval.out"
read -r m_recall m_ndcg m_hit < <(python3 -c "
import json; r = json.load(open('$work/mindrec.json')); print(r['recall@50'], r['ndcg@50'], r['hitrate@50'])")

echo "== side by side: the same split (Amazon Beauty, item_count $item_count), $batches batches of 128, $threads thread(s)"
printf '| system | s / 100 batches | Recall@50 | NDCG@50 | HitRate@50 |\n|---|---:|---:|---:|---:|\n'
printf '| PaddleRec MIND (PaddlePaddle 2.6.2), infer.py | %s | %.5f | %.5f | %.5f |\n' "$p100" "$p_recall" "$p_ndcg" "$p_hit"
printf '| mindrec, eval --paddlerec-compat | %s | %.5f | %.5f | %.5f |\n' "$m100" "$m_recall" "$m_ndcg" "$m_hit"
python3 -c "print(f'speedup={$p100 / $m100:.2f} (PaddleRec s per 100 batches / mindrec s per 100 batches)')"
