#!/usr/bin/env bash
# Goodput over an emulated WAN: tunstack against Linux's TCP, through the same emulator, in
# the same run (root). For every cell of RTT × loss it brings up scripts/wan.sh's path,
# serves the same file from tunstack (on its own TUN in namespace B, forwarded by B's kernel)
# and from Linux (examples/linux_responder in B), and measures from namespace A with curl:
#
#   A: curl (Linux TCP) ─ wan-a ═ tunstack-wan (delay, loss, rate) ═ wan-b ─ B ─┬─ Linux TCP: linux_responder 10.N.2.1:80
#                                                                               └─ TUN tsrv ═ tunstack serve 10.N.3.2:80
#
#   download  GET of the file: bytes / (time_total − time_pretransfer)
#   upload    POST /echo of the file (curl -H 'Expect:' --max-filesize 1: it stops at the
#             answer's head, so the echo does not come back): bytes / (time_total − time_pretransfer)
#   retx/lost the emulator's counters for the data direction: TCP payload bytes sent again
#             below the flow's highest sequence number, over payload bytes it dropped
#   RTOs      the data sender's retransmission timeouts: tunstack's GET /_stats (from B,
#             off the emulated path), or nstat's TcpExtTCPTimeouts in Linux's namespace
#
# A transfer that hits --max-time counts the new payload bytes the emulator forwarded in
# that time instead (marked * in the table). Options (defaults in brackets):
#   --rtts "10 50 100 200"   --losses "0 0.1 1 3"   --size MIB [16]   --max-time S [120]
#   --rate RATE [50mbit]     --dirs "down up"       --seed N [1]      --out DIR [target/bench-wan]
#   --linux-cc CC [the namespaces' default]: Linux's congestion control at both ends (a
#             route attribute; the client's is also the sender of the uploads to tunstack)
# The bottleneck queue is one bandwidth-delay product (at least 64 KiB). Every namespace,
# process and file it creates is removed on exit, Ctrl-C or failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$here/.."
RTTS="10 50 100 200"
LOSSES="0 0.1 1 3"
SIZE_MIB=16
MAX_TIME=120
RATE=50mbit
DIRS="down up"
SEED=1
OUT="$repo/target/bench-wan"
NET=202
LINUX_CC=""

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 2
}

while [[ $# -gt 0 ]]; do
    [[ $# -ge 2 ]] || usage
    case "$1" in
    --rtts) RTTS="$2" ;;
    --losses) LOSSES="$2" ;;
    --size) SIZE_MIB="$2" ;;
    --max-time) MAX_TIME="$2" ;;
    --rate) RATE="$2" ;;
    --dirs) DIRS="$2" ;;
    --seed) SEED="$2" ;;
    --out) OUT="$2" ;;
    --linux-cc) LINUX_CC="$2" ;;
    *) usage ;;
    esac
    shift 2
done
[[ "$SIZE_MIB" =~ ^[0-9]+$ && "$SIZE_MIB" -ge 1 && "$SIZE_MIB" -le 256 ]] || { echo "--size: 1..256 MiB" >&2; exit 2; }
[[ "$MAX_TIME" =~ ^[0-9]+$ && "$MAX_TIME" -ge 1 && "$MAX_TIME" -le 1800 ]] || { echo "--max-time: 1..1800 s" >&2; exit 2; }
if [[ $EUID -ne 0 ]]; then
    echo "bench-wan.sh: needs root (network namespaces, TUN devices)" >&2
    exit 1
fi
for tool in ip curl awk python3; do
    command -v "$tool" >/dev/null || { echo "bench-wan.sh: needs $tool" >&2; exit 1; }
done

TS_BIN="${TUNSTACK_BIN:-$repo/target/release/tunstack}"
LR_BIN="$repo/target/release/examples/linux_responder"
WAN_BIN="$repo/target/release/tunstack-wan"
if [[ -z "${NO_BUILD:-}" ]]; then
    echo "=== building release binaries"
    (cd "$repo" && cargo build --release --bin tunstack --bin tunstack-wan --example linux_responder)
fi
export TUNSTACK_WAN_BIN="$WAN_BIN"

NAME="bw-$$"
WORK="$(mktemp -d /tmp/bench-wan.XXXXXX)"
PIDS=()
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    "$here/wan.sh" down "$NAME" 2>/dev/null || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$OUT"
RAW="$OUT/raw.txt"
: >"$RAW"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$WORK/file.bin"
echo ok >"$WORK/ready.txt"
BYTES=$((SIZE_MIB * 1024 * 1024))

