#!/usr/bin/env bash
# Host API benchmark: job creation throughput and create-to-running latency through the
# flynn-host API vs `podman run -d` of the same image (same count, same concurrency; podman
# uses runc here: crun 1.8 refuses this machine's hybrid cgroups), then the daemon's memory
# idle and with 500 running jobs, and the host memory each running job costs (daemon growth +
# its shim), and creations again with those 500 running (and the host mount table then).
# Everything runs in a private network and mount namespace.
# Run as root on an idle machine: bench/api.sh [COUNT] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-100}"
conc="${2:-10}"
if [ -z "${FLYNN_BENCH_INNER:-}" ]; then
    bash script/deps
    command -v podman >/dev/null || apt-get install -y -qq podman >/dev/null
    command -v runc >/dev/null || apt-get install -y -qq runc >/dev/null
    cargo build --release --locked -p flynn-host -p runtime -p pinkerton --bins --example api_bench
    FLYNN_BENCH_INNER=1 exec unshare --net --mount --propagation private "$0" "$@"
fi
ip link set lo up
bin="$PWD/target/release"
work=/tmp/flynn-api-$$  # lowercase: podman names the image after the path
mkdir -p "$work"
daemon=""
cleanup() {
    podman rm -f -t0 $(podman ps -aq --filter name=apibench) >/dev/null 2>&1 || true
    if [ -n "$daemon" ]; then
        for id in $("$bin/flynn-host" ps -aq 2>/dev/null); do "$bin/flynn-host" rm -f "$id" >/dev/null 2>&1 || true; done
        kill "$daemon" 2>/dev/null || true
        wait "$daemon" 2>/dev/null || true
    fi
    # The daemon's tmpfs for its jobs' run files (it outlives the daemon).
    umount "$work/state/runtime/run" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

. bench/lib.sh
busybox_layout "$work"
image=localhost/bench/busybox:latest
"$bin/pinkerton" --store "$work/state/pinkerton" import --tag "$image" "$work/oci" >/dev/null
podman_image=localhost/apibench/busybox:latest
podman tag "$(podman pull -q "oci:$work/oci:bb" | tail -1)" "$podman_image"

export FLYNN_HOST="unix://$work/host.sock"
"$bin/flynn-host" daemon --state "$work/state" --listen "$FLYNN_HOST" 2>"$work/daemon.log" &
daemon=$!
until "$bin/flynn-host" status >/dev/null 2>&1; do sleep 0.05; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
idle_rss=$(rss "$daemon")

echo "== flynn-host API: $count jobs, $conc clients"
ours=$("$bin/examples/api_bench" "$work/host.sock" "$image" "$count" "$conc" apibench-)
echo "$ours"
for id in $("$bin/flynn-host" ps -q); do "$bin/flynn-host" rm -f "$id" >/dev/null; done

echo "== podman run -d (runc): $count containers, $conc at once"
start=$(date +%s.%N)
seq "$count" | xargs -P "$conc" -I{} podman run -d --runtime runc --ulimit nofile=1024:1024 \
    --ulimit nproc=1024:1024 --name apibench-{} "$podman_image" sleep 3600 >/dev/null
end=$(date +%s.%N)
podman rm -f -t0 $(podman ps -aq --filter name=apibench) >/dev/null
python3 - "$ours" "$start" "$end" "$count" <<'PY'
import json, sys
ours = json.loads(sys.argv[1])
podman = int(sys.argv[4]) / (float(sys.argv[3]) - float(sys.argv[2]))
print(f"creations/s: flynn-host {ours['per_sec']:.1f}, podman {podman:.1f}, ratio {ours['per_sec'] / podman:.1f}x")
print(f"create-to-running: p50 {ours['p50_ms']:.1f} ms, p99 {ours['p99_ms']:.1f} ms")
PY

echo "== memory with 500 running jobs"
"$bin/examples/api_bench" "$work/host.sock" "$image" 500 "$conc" idle- >/dev/null
sleep 2
busy_rss=$(rss "$daemon")
shim_kib=0
# The jobs' shims: started for a job (its directory as argument) or standbys that took one
# (working in its run directory); a standby still waiting serves no job and is not counted.
for p in $(pgrep -f "flynn-shim"); do
    cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || continue
    cwd=$(readlink "/proc/$p/cwd" 2>/dev/null) || continue
    if [[ $cmd != *"flynn-shim $work"* ]] \
        && ! [[ $cmd == *--standby* && $cwd == "$work/state/runtime/run/"* ]]; then
        continue
    fi
    shim_kib=$((shim_kib + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup")))
done
python3 - "$idle_rss" "$busy_rss" "$shim_kib" <<'PY'
import sys
idle, busy, shims = (int(x) for x in sys.argv[1:])
print(f"daemon RSS: idle {idle / 1024:.1f} MiB, with 500 jobs {busy / 1024:.1f} MiB")
per_job = ((busy - idle) + shims) / 500
print(f"host overhead per running job: {per_job:.0f} KiB "
      f"(daemon growth {(busy - idle) / 500:.0f} KiB + shim PSS {shims / 500:.0f} KiB)")
PY

echo "== flynn-host API with 500 jobs running: $count jobs, $conc clients"
echo "host mount table: $(wc -l < /proc/self/mountinfo) lines"
"$bin/examples/api_bench" "$work/host.sock" "$image" "$count" "$conc" busy-
