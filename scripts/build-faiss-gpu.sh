#!/usr/bin/env bash
# Builds a GPU-enabled Faiss 1.7.3 from Debian's own source package into PREFIX (default: a
# cache folder outside the clone), for mindrec's `faiss-gpu:` store. Debian's libfaiss-dev is
# CPU-only. Nothing is downloaded but Debian packages (apt-get source).
#
#   scripts/build-faiss-gpu.sh [PREFIX]      # env MINDREC_FAISS_CUDA_ARCH (default 90-real)
#
# 90-real (SASS for sm_90) is what a GPU machine runs. CI, which only compiles and links
# against it, builds 90-virtual (PTX only: no ptxas pass, measured 15 min instead of 40 while
# sharing 2 cores with other builds); each arch has its own marker in PREFIX.
#
# Two patches, both needed with CUDA 13:
#   - Faiss's top CMakeLists.txt must set CMAKE_CUDA_STANDARD 17 (CUDA 13's thrust/cub
#     refuse C++11);
#   - faiss::gpu::getNumDevices() must treat cudaErrorInsufficientDriver like
#     cudaErrorNoDevice, or it aborts on a host without a driver.
# Then configure mindrec with -DCMAKE_PREFIX_PATH=PREFIX -DMINDREC_WITH_CUDA=ON: a compile
# probe detects the GPU-enabled Faiss and builds the faiss-gpu store.
set -euo pipefail
prefix=$(realpath -m "${1:-${MINDREC_CI_CACHE:-$HOME/.cache/mindrec-ci}/faiss-gpu}")
arch=${MINDREC_FAISS_CUDA_ARCH:-90-real}
if [ -f "$prefix/lib/cmake/faiss/faiss-config.cmake" ] && [ -f "$prefix/.mindrec-arch-$arch" ]; then
  echo "GPU-enabled Faiss already in $prefix (arch $arch)"
  exit 0
fi
export PATH="$PATH:/usr/local/cuda/bin"
command -v nvcc >/dev/null || { echo "nvcc not found: the CUDA toolkit is needed" >&2; exit 1; }
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if ! grep -rqsE '^(deb-src|Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "== adding a deb-src entry for bookworm"
  # deb822, with the same Signed-By as Debian's own entry (apt refuses conflicting values).
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' |
    $sudo tee /etc/apt/sources.list.d/mindrec-deb-src.sources >/dev/null
  $sudo apt-get update -qq || { $sudo rm -f /etc/apt/sources.list.d/mindrec-deb-src.sources; exit 1; }
fi
command -v dpkg-source >/dev/null || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dpkg-dev
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends libblas-dev liblapack-dev cmake ninja-build >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get source -qq faiss >/dev/null
src=$(find "$work" -maxdepth 1 -type d -name 'faiss-1.7.3*' | head -1)
[ -n "$src" ] || { echo "apt-get source faiss gave no faiss-1.7.3 folder" >&2; exit 1; }
cd "$src"
# Patch 1: C++17 for CUDA.
grep -q 'CMAKE_CUDA_STANDARD' CMakeLists.txt ||
  sed -i '0,/^project(/s//set(CMAKE_CUDA_STANDARD 17)\nset(CMAKE_CUDA_STANDARD_REQUIRED ON)\nproject(/' CMakeLists.txt
# Patch 2: no driver = no device.
sed -i 's/if (cudaErrorNoDevice == err) {/if (cudaErrorNoDevice == err || cudaErrorInsufficientDriver == err) {/' \
  faiss/gpu/utils/DeviceUtils.cu
grep -q 'cudaErrorInsufficientDriver' faiss/gpu/utils/DeviceUtils.cu || { echo "patch 2 did not apply" >&2; exit 1; }
echo "== building Faiss 1.7.3 with GPU support for $arch into $prefix (about 9 minutes on 2 cores)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DFAISS_ENABLE_GPU=ON -DFAISS_ENABLE_PYTHON=OFF \
  -DBUILD_TESTING=OFF -DBUILD_SHARED_LIBS=ON -DFAISS_OPT_LEVEL=generic -DCMAKE_CUDA_ARCHITECTURES="$arch" \
  -DCMAKE_INSTALL_PREFIX="$prefix" > "$work/configure.log" || { tail -30 "$work/configure.log" >&2; exit 1; }
cmake --build build --target faiss --parallel "$(nproc)" > "$work/build.log" || { tail -40 "$work/build.log" >&2; exit 1; }
rm -rf "$prefix"
cmake --install build > /dev/null
touch "$prefix/.mindrec-arch-$arch"
echo "== GPU-enabled Faiss in $prefix: $(du -sh "$prefix/lib" | cut -f1) of libraries"