{
    echo "# $(date -u '+%F %T') UTC, $(uname -r), $(nproc) CPUs, build $(git -C "$repo" rev-parse --short HEAD)"
    echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# size ${SIZE_MIB} MiB, max-time ${MAX_TIME} s, rate $RATE, seed $SEED"
    echo "# rtt loss dir stack goodput_mbit bytes secs timed_out retx_bytes lost_bytes sender_rtos"
} >>"$RAW"

# The counters of one direction (a_to_b or b_to_a): "payload retx lost".
counters() {
    "$here/wan.sh" stats "$NAME" | awk -v d="$1" '$1 == d {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); c[kv[1]] = kv[2] }
        print c["tcp_payload_bytes"], c["tcp_retransmitted_bytes"], c["tcp_lost_bytes"] }'
}

wait_ready() {
    for _ in $(seq 120); do
        if "$here/wan.sh" exec "$NAME" a curl -sf --max-time 2 -o /dev/null "$1/ready.txt"; then
            return 0
        fi
        sleep 0.5
    done
    echo "bench-wan.sh: $1 did not answer" >&2
    return 1
}

# The data sender's retransmission timeouts so far: tunstack's own counter (GET /_stats from
# B's kernel, off the emulated path) or Linux's TcpExtTCPTimeouts in the sender's namespace.
rtos() {
    local dir="$1" stack="$2" side=a
    if [[ "$dir" == down && "$stack" == tunstack ]]; then
        ip netns exec "$NAME-b" curl -sf --max-time 5 "http://10.$NET.3.2/_stats" |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["tcp"]["rto_expirations"])' ||
            echo "?"
        return 0
    fi
    [[ "$dir" == down ]] && side=b
    ip netns exec "$NAME-$side" nstat -az TcpExtTCPTimeouts | awk '$1 == "TcpExtTCPTimeouts" { print $2 }'
}

# measure RTT LOSS DIR STACK URL
measure() {
    local rtt="$1" loss="$2" dir="$3" stack="$4" url="$5" data before after out rc=0 rto0 rto1
    data=b_to_a
    [[ "$dir" == up ]] && data=a_to_b
    rto0="$(rtos "$dir" "$stack")"
    before="$(counters "$data")"
    if [[ "$dir" == down ]]; then
        out="$("$here/wan.sh" exec "$NAME" a curl -sS --max-time "$MAX_TIME" -o /dev/null \
            -w '%{size_download} %{time_pretransfer} %{time_total}' "$url/file.bin" 2>/dev/null)" || rc=$?
    else
        # No "Expect: 100-continue": Linux's responder does not send 100, and curl's wait for
        # it would count as upload time.
        out="$("$here/wan.sh" exec "$NAME" a curl -sS --max-time "$MAX_TIME" -o /dev/null \
            -H 'Expect:' --max-filesize 1 --data-binary "@$WORK/file.bin" \
            -w '%{size_upload} %{time_pretransfer} %{time_total}' "$url/echo" 2>/dev/null)" || rc=$?
    fi
    after="$(counters "$data")"
    rto1="$(rtos "$dir" "$stack")"
    # curl 63 = --max-filesize hit: the expected end of an upload.
    local timed_out=0
    if [[ $rc -ne 0 && $rc -ne 63 ]]; then
        timed_out=1
    fi
    python3 - "$rtt" "$loss" "$dir" "$stack" "$out" "$before" "$after" "$timed_out" "$MAX_TIME" "$BYTES" "$rto0" "$rto1" >>"$RAW" <<'EOF'
import sys
rtt, loss, d, stack, out, before, after, timed_out, max_time, size, rto0, rto1 = sys.argv[1:]
rto = str(int(rto1) - int(rto0)) if rto0.isdigit() and rto1.isdigit() else "?"

b = [int(x) for x in before.split()]
a = [int(x) for x in after.split()]
payload, retx, lost = (a[i] - b[i] for i in range(3))
fields = out.split()
timed_out = timed_out == "1"
if not timed_out and len(fields) == 3 and int(float(fields[0])) >= int(size):
    nbytes = int(float(fields[0]))
    secs = float(fields[2]) - float(fields[1])
else:
    # Out of time (or failed): what went through the path new, over the time limit.
    timed_out = True
    nbytes = max(payload - retx, 0)
    secs = float(max_time)
mbit = nbytes * 8 / secs / 1e6 if secs > 0 else 0.0
print(rtt, loss, d, stack, f"{mbit:.3f}", nbytes, f"{secs:.3f}", int(timed_out), retx, lost, rto)
EOF
    tail -n1 "$RAW"
}

