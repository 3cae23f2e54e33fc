#!/bin/sh
# Run every fuzz target for SECS seconds, one after another, one job each (2 shared cores).
# Usage: fuzz/run-all.sh [SECS]   (from the repository root or fuzz/)
set -u
cd "$(dirname "$0")"
secs=${1:-600}
for t in ipv4_parse tcp_segment_parse frag_reassembler iface_handle_packet ipv6_parse ipv6_reassembler ipv6_ndp_trace; do
    mkdir -p corpus/$t
    echo "=== $t for $secs s"
    RUSTC_BOOTSTRAP=1 cargo fuzz run -a -O $t corpus/$t seeds/$t -- \
        -max_total_time=$secs -jobs=1 -workers=1 -print_final_stats=1 2>&1 | tail -25
done
