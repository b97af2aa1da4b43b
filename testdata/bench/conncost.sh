#!/usr/bin/env bash
# conncost.sh: what each full-mesh connection costs an idle node. For each
# cluster size N, N `--serve` processes join one seed on loopback and settle;
# then per process: RSS, open file descriptors, OS threads, bytes sent per
# second over the window (from /proc/PID/io wchar, i.e. every write). The
# slope between two sizes is the cost of one more connection.
#
# usage: testdata/bench/conncost.sh [MESHELL_BINARY]   (env: SIZES="10 40" WINDOW=20 SETTLE=10)
set -euo pipefail
B=${1:-/tmp/meshell-bench/meshell}
SIZES=${SIZES:-10 40}
WINDOW=${WINDOW:-20}
SETTLE=${SETTLE:-10}
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; pids=(); }
trap cleanup EXIT
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "binary: $B; $(nproc) cores; window ${WINDOW}s"
printf "%5s %12s %6s %8s %12s\n" N "RSS(KiB)" fds threads "B/s sent"
for N in $SIZES; do
	base=$((24000 + RANDOM % 6000))
	"$B" --serve --alias n001 -P $base >/dev/null 2>&1 &
	disown
	pids+=($!)
	for _ in $(seq 1 100); do
		(exec 9<>"/dev/tcp/127.0.0.1/$base") 2>/dev/null && break
		sleep 0.05
	done
	for i in $(seq 2 "$N"); do
		"$B" --serve --alias "n$(printf %03d "$i")" -P $((base + i)) --join "127.0.0.1:$base" >/dev/null 2>&1 &
		disown
		pids+=($!)
		sleep 0.02
	done
	sleep "$SETTLE"
	declare -A w0=()
	for p in "${pids[@]}"; do w0[$p]=$(awk '/^wchar/ {print $2}' /proc/$p/io); done
	sleep "$WINDOW"
	rss=() fds=() thr=() bps=()
	for p in "${pids[@]}"; do
		rss+=("$(awk '/^VmRSS/ {print $2}' /proc/$p/status)")
		fds+=("$(ls /proc/$p/fd | wc -l)")
		thr+=("$(awk '/^Threads/ {print $2}' /proc/$p/status)")
		bps+=("$(( ($(awk '/^wchar/ {print $2}' /proc/$p/io) - ${w0[$p]}) / WINDOW ))")
	done
	printf "%5d %12s %6s %8s %12s\n" "$N" "$(printf '%s\n' "${rss[@]}" | median)" "$(printf '%s\n' "${fds[@]}" | median)" \
		"$(printf '%s\n' "${thr[@]}" | median)" "$(printf '%s\n' "${bps[@]}" | median)"
	cleanup
	unset w0
done
