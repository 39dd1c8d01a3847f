#!/usr/bin/env bash
# Training time of each modelling option (issue 29, item 4): `mindrec train` of 1,000 batches on
# the prepared Amazon Beauty split, 2 threads, no evaluation, one option after the other in one
# run (run it on a quiet machine). Prints each option's epoch line and, last, seconds per 100
# batches of each and its ratio to `default` (PaddleRec's hyper-parameters) measured in the same
# run. PaddleRec's own time per batch comes from benchmarks/compare_paddlerec.sh.
#   benchmarks/option_speed.sh [--batches N] [--data PREPARED_DIR] [OPTION ...]
set -euo pipefail
cd "$(dirname "$0")/.."
batches=1000 data=output/amazon-beauty/data
while [ $# -gt 0 ]; do
  case $1 in
    --batches) batches=$2; shift 2;;
    --data) data=$2; shift 2;;
    *) break;;
  esac
done
[ -f "$data/dataset.json" ] || { echo "option_speed.sh: $data is not a prepared split (mindrec prepare)"; exit 1; }
M=$PWD/build/tools/mindrec
N=$(python3 -c "import json;print(json.load(open('$data/dataset.json'))['item_count'])")
o=$(mktemp -d)
trap 'rm -rf "$o"' EXIT
declare -A opts=(
  [default]="" [pow2]="pow_p: 2.0"
  [pow2_beta0.5]="pow_p: 2.0, loss: {hard_negative_beta: 0.5}"
  [pow2_inbatch]="pow_p: 2.0, loss: {in_batch_negatives: true}"
  [pow2_inbatch_beta0.5]="pow_p: 2.0, loss: {in_batch_negatives: true, hard_negative_beta: 0.5}"
  [pow2_dr]="pow_p: 2.0, capsule: {per_interest_transform: true, init_std: 0.0, relu_layer: false}"
  [sa_comirec]="extractor: self_attention, readout: hard, capsule: {relu_layer: false}"
  [pow2_sa]="pow_p: 2.0, extractor: self_attention, capsule: {relu_layer: false}"
  [pow2_sa_h64]="pow_p: 2.0, extractor: self_attention, self_attention: {hidden: 64}, capsule: {relu_layer: false}"
  [pow2_inbatch_beta0.5_sa]="pow_p: 2.0, extractor: self_attention, capsule: {relu_layer: false}, loss: {in_batch_negatives: true, hard_negative_beta: 0.5}"
  [pow2_inbatch_beta0.5_sa_h64]="pow_p: 2.0, extractor: self_attention, self_attention: {hidden: 64}, capsule: {relu_layer: false}, loss: {in_batch_negatives: true, hard_negative_beta: 0.5}"
  [pow2_sa_rr100]="pow_p: 2.0, extractor: self_attention, capsule: {relu_layer: false}, loss: {routing_regularization: 100}"
  [sa_comirec_rr100]="extractor: self_attention, readout: hard, capsule: {relu_layer: false}, loss: {routing_regularization: 100}"
  [sa_comirec_inbatch_beta0.5_rr100]="extractor: self_attention, readout: hard, capsule: {relu_layer: false}, loss: {routing_regularization: 100, in_batch_negatives: true, hard_negative_beta: 0.5}"
  [sa_comirec_rr100_cos0.1]="extractor: self_attention, readout: hard, capsule: {relu_layer: false}, cosine_temperature: 0.1, loss: {routing_regularization: 100}"
  [pow2_inbatch_beta0.5_cos0.1]="pow_p: 2.0, cosine_temperature: 0.1, loss: {in_batch_negatives: true, hard_negative_beta: 0.5}"
  [sa_comirec_rr100_batch512]="extractor: self_attention, readout: hard, capsule: {relu_layer: false}, loss: {routing_regularization: 100}, optimizer: {learning_rate: 0.002}"
  [sa_comirec_rr100_batch1024]="extractor: self_attention, readout: hard, capsule: {relu_layer: false}, loss: {routing_regularization: 100}, optimizer: {learning_rate: 0.00283}"
  [pow2_batch512]="pow_p: 2.0, optimizer: {learning_rate: 0.002}"
  [pow2_batch1024]="pow_p: 2.0, optimizer: {learning_rate: 0.00283}")
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(default pow2 pow2_inbatch_beta0.5 sa_comirec pow2_sa pow2_sa_h64 pow2_inbatch_beta0.5_sa pow2_sa_rr100 sa_comirec_rr100 sa_comirec_inbatch_beta0.5_rr100)
[ "${names[0]}" = default ] || names=(default "${names[@]}")
declare -A secs
for name in "${names[@]}"; do
  [ -n "${opts[$name]+x}" ] || { echo "option_speed.sh: unknown option '$name' (known: ${!opts[*]})"; exit 2; }
  bs=128; case $name in *batch512) bs=512;; *batch1024) bs=1024;; esac
  cat > "$o/$name.yaml" <<C
runner: {train_data_dir: $PWD/$data/train, train_batch_size: $bs, epochs: 1, batches_per_epoch: $batches, seed: 2021, threads: 2, model_save_path: $o/$name}
hyper_parameters: {item_count: $N${opts[$name]:+, ${opts[$name]}}}
C
  line=$($M train --config "$o/$name.yaml" --no-eval 2>&1 | grep -o 'epoch 1: .*' | head -1)
  secs[$name]=$(sed -n 's/.* \([0-9.]*\) s.*/\1/p' <<<"$line" | head -1)
  echo "$name (batch $bs): $line"
done
echo
echo "| option | s / $batches batches | s / 100 batches | vs default |"
echo "|---|---:|---:|---:|"
for name in "${names[@]}"; do
  python3 -c "s=${secs[$name]}; d=${secs[default]}; print(f'| $name | {s:.2f} | {100*s/$batches:.3f} | {s/d:.2f} |')"
done
