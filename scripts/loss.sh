#!/usr/bin/env bash
# Inject random packet loss on a TUN device inside a network namespace, with nftables.
#
#   sudo scripts/loss.sh NS IFACE PERCENT   # drop PERCENT % of packets in each direction
#   sudo scripts/loss.sh NS IFACE 0         # remove the rules again
#
# Packets the stack writes into the TUN arrive in the kernel on IFACE (prerouting hook);
# packets the kernel sends to the stack leave through IFACE (postrouting hook). Each hook
# drops a packet when `numgen random mod 100 < PERCENT`, so both directions lose about
# PERCENT % independently. The table is named after IFACE, so several TUNs (or several
# test runs, each in its own namespace) never share rules. Run it after the TUN exists.
set -euo pipefail

if [[ $# -ne 3 ]]; then
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
ns="$1"
iface="$2"
percent="$3"

if ! [[ "$percent" =~ ^[0-9]+$ ]] || ((percent > 100)); then
    echo "loss.sh: PERCENT must be an integer 0..100, got '$percent'" >&2
    exit 2
fi
if ! [[ "$iface" =~ ^[A-Za-z0-9_.-]{1,15}$ ]]; then
    echo "loss.sh: bad interface name '$iface'" >&2
    exit 2
fi
# nft table names allow letters, digits, underscore.
table="tunstack_loss_${iface//[^A-Za-z0-9_]/_}"

nsexec() { ip netns exec "$ns" "$@"; }

# Start from a clean table so re-running with another PERCENT replaces the old rules.
if nsexec nft list table inet "$table" >/dev/null 2>&1; then
    nsexec nft delete table inet "$table"
fi

if ((percent == 0)); then
    echo "loss.sh: no loss on $iface in $ns"
    exit 0
fi

nsexec ip link show dev "$iface" >/dev/null || {
    echo "loss.sh: no interface $iface in namespace $ns (start tunstack first)" >&2
    exit 1
}

nsexec nft -f - <<NFT
table inet $table {
    chain from_stack {
        type filter hook prerouting priority -300; policy accept;
        iifname "$iface" numgen random mod 100 < $percent counter drop
    }
    chain to_stack {
        type filter hook postrouting priority 300; policy accept;
        oifname "$iface" numgen random mod 100 < $percent counter drop
    }
}
NFT
echo "loss.sh: dropping ~$percent % of packets each way on $iface in $ns (table inet $table)"
