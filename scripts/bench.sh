#!/usr/bin/env bash
# Benchmark tunstack against Linux's own TCP and against smoltcp, side by side in one run.
#
#   sudo scripts/bench.sh                  # build release binaries, measure, print the table
#   ROUNDS=5 DURATION=10 sudo scripts/bench.sh
#   TUNSTACK_ARGS="..." sudo scripts/bench.sh    # extra flags for every `tunstack serve`
#   VARIANTS="plain:--no-offload" sudo scripts/bench.sh  # which extra tunstack servers to run
#   TUNSTACK_BIN=/path/to/old/tunstack sudo scripts/bench.sh   # measure another build
#   VARIANTS="prev@/path/to/old/tunstack:" sudo scripts/bench.sh # this build and another, same rounds
#   SMOLTCP=0 sudo scripts/bench.sh        # without the smoltcp peer
#   SMOLTCP_ARGS="--no-time-wait" sudo scripts/bench.sh   # extra flags for the smoltcp peer
#
# Topology (namespaces with unique names, deleted on exit whatever happens):
#
#   tunstack:  ns T: [wrk/ab/curl/python] ──kernel TCP── tsbN (TUN 10.77.0.1) ══ tunstack 10.77.0.2
#   variants:  ns Vi: the same, one namespace and TUN each, `tunstack serve` with other flags
#              (default: "plain" = --no-offload, "mq2" = --queues 2, "threaded" = --threaded)
#   Linux:     ns C: [wrk/ab/curl/python] 10.78.0.1 ──veth── 10.78.0.2 linux_responder (ns S)
#   smoltcp:   ns M: [wrk/ab/curl/python] ──kernel TCP── tsmN (TUN 10.76.0.1) ══ smoltcp-responder 10.76.0.2
#   IPv6:      tunstack also answers as fd77::2 (the TUN's side fd77::1/64), Linux as fd78::2
#              (a second responder on the same veth, fd78::1/64 on the client's side)
#
# The client always runs in the kernel; only the server side differs: our userspace stack
# behind a TUN, the kernel's TCP behind a veth with a minimal single-threaded epoll
# responder (examples/linux_responder.rs), or smoltcp behind a TUN with a small HTTP server
# (bench/smoltcp-responder, its own crate, built here), all serving the same files.
#
# Measured, ROUNDS times each (interleaved), medians reported:
#   keep-alive req/s + p50/p99 latency   wrk -t1 -c50 -d${DURATION}s, 1 KiB file
#   new connections/s                    ab -n 20000 -c 50 (no keep-alive), 1 KiB file
#   bulk download Gbit/s                 curl GET of a 256 MiB file
#   bulk upload Gbit/s                   curl POST /echo of 32 MiB (upload size over the
#                                        whole exchange, which includes the echo back)
#   each server's own CPU                user + system time of the server process over each
#                                        of those (/proc/PID/stat), per request or per MiB
#   keep-alive and download over IPv6    the same wrk and curl GET to tunstack's and Linux's
#                                        IPv6 addresses (smoltcp and the variants: IPv4 only)
# once:
#   10,000 idle connections held, then one request served on each; server RSS
#
# Results: a table on stdout, and the raw numbers in target/bench/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
IDLE_CONNS="${IDLE_CONNS:-10000}"
AB_REQUESTS="${AB_REQUESTS:-20000}"
TUNSTACK_ARGS="${TUNSTACK_ARGS:-}"
# name:flags pairs separated by commas: extra tunstack servers measured in the same run.
VARIANTS="${VARIANTS-plain:--no-offload,mq2:--queues 2,threaded:--threaded}"
SMOLTCP="${SMOLTCP:-1}"
SMOLTCP_ARGS="${SMOLTCP_ARGS:-}"

if [[ $EUID -ne 0 ]]; then
    echo "bench.sh: needs root (network namespaces, TUN devices)" >&2
    exit 1
fi
if ! command -v cargo >/dev/null 2>&1 && [[ -f "${HOME:-/root}/.cargo/env" ]]; then
    # shellcheck disable=SC1091
    source "${HOME:-/root}/.cargo/env"
