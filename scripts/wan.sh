#!/usr/bin/env bash
# An emulated wide-area path between two network namespaces, with tunstack-wan (root).
#
#   scripts/wan.sh up NAME [--rtt MS] [--jitter MS] [--loss PCT] [--burst SPEC]
#                          [--reorder PCT] [--rate RATE] [--queue BYTES] [--seed N] [--net N]
#   scripts/wan.sh exec NAME a|b|e CMD...   # run CMD in namespace NAME-a, NAME-b or NAME-e
#   scripts/wan.sh stats NAME               # print the emulator's counters (both directions)
#   scripts/wan.sh down NAME                # stop the emulator, delete the three namespaces
#
# Topology (N = --net, default 201):
#
#   NAME-a                      NAME-e                       NAME-b
#   10.N.1.1 wan-a ═══ tunstack-wan (delay, loss, rate) ═══ wan-b 10.N.2.1
#   route 10.N.0.0/16 dev wan-a                     route 10.N.0.0/16 dev wan-b, forwarding on
#
# tunstack-wan creates both TUN devices in NAME-e and this script moves them into NAME-a
# and NAME-b; each packet the kernel of A routes into wan-a comes out of wan-b into the
# kernel of B, and back. A stack on its own TUN inside NAME-b (e.g. tunstack serve with
# --host-ip 10.N.3.1/24 --ip 10.N.3.2) is reachable from NAME-a through the emulator,
# because B forwards. --rtt is split evenly between the two directions; --loss, --burst,
# --reorder and --rate apply to each direction. RATE is e.g. 100mbit; SPEC is
# TO_BAD:TO_GOOD[:LOSS_BAD[:LOSS_GOOD]] in percent (Gilbert-Elliott). See docs/wan.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WAN_BIN="${TUNSTACK_WAN_BIN:-$here/../target/release/tunstack-wan}"
STATE_ROOT="${TUNSTACK_WAN_STATE:-/run/tunstack-wan}"

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

die() {
    echo "wan.sh: $*" >&2
    exit 1
}

check_name() {
    [[ "$1" =~ ^[A-Za-z0-9_.-]{1,40}$ ]] || die "bad NAME '$1' (letters, digits, _.- only)"
}

ns_exists() {
    # The file ip-netns mounts, rather than `ip netns list`, which fails now and then while
    # other namespaces are being created or deleted.
    [[ -e "/run/netns/$1" ]]
}

wan_down() {
    local name="$1" state="$STATE_ROOT/$1" pid=""
    if [[ -f "$state/pid" ]]; then
        pid="$(cat "$state/pid")"
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    for side in a b e; do
        if ns_exists "$name-$side"; then
            ip netns delete "$name-$side"
        fi
    done
    rm -rf "$state"
}

wan_up() {
    local name="$1"
    shift
    local rtt=0 net=201
    local args=()
    while [[ $# -gt 0 ]]; do
        [[ $# -ge 2 ]] || die "option $1 needs a value"
        case "$1" in
        --rtt) rtt="$2" ;;
        --net) net="$2" ;;
        --jitter | --loss | --burst | --reorder | --reorder-delay | --rate | --queue | --bucket | --seed | --max-in-flight)
            args+=("$1" "$2") ;;
        *) die "unknown option $1" ;;
        esac
        shift 2
    done
    [[ "$net" =~ ^[0-9]+$ ]] && ((net >= 1 && net <= 254)) || die "--net must be 1..254"
    local delay
    delay="$(awk -v r="$rtt" 'BEGIN { if (r !~ /^[0-9]+(\.[0-9]+)?$/) exit 1; printf "%.3f", r / 2 }')" ||
        die "--rtt must be a number of milliseconds"
    [[ -x "$WAN_BIN" ]] || die "no $WAN_BIN (cargo build --release --bin tunstack-wan)"
    local state="$STATE_ROOT/$name"
    for side in a b e; do
        ! ns_exists "$name-$side" || die "namespace $name-$side exists (wan.sh down $name first)"
    done
    mkdir -p "$state"
    # Whatever fails from here on, leave nothing behind.
    trap 'wan_down "$name"' ERR
    for side in a b e; do
        ip netns add "$name-$side"
        ip -n "$name-$side" link set lo up
    done
    ip netns exec "$name-e" setsid "$WAN_BIN" --tun-a wan-a --tun-b wan-b --delay "$delay" \
        --stats "$state/stats" "${args[@]}" </dev/null >"$state/log" 2>&1 &
    echo $! >"$state/pid"
    local ok=""
    for _ in $(seq 100); do
        if grep -q ready "$state/log" 2>/dev/null; then
            ok=1
            break
        fi
        kill -0 "$(cat "$state/pid")" 2>/dev/null || break
        sleep 0.1
    done
    [[ -n "$ok" ]] || { cat "$state/log" >&2; false; }
    for side in a b; do
        local ns="$name-$side" dev="wan-$side" host=1
        [[ "$side" == b ]] && host=2
        ip -n "$name-e" link set "$dev" netns "$ns"
        # IPv6 off: router solicitations and MLD reports would cross the emulator too.
        ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1"
        ip -n "$ns" addr add "10.$net.$host.1/24" dev "$dev"
        ip -n "$ns" link set "$dev" up
        ip -n "$ns" route add "10.$net.0.0/16" dev "$dev"
    done
    ip netns exec "$name-b" sysctl -qw net.ipv4.ip_forward=1
    ip netns exec "$name-b" sysctl -qw net.ipv4.conf.all.rp_filter=0
    trap - ERR
    echo "wan.sh: $name up: $name-a 10.$net.1.1 <-> $name-b 10.$net.2.1, rtt ${rtt} ms ${args[*]}"
}

wan_stats() {
    local name="$1" state="$STATE_ROOT/$1"
    [[ -f "$state/pid" ]] || die "$name is not up"
    rm -f "$state/stats"
    kill -USR1 "$(cat "$state/pid")"
    for _ in $(seq 50); do
        if [[ -f "$state/stats" ]]; then
            cat "$state/stats"
            return 0
        fi
        sleep 0.1
    done
    die "no counters from the emulator of $name"
}

[[ $# -ge 2 ]] || usage
cmd="$1"
name="$2"
shift 2
check_name "$name"
case "$cmd" in
up) wan_up "$name" "$@" ;;
down) wan_down "$name" ;;
stats) wan_stats "$name" ;;
exec)
    [[ $# -ge 2 ]] || usage
    side="$1"
    shift
    [[ "$side" =~ ^[abe]$ ]] || usage
    exec ip netns exec "$name-$side" "$@"
    ;;
*) usage ;;
esac
