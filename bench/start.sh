#!/usr/bin/env bash
# Start benchmark: the same busybox rootfs, `/bin/true`, create to exit, sequential runs:
#   flynn runtime (shim + libcontainer, overlay rootfs from pinkerton's store)
#   runc run, crun run (same rootfs flattened into an OCI bundle)
# then memory per idle job (100 `sleep` jobs). All runtimes run in one private mount namespace
# where /sys/fs/cgroup/unified is unmounted (crun 1.8 refuses hybrid cgroups otherwise).
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
unshare --mount --propagation private bash -c "
    umount /sys/fs/cgroup/unified 2>/dev/null || true
    hyperfine -N --warmup 5 --runs $runs --export-json $work/h.json --style basic \
        -n 'flynn runtime' '$ours' \
        -n 'runc run' 'runc run --bundle $work/bundle bench-runc' \
        -n 'crun run' 'crun run --bundle $work/bundle bench-crun'
" >"$work/hyperfine.log" 2>&1 || { cat "$work/hyperfine.log"; exit 1; }

python3 - "$work/h.json" <<'PY'
import json, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
print(f"{'runtime':16} {'median ms':>10} {'min ms':>8} {'max ms':>8}")
for k, v in res.items():
    print(f"{k:16} {v['median']*1000:10.1f} {v['min']*1000:8.1f} {v['max']*1000:8.1f}")
ours = res["flynn runtime"]["median"]
for peer in ("runc run", "crun run"):
    print(f"{peer} / flynn runtime: {res[peer]['median'] / ours:.2f}x")
PY
$ours idle 100
