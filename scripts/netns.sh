#!/usr/bin/env bash
# Network-namespace helpers for tunstack demos and tests.
#
# Every experiment runs inside a namespace of its own, so the TUN device, its 10.x
# addresses and any traffic never touch the machine's root namespace.
#
# Use as a command:
#   sudo scripts/netns.sh create NAME     # new namespace with lo up
#   sudo scripts/netns.sh delete NAME     # delete it (no error if it is already gone)
#   sudo scripts/netns.sh exec NAME CMD…  # run CMD inside it
#   scripts/netns.sh unique [PREFIX]      # print a name unique to this run (PREFIX-PID-RANDOM)
# or source it and call netns_create / netns_delete / netns_exec / netns_unique_name,
# tunstack_wait_ready / tunstack_stop.
set -euo pipefail

netns_unique_name() {
    # Namespace names are also used to derive TUN names, so keep them short.
    local prefix="${1:-ts}"
    printf '%s-%s-%s\n' "$prefix" "$$" "$((RANDOM % 10000))"
}

netns_create() {
    local ns="$1"
    if ip netns list | awk '{print $1}' | grep -qx -- "$ns"; then
        echo "netns.sh: namespace $ns already exists" >&2
        return 1
    fi
    ip netns add "$ns"
    ip -n "$ns" link set lo up
}

netns_delete() {
    local ns="$1"
    if ip netns list | awk '{print $1}' | grep -qx -- "$ns"; then
        ip netns delete "$ns"
    fi
}

netns_exec() {
    local ns="$1"
    shift
    ip netns exec "$ns" "$@"
}

# Stop a `tunstack serve` started in the background: SIGTERM, up to 5 s, then SIGKILL.
tunstack_stop() {
    local pid="$1"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Wait (up to 30 s) until the server PID in namespace NS answers URL; print LOG and fail
# if it exits or does not answer in time.
tunstack_wait_ready() {
    local ns="$1" pid="$2" url="$3" log="$4"
    for _ in $(seq 150); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "tunstack exited early; its log:" >&2
            cat "$log" >&2
            return 1
        fi
        if ip netns exec "$ns" curl -s -o /dev/null --max-time 1 "$url"; then
            return 0
        fi
        sleep 0.2
    done
    echo "tunstack did not answer $url within 30 s; its log:" >&2
    cat "$log" >&2
    return 1
}

# Run as a command only when executed, not when sourced.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    usage() {
        sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
        exit 2
    }
    [[ $# -ge 1 ]] || usage
    cmd="$1"
    shift
    case "$cmd" in
    create) [[ $# -eq 1 ]] || usage; netns_create "$1" ;;
    delete) [[ $# -eq 1 ]] || usage; netns_delete "$1" ;;
    exec) [[ $# -ge 2 ]] || usage; netns_exec "$@" ;;
    unique) netns_unique_name "${1:-ts}" ;;
    *) usage ;;
    esac
fi
