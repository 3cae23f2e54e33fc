#!/usr/bin/env bash
# Check tunstack's HTTP with REDbot (https://redbot.org, `pip install redbot`): start
# `tunstack serve` in a namespace of its own and run REDbot's command line against the
# built-in site's index page and a missing page, then (`--root site/`) a file from disk,
# printing each report.
#
#   sudo ./scripts/redbot.sh                 # exit 1 if any report has an error ("bad") note
#   sudo ./scripts/redbot.sh -- --threaded   # arguments after -- go to `tunstack serve`
#
# REDbot rates each note good, info, warn or bad; the script counts the bad ones (errors)
# and the warnings, and lists them.
# TUNSTACK_BIN=/path/to/tunstack uses that binary instead of building one.
set -euo pipefail

serve_args=()
if [[ "${1:-}" == "--" ]]; then
    shift
    serve_args=("$@")
elif [[ $# -gt 0 ]]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
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

# The text report shows severities only as terminal colours: the HAR output carries them
# ("level": good, info, warn, bad), so each URL is also fetched as HAR and its notes
# counted; "bad" ones are errors.
count_notes='
import json, sys
har = json.load(sys.stdin)
def walk(notes):
    for n in notes:
        yield n
        yield from walk(n.get("subnotes", []))
notes = [n for e in har["log"]["entries"] for n in walk(e.get("_red_messages", []))]
for n in notes:
    if n["level"] in ("bad", "warn"):
        print("  " + n["level"] + ": " + n["summary"], file=sys.stderr)
print(sum(n["level"] == "bad" for n in notes), sum(n["level"] == "warn" for n in notes), len(notes))
'
netns_create "$ns"
errors=0
# check ARGS... -- PATHS...: serve with ARGS, run REDbot on each path, add up the errors.
check() {
    local args=()
    while [[ "$1" != "--" ]]; do
        args+=("$1")
        shift
    done
    shift
    ip netns exec "$ns" "$bin" serve --tun "$tun" --host-ip 10.0.0.1/24 --ip "$stack_ip" \
        --port 80 ${args[@]+"${args[@]}"} ${serve_args[@]+"${serve_args[@]}"} >"$log" 2>&1 &
    server_pid=$!
    tunstack_wait_ready "$ns" "$server_pid" "http://$stack_ip/" "$log"
    for path in "$@"; do
        url="http://$stack_ip$path"
        echo "=== redbot $url   (serve ${args[*]:-with the built-in site})"
        ip netns exec "$ns" timeout 120 redbot -o text_verbose "$url" || true
        echo
        read -r bad warn total < <(ip netns exec "$ns" timeout 120 redbot -o har "$url" | python3 -c "$count_notes")
        echo "=== $url: $bad error(s), $warn warning(s) among $total notes"
        errors=$((errors + bad))
    done
    tunstack_stop "$server_pid"
    server_pid=""
}
# The built-in site's index and a 404; then a file served from disk (--root), which also
# has Last-Modified.
check -- / /no-such-page
check --root "$repo/site" -- /style.css
echo "=== total: $errors error(s)"
((errors == 0))
