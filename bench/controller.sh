#!/usr/bin/env bash
# Controller API benchmark: open-loop load (RATE requests a second, nine reads of an app to
# one app creation) on flynn-controller with its embedded store and with a one-member etcd,
# three runs each; prints p50/p99/max per run and the median p99 against the goal (10 ms at
# 500 requests a second). The load generator runs on CPU 0, the controller (and etcd) on
# CPU 1. Runs in a private network namespace (loopback only).
# Run as root on an idle machine: bench/controller.sh [RATE] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${CONTROLLER_BENCH_NS:-}" ]]; then
    bash script/deps
    cargo build --release --locked -p controller --bins --example api_load
    exec unshare --net --mount --propagation private -- env CONTROLLER_BENCH_NS=1 bash "$0" "$@"
fi
ip link set lo up
rate="${1:-500}"
secs="${2:-20}"
bin="$PWD/target/release"
work=$(mktemp -d /tmp/flynn-controller-bench.XXXXXX)
pids=()
. bench/lib.sh
trap kill_pids_and_remove_work EXIT
key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

taskset -c 1 etcd --data-dir "$work/etcd" --listen-client-urls http://127.0.0.1:12379 \
    --advertise-client-urls http://127.0.0.1:12379 --listen-peer-urls http://127.0.0.1:12380 \
    >"$work/etcd.log" 2>&1 &
pids+=($!)
wait_port 12379

results=()
for store in embedded etcd; do
    for round in 1 2 3; do
        port=$((13000 + round))
        args=(--listen "127.0.0.1:$port" --data "$work/$store-$round" --domain bench.test)
        [[ $store == etcd ]] && args+=(--etcd http://127.0.0.1:12379 --etcd-prefix "/bench/$round")
        AUTH_KEY=$key taskset -c 1 "$bin/flynn-controller" "${args[@]}" 2>"$work/c.log" &
        c=$!
        wait_port "$port"
        line=$(taskset -c 0 "$bin/examples/api_load" "http://127.0.0.1:$port" "$key" "$rate" "$secs")
        kill "$c"; wait "$c" 2>/dev/null || true
        echo "$store run $round: $line"
        results+=("$store $line")
    done
done
python3 - "$rate" "${results[@]}" <<'PY'
import json, statistics, sys
rate = sys.argv[1]
runs = {}
for r in sys.argv[2:]:
    store, line = r.split(" ", 1)
    runs.setdefault(store, []).append(json.loads(line))
for store, rs in runs.items():
    p99 = statistics.median(x["p99_ms"] for x in rs)
    p50 = statistics.median(x["p50_ms"] for x in rs)
    errors = sum(x["errors"] for x in rs)
    print(f"{store}: {rate} req/s, median p50 {p50:.2f} ms, median p99 {p99:.2f} ms "
          f"({p99 / 10:.2f}x the 10 ms goal), errors {errors}")
PY
