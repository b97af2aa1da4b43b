#!/usr/bin/env bash
# soak.sh: the fault runs with real processes in network namespaces (root,
# iproute2, iptables): 10 nodes under random packet loss beside memberlist
# (TestPacketLoss, ~4 min), then 12 nodes under churn (TestChurnSoak, 10 min).
# Each prints its result table at the end (-v).
#
# usage: testdata/bench/soak.sh [loss|churn|all]
#        env: MESHELL_SOAK_LOSS=2m MESHELL_SOAK_HEAVY=1m MESHELL_SOAK_CHURN=10m MESHELL_SOAK_EVERY=5s
set -euo pipefail
cd "$(dirname "$0")/../.."
case "${1:-all}" in
loss) run=TestPacketLoss ;;
churn) run=TestChurnSoak ;;
all) run='TestPacketLoss|TestChurnSoak' ;;
*) echo "usage: $0 [loss|churn|all]" >&2; exit 2 ;;
esac
MESHELL_SOAK=1 exec go test -count=1 -run "^($run)\$" -v -timeout 40m .