fi

# --- tools -------------------------------------------------------------------------------
missing=()
for pair in wrk:wrk ab:apache2-utils curl:curl ip:iproute2 python3:python3; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
    echo "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- build -------------------------------------------------------------------------------
echo "=== building release binaries"
cargo build --release --quiet --bin tunstack --example linux_responder
BIN="${TUNSTACK_BIN:-$PWD/target/release/tunstack}"
RESPONDER="$PWD/target/release/examples/linux_responder"
SMOL_BIN="$PWD/target/release/smoltcp-responder"
if [[ $SMOLTCP != 0 ]]; then
    echo "=== building the smoltcp peer (bench/smoltcp-responder)"
    # The same target directory: the dependencies it shares with tunstack are built once.
    if ! cargo build --release --quiet --manifest-path bench/smoltcp-responder/Cargo.toml \
        --target-dir "$PWD/target"; then
        echo "bench.sh: could not build bench/smoltcp-responder (smoltcp not in the registry" \
            "and no network?): measuring without the smoltcp peer" >&2
        SMOLTCP=0
    fi
fi

# --- set-up and clean-up -----------------------------------------------------------------
id="$$$((RANDOM % 100))"
NS_T="tsb-t-$id"
NS_S="tsb-s-$id"
NS_C="tsb-c-$id"
NS_M="tsb-m-$id"
TUN="tsb$id"
VETH="vb$id"
TMP="$(mktemp -d /tmp/tunstack-bench.XXXXXX)"
OUT="$PWD/target/bench"
mkdir -p "$OUT"
PIDS=()
VAR_NS=()

cleanup() {
    set +e
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    for ns in "$NS_T" "$NS_S" "$NS_C" "$NS_M" "${VAR_NS[@]}"; do
        ip netns delete "$ns" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 10,000 sockets in one process: raise the soft limit as far as the hard one allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < IDLE_CONNS + 1000)); then
    IDLE_CONNS=$(($(ulimit -n) - 1000))
    echo "bench.sh: open-file limit $(ulimit -n): holding $IDLE_CONNS idle connections"
fi

mkdir -p "$TMP/www"
head -c 1024 /dev/urandom >"$TMP/www/1k.bin"
head -c $((256 << 20)) /dev/zero >"$TMP/www/big.bin"
head -c $((32 << 20)) /dev/urandom >"$TMP/up.bin"

for ns in "$NS_T" "$NS_S" "$NS_C"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
ip link add "${VETH}a" netns "$NS_C" type veth peer name "${VETH}b" netns "$NS_S"
ip -n "$NS_C" addr add 10.78.0.1/24 dev "${VETH}a"
ip -n "$NS_S" addr add 10.78.0.2/24 dev "${VETH}b"
ip -n "$NS_C" link set "${VETH}a" up
ip -n "$NS_S" link set "${VETH}b" up
# nodad: the addresses are usable at once, not after duplicate address detection.
ip -n "$NS_C" addr add fd78::1/64 dev "${VETH}a" nodad
ip -n "$NS_S" addr add fd78::2/64 dev "${VETH}b" nodad

T_IP=10.77.0.2
L_IP=10.78.0.2
M_IP=10.76.0.2
# Per server: the namespace its client runs in, its address, its process (for its CPU time).
declare -A CLIENT_NS=(["tunstack"]="$NS_T" ["linux"]="$NS_C") SERVER_IP=(["tunstack"]="$T_IP" ["linux"]="$L_IP")
# The IPv6 addresses (as they appear in a URL) of the servers measured over IPv6 too.
declare -A SERVER_IP6=(["tunstack"]="[fd77::2]" ["linux"]="[fd78::2]")
declare -A SERVER_PID=()
SERVERS=(tunstack linux)

