# Sourced by the tests that run a README block as written (readme_own_data.sh,
# daily_catalogue.sh): readme_block HEADING DIR runs the first ```sh block under the README's
# "## HEADING" from the repository's top, with the folder DIR renamed DIR-ci (removed on exit)
# and port 8000 replaced by a free one; its output goes to $out. A failing block prints its
# output and exits 1.
readme_block() {
  local heading=$1 dir=$2 block port
  block=$(awk -v h="## $heading" '$0 == h {f=1} f&&/^```sh/{g=1;next} g&&/^```/{exit} g' README.md)
  [ -n "$block" ] || { echo "README: no '$heading' block"; exit 1; }
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  block=${block//$dir/$dir-ci}
  block=${block//8000/$port}
  rm -rf "$dir-ci"
  trap "rm -rf '$dir-ci'" EXIT
  out=$(bash -c "set -e; $block" 2>&1) || { echo "$out"; echo "README block '$heading' failed"; exit 1; }
}
