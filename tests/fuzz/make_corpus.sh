#!/usr/bin/env bash
# Writes the seed corpus of the fuzz targets into tests/fuzz/corpus/ from a built mindrec
# (default build/): one valid input of each format, made by mindrec itself, plus small text
# files. Run once when a format changes; the corpus is committed.
#   tests/fuzz/make_corpus.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")"
cli="${1:-../../build}/tools/mindrec"
c=corpus
"$cli" init --config seed-model.yaml --out $c/safetensors/seed.safetensors --seed 1 > /dev/null
for spec in flat "faiss:Flat" "faiss:IVF4,Flat" "faiss:HNSW4" "hnsw:M=4,ef_construction=8"; do
  name=$(echo "$spec" | tr ':,' '__')
  "$cli" index --config seed-model.yaml --weights $c/safetensors/seed.safetensors --store "$spec" \
    --out "$c/store_file/$name.idx" > /dev/null
done
printf '1,5,0\n1,7,1\n2,3,0\n2,9,1\n2,11,2\n' > $c/paddlerec/train.txt                       # mode byte 0
printf '\001user_id:1 target_item:0 hist_item:5 hist_item:7 eval_item:9\n' > $c/paddlerec/eval.txt  # mode 1
printf 'hyper_parameters:\n  item_count: 40\n  capsule: {max_k: 2, dynamic_k: true}\nrunner: {epochs: 2, train_data_dir: x}\n' > $c/config/seed.yaml
python3 - $c/safetensors/seed.safetensors $c/config/model.json <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
open(sys.argv[2], "w").write(json.loads(raw[8:8 + n])["__metadata__"]["mindrec.model_config"])
PY
printf '\000{"top_k": 5, "hist_item": [[1, 2, 3], [4]], "exclude_history": true}' > $c/serve_json/recall.json
printf '\001{"ids": [1, 2], "vectors": [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], [1, 1, 1, 1, 1, 1, 1, 1]]}' > $c/serve_json/items.json
printf '\002{"ids": [1, 5]}' > $c/serve_json/delete.json
printf '\000{"ids": "raw", "top_k": 5, "hist_item": [["B001", 7], []]}' > $c/serve_json/recall_raw.json
printf '\001{"raw_ids": ["B001"], "vectors": [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]]}' > $c/serve_json/items_raw.json
mkdir -p $c/catalogue
printf 'id,raw_id,status,clicks\n1,B00123XYZ,active,532\n3,"q ""x""",retired,0\n4, sp ,active,2\n' > $c/catalogue/seed.csv
printf 'id,raw_id:int64\n1,007\n2,-5\n' > $c/catalogue/numeric.csv
mkdir -p $c/filter
printf '%s' 'category in ["shoes", "bags"] and price < 50 and in_stock' > $c/filter/example.txt
python3 - "$c/npy/seed.npy" <<'PY'
import struct, sys
header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
header += " " * (64 - (10 + len(header) + 1) % 64) + "\n"
data = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
open(sys.argv[1], "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data)
PY
# pickle: PaddleRec's own checkpoint (tests/fixtures/paddlerec, made by PaddlePaddle 2.6.2) and
# a protocol-3 OrderedDict of a big-endian float64 and an empty float32 array (NumPy's pickle).
cp ../fixtures/paddlerec/mind.pdparams $c/pickle/paddlerec.pdparams
python3 - $c/pickle/orderdict.pkl <<'PY'
import collections, pickle, sys
import numpy as np
d = collections.OrderedDict(a=np.arange(6, dtype=">f8").reshape(2, 3), b=np.zeros(0, np.float32))
open(sys.argv[1], "wb").write(pickle.dumps(d, protocol=3))
PY
ls -la $c/*
