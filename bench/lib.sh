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
