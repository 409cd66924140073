#!/usr/bin/env bash
# discoverd benchmark: registrations/s and event fan-out (one registration, 1,000 watchers:
# time until the last has it), with the embedded store and with etcd, and etcd's own figures
# from the same run as the reference (`etcdctl check perf` for puts, and a 1,000-watcher
# fan-out on one key through the same Rust etcd client). Loopback only.
# Run on an idle machine: bench/discoverd.sh [REGISTRATIONS] [WATCHERS]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-2000}"
watchers="${2:-1000}"
bash script/deps
cargo build --release --locked -p discoverd --bins --example discoverd_bench
bin="$PWD/target/release"
ulimit -n 16384
work=$(mktemp -d /tmp/flynn-discoverd.XXXXXX)
# Writes need the platform key; the bench client sends it too.
DISCOVERD_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export DISCOVERD_KEY
pids=()
. bench/lib.sh
trap kill_pids_and_remove_work EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cport=$(free_port); pport=$(free_port)
etcd --name b --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$cport" \
    --advertise-client-urls "http://127.0.0.1:$cport" --listen-peer-urls "http://127.0.0.1:$pport" \
    --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "b=http://127.0.0.1:$pport" >"$work/etcd.log" 2>&1 &
pids+=($!)
wait_port "$cport"
etcd_url="http://127.0.0.1:$cport"

e_port=$(free_port)
"$bin/discoverd" --http "127.0.0.1:$e_port" --dns "" --data "$work/embedded" 2>"$work/e.log" &
pids+=($!)
x_port=$(free_port)
"$bin/discoverd" --http "127.0.0.1:$x_port" --dns "" --etcd "$etcd_url" 2>"$work/x.log" &
pids+=($!)
wait_port "$e_port"; wait_port "$x_port"

echo "== $n registrations from 20 clients, then $watchers watchers"
echo -n "embedded store  "; "$bin/examples/discoverd_bench" discoverd "http://127.0.0.1:$e_port" "$n" 20 "$watchers"
echo -n "etcd store      "; "$bin/examples/discoverd_bench" discoverd "http://127.0.0.1:$x_port" "$n" 20 "$watchers"
echo -n "etcd itself     "; "$bin/examples/discoverd_bench" etcd "$etcd_url" "$n" 20 "$watchers"
echo "== etcdctl check perf --load=s (etcd's own put benchmark)"
ETCDCTL_API=3 etcdctl --endpoints "$etcd_url" check perf --load=s 2>&1 | tr '\r' '\n' |
    grep -E '^(PASS|FAIL)' || true