started=$SECONDS
for rtt in $RTTS; do
    for loss in $LOSSES; do
        echo "=== RTT $rtt ms, loss $loss % (t+$((SECONDS - started)) s, load $(cut -d' ' -f1 /proc/loadavg))"
        queue="$(awk -v r="$RATE" -v t="$rtt" 'BEGIN {
            n = r; m = 1; if (n ~ /gbit$/) m = 1e9; else if (n ~ /mbit$/) m = 1e6; else if (n ~ /kbit$/) m = 1e3;
            sub(/[a-z]+$/, "", n); q = int(n * m * t / 8000); if (q < 65536) q = 65536; print q }')"
        "$here/wan.sh" up "$NAME" --net "$NET" --rtt "$rtt" --loss "$loss" --rate "$RATE" \
            --queue "$queue" --seed "$SEED" >/dev/null
        if [[ -n "$LINUX_CC" ]]; then
            # Per route: a namespace other than the first may only pick the algorithms
            # net.ipv4.tcp_allowed_congestion_control lists, but a route may name any.
            for side in a b; do
                ip -n "$NAME-$side" route replace "10.$NET.0.0/16" dev "wan-$side" congctl "$LINUX_CC"
            done
        fi
        if [[ "$rtt $loss" == "$(set -- $RTTS; echo "$1") $(set -- $LOSSES; echo "$1")" ]]; then
            echo "# Linux congestion control: ${LINUX_CC:-$(ip netns exec "$NAME-a" sysctl -n net.ipv4.tcp_congestion_control) (default)}" >>"$RAW"
        fi
        ip netns exec "$NAME-b" "$TS_BIN" serve --tun tsrv --host-ip "10.$NET.3.1/24" \
            --ip "10.$NET.3.2" --root "$WORK" --port 80 --body-timeout "$MAX_TIME" \
            >"$WORK/tunstack.log" 2>&1 &
        PIDS+=($!)
        ip netns exec "$NAME-b" "$LR_BIN" "10.$NET.2.1:80" "$WORK" >"$WORK/linux.log" 2>&1 &
        PIDS+=($!)
        wait_ready "http://10.$NET.3.2"
        wait_ready "http://10.$NET.2.1"
        for dir in $DIRS; do
            measure "$rtt" "$loss" "$dir" tunstack "http://10.$NET.3.2"
            measure "$rtt" "$loss" "$dir" linux "http://10.$NET.2.1"
        done
        for pid in "${PIDS[@]}"; do
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        done
        PIDS=()
        "$here/wan.sh" down "$NAME"
    done
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg), $((SECONDS - started)) s" >>"$RAW"

python3 - "$RAW" <<'EOF' | tee "$OUT/table.md"
import sys
rows = {}
for line in open(sys.argv[1]):
    if line.startswith("#"):
        continue
    f = line.split()
    rtt, loss, d, stack, mbit, nbytes, secs, to, retx, lost = f[:10]
    rto = f[10] if len(f) > 10 else "?"
    rows[(rtt, loss, d, stack)] = (float(mbit), to == "1", int(retx), int(lost), rto)
cells = []
for (rtt, loss, d, stack) in rows:
    if (rtt, loss) not in cells:
        cells.append((rtt, loss))
dirs = [d for d in ("down", "up") if any(k[2] == d for k in rows)]
head = "| RTT ms | loss % |"
for d in dirs:
    head += f" {d} tunstack Mbit/s | {d} Linux | ratio | {d} retx/lost (RTOs) tunstack | Linux |"
print(head)
print("|" + "---|" * (2 + 5 * len(dirs)))
def ratio(r):
    retx, lost, rto = r[2], r[3], r[4]
    q = f"{retx / lost:.2f}" if lost else ("0 lost" if not retx else f"{retx} B / 0")
    return f"{q} ({rto})"
for rtt, loss in cells:
    line = f"| {rtt} | {loss} |"
    for d in dirs:
        t = rows.get((rtt, loss, d, "tunstack"))
        l = rows.get((rtt, loss, d, "linux"))
        if not t or not l:
            line += " - | - | - | - | - |"
            continue
        fmt = lambda r: f"{r[0]:.2f}{'*' if r[1] else ''}"
        q = f"{t[0] / l[0]:.2f}" if l[0] > 0 else "-"
        line += f" {fmt(t)} | {fmt(l)} | {q} | {ratio(t)} | {ratio(l)} |"
    print(line)
EOF
