#!/usr/bin/env bash
# The whole GPU check, for a machine with an NVIDIA GPU (run from the repository root):
# configure and build with CUDA using all cores, run the CUDA tests (device self-test and
# CPU/GPU parity of the model), run the GPU benchmark, and print its table last.
#
#   scripts/gpu-check.sh [ARCH]        # ARCH: CUDA architecture, default 90 (H100)
#
# A GPU-enabled Faiss prebuilt by scripts/build-faiss-gpu.sh .cache/faiss-gpu (carry that
# ignored folder to the GPU machine; building it there would take most of the time budget)
# is used if present, for the faiss-gpu store's tests and benchmark rows.
#
# Needs the same Debian packages as scripts/setup.sh plus the CUDA toolkit (nvcc). Meant to
# finish well within 8 minutes on a 16-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:-90}
export PATH="$PATH:/usr/local/cuda/bin"
jobs=$(nproc)
start=$(date +%s)
echo "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"
faiss_gpu=${MINDREC_FAISS_GPU_PREFIX:-$PWD/.cache/faiss-gpu}
prefix_arg=()
if [ -f "$faiss_gpu/lib/cmake/faiss/faiss-config.cmake" ]; then
  prefix_arg=(-DCMAKE_PREFIX_PATH="$faiss_gpu")
  echo "== using the GPU-enabled Faiss in $faiss_gpu"
else
  echo "== no GPU-enabled Faiss in $faiss_gpu: the faiss-gpu rows will be skipped"
fi
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DMINDREC_WITH_CUDA=ON "${prefix_arg[@]}" \
  -DCMAKE_CUDA_ARCHITECTURES="$arch" -DMINDREC_NATIVE=ON -DMINDREC_BUILD_TOOLS=OFF \
  -DMINDREC_BUILD_EXAMPLES=OFF > build-gpu.log
cmake --build build-gpu --parallel "$jobs" --target mindrec_cuda_tests mindrec_cuda_parity mindrec_cuda_flat mindrec_faiss_gpu bench_gpu >> build-gpu.log
echo "== built in $(( $(date +%s) - start )) s"
status=0
echo "== CUDA tests"
ctest --test-dir build-gpu -R '^cuda\.' --output-on-failure || status=1
build-gpu/tests/cuda/mindrec_cuda_parity | tail -n 40 || status=1
build-gpu/tests/cuda/mindrec_cuda_flat | tail -n 40 || status=1
build-gpu/tests/cuda/mindrec_faiss_gpu | tail -n 20; [ "${PIPESTATUS[0]}" = 0 ] || [ "${PIPESTATUS[0]}" = 77 ] || status=1
echo "== GPU benchmark (interest extraction, GPU and CPU in the same run)"
table=$(build-gpu/benchmarks/bench_gpu --reps 20) || status=1
echo "== done in $(( $(date +%s) - start )) s, status $status"
echo
echo "$table"
exit $status
