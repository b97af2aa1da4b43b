#!/usr/bin/env bash
# control.sh: the control plane's numbers in a 10-node cluster of real
# processes on loopback: !ping --all round trips (p50/p99 over every node of
# PINGS rounds) and the time from !shutdown --all until every process exited.
#
# usage: testdata/bench/control.sh [MESHELL_BINARY]   (env: N=10 PINGS=200 TRIALS=3)
# Everything is bounded: each wait has a limit and every process is killed
# on exit.
set -euo pipefail
B=${1:-/tmp/meshell-bench/meshell}
N=${N:-10}
PINGS=${PINGS:-200}
TRIALS=${TRIALS:-3}
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

wait_for() { # file pattern seconds
	local end=$((SECONDS + $3))
	until grep -q "$2" "$1" 2>/dev/null; do
		[ $SECONDS -lt $end ] || { echo "timed out waiting for $2 in $1" >&2; cat "$1" >&2; exit 1; }
		sleep 0.05
	done
}

echo "binary: $B; nodes: $N; ping rounds: $PINGS; trials: $TRIALS; $(nproc) cores"
for trial in $(seq 1 "$TRIALS"); do
	pids=()
	base=$((24000 + RANDOM % 8000)) # below Linux's ephemeral ports (32768–)
	"$B" --serve --alias n01 -P $base >/dev/null 2>&1 &
	pids+=($!)
	for _ in $(seq 1 100); do # the seed listens, within 5 s
		(exec 9<>"/dev/tcp/127.0.0.1/$base") 2>/dev/null && break
		sleep 0.05
	done
	for i in $(seq 2 $((N - 1))); do
		"$B" --serve --alias "n$(printf %02d "$i")" -P $((base + i)) --join "127.0.0.1:$base" >/dev/null 2>&1 &
		pids+=($!)
	done
	mkfifo "$dir/in.$trial"
	"$B" --alias ctl -P $((base + N)) --join "127.0.0.1:$base" --no-color <"$dir/in.$trial" >"$dir/out.$trial" 2>&1 &
	ctl=$!
	pids+=($ctl)
	exec 3>"$dir/in.$trial"
	echo "!wait members $N 30s" >&3
	echo '!echo ready' >&3
	wait_for "$dir/out.$trial" '^ready' 40
	for k in $(seq 1 "$PINGS"); do echo '!ping --all --json' >&3; done
	echo '!echo pings-done' >&3
	wait_for "$dir/out.$trial" '^pings-done' 120
	start=$(date +%s%N)
	echo '!shutdown --all' >&3
	for p in "${pids[@]}"; do
		for _ in $(seq 1 600); do kill -0 "$p" 2>/dev/null || break; sleep 0.01; done
	done
	end=$(date +%s%N)
	exec 3>&-
	alive=0
	for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
	python3 - "$dir/out.$trial" "$trial" "$(((end - start) / 1000000))" "$alive" <<'PY'
import json, sys
path, trial, shutdown_ms, alive = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rtts, missing = [], 0
for line in open(path):
    if line.startswith('{"alias"') and '"rtt_us"' in line:
        d = json.loads(line)
        if d["path"] == "local":
            continue
        if d["ok"]:
            rtts.append(d["rtt_us"])
        else:
            missing += 1
rtts.sort()
q = lambda p: rtts[min(len(rtts) - 1, int(p * len(rtts)))]
print(json.dumps({"trial": int(trial), "pings": len(rtts), "unanswered": missing,
                  "ping_p50_us": round(q(0.50), 1), "ping_p99_us": round(q(0.99), 1), "ping_max_us": round(rtts[-1], 1),
                  "shutdown_all_ms": shutdown_ms, "still_running": alive}))
PY
done
