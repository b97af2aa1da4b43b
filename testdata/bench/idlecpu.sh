#!/usr/bin/env bash
# idlecpu.sh: the CPU an idle meshell node costs, precisely, for comparing
# builds or settings side by side. N `--serve` processes join one seed on
# loopback, settle, and `perf stat -e task-clock` counts every CPU
# nanosecond they use over the window (the harness's idle scenario reads
# /proc ticks instead, which are 10 ms coarse).
#
# usage: testdata/bench/idlecpu.sh [MESHELL_BINARY] [-- extra meshell flags]
#        (env: N=10 WINDOW=30 ROUNDS=3 SETTLE=3; give N=100 SETTLE=60)
# Prints one line per round: the % of one core per node, averaged over the
# nodes. Run builds alternately (A B A B …) on a quiet machine.
set -euo pipefail
B=${1:-/tmp/meshell-bench/meshell}
shift || true
[ "${1:-}" = "--" ] && shift
N=${N:-10}
WINDOW=${WINDOW:-30}
ROUNDS=${ROUNDS:-3}
SETTLE=${SETTLE:-3}
command -v perf >/dev/null || { echo "idlecpu.sh needs perf (apt-get install linux-perf)" >&2; exit 2; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

echo "binary: $B $*; nodes: $N; window: ${WINDOW}s; $(nproc) cores"
for round in $(seq 1 "$ROUNDS"); do
	pids=()
	base=$((24000 + RANDOM % 8000)) # below Linux's ephemeral ports (32768–)
	"$B" --serve --alias n01 -P $base "$@" >/dev/null 2>&1 &
	disown
	pids+=($!)
	for _ in $(seq 1 100); do # the seed listens, within 5 s
		(exec 9<>"/dev/tcp/127.0.0.1/$base") 2>/dev/null && break
		sleep 0.05
	done
	for i in $(seq 2 "$N"); do
		"$B" --serve --alias "n$(printf %02d "$i")" -P $((base + i)) --join "127.0.0.1:$base" "$@" >/dev/null 2>&1 &
		disown
		pids+=($!)
	done
	sleep "$SETTLE" # joined and settled
	out=$(perf stat -e task-clock -x, -p "$(IFS=,; echo "${pids[*]}")" -- sleep "$WINDOW" 2>&1 >/dev/null)
	cleanup
	echo "$out" | awk -F, -v w="$WINDOW" -v n="$N" -v r="$round" \
		'/task-clock/ { printf "round %d: %.3f%% of a core per node\n", r, $1 / 1000 / w / n * 100 }'
done
