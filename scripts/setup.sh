#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a result: installs the Debian packages mindrec
# needs (apt), builds Release into build/, builds the Python package into .venv/ (its build and
# test tools from PyPI), and runs the main job on the bundled Amazon Beauty click log
# (data/amazon-beauty): prepare, train, evaluate beside popularity, index, recall.
#
#   scripts/setup.sh                 # everything
#   MINDREC_SKIP_APT=1 scripts/setup.sh   # packages already installed
set -euo pipefail
cd "$(dirname "$0")/.."

# libopenblas0-pthread: Debian's Faiss links the generic libblas.so.3, which then resolves to
# OpenBLAS instead of the reference BLAS (IVF training ~10x faster). curl and wrk: the
# server's examples and its load test. ccache: rebuilds (and CI's several builds) reuse objects.
packages=(build-essential cmake ninja-build pkg-config python3 python3-dev python3-venv
          libeigen3-dev libyaml-cpp-dev libfaiss-dev nlohmann-json3-dev libcli11-dev
          libcpp-httplib-dev libhnswlib-dev doctest-dev libbenchmark-dev libopenblas0-pthread curl wrk ccache)
if [ "${MINDREC_SKIP_APT:-0}" != 1 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

echo "== building (Release) into build/"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DMINDREC_NATIVE=ON
cmake --build build --parallel

echo "== the Python package (scripts/python-package.sh: .venv/, tools from PyPI, pip install .)"
bash scripts/python-package.sh

echo "== main job: MIND on the bundled Amazon Beauty click log (real data), beside the popularity baseline"
out=output/amazon-beauty
./build/tools/mindrec prepare --input data/amazon-beauty/clicks.csv --out "$out/data"
./build/tools/mindrec train --config configs/amazon-beauty.yaml --out "$out/model"
echo "== the best epoch on the test users (never seen in training or model selection)"
./build/tools/mindrec eval --config configs/amazon-beauty.yaml --weights "$out/model/best.safetensors" \
  --data "$out/data/test" --topk 20,50 --json "$out/eval.json"
./build/tools/mindrec infer --config configs/amazon-beauty.yaml --weights "$out/model/best.safetensors" \
  --data "$out/data/test" --out "$out/interests.npy" > /dev/null
echo "== candidate generation: an HNSW index of every item vector, recall for two histories"
./build/tools/mindrec index --config configs/amazon-beauty.yaml --weights "$out/model/best.safetensors" \
  --store hnsw:M=16,ef_construction=100 --out "$out/items.idx"
./build/tools/mindrec recall --config configs/amazon-beauty.yaml --weights "$out/model/best.safetensors" \
  --index "$out/items.idx" --hist 12,45,301 --hist 7,2044 --topk 10 --exclude-history
echo "== results in $out/: data/ (the split), model/ (weights, metrics.csv, metrics.svg: loss and Recall@50"
echo "   per epoch beside popularity), eval.json, interests.npy, items.idx"
