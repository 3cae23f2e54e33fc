#!/usr/bin/env bash
# Check tunstack's HTTP with REDbot (https://redbot.org, `pip install redbot`): start
# `tunstack serve` (built-in site) in a namespace of its own and run REDbot's command line
# against the index page, a file (style.css) and a missing page, printing each report.
#
#   sudo ./scripts/redbot.sh                 # exit 1 if any report has an error ("bad") note
#   sudo ./scripts/redbot.sh -- --threaded   # arguments after -- go to `tunstack serve`
#
# REDbot's text report lists notes by severity; those it counts as errors are its "bad"
# ones, which text_verbose marks with "✘" — what this script counts.
# TUNSTACK_BIN=/path/to/tunstack uses that binary instead of building one.
set -euo pipefail

serve_args=()
if [[ "${1:-}" == "--" ]]; then
    shift
    serve_args=("$@")
elif [[ $# -gt 0 ]]; then
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
if [[ $EUID -ne 0 ]]; then
    echo "redbot.sh: needs root (network namespaces and TUN devices): sudo $0 $*" >&2
    exit 1
fi
command -v redbot >/dev/null || {
    echo "redbot.sh: redbot not found (pip install redbot)" >&2
    exit 1
}

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/netns.sh
source "$here/netns.sh"

ns="$(netns_unique_name tsredbot)"
tun="tsrb$((RANDOM % 10000))"
stack_ip="10.0.0.2"
log="$(mktemp -t tunstack-redbot.XXXXXX.log)"
server_pid=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    tunstack_stop "$server_pid"
    netns_delete "$ns" || true
    rm -f "$log"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n "${TUNSTACK_BIN:-}" ]]; then
    bin="$TUNSTACK_BIN"
else
    (cd "$repo" && cargo build --release -q)
    bin="$repo/target/release/tunstack"
fi

netns_create "$ns"
ip netns exec "$ns" "$bin" serve --tun "$tun" --host-ip 10.0.0.1/24 --ip "$stack_ip" \
    --port 80 ${serve_args[@]+"${serve_args[@]}"} >"$log" 2>&1 &
server_pid=$!
tunstack_wait_ready "$ns" "$server_pid" "http://$stack_ip/" "$log"

errors=0
for path in / /style.css /no-such-page; do
    url="http://$stack_ip$path"
    echo "=== redbot $url"
    report="$(ip netns exec "$ns" timeout 120 redbot -o text_verbose "$url" 2>&1)" || true
    printf '%s\n\n' "$report"
    n="$(grep -c '✘' <<<"$report" || true)"
    echo "=== $url: $n error(s)"
    errors=$((errors + n))
done
echo "=== total: $errors error(s)"
((errors == 0))
