# Shared by the benchmark scripts (sourced): waiting for a mindrec-serve started in the
# background; the peers' venv.

# peers_venv: prints the venv of the ANN peers (faiss-cpu, hnswlib, usearch; ANN_PEERS_VENV or
# cached per machine), made first if it is missing or broken.
peers_venv() {
  local venv=${ANN_PEERS_VENV:-$HOME/.cache/mindrec-ci/ann-peers-venv}
  if ! "$venv/bin/python" -c "import faiss, hnswlib, usearch, numpy" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q --disable-pip-version-check numpy faiss-cpu hnswlib==0.8.0 usearch >&2
  fi
  echo "$venv"
}

# serve_url LOG PID [SECONDS]: prints http://127.0.0.1:PORT once the server that writes LOG
# (its stdout and stderr) listens and has loaded its model (/healthz no longer "loading");
# prints the log and returns 1 if it exits or takes longer than SECONDS (default 900).
serve_url() {
  local log=$1 pid=$2 limit=${3:-900} port="" start
  start=$(date +%s)
  while [ $(( $(date +%s) - start )) -lt "$limit" ]; do
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "mindrec-serve exited" >&2; return 1; }
    [ -n "$port" ] || port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\) .*/\1/p' "$log")
    if [ -n "$port" ] && curl -s -m 2 "http://127.0.0.1:$port/healthz" | grep -q '"status":"ok"'; then
      echo "http://127.0.0.1:$port"
      return 0
    fi
    sleep 0.2
  done
  cat "$log" >&2
  echo "mindrec-serve did not load its model in $limit s" >&2
  return 1
}
