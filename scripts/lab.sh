#!/usr/bin/env bash
# The lab bench the docs/ chapters use: a network namespace to experiment in, and a
# `tunstack serve` running in the background inside it.
#
#   sudo scripts/lab.sh shell [NAME]   # a root shell in the lab namespace NAME (default
#                                      # tslab), with target/release (or target/debug) on
#                                      # PATH; a second `shell` joins the same lab. When the
#                                      # last shell of a lab exits, its server is stopped and
#                                      # the namespace deleted.
#   scripts/lab.sh serve [ARGS…]       # inside it: start `tunstack serve ARGS…` in the
#                                      # background and wait until it listens
#   scripts/lab.sh stop                # SIGTERM it and wait until it has exited (its
#                                      # --pcap file is then complete)
#   scripts/lab.sh pid                 # the pid of that server (for kill -USR1 …)
#   scripts/lab.sh stats               # its per-layer statistics: asks a running server for
#                                      # them (SIGUSR1), else the ones it printed at exit
#   scripts/lab.sh log                 # what it printed (logs, --trace lines)
#   scripts/lab.sh grep PATTERN        # the lines of that output matching PATTERN (grep -iE),
#                                      # waiting up to 10 s for the first one to appear
#
# `serve` and `stop` refuse to run in the root namespace: the TUN device and its 10.0.0.x
# addresses belong in a namespace of their own. Files live in $LAB_DIR (/tmp/lab for the
# lab tslab, /tmp/lab-NAME for another). The binary is `tunstack` from PATH, or
# $TUNSTACK_BIN. Run as root (sudo, or a root shell as it is).
set -euo pipefail

lab_dir="${LAB_DIR:-/tmp/lab}"
pid_file="$lab_dir/serve.pid"
log_file="$lab_dir/serve.log"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

usage() {
    sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2
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

# The shells of a lab, one file per shell named by its pid, so that the last one to leave
# cleans up (the server, then the namespace) whichever order they exit in.
lab_ns=""
lab_shells=""
lab_env_dir=""
shell_pid_file=""

leave_lab() {
    local rc=$?
    trap - EXIT HUP INT TERM
    [[ -n "$shell_pid_file" ]] && rm -f "$shell_pid_file"
    local f others=0
    for f in "$lab_shells"/*; do
        [[ -e "$f" ]] || continue
        if kill -0 "${f##*/}" 2>/dev/null; then
            others=$((others + 1))
        else
            rm -f "$f" # a shell that died without cleaning up (SIGKILL)
        fi
    done
    if ((others > 0)); then
        echo "lab: left $lab_ns ($others other shell(s) still in it)"
    else
        LAB_DIR="$lab_env_dir" ip netns exec "$lab_ns" "$here/lab.sh" stop >/dev/null 2>&1 || true
        netns_delete "$lab_ns" || true
        rmdir "$lab_shells" 2>/dev/null || true
        echo "lab: namespace $lab_ns deleted"
    fi
    exit "$rc"
}

cmd_shell() {
    [[ $# -le 1 ]] || usage
    # shellcheck source=scripts/netns.sh
    source "$here/netns.sh"
    lab_ns="${1:-tslab}"
    if [[ ! "$lab_ns" =~ ^[A-Za-z0-9_-]{1,32}$ ]]; then
        echo "lab.sh: a lab name is letters, digits, - and _ (got '$lab_ns')" >&2
        exit 2
    fi
    if [[ $lab_ns == tslab ]]; then
        lab_env_dir="${LAB_DIR:-/tmp/lab}"
    else
        lab_env_dir="${LAB_DIR:-/tmp/lab-$lab_ns}"
    fi
    lab_shells="/run/tunstack-lab/$lab_ns"
    mkdir -p "$lab_shells"
    local joined=0
    if ip netns list | awk '{print $1}' | grep -qx -- "$lab_ns"; then
        joined=1
    else
        netns_create "$lab_ns"
    fi
    # The trap names only globals: a `local` would be gone when it runs (set -u).
    shell_pid_file="$lab_shells/$$"
    : >"$shell_pid_file"
    trap leave_lab EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 143' TERM
    local bin_dir="$repo/target/release"
    [[ -x "$bin_dir/tunstack" ]] || bin_dir="$repo/target/debug"
    if ((joined)); then
        echo "lab: joined namespace $lab_ns; tunstack from $bin_dir"
    else
        echo "lab: namespace $lab_ns (deleted when its last shell exits); tunstack from $bin_dir"
    fi
    # The prompt says where commands run: (tslab) root@host:~/tunstack#
    local rc=0
    (cd "$repo" && LAB_DIR="$lab_env_dir" PATH="$bin_dir:$PATH" LAB_NS="$lab_ns" \
        ip netns exec "$lab_ns" bash --rcfile <(
            # shellcheck disable=SC2016
            printf '%s\n' '[[ -f ~/.bashrc ]] && source ~/.bashrc' \
                'PS1="($LAB_NS) $PS1"' 'export LAB_DIR'
        ) -i) || rc=$?
    return "$rc"
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

# The last statistics block of the log: the header line and the indented lines under it.
last_stats_block() {
    awk '/tunstack statistics \(per layer\)/ { n = 0; block = $0 "\n"; inblock = 1; next }
         inblock && /^  / { block = block $0 "\n"; next }
         { inblock = 0 }
         END { printf "%s", block }' "$log_file"
}

cmd_stats() {
    local pid before
    if pid="$(running_pid)"; then
        before="$(grep -c 'tunstack statistics' "$log_file" || true)"
        kill -USR1 "$pid"
        # The server prints asynchronously; wait for the new block and its last line.
        for _ in $(seq 100); do
            if (($(grep -c 'tunstack statistics' "$log_file" || true) > before)) &&
                last_stats_block | grep -q '^  udp '; then
                break
            fi
            sleep 0.1
        done
    elif ! grep -q 'tunstack statistics' "$log_file" 2>/dev/null; then
        echo "lab.sh: no tunstack running and no statistics in $log_file" >&2
        exit 1
    fi
    last_stats_block
}

[[ $# -ge 1 ]] || usage
cmd="$1"
shift
case "$cmd" in
shell) cmd_shell "$@" ;;
serve) cmd_serve "$@" ;;
stop) cmd_stop ;;
pid)
    running_pid || {
        echo "lab.sh: no tunstack running (scripts/lab.sh serve starts one)" >&2
        exit 1
    }
    ;;
stats) cmd_stats ;;
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