# shellcheck disable=SC2086
RUST_LOG=warn ip netns exec "$NS_T" "$BIN" serve --tun "$TUN" --host-ip 10.77.0.1/24 --ip "$T_IP" \
    --host-ip6 fd77::1/64 --ip6 fd77::2 --port 80 --root "$TMP/www" --max-connections $((IDLE_CONNS + 2000)) --idle-timeout 120 --header-timeout 120 \
    $TUNSTACK_ARGS >"$OUT/tunstack.log" 2>&1 &
T_PID=$!
PIDS+=("$T_PID")
SERVER_PID[tunstack]=$T_PID
# The variants: same files, same flags plus their own, each in its own namespace and TUN.
VAR_NAMES=()
VAR_IPS=()
IFS=',' read -r -a var_specs <<<"$VARIANTS"
vi=0
for spec in "${var_specs[@]}"; do
    [[ -n "$spec" ]] || continue
    vi=$((vi + 1))
    vname="${spec%%:*}"
    vargs="${spec#*:}"
    # `name@/path/to/tunstack:flags` measures another build (e.g. the previous one) in the
    # same rounds: the comparison a change on a hot path needs.
    vbin="$BIN"
    if [[ $vname == *@* ]]; then
        vbin="${vname#*@}"
        vname="${vname%%@*}"
    fi
    vns="tsb-v$vi-$id"
    ip netns add "$vns"
    ip -n "$vns" link set lo up
    VAR_NS+=("$vns")
    VAR_NAMES+=("$vname")
    VAR_IPS+=("10.77.$vi.2")
    # shellcheck disable=SC2086
    RUST_LOG=warn ip netns exec "$vns" "$vbin" serve --tun "tsv$vi$id" --host-ip "10.77.$vi.1/24" \
        --ip "10.77.$vi.2" --port 80 --root "$TMP/www" --max-connections 2000 $TUNSTACK_ARGS $vargs \
        >"$OUT/tunstack-$vname.log" 2>&1 &
    PIDS+=("$!")
    SERVER_PID["tunstack-$vname"]=$!
done
ip netns exec "$NS_S" "$RESPONDER" "$L_IP:80" "$TMP/www" >"$OUT/linux.log" 2>&1 &
L_PID=$!
PIDS+=("$L_PID")
SERVER_PID[linux]=$L_PID
ip netns exec "$NS_S" "$RESPONDER" "[fd78::2]:80" "$TMP/www" >"$OUT/linux6.log" 2>&1 &
PIDS+=("$!")
# Over IPv6 tunstack's CPU is its one process's; Linux's is the second responder's.
SERVER_PID[tunstack-6]=$T_PID
SERVER_PID[linux-6]=$!
if [[ $SMOLTCP != 0 ]]; then
    # smoltcp only attaches to a TUN: create it, with the host side's address and the same
    # queue length as tunstack's TUN, in the peer's own namespace (deleted with it).
    SMOL_TUN="tsm$id"
    ip netns add "$NS_M"
    ip -n "$NS_M" link set lo up
    ip -n "$NS_M" tuntap add name "$SMOL_TUN" mode tun
    ip -n "$NS_M" addr add 10.76.0.1/24 dev "$SMOL_TUN"
    ip -n "$NS_M" link set "$SMOL_TUN" txqueuelen 10000 up
    # 128 listening sockets take as many SYNs at once as a listen backlog of 128 (the idle
    # test opens 100 at a time); room for the idle test's sockets and ab's TIME-WAITs.
    # shellcheck disable=SC2086
    ip netns exec "$NS_M" "$SMOL_BIN" --tun "$SMOL_TUN" --ip "$M_IP/24" --port 80 --root "$TMP/www" \
        --listeners 128 --max-sockets $((IDLE_CONNS + AB_REQUESTS + 2000)) $SMOLTCP_ARGS \
        >"$OUT/smoltcp.log" 2>&1 &
    M_PID=$!
    PIDS+=("$M_PID")
    SERVERS+=(smoltcp)
    CLIENT_NS[smoltcp]=$NS_M
    SERVER_IP[smoltcp]=$M_IP
    SERVER_PID[smoltcp]=$M_PID
fi

