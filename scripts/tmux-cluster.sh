#!/usr/bin/env bash
# tmux-cluster.sh — an N-pane local meshell cluster in tmux.
#
#   scripts/tmux-cluster.sh [-d] [-s SESSION] [-b BINARY] [N] [BASE_PORT]
#   scripts/tmux-cluster.sh -k [-s SESSION]
#
# Opens N tiled panes (default 3), titled node1..nodeN, each running
# `meshell --alias nodeI -P BASE_PORT+I-1 --profile local`; node2..nodeN are
# workers (--tags role=worker,zone=a or zone=b, alternately). node1 starts
# the cluster (!start_cluster 127.0.0.1:BASE_PORT) and turns !events on, then
# the others join it one after the other. Without -b the binary is built
# from this repository into a temporary directory. History goes to a
# temporary directory, not to ~/.meshell_history.
#   -d  leave the session detached (default: attach, or switch inside tmux)
#   -k  kill the session (and its temporary directory)
#   -s  session name (default: meshell)
# Extra meshell flags can be passed in MESHELL_FLAGS.
set -euo pipefail

usage() {
	sed -n '2,/^set /s/^# \{0,1\}//p' "$0" >&2 # the header comment
	exit 2
}

session=meshell detach=0 kill=0 binary=""
while getopts "dks:b:h" opt; do
	case $opt in
	d) detach=1 ;;
	k) kill=1 ;;
	s) session=$OPTARG ;;
	b) binary=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
n=${1:-3}
base=${2:-2254}
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "error: N must be a number ≥ 1, not '$n'" >&2; exit 2; }
[[ $base =~ ^[0-9]+$ ]] && ((base > 0 && base + n - 1 <= 65535)) || { echo "error: BASE_PORT '$base' is not a usable port" >&2; exit 2; }
command -v tmux >/dev/null || { echo "error: tmux is not installed (apt-get install tmux)" >&2; exit 1; }

if ((kill)); then
	dir=$(tmux show-environment -t "$session" MESHELL_TMP 2>/dev/null | sed -n 's/^MESHELL_TMP=//p' || true)
	tmux kill-session -t "$session" 2>/dev/null || { echo "error: no tmux session '$session'" >&2; exit 1; }
	[[ -n $dir && -d $dir && $dir == */meshell-tmux.* ]] && rm -rf "$dir"
	echo "killed session $session"
	exit 0
fi

if tmux has-session -t "$session" 2>/dev/null; then
	echo "error: tmux session '$session' already exists; kill it with $0 -k -s $session" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/meshell-tmux.XXXXXX")
if [[ -z $binary ]]; then
	repo=$(cd "$(dirname "$0")/.." && pwd)
	binary=$tmp/meshell
	echo "building meshell into $binary" >&2
	(cd "$repo" && CGO_ENABLED=0 go build -o "$binary" .)
fi
[[ -x $binary ]] || { echo "error: $binary is not an executable" >&2; exit 1; }
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")

# pane_cmd ALIAS PORT [TAGS]: the pane's command. A meshell that fails
# (a bad flag in MESHELL_FLAGS, say) keeps its pane, and its error on it,
# until Enter: tmux would close the pane at once, taking the error along,
# and the session too when it was its only pane. One that exits 0 (!quit,
# Ctrl-D) closes its pane as before.
pane_cmd() {
	printf '%q --alias %q -P %q --profile local --history-file %q' "$binary" "$1" "$2" "$tmp/history-$1"
	[[ -n ${3:-} ]] && printf ' --tags %q' "$3"
	printf ' %s' "${MESHELL_FLAGS:-}"
	printf ' || { echo "meshell exited with status $?; Enter closes this pane"; read -r _; }'
}

tmux new-session -d -s "$session" -x 200 -y 50 -n cluster "$(pane_cmd node1 "$base")"
tmux set-environment -t "$session" MESHELL_TMP "$tmp"
tmux set-option -t "$session" -w pane-border-status top >/dev/null
tmux set-option -t "$session" -w pane-border-format ' #{pane_title} ' >/dev/null
tmux select-pane -t "$session:cluster.0" -T node1
for ((i = 2; i <= n; i++)); do
	zone=a
	((i % 2)) && zone=b
	tmux split-window -t "$session:cluster" "$(pane_cmd "node$i" $((base + i - 1)) "role=worker,zone=$zone")"
	tmux select-pane -T "node$i"
	tmux select-layout -t "$session:cluster" tiled >/dev/null
done
tmux select-layout -t "$session:cluster" tiled >/dev/null

# wait_for PANE TEXT: until the pane shows TEXT (a grep pattern), for up
# to 20 s; an error line in the pane (a port in use, say) ends it at once,
# and what the pane shows is printed.
wait_for() {
	local out
	for _ in $(seq 1 200); do
		if ! out=$(tmux capture-pane -p -t "$session:cluster.$1" 2>&1); then
			echo "error: node$(($1 + 1))'s pane is gone ($out)" >&2
			return 1
		fi
		grep -q -- "$2" <<<"$out" && return 0
		grep -q '^error: ' <<<"$out" && break
		sleep 0.1
	done
	echo "error: node$(($1 + 1)) never showed '$2'; its pane ends with:" >&2
	grep -v '^$' <<<"$out" | tail -n 5 | sed 's/^/  /' >&2
	echo "the session is left as it is: tmux attach -t $session to look, $0 -k -s $session to kill it" >&2
	return 1
}
send() { tmux send-keys -t "$session:cluster.$1" -l "$2" && tmux send-keys -t "$session:cluster.$1" Enter; }

wait_for 0 '\]>'
send 0 "!start_cluster 127.0.0.1:$base"
wait_for 0 'listening on'
send 0 "!events on"
wait_for 0 '^events on'
for ((i = 1; i < n; i++)); do # one after the other: node1's events come in order
	wait_for "$i" '\]>'
	send "$i" "!join_cluster 127.0.0.1:$base"
	wait_for "$i" 'joined cluster'
done
tmux select-pane -t "$session:cluster.0"
echo "session $session: $n nodes on 127.0.0.1:$base..$((base + n - 1)); kill it with $0 -k -s $session" >&2

if ((!detach)); then
	if [[ -n ${TMUX:-} ]]; then
		tmux switch-client -t "$session"
	else
		tmux attach-session -t "$session"
	fi
fi
