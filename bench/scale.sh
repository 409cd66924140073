#!/usr/bin/env bash
# Scale benchmark: boots the three-host test cluster (integration/src/cluster/: hosts in
# namespaces of their own, etcd, discoverd, routers, the controller and two schedulers as
# jobs) and times `web=1 -> web=N` until N jobs run and every router lists N backends, for
# each N given (default 1 10 50), then a one-by-one deploy of 10 jobs. Flynn's documentation
# shows `scale web 1=>3` in about 465 ms; the goal here is 1=>10 in under 1 s. Runs in
# private namespaces; nothing leaves the machine.
# Run as root: bench/scale.sh [N...]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${SCALE_BENCH_NS:-}" ]]; then
    bash script/deps
    cargo build --release --locked --workspace --bins
    cargo build --release --locked -p integration --example scale
    exec unshare --net --mount --propagation private -- env SCALE_BENCH_NS=1 bash "$0" "$@"
fi
ip link set lo up
out=$(target/release/examples/scale "$@")
echo "$out"
ms=$(awk '/^scale web 1=>10:/ { print $4 }' <<<"$out")
if [[ -n "$ms" ]]; then
    awk -v ms="$ms" 'BEGIN { printf "1=>10: %d ms; goal 1000 ms: %.2fx of the goal\n", ms, ms / 1000 }'
fi