wait_ready() { # ns url
    local i
    for i in $(seq 1 150); do
        if ip netns exec "$1" curl -sf -o /dev/null --max-time 2 "$2"; then
            return 0
        fi
        sleep 0.2
    done
    echo "bench.sh: server at $2 did not come up" >&2
    return 1
}
wait_ready "$NS_T" "http://$T_IP/1k.bin"
wait_ready "$NS_C" "http://$L_IP/1k.bin"
wait_ready "$NS_T" "http://${SERVER_IP6[tunstack]}/1k.bin"
wait_ready "$NS_C" "http://${SERVER_IP6[linux]}/1k.bin"
if [[ $SMOLTCP != 0 ]]; then
    wait_ready "$NS_M" "http://$M_IP/1k.bin"
fi
for i in "${!VAR_NAMES[@]}"; do
    wait_ready "${VAR_NS[$i]}" "http://${VAR_IPS[$i]}/1k.bin"
done

# --- measurements ------------------------------------------------------------------------
RAW="$OUT/raw.txt"
: >"$RAW"
record() { # server metric value
    echo "$1 $2 $3" >>"$RAW"
}

to_ms() { # wrk latency like 1.23ms / 456.78us / 1.02s
    python3 -c '
import sys, re
m = re.match(r"([0-9.]+)(us|ms|s)$", sys.argv[1])
v, u = float(m.group(1)), m.group(2)
print(v / 1000 if u == "us" else v * 1000 if u == "s" else v)' "$1"
}

# Run a client command and append a line "client-cpu" and the output of `times`: the CPU time
# the client process itself used. wrk -t1 and ab are single-threaded, so 1 / (that time per
# request) is the most any server could get out of them on this machine, however fast it is.
with_cpu() { # ns command...
    local ns=$1
    shift
    # shellcheck disable=SC2016
    # `times` is a builtin run in this shell (not in a pipe's subshell, which has no children):
    # its second line is the children's user and system time.
    ip netns exec "$ns" bash -c '"$@"; rc=$?; echo client-cpu; times; exit $rc' _ "$@"
}

# Client CPU per operation, in microseconds: `times` prints "0m1.234s 0m0.567s" (user, system).
client_us() { # output operations
    awk -v n="$2" '$1 == "client-cpu" { at = NR }
        at && NR == at + 2 {
            t = 0
            for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); t += p[1] * 60 + p[2] }
            if (n > 0) printf "%.3f", t / n * 1e6
        }' <<<"$1"
}

# The server's own CPU: user + system time of its whole process (every thread), in clock
# ticks, from /proc/PID/stat (fields 14 and 15; the name in brackets may hold spaces).
CLK_TCK="$(getconf CLK_TCK)"
server_ticks() { # name
    { sed 's/.*) //' "/proc/${SERVER_PID[$1]}/stat" 2>/dev/null || true; } | awk 'NF { print $12 + $13 }'
}

# Microseconds of server CPU per unit between two readings of server_ticks.
server_us() { # ticks_before ticks_after units
    awk -v a="$1" -v b="$2" -v n="$3" -v hz="$CLK_TCK" \
        'BEGIN { if (a != "" && b != "" && n > 0) printf "%.3f", (b - a) / hz * 1e6 / n }'
}

# With a second argument 6, run_wrk and run_download measure the server over IPv6: the
# same client and file, the server's IPv6 address; the metrics get the suffix 6.
target() { # name [6]: "pid-key address"
    if [[ ${2:-} == 6 ]]; then
        echo "$1-6 ${SERVER_IP6[$1]}"
    else
        echo "$1 ${SERVER_IP[$1]}"
    fi
}

