#!/usr/bin/env bash
# The lab bench the docs/ chapters use: a network namespace to experiment in, and a
# `tunstack serve` running in the background inside it.
#
#   sudo scripts/lab.sh shell          # a root shell in a fresh namespace (deleted on exit),
#                                      # with target/release (or target/debug) on PATH
#   scripts/lab.sh serve [ARGS…]       # inside it: start `tunstack serve ARGS…` in the
#                                      # background and wait until it listens
#   scripts/lab.sh stop                # SIGTERM it and wait until it has exited (its
#                                      # --pcap file is then complete)
#   scripts/lab.sh log                 # what it printed (logs, --trace lines)
#   scripts/lab.sh grep PATTERN        # the lines of that output matching PATTERN (grep -iE),
#                                      # waiting up to 10 s for the first one to appear
#
# `serve` and `stop` refuse to run in the root namespace: the TUN device and its 10.0.0.x
# addresses belong in a namespace of their own. Files live in $LAB_DIR (/tmp/lab).
# The binary is `tunstack` from PATH, or $TUNSTACK_BIN.
set -euo pipefail

lab_dir="${LAB_DIR:-/tmp/lab}"
pid_file="$lab_dir/serve.pid"
log_file="$lab_dir/serve.log"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

usage() {
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

in_root_namespace() {
    [[ "$(readlink /proc/self/ns/net)" == "$(readlink /proc/1/ns/net 2>/dev/null || echo none)" ]]
}

require_namespace() {
    if in_root_namespace; then
        echo "lab.sh: this is the root network namespace; enter a lab first: sudo scripts/lab.sh shell" >&2
        exit 1
    fi
}

running_pid() {
    [[ -f "$pid_file" ]] || return 1
    local pid
    pid="$(cat "$pid_file")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

cmd_shell() {
    # shellcheck source=scripts/netns.sh
    source "$here/netns.sh"
    local ns
    ns="$(netns_unique_name tslab)"
    netns_create "$ns"
    trap 'netns_delete "$ns"' EXIT
    local bin_dir="$repo/target/release"
    [[ -x "$bin_dir/tunstack" ]] || bin_dir="$repo/target/debug"
    echo "lab: namespace $ns (deleted when this shell exits); tunstack from $bin_dir"
    (cd "$repo" && PATH="$bin_dir:$PATH" ip netns exec "$ns" bash -i) || true
}

cmd_serve() {
    require_namespace
    if pid="$(running_pid)"; then
        echo "lab.sh: tunstack is already running (pid $pid); scripts/lab.sh stop first" >&2
        exit 1
    fi
    local bin="${TUNSTACK_BIN:-tunstack}"
    mkdir -p "$lab_dir"
    : >"$log_file"
    # setsid: the server must not die with the shell that started it.
    RUST_LOG="${RUST_LOG:-info}" setsid "$bin" serve "$@" </dev/null >"$log_file" 2>&1 &
    echo $! >"$pid_file"
    for _ in $(seq 300); do
        if ! running_pid >/dev/null; then
            echo "lab.sh: tunstack serve exited; its output:" >&2
            cat "$log_file" >&2
            rm -f "$pid_file"
            exit 1
        fi
        # The listener is bound before this line is logged, so a SYN sent now is accepted.
        if grep -q "listening on" "$log_file"; then
            echo "lab: tunstack serve $* is listening (pid $(cat "$pid_file"), log: scripts/lab.sh log)"
            return 0
        fi
        sleep 0.1
    done
    echo "lab.sh: tunstack did not report 'listening' within 30 s (is RUST_LOG hiding info?)" >&2
    exit 1
}

cmd_stop() {
    require_namespace
    local pid
    if ! pid="$(running_pid)"; then
        echo "lab: no tunstack running"
        rm -f "$pid_file"
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "lab.sh: tunstack (pid $pid) did not exit within 10 s of SIGTERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pid_file"
    echo "lab: tunstack stopped"
}

[[ $# -ge 1 ]] || usage
cmd="$1"
shift
case "$cmd" in
shell) cmd_shell ;;
serve) cmd_serve "$@" ;;
stop) cmd_stop ;;
log) cat "$log_file" ;;
grep)
    [[ $# -eq 1 ]] || usage
    # The server prints asynchronously; poll instead of hoping it has already written.
    for _ in $(seq 100); do
        grep -qiE -- "$1" "$log_file" 2>/dev/null && break
        sleep 0.1
    done
    grep -iE -- "$1" "$log_file"
    ;;
*) usage ;;
esac
