#!/usr/bin/env bash
# A real Milvus 2.3.5 standalone server (PyPI's `milvus` wheel: embedded etcd, local storage)
# for mindrec's milvus:// tests and benchmark, started and stopped by PID.
#
#   scripts/milvus-server.sh start DIR   installs milvus==2.3.5 into a venv (once; MILVUS_VENV,
#                                        default ~/.cache/mindrec-ci/milvus/venv), starts it on a
#                                        free loopback port with authorization on, waits (bounded,
#                                        120 s) until REST v1 answers, and writes DIR/env:
#                                        MILVUS_URL=127.0.0.1:PORT MILVUS_TOKEN=root:Milvus
#                                        MILVUS_WRAPPER_PID=... MILVUS_PID=...
#   scripts/milvus-server.sh stop DIR    stops the server started there (SIGINT to the wrapper,
#                                        which stops its milvus child; SIGKILL to both after 15 s)
#
# Never stops anything by name. Data and logs live under DIR (server.log there on failure).
set -euo pipefail
cmd=${1:?usage: milvus-server.sh start|stop DIR}
dir=${2:?usage: milvus-server.sh start|stop DIR}
venv=${MILVUS_VENV:-$HOME/.cache/mindrec-ci/milvus/venv}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

stop() {
  [ -f "$dir/env" ] || return 0
  # shellcheck disable=SC1091
  . "$dir/env"
  if alive "${MILVUS_WRAPPER_PID:-}"; then kill -INT "$MILVUS_WRAPPER_PID" 2>/dev/null || true; fi
  for _ in $(seq 1 150); do   # bounded: 15 s
    alive "${MILVUS_WRAPPER_PID:-}" || alive "${MILVUS_PID:-}" || break
    sleep 0.1
  done
  for p in "${MILVUS_PID:-}" "${MILVUS_WRAPPER_PID:-}"; do
    if alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  rm -f "$dir/env"
}

case "$cmd" in
stop) stop ;;
start)
  stop   # a server left by an earlier run in the same DIR
  if [ ! -x "$venv/bin/milvus-server" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check milvus==2.3.5
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # The unpacked binaries (about 6 s to unpack) are kept beside the venv; data starts fresh.
  rm -rf "$dir/data"
  mkdir -p "$dir/data" "$(dirname "$venv")/bin"
  ln -sfn "$(dirname "$venv")/bin" "$dir/data/bin"
  # Fresh rows sit in a growing segment that Milvus 2.3 searches with an interim IVF index of
  # 128 lists, 16 of them probed by default: a search right after a write then finds about half
  # of the exact top-50 (benchmarks/milvus_fresh.sh). Probing all 128 makes it exact; what the
  # README asks of a production server too. MILVUS_EXTRA_CONFIG replaces it ("" = the default).
  extra=${MILVUS_EXTRA_CONFIG-queryNode.segcore.interimIndex.nprobe=128}
  setsid "$venv/bin/milvus-server" --data "$dir/data" --proxy-port "$port" \
    --authorization-enabled true ${extra:+--extra-config "$extra"} >"$dir/server.log" 2>&1 </dev/null &
  wrapper=$!
  printf 'MILVUS_WRAPPER_PID=%s\nMILVUS_PID=\nMILVUS_URL=127.0.0.1:%s\nMILVUS_TOKEN=root:Milvus\n' \
    "$wrapper" "$port" >"$dir/env"
  ready=0
  for _ in $(seq 1 240); do   # bounded: 240 x 0.5 s
    if ! alive "$wrapper"; then
      echo "milvus-server exited early; the end of $dir/server.log:" >&2
      tail -30 "$dir/server.log" >&2
      exit 1
    fi
    r=$(curl -s -m 2 -H 'Authorization: Bearer root:Milvus' "http://127.0.0.1:$port/v1/vector/collections" || true)
    case "$r" in *'"code":200'*) ready=1; break ;; esac
    sleep 0.5
  done
  child=$(pgrep -P "$wrapper" -x milvus || true)
  printf 'MILVUS_WRAPPER_PID=%s\nMILVUS_PID=%s\nMILVUS_URL=127.0.0.1:%s\nMILVUS_TOKEN=root:Milvus\n' \
    "$wrapper" "$child" "$port" >"$dir/env"
  if [ "$ready" != 1 ]; then
    echo "milvus not ready after 120 s; the end of $dir/server.log:" >&2
    tail -30 "$dir/server.log" >&2
    stop
    exit 1
  fi
  cat "$dir/env"
  ;;
*) echo "usage: milvus-server.sh start|stop DIR" >&2; exit 2 ;;
esac
