#!/usr/bin/env bash
# CI: ComiRec-SA (hyper_parameters.extractor: self_attention) end to end through the command
# line on Amazon Beauty (the main job's prepared data): `mindrec train` (two short epochs),
# `mindrec eval` beside popularity, `mindrec infer` checked against the NumPy port of
# tools/reference, `mindrec index`, and `mindrec-serve` answering /rec/recall as `mindrec
# recall` does for the same history (dense ids: the server is not given the catalogue).
#   tests/cli/self_attention.sh   (from anywhere; needs build/ and .venv, and output/amazon-beauty/data)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
data="$root/output/amazon-beauty/data"
[ -d "$data/train" ] || { echo "self_attention.sh: $data is missing (the main job prepares it)"; exit 1; }
out="$root/output/self-attention-ci"
rm -rf "$out" && mkdir -p "$out"
items=$(.venv/bin/python -c "import json; print(json.load(open('$data/dataset.json'))['item_count'])")
sed -e "s#^  train_data_dir: .*#  train_data_dir: \"$data/train\"#" \
    -e "s#^  test_data_dir: .*#  test_data_dir: \"$data/valid\"#" \
    -e "s#^  model_save_path: .*#  model_save_path: \"$out/model\"#" \
    -e "s#^  epochs: .*#  epochs: 2#" -e "s#^  batches_per_epoch: .*#  batches_per_epoch: 100#" \
    -e "s#^  item_count: .*#  item_count: $items#" configs/comirec-sa.yaml > "$out/sa.yaml"
M=./build/tools/mindrec
$M train --config "$out/sa.yaml" --out "$out/model" > "$out/train.log"
$M eval --config "$out/sa.yaml" --weights "$out/model/best.safetensors" --data "$data/valid" \
  --json "$out/eval.json" > /dev/null
.venv/bin/python - "$out/eval.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("self-attention, 200 batches:", {k: round(v, 4) for k, v in r.items() if k.endswith("@50")})
assert r["recall@50"] > r["popularity_recall@50"], "ComiRec-SA after 200 batches is not above popularity"
PY
$M infer --config "$out/sa.yaml" --weights "$out/model/best.safetensors" --data "$data/test" \
  --out "$out/interests.npy" > /dev/null
.venv/bin/python tools/reference/mind_reference.py check-infer --weights "$out/model/best.safetensors" \
  --data "$data/test" --npy "$out/interests.npy" --rtol 1e-4
$M index --config "$out/sa.yaml" --weights "$out/model/best.safetensors" --store flat --out "$out/items.idx" > /dev/null
want=$($M recall --config "$out/sa.yaml" --weights "$out/model/best.safetensors" --index "$out/items.idx" \
  --hist 43,23,65 --topk 5 --json --dense-ids)
port=$(.venv/bin/python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
./build/tools/mindrec-serve --config "$out/sa.yaml" --weights "$out/model/best.safetensors" \
  --index "$out/items.idx" --port "$port" > "$out/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "localhost:$port/health" > /dev/null && break; sleep 0.2; done
got=$(curl -sf -X POST "localhost:$port/rec/recall" -d '{"top_k": 5, "hist_item": [[43, 23, 65]]}')
.venv/bin/python - "$want" "$got" <<'PY'
import json, sys
want, got = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("mindrec recall:", want)
print("mindrec-serve: ", got)
assert want["users"][0]["items"] == got["ids"][0], "mindrec-serve and mindrec recall disagree on the ids"
assert all(abs(a - b) <= 1e-5 * max(1.0, abs(a)) for a, b in zip(want["users"][0]["scores"], got["scores"][0])), \
    "mindrec-serve and mindrec recall disagree on the scores"
PY
echo "self-attention end to end: ok"
