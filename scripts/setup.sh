#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a result: installs the Debian packages mindrec
# needs (apt only, nothing else downloaded), builds Release into build/, and runs the main job
# on the bundled Amazon Books sample (data/amazonbook-sample).
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

echo "== main job: train MIND on the sample, then evaluate it on the sample's validation users"
out=output/amazonbook-sample
./build/tools/mindrec train --config configs/amazonbook-sample.yaml --out "$out"
./build/tools/mindrec eval --config configs/amazonbook-sample.yaml --weights "$out/best.safetensors" \
  --data data/amazonbook-sample/valid --topk 20,50 --json "$out/eval.json"
./build/tools/mindrec infer --config configs/amazonbook-sample.yaml --weights "$out/best.safetensors" \
  --data data/amazonbook-sample/valid --out "$out/interests.npy" > /dev/null
echo "== candidate generation: index every item vector, recall for two users' histories"
./build/tools/mindrec index --config configs/amazonbook-sample.yaml --weights "$out/best.safetensors" \
  --store flat --out "$out/items.idx"
./build/tools/mindrec recall --config configs/amazonbook-sample.yaml --weights "$out/best.safetensors" \
  --index "$out/items.idx" --hist 43,23,65 --hist 675,3456 --topk 10
echo "== results in $out/: metrics.csv, metrics.svg (loss and Recall@50 per epoch), eval.json, interests.npy, items.idx"