run_wrk() { # name [6]
    local out t0 key ip v=${2:-}
    read -r key ip <<<"$(target "$@")"
    t0="$(server_ticks "$key")"
    out="$(with_cpu "${CLIENT_NS[$1]}" wrk -t1 -c50 -d"${DURATION}s" --latency "http://$ip/1k.bin" 2>&1)"
    echo "$out" >>"$OUT/wrk-$1$v.txt"
    local n
    n="$(awk '/requests in/ {print $1}' <<<"$out")"
    record "$1" "srv_wrk_us$v" "$(server_us "$t0" "$(server_ticks "$key")" "$n")"
    record "$1" "rps$v" "$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
    record "$1" "p50$v" "$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")"
    record "$1" "p99$v" "$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
    [[ -n $v ]] || record "$1" wrk_us "$(client_us "$out" "$n")"
}

# TcpExtTCPSynRetrans of a namespace: SYNs its clients sent again (a SYN lost or ignored).
syn_retrans() { # ns
    { ip netns exec "$1" nstat -az TcpExtTCPSynRetrans 2>/dev/null || true; } |
        awk '$1 == "TcpExtTCPSynRetrans" { print $2 }'
}

run_ab() { # name
    local out t0 s0 n
    t0="$(server_ticks "$1")"
    s0="$(syn_retrans "${CLIENT_NS[$1]}")"
    out="$(with_cpu "${CLIENT_NS[$1]}" ab -q -s 30 -n "$AB_REQUESTS" -c 50 "http://${SERVER_IP[$1]}/1k.bin" 2>&1)" || true
    echo "$out" >>"$OUT/ab-$1.txt"
    n="$(awk '/^Complete requests:/ {print $3}' <<<"$out")"
    record "$1" srv_ab_us "$(server_us "$t0" "$(server_ticks "$1")" "$n")"
    record "$1" syn_re "$(awk -v a="$s0" -v b="$(syn_retrans "${CLIENT_NS[$1]}")" 'BEGIN { if (a != "" && b != "") print b - a }')"
    record "$1" cps "$(awk '/^Requests per second:/ {print $4}' <<<"$out")"
    record "$1" ab_us "$(client_us "$out" "$n")"
}

run_download() { # name [6]
    local out t0 key ip v=${2:-}
    read -r key ip <<<"$(target "$@")"
    t0="$(server_ticks "$key")"
    out="$(ip netns exec "${CLIENT_NS[$1]}" curl -s -o /dev/null --max-time 120 -w '%{size_download} %{time_pretransfer} %{time_total}' "http://$ip/big.bin")" || true
    record "$1" "srv_down_us$v" "$(server_us "$t0" "$(server_ticks "$key")" "$(awk '{ print $1 / 1048576 }' <<<"$out")")"
    record "$1" "down$v" "$(awk '{ if ($3 > $2) printf "%.3f", $1 * 8 / ($3 - $2) / 1e9; else print 0 }' <<<"$out")"
}

run_upload() { # name
    local out t0
    t0="$(server_ticks "$1")"
    # Every server reads the whole body, then sends it back: the figure is the upload size
    # over the whole exchange (conservative: it includes the echo coming back).
    out="$(ip netns exec "${CLIENT_NS[$1]}" curl -s -o /dev/null --max-time 120 -H 'Expect:' \
        -H 'Content-Type: application/octet-stream' --data-binary "@$TMP/up.bin" \
        -w '%{size_upload} %{time_pretransfer} %{time_total}' "http://${SERVER_IP[$1]}/echo")" || true
    # Per MiB uploaded (the echo of the same size comes back in the same time).
    record "$1" srv_up_us "$(server_us "$t0" "$(server_ticks "$1")" "$(awk '{ print $1 / 1048576 }' <<<"$out")")"
    record "$1" up "$(awk '{ if ($3 > $2) printf "%.3f", $1 * 8 / ($3 - $2) / 1e9; else print 0 }' <<<"$out")"
}

# smoltcp keeps every connection ab made in TIME-WAIT for 10 s, in the socket set it walks for
# each packet: let them expire before its next measurement, so that one measures the run
# itself, not the previous one's aftermath.
SMOL_AB_END=-100
settle() { # server
    local since=$((SECONDS - SMOL_AB_END))
    if [[ $1 == smoltcp ]] && ((since < 11)); then
        sleep $((11 - since))
    fi
}

