#!/usr/bin/env bash
# Pull benchmark: the same image from the same loopback registry into a cold store, each run.
#   pinkerton pull            vs  skopeo copy (to an OCI layout)
#   pinkerton pull + rootfs   vs  skopeo copy + umoci unpack
#   pinkerton pull            vs  podman pull (fresh storage)
# The image is a Debian bookworm minbase tree (debootstrap) in 3 gzip layers. All stores live on
# one tmpfs so disk state does not favour any tool. Prints medians, ratios and peak RSS.
# Run as root on an idle machine: bench/pull.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
cache="${BENCH_CACHE:-/var/tmp/flynn-bench}"
bash script/deps
for p in debootstrap hyperfine podman time python3; do
    command -v "$p" >/dev/null || { apt-get install -y -qq "$p" >/dev/null || apt-get install -y -qq "${p/python3/python3-minimal}" >/dev/null; }
done
cargo build --release --locked -p pinkerton
pinkerton="$PWD/target/release/pinkerton"

mkdir -p "$cache"
if [ ! -f "$cache/layout/index.json" ]; then
    echo "== building the benchmark image (debootstrap minbase, 3 layers)"
    rm -rf "$cache/layout"
    [ -d "$cache/minbase/usr" ] ||
        debootstrap --variant=minbase bookworm "$cache/minbase" http://deb.debian.org/debian >/dev/null
    umoci init --layout "$cache/layout"
    umoci new --image "$cache/layout:img"
    # Layer 1: /usr; layer 2: /var and /etc; layer 3: everything else.
    stage="$cache/stage"
    for part in usr "var etc" rest; do
        rm -rf "$stage" && mkdir -p "$stage"
        if [ "$part" = rest ]; then
            (cd "$cache/minbase" && tar --exclude=./usr --exclude=./var --exclude=./etc -cf - .) | tar -C "$stage" -xpf -
        else
            for d in $part; do cp -a "$cache/minbase/$d" "$stage/"; done
        fi
        umoci insert --image "$cache/layout:img" "$stage" / >/dev/null
    done
    rm -rf "$stage"
fi

work=$(mktemp -d /tmp/flynn-bench.XXXXXX)
mount -t tmpfs -o size=6g tmpfs "$work"
registry_pid=""
cleanup() {
    [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null || true
    umount "$work" 2>/dev/null || umount -l "$work"
    rmdir "$work"
}
trap cleanup EXIT

port=5077
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
mkdir -p "$work/registry"
printf 'version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s}\n' \
    "$work/registry" "$port" >"$work/registry.yml"
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.1; done
image="127.0.0.1:$port/bench/debian:minbase"
skopeo copy --quiet --dest-tls-verify=false "oci:$cache/layout:img" "docker://$image"
size=$(du -sb "$cache/layout/blobs" | cut -f1)
echo "== image $image: $((size / 1000000)) MB compressed"

s="$work/s"
clean="rm -rf $s && mkdir -p $s"
hyperfine --runs "$runs" --export-json "$work/h.json" --style basic \
    --prepare "$clean" \
    -n "pinkerton pull" "$pinkerton --store $s/p pull $image" \
    -n "pinkerton pull+rootfs" "$pinkerton --store $s/p pull $image && $pinkerton --store $s/p rootfs $image $s/rootfs" \
    -n "skopeo copy" "skopeo copy --quiet --src-tls-verify=false docker://$image oci:$s/oci:img" \
    -n "skopeo copy+umoci unpack" "skopeo copy --quiet --src-tls-verify=false docker://$image oci:$s/oci:img && umoci unpack --image $s/oci:img $s/bundle" \
    -n "podman pull" "podman --root $s/podman --runroot $s/podman-run pull --quiet --tls-verify=false $image" \
    >"$work/hyperfine.log" 2>&1 || { cat "$work/hyperfine.log"; exit 1; }

rss() { # peak RSS in MiB of one cold run of "$@"
    eval "$clean"
    /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%.0f", $1 / 1024}'
}
rss_p=$(rss "$pinkerton" --store "$s/p" pull "$image")
rss_s=$(rss skopeo copy --quiet --src-tls-verify=false "docker://$image" "oci:$s/oci:img")
rss_pod=$(rss podman --root "$s/podman" --runroot "$s/podman-run" pull --quiet --tls-verify=false "$image")
eval "$clean"

python3 - "$work/h.json" "$rss_p" "$rss_s" "$rss_pod" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
med = {k: v["median"] for k, v in res.items()}
print(f"{'tool':28} {'median s':>9} {'min s':>7} {'max s':>7}")
for k, v in res.items():
    print(f"{k:28} {v['median']:9.3f} {v['min']:7.3f} {v['max']:7.3f}")
print()
def ratio(a, b):
    print(f"{b} / {a}: {med[b] / med[a]:.1f}x")
ratio("pinkerton pull", "skopeo copy")
ratio("pinkerton pull+rootfs", "skopeo copy+umoci unpack")
ratio("pinkerton pull", "podman pull")
print(f"\npeak RSS: pinkerton pull {sys.argv[2]} MiB, skopeo copy {sys.argv[3]} MiB, podman pull {sys.argv[4]} MiB")
PY
