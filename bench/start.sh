#!/usr/bin/env bash
# Start benchmark: the same busybox rootfs, `/bin/true`, create to exit, sequential runs:
#   flynn runtime with network `none` and with `bridge` (netns, veth, address, NAT rules)
#   runc run, crun run (same rootfs flattened into an OCI bundle from `runc spec`: no seccomp
#   profile, no network setup), and crun run on the very spec flynn ran the job with
#   podman run --network=bridge, when podman is installed
#   flynn `none` in one runtime: jobs one after another in one process with a standby shim, as
#   the host daemon starts them (each of the rows above is a process of its own per start),
#   and the same without the standby shim
#   flynn `none` again with its jobs directory on a tmpfs (crun keeps its state on tmpfs; on a
#   root filesystem without a journal, ext4 pays for every inode it hands out, see
#   BENCHMARKS.md)
# then memory per idle job (100 `sleep` jobs). Everything runs in one private network and mount
# namespace (the bridge and its rules never touch the machine's own network), where
# /sys/fs/cgroup/unified is unmounted (crun 1.8 refuses hybrid cgroups otherwise).
# Run as root on an idle machine: bench/start.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-100}"
bash script/deps
for p in hyperfine runc crun python3; do
    command -v "$p" >/dev/null || apt-get install -y -qq "$p" >/dev/null
done
cargo build --release --locked -p pinkerton -p runtime --bins --example start_bench
bin="$PWD/target/release"

work=$(mktemp -d /tmp/flynn-start.XXXXXX)
trap 'rm -rf "$work"' EXIT
. bench/lib.sh
busybox_layout "$work"
image=localhost/bench/busybox:latest
"$bin/pinkerton" --store "$work/store" import --tag "$image" "$work/oci" >/dev/null
mkdir -p "$work/bundle"
"$bin/pinkerton" --store "$work/store" rootfs "$image" "$work/bundle/rootfs" >/dev/null
(cd "$work/bundle" && runc spec)
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["args"] = ["/bin/true"]
c["process"]["terminal"] = False
json.dump(c, open(sys.argv[1], "w"))
PY

ours="$bin/examples/start_bench $work/store $work/jobs $bin/flynn-shim $image"
ours_tmpfs="$bin/examples/start_bench $work/store $work/tmpfs-jobs $bin/flynn-shim $image"
ours_loop="$bin/examples/start_bench $work/store $work/loop-jobs $bin/flynn-shim $image"
mkdir -p "$work/tmpfs-jobs"
# crun on the spec flynn runs (its seccomp profile, capabilities, mounts, limits), so the
# peer does the same work: the job's config.json with the root made the bundle's rootfs and a
# cgroup of crun's own.
START_BENCH_SPEC="$work/flynn-config.json" unshare --mount --net --propagation private \
    $ours none
mkdir -p "$work/same"
python3 - "$work/flynn-config.json" "$work/same/config.json" "$work/bundle/rootfs" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["root"]["path"] = sys.argv[3]
c["linux"]["cgroupsPath"] = "/bench-crun-same"
for ns in c["linux"]["namespaces"]:
    ns.pop("path", None)
json.dump(c, open(sys.argv[2], "w"))
PY
podman=""
if command -v podman >/dev/null; then
    # Its default open-files limit is above the hard limit some machines allow.
    podman="-n 'podman run --network=bridge' 'podman run --rm --network=bridge --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --rootfs $work/bundle/rootfs /bin/true'"
fi
unshare --mount --net --propagation private bash -c "
    ip link set lo up
    umount /sys/fs/cgroup/unified 2>/dev/null || true
    mount -t tmpfs -o mode=0700 flynn-bench-jobs $work/tmpfs-jobs
    hyperfine -N --warmup 5 --runs $runs --export-json $work/h.json --style basic \
        -n 'flynn none' '$ours none' \
        -n 'flynn none, jobs on tmpfs' '$ours_tmpfs none' \
        -n 'flynn bridge' '$ours bridge' \
        -n 'runc run' 'runc run --bundle $work/bundle bench-runc' \
        -n 'crun run' 'crun run --bundle $work/bundle bench-crun' \
        -n 'crun run, flynn spec' 'crun run --bundle $work/same bench-crun-same' \
        $podman
    $ours_loop loop $runs > $work/loop.txt
    $ours_loop loop-without-standby $runs > $work/loop-own.txt
" >"$work/hyperfine.log" 2>&1 || { cat "$work/hyperfine.log"; exit 1; }

python3 - "$work/h.json" "$work/loop.txt" "$work/loop-own.txt" <<'PY'
import json, statistics, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
for name, path in [("flynn none, one runtime", sys.argv[2]), ("flynn none, 1 rt, no standby", sys.argv[3])]:
    loop = [float(l) / 1000 for l in open(path) if l.strip()]
    res[name] = {"median": statistics.median(loop), "min": min(loop), "max": max(loop)}
print(f"{'runtime':26} {'median ms':>10} {'min ms':>8} {'max ms':>8}")
for k, v in res.items():
    print(f"{k:26} {v['median']*1000:10.1f} {v['min']*1000:8.1f} {v['max']*1000:8.1f}")
none, one = res["flynn none"]["median"], res["flynn none, one runtime"]["median"]
for peer in [k for k in res if not k.startswith("flynn")]:
    print(f"flynn none / {peer}: {none / res[peer]['median']:.2f}x")
for peer in [k for k in res if k.startswith("crun")]:
    print(f"flynn none, one runtime / {peer}: {one / res[peer]['median']:.2f}x")
own = res["flynn none, 1 rt, no standby"]["median"]
print(f"the standby shim saves {(own - one) * 1000:.1f} ms of a start")
bridge = res["flynn bridge"]["median"]
tmpfs = res["flynn none, jobs on tmpfs"]["median"]
print(f"flynn none, jobs on tmpfs / crun run, flynn spec: {tmpfs / res['crun run, flynn spec']['median']:.2f}x")
print(f"bridge costs {(bridge - none) * 1000:.1f} ms over none")
PY
unshare --mount --net --propagation private bash -c "ip link set lo up; $ours idle 100"
