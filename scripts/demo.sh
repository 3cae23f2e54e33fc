#!/usr/bin/env bash
# tunstack demo: build, start `tunstack serve` in a fresh network namespace, and talk to it.
#
#   sudo ./scripts/demo.sh                  # serve, ping + curl once, show the server log, clean up
#   sudo ./scripts/demo.sh --keep           # ... then keep serving until Ctrl-C
#   sudo ./scripts/demo.sh -- --trace       # arguments after -- go to `tunstack serve`
#
# Everything happens inside the namespace tunstack-demo-<pid>: the TUN device, the kernel
# side address 10.0.0.1/24 and the stack's 10.0.0.2. Nothing is configured in the root
# namespace, and the namespace is deleted on exit (also on Ctrl-C or error).
# Set RUST_LOG (e.g. RUST_LOG=tunstack=debug) to see each layer's view of the requests;
# TUNSTACK_BIN=/path/to/tunstack uses that binary instead of building one.
# It needs root: `sudo` (the build then runs as the user who typed sudo, so target/ stays
# theirs) or a root shell as it is (the build then runs as root).
set -euo pipefail

keep=0
serve_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
    --keep) keep=1 ;;
    --)
        shift
        serve_args=("$@")
        break
        ;;
    *)
        sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
    esac
    shift
done

if [[ $EUID -ne 0 ]]; then
    echo "demo.sh: needs root (network namespaces and TUN devices): sudo $0 $*" >&2
    exit 1
fi
if [[ ! -e /dev/net/tun ]]; then
    echo "demo.sh: /dev/net/tun is missing (load the tun module: modprobe tun)" >&2
    exit 1
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/netns.sh
source "$here/netns.sh"

# Under sudo, build as the user who typed it: a root build would leave a root-owned
# target/ that their own `cargo build` can no longer write.
build_user=""
if [[ -n "${SUDO_USER:-}" && "$SUDO_USER" != root ]]; then
    build_user="$SUDO_USER"
fi

ns="tunstack-demo-$$"
tun="tsdemo$((RANDOM % 10000))"
host_ip="10.0.0.1/24"
stack_ip="10.0.0.2"
log="$(mktemp -t tunstack-demo.XXXXXX.log)"
server_pid=""
tail_pid=""
# How much of the log has been shown: the rest (the exit statistics) is shown at the end.
log_shown=0

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        echo "== stopping tunstack (SIGTERM)"
        tunstack_stop "$server_pid"
        if [[ -n "$tail_pid" ]]; then
            # `tail --pid` prints what the server wrote last, then ends by itself.
            wait "$tail_pid" 2>/dev/null || true
        else
            echo "== what tunstack printed as it exited (its statistics)"
            tail -c +$((log_shown + 1)) "$log"
        fi
    fi
    netns_delete "$ns" || true
    rm -f "$log"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n "${TUNSTACK_BIN:-}" ]]; then
    bin="$TUNSTACK_BIN"
    echo "== using TUNSTACK_BIN=$bin (no build)"
else
    bin="$repo/target/release/tunstack"
    if [[ -n "$build_user" ]]; then
        echo "== building as $build_user (cargo build --release)"
        # A login shell finds cargo in ~/.cargo/bin, which sudo's PATH lacks.
        if ! sudo -u "$build_user" -H -- bash -lc \
            '[[ -f ~/.cargo/env ]] && source ~/.cargo/env; cd "$1" && cargo build --release' \
            build "$repo"; then
            echo "demo.sh: the build as $build_user failed (see above). Is Rust installed for $build_user" >&2
            echo "  (rustup)? Did an earlier root build leave target/ owned by root? Then:" >&2
            echo "  sudo chown -R $build_user: $repo/target" >&2
            exit 1
        fi
    else
        # cargo may live in ~/.cargo/bin, which a non-login root shell may not have on PATH.
        if ! command -v cargo >/dev/null 2>&1; then
            for env in "${HOME:-/root}/.cargo/env" /root/.cargo/env; do
                # shellcheck disable=SC1090
                [[ -f "$env" ]] && source "$env" && break
            done
        fi
        echo "== building (cargo build --release)"
        (cd "$repo" && cargo build --release)
    fi
fi

echo "== namespace $ns, TUN $tun: kernel side $host_ip, tunstack answers as $stack_ip"
netns_create "$ns"
RUST_LOG="${RUST_LOG:-info}" ip netns exec "$ns" "$bin" serve \
    --tun "$tun" --host-ip "$host_ip" --ip "$stack_ip" --port 80 \
    --access-log - ${serve_args[@]+"${serve_args[@]}"} >"$log" 2>&1 &
server_pid=$!

# Poll until the server answers; the "listening" log line is informative only.
tunstack_wait_ready "$ns" "$server_pid" "http://$stack_ip/" "$log"

echo
echo "== ping -c 2 $stack_ip   (ICMP echo, answered by src/ip/icmp.rs)"
ip netns exec "$ns" ping -c 2 -W 2 "$stack_ip" || true
echo
echo "== curl -v http://$stack_ip/   (TCP + HTTP, all in userspace; first lines of the page)"
ip netns exec "$ns" curl -sS -v --max-time 10 "http://$stack_ip/" 2>&1 | head -n 30 || true
echo "   [...]"
echo
echo "== curl --data-binary 'hello tunstack' http://$stack_ip/echo   (POST /echo sends the body back)"
ip netns exec "$ns" curl -sS --max-time 10 --data-binary 'hello tunstack' "http://$stack_ip/echo" || true
echo
echo
echo "== server log so far"
# The access log is buffered (written every 200 ms): wait, bounded, for the last request.
for _ in $(seq 50); do
    grep -q '"POST /echo' "$log" && break
    sleep 0.1
done
cat "$log"
log_shown="$(stat -c %s "$log")"

if ((keep == 1)); then
    echo
    echo "== tunstack keeps serving. In another terminal:"
    echo "     sudo ip netns exec $ns curl -v http://$stack_ip/"
    echo "     sudo ip netns exec $ns tshark -i $tun"
    echo "   Ctrl-C here stops it and deletes the namespace."
    tail -c +$((log_shown + 1)) -f --pid="$server_pid" "$log" &
    tail_pid=$!
    wait "$server_pid" || true
fi
