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
        sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
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

# cargo may live in ~/.cargo/bin, which a plain `sudo` drops from PATH.
if ! command -v cargo >/dev/null 2>&1; then
    sudo_home=""
    if [[ -n "${SUDO_USER:-}" ]]; then
        sudo_home="$(getent passwd "$SUDO_USER" | cut -d: -f6)"
    fi
    for env in "${HOME:-/root}/.cargo/env" /root/.cargo/env "${sudo_home:-/nonexistent}/.cargo/env"; do
        # shellcheck disable=SC1090
        [[ -f "$env" ]] && source "$env" && break
    done
fi

ns="tunstack-demo-$$"
tun="tsdemo$((RANDOM % 10000))"
host_ip="10.0.0.1/24"
stack_ip="10.0.0.2"
log="$(mktemp -t tunstack-demo.XXXXXX.log)"
server_pid=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        echo "== stopping tunstack (SIGTERM)"
        tunstack_stop "$server_pid"
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
    echo "== building (cargo build --release)"
    (cd "$repo" && cargo build --release)
    bin="$repo/target/release/tunstack"
fi

echo "== namespace $ns, TUN $tun: kernel side $host_ip, tunstack answers as $stack_ip"
netns_create "$ns"
RUST_LOG="${RUST_LOG:-info}" ip netns exec "$ns" "$bin" serve \
    --tun "$tun" --host-ip "$host_ip" --ip "$stack_ip" --port 80 ${serve_args[@]+"${serve_args[@]}"} >"$log" 2>&1 &
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
cat "$log"

if ((keep == 1)); then
    echo
    echo "== tunstack keeps serving. In another terminal:"
    echo "     sudo ip netns exec $ns curl -v http://$stack_ip/"
    echo "     sudo ip netns exec $ns tshark -i $tun"
    echo "   Ctrl-C here stops it and deletes the namespace."
    tail -f "$log" &
    tail_pid=$!
    wait "$server_pid" || true
    kill "$tail_pid" 2>/dev/null || true
fi