started=$SECONDS
for i in "${!VAR_NAMES[@]}"; do
    CLIENT_NS["tunstack-${VAR_NAMES[$i]}"]="${VAR_NS[$i]}"
    SERVER_IP["tunstack-${VAR_NAMES[$i]}"]="${VAR_IPS[$i]}"
done
for round in $(seq 1 "$ROUNDS"); do
    echo "=== round $round/$ROUNDS (t+$((SECONDS - started))s)"
    # ab last: the server that closes keeps each connection in TIME-WAIT, and the other
    # servers' measurements come in between (see settle).
    for run in run_wrk run_download run_upload run_ab; do
        for server in "${SERVERS[@]}"; do
            settle "$server"
            "$run" "$server"
        done
    done
    SMOL_AB_END=$SECONDS
    for run in run_wrk run_download; do
        for server in "${!SERVER_IP6[@]}"; do
            "$run" "$server" 6
        done
    done
    for i in "${!VAR_NAMES[@]}"; do
        for run in run_wrk run_download run_upload run_ab; do
            "$run" "tunstack-${VAR_NAMES[$i]}"
        done
    done
done

echo "=== $IDLE_CONNS idle connections (t+$((SECONDS - started))s)"
idle() { # name ns ip pid
    local out
    out="$(ip netns exec "$2" python3 scripts/bench_idle.py "$3" 80 "$IDLE_CONNS" "$4" /1k.bin 2>&1)" || true
    echo "$1: $out" | tee -a "$OUT/idle.txt"
    for kv in $out; do
        case "$kv" in
        served=* | rss_idle_kib=* | rss_after_kib=* | connect_s=* | serve_s=*) record "$1" "${kv%%=*}" "${kv#*=}" ;;
        esac
    done
}
for server in "${SERVERS[@]}"; do
    settle "$server"
    idle "$server" "${CLIENT_NS[$server]}" "${SERVER_IP[$server]}" "${SERVER_PID[$server]}"
done
echo "=== measured in $((SECONDS - started)) s"

# --- the table -----------------------------------------------------------------------------
python3 - "$RAW" "$ROUNDS" "$IDLE_CONNS" "$SMOLTCP" "${VAR_NAMES[@]}" <<'EOF' | tee "$OUT/table.md"
import statistics, sys
from collections import defaultdict
vals = defaultdict(list)
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 3:
        try:
            vals[(parts[0], parts[1])].append(float(parts[2]))
        except ValueError:
            pass
def med(server, metric):
    # A client's ceiling is 1e6 / its CPU per operation; it is derived here, not measured.
    if metric.endswith("_max"):
        us = med(server, metric[: -len("_max")] + "_us")
        return 1e6 / us if us == us and us > 0 else float("nan")
    v = vals.get((server, metric))
    return statistics.median(v) if v else float("nan")
