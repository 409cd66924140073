# Shared by the benchmark scripts (sourced).

# busybox_layout DIR: an OCI layout DIR/oci with image "bb": busybox-static with true, sleep
# and sh (built with umoci in DIR/b).
busybox_layout() {
    local dir="$1"
    umoci init --layout "$dir/oci" >/dev/null
    umoci new --image "$dir/oci:bb"
    umoci unpack --image "$dir/oci:bb" "$dir/b" >/dev/null
    mkdir -p "$dir/b/rootfs/bin"
    cp /bin/busybox "$dir/b/rootfs/bin/busybox"
    for a in true sleep sh; do ln -s busybox "$dir/b/rootfs/bin/$a"; done
    umoci repack --image "$dir/oci:bb" "$dir/b" >/dev/null
}

# The EXIT trap of benchmarks that start processes: kills every pid in the array `pids`, waits
# for them and removes the directory `$work`.
kill_pids_and_remove_work() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}

# wait_port PORT: waits until something listens on 127.0.0.1:PORT.
wait_port() { until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do sleep 0.05; done; }
