#!/usr/bin/env bash
# git push benchmark: boots the three-host test cluster (integration/src/cluster/: hosts in
# namespaces of their own, etcd, discoverd, routers, the controller, schedulers, the registry
# and gitreceive as jobs) and times `git push` to the new release answering through a router
# for a static site and a Python app with no dependencies: cold (a new app, an empty build
# cache; the stacks are built already) and three warm pushes (a one-line change each), with
# each stage (receive, build, image push, deploy, first routed response). Goals: warm under
# 5 s, cold under 20 s. Published anchors: Flynn 8+ minutes against Heroku's 2+ for one Rails
# app (flynn/flynn#2849); Dokku waits 10 s by default before it switches traffic. Runs in
# private namespaces; nothing leaves the machine.
# Run as root: bench/push.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PUSH_BENCH_NS:-}" ]]; then
    bash script/deps
    cargo build --release --locked --workspace --bins
    cargo build --release --locked -p integration --example push
    target/release/flynn-images fetch stack-run stack-build --cache /var/cache/flynn-test/images >/dev/null
    exec unshare --net --mount --propagation private -- env PUSH_BENCH_NS=1 bash "$0" "$@"
fi
ip link set lo up
target/release/examples/push