rows = [
    ("keep-alive req/s (wrk -c50, 1 KiB)", "rps", "{:,.0f}"),
    ("  p50 latency ms", "p50", "{:.3f}"),
    ("  p99 latency ms", "p99", "{:.3f}"),
    ("  server's own CPU per request, µs", "srv_wrk_us", "{:.2f}"),
    ("  wrk's own CPU per request, µs", "wrk_us", "{:.2f}"),
    ("  most any server could get from wrk -t1 (1e6 / that)", "wrk_max", "{:,.0f}"),
    ("new connections/s (ab -c50)", "cps", "{:,.0f}"),
    ("  server's own CPU per connection, µs", "srv_ab_us", "{:.2f}"),
    ("  client SYNs sent again during ab", "syn_re", "{:,.0f}"),
    ("  ab's own CPU per connection, µs", "ab_us", "{:.2f}"),
    ("  most any server could get from ab (1e6 / that)", "ab_max", "{:,.0f}"),
    ("download Gbit/s (256 MiB GET)", "down", "{:.2f}"),
    ("  server's own CPU per MiB, µs", "srv_down_us", "{:,.0f}"),
    ("upload Gbit/s (32 MiB POST /echo, incl. echo)", "up", "{:.2f}"),
    ("  server's own CPU per MiB uploaded and echoed, µs", "srv_up_us", "{:,.0f}"),
    ("keep-alive req/s over IPv6 (wrk -c50, 1 KiB)", "rps6", "{:,.0f}"),
    ("  p99 latency ms", "p996", "{:.3f}"),
    ("  server's own CPU per request, µs", "srv_wrk_us6", "{:.2f}"),
    ("download Gbit/s over IPv6 (256 MiB GET)", "down6", "{:.2f}"),
    ("  server's own CPU per MiB, µs", "srv_down_us6", "{:,.0f}"),
    (f"idle conns served (of {int(sys.argv[3]):,})", "served", "{:,.0f}"),
    ("  server RSS with them open, MiB", "rss_idle_kib", "{:.1f}"),
    ("  server RSS after serving, MiB", "rss_after_kib", "{:.1f}"),
    ("  seconds to serve them", "serve_s", "{:.2f}"),
]
smoltcp = sys.argv[4] != "0"
variants = ["tunstack-" + v for v in sys.argv[5:]]
# A ceiling's ratio is to what the other server measured: the largest ratio any server could reach.
against = {"wrk_max": "rps", "ab_max": "cps"}
def value(server, key):
    x = med(server, key)
    return x / 1024 if key.startswith("rss") else x
def ratio(x, other, key):
    if key == "syn_re":  # a count, often zero: no ratio
        return ""
    base = value(other, against.get(key, key))
    return f"{x / base:.2f}" if x == x and base == base and base else ""
def cell(fmt, x):
    return "" if x != x else fmt.format(x)
print(f"medians of {sys.argv[2]} rounds (idle test: one run)\n")
head = ["metric", "tunstack"] + (["smoltcp"] if smoltcp else []) + ["Linux"]
head += (["tunstack/smoltcp"] if smoltcp else []) + ["tunstack/Linux"] + variants
print("| " + " | ".join(head) + " |")
print("|---|" + "---:|" * (len(head) - 1))
for label, key, fmt in rows:
    t = value("tunstack", key)
    cells = [label, cell(fmt, t)]
    cells += [cell(fmt, value("smoltcp", key))] if smoltcp else []
    cells += [cell(fmt, value("linux", key))]
    cells += [ratio(t, "smoltcp", key)] if smoltcp else []
    cells += [ratio(t, "linux", key)]
    for v in variants:
        x = value(v, key)
        r = ratio(x, "linux", key)
        cells.append(cell(fmt, x) + (f" ({r})" if r and x == x else ""))
    print("| " + " | ".join(cells) + " |")
print()
print("Client ceilings: wrk -t1 and ab are single-threaded, so a client that needs C µs of CPU")
print("per request cannot issue more than 1e6 / C requests per second, however fast the server.")
print("Their ratio columns are that ceiling over the other server's measured figure: the most any")
print("server behind this client could reach. Over the veth the client's system calls also run the")
print("Linux server's receive path (softirq), so the Linux column's client figure is not the client alone.")
print()
print("Server CPU: user + system time of the server process over each measurement (/proc/PID/stat,")
print("in ticks of 1/CLK_TCK s), per request, connection or MiB. tunstack and smoltcp are charged the")
print("same way: their writes to the TUN run the kernel client's receive path inside their own system")
print("call. The Linux responder is charged only part of its TCP work: over the veth, a send runs the")
print("receiver's path in the sender's system call, so the kernel's receive work for the server is")
print("charged partly to the client (and softirq time to whatever runs); read its figure as a floor.")
if smoltcp:
    print()
    print("smoltcp keeps a connection it closed in TIME-WAIT for 10 s and, unlike Linux, a new SYN for")
    print("the same ports does not reopen it: when the client reuses a port sooner, its SYN is sent again")
    print("(every second at first, then backing off) until the TIME-WAIT expires. The SYN row counts")
    print("those for every server. SMOLTCP_ARGS=--no-time-wait drops smoltcp's TIME-WAIT instead.")
EOF
