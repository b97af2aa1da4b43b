#!/usr/bin/env bash
# run.sh: meshell vs. its anchors, side by side, in one run on this machine.
#
# usage (from anywhere):
#   testdata/bench/run.sh [--meshell PATH | --no-meshell] [harness flags...]
#
#   --meshell PATH   use this meshell binary; default: build it from the repo
#                    root with `CGO_ENABLED=0 go build -o /tmp/meshell-bench/meshell .`
#   --no-meshell     only the anchors (memberlist-default, memberlist-fast,
#                    raw msgpack RPC, gRPC)
#   harness flags    passed through, e.g.
#                      --scenario crash,hang,leave,restart,converge,idle,rpc
#                      --trials 5  --converge-n 40  --idle-duration 30s
#                      --systems memberlist-default,memberlist-fast,meshell,meshell:lan
#                      --json-out results.jsonl
#                    (see `go run ./cmd/harness -h` in testdata/bench)
#
# Output: one JSON line per measurement on stdout, then tables; progress and
# the exact child command lines on stderr. Everything is bounded in time
# (harness --timeout, default 90m) and every child is killed on exit.
# Binaries go to /tmp/meshell-bench (never into the repository).
set -euo pipefail
export CGO_ENABLED=0 # static binaries, as README builds meshell (no libc mapped)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${MESHELL_BENCH_OUT:-/tmp/meshell-bench}

meshell=""
no_meshell=0
args=()
while [ $# -gt 0 ]; do
	case "$1" in
	--meshell) meshell=$2; shift 2 ;;
	--meshell=*) meshell=${1#*=}; shift ;;
	--no-meshell) no_meshell=1; shift ;;
	*) args+=("$1"); shift ;;
	esac
done

run() {
	echo "+ $*" >&2
	"$@"
}

mkdir -p "$out"
if [ "$no_meshell" = 0 ] && [ -z "$meshell" ]; then
	(cd "$root" && run go build -o "$out/meshell" .)
	meshell=$out/meshell
fi
(cd "$here" && run go build -o "$out/harness" ./cmd/harness &&
	run go build -o "$out/mlnode" ./cmd/mlnode &&
	run go build -o "$out/rpcanchor" ./cmd/rpcanchor)

cmd=("$out/harness" --src "$here" --mlnode "$out/mlnode" --rpcanchor "$out/rpcanchor")
if [ "$no_meshell" = 0 ]; then
	cmd+=(--meshell "$meshell")
fi
cmd+=(${args[@]+"${args[@]}"})
# The harness bounds itself (--timeout); this is a backstop.
run timeout -s INT -k 30s 110m "${cmd[@]}"
