#!/usr/bin/env bash
# Benchmark tunstack against Linux's own TCP, side by side in one run (issue 5).
#
#   sudo scripts/bench.sh                  # build release binaries, measure, print the table
#   ROUNDS=5 DURATION=10 sudo scripts/bench.sh
#   TUNSTACK_ARGS="..." sudo scripts/bench.sh    # extra flags for every `tunstack serve`
#   VARIANTS="plain:--no-offload" sudo scripts/bench.sh  # which extra tunstack servers to run
#   TUNSTACK_BIN=/path/to/old/tunstack sudo scripts/bench.sh   # measure another build
#
# Topology (namespaces with unique names, deleted on exit whatever happens):
#
#   tunstack:  ns T: [wrk/ab/curl/python] ──kernel TCP── tsbN (TUN 10.77.0.1) ══ tunstack 10.77.0.2
#   variants:  ns Vi: the same, one namespace and TUN each, `tunstack serve` with other flags
#              (default: "plain" = --no-offload, "mq2" = --queues 2, "threaded" = --threaded)
#   Linux:     ns C: [wrk/ab/curl/python] 10.78.0.1 ──veth── 10.78.0.2 linux_responder (ns S)
#
# The client always runs in the kernel; only the server side differs: our userspace stack
# behind a TUN, or the kernel's TCP behind a veth with a minimal single-threaded epoll
# responder (examples/linux_responder.rs) serving the same files.
#
# Measured, ROUNDS times each (interleaved), medians reported:
#   keep-alive req/s + p50/p99 latency   wrk -t1 -c50 -d${DURATION}s, 1 KiB file
#   new connections/s                    ab -n 20000 -c 50 (no keep-alive), 1 KiB file
#   bulk download Gbit/s                 curl GET of a 256 MiB file
#   bulk upload Gbit/s                   curl POST /echo of 32 MiB (upload size over the
#                                        whole exchange, which includes the echo back)
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

# --- set-up and clean-up -----------------------------------------------------------------
id="$$$((RANDOM % 100))"
NS_T="tsb-t-$id"
NS_S="tsb-s-$id"
NS_C="tsb-c-$id"
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
    for ns in "$NS_T" "$NS_S" "$NS_C" "${VAR_NS[@]}"; do
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

T_IP=10.77.0.2
L_IP=10.78.0.2

# shellcheck disable=SC2086
RUST_LOG=warn ip netns exec "$NS_T" "$BIN" serve --tun "$TUN" --host-ip 10.77.0.1/24 --ip "$T_IP" \
    --port 80 --root "$TMP/www" --max-connections $((IDLE_CONNS + 2000)) --idle-timeout 120 --header-timeout 120 \
    $TUNSTACK_ARGS >"$OUT/tunstack.log" 2>&1 &
T_PID=$!
PIDS+=("$T_PID")
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
    vns="tsb-v$vi-$id"
    ip netns add "$vns"
    ip -n "$vns" link set lo up
    VAR_NS+=("$vns")
    VAR_NAMES+=("$vname")
    VAR_IPS+=("10.77.$vi.2")
    # shellcheck disable=SC2086
    RUST_LOG=warn ip netns exec "$vns" "$BIN" serve --tun "tsv$vi$id" --host-ip "10.77.$vi.1/24" \
        --ip "10.77.$vi.2" --port 80 --root "$TMP/www" --max-connections 2000 $TUNSTACK_ARGS $vargs \
        >"$OUT/tunstack-$vname.log" 2>&1 &
    PIDS+=("$!")
done
ip netns exec "$NS_S" "$RESPONDER" "$L_IP:80" "$TMP/www" >"$OUT/linux.log" 2>&1 &
L_PID=$!
PIDS+=("$L_PID")

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

run_wrk() { # name ns ip
    local out
    out="$(with_cpu "$2" wrk -t1 -c50 -d"${DURATION}s" --latency "http://$3/1k.bin" 2>&1)"
    echo "$out" >>"$OUT/wrk-$1.txt"
    record "$1" rps "$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
    record "$1" p50 "$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")"
    record "$1" p99 "$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
    record "$1" wrk_us "$(client_us "$out" "$(awk '/requests in/ {print $1}' <<<"$out")")"
}

run_ab() { # name ns ip
    local out
    out="$(with_cpu "$2" ab -q -s 30 -n "$AB_REQUESTS" -c 50 "http://$3/1k.bin" 2>&1)" || true
    echo "$out" >>"$OUT/ab-$1.txt"
    record "$1" cps "$(awk '/^Requests per second:/ {print $4}' <<<"$out")"
    record "$1" ab_us "$(client_us "$out" "$(awk '/^Complete requests:/ {print $3}' <<<"$out")")"
}

run_download() { # name ns ip
    local out
    out="$(ip netns exec "$2" curl -s -o /dev/null --max-time 120 -w '%{size_download} %{time_pretransfer} %{time_total}' "http://$3/big.bin")" || true
    record "$1" down "$(awk '{ if ($3 > $2) printf "%.3f", $1 * 8 / ($3 - $2) / 1e9; else print 0 }' <<<"$out")"
}

run_upload() { # name ns ip
    local out
    # Both servers read the whole body, then send it back: the figure is the upload size
    # over the whole exchange (conservative: it includes the echo coming back).
    out="$(ip netns exec "$2" curl -s -o /dev/null --max-time 120 -H 'Expect:' \
        -H 'Content-Type: application/octet-stream' --data-binary "@$TMP/up.bin" \
        -w '%{size_upload} %{time_pretransfer} %{time_total}' "http://$3/echo")" || true
    record "$1" up "$(awk '{ if ($3 > $2) printf "%.3f", $1 * 8 / ($3 - $2) / 1e9; else print 0 }' <<<"$out")"
}

started=$SECONDS
for round in $(seq 1 "$ROUNDS"); do
    echo "=== round $round/$ROUNDS (t+$((SECONDS - started))s)"
    run_wrk tunstack "$NS_T" "$T_IP"
    run_wrk linux "$NS_C" "$L_IP"
    run_ab tunstack "$NS_T" "$T_IP"
    run_ab linux "$NS_C" "$L_IP"
    run_download tunstack "$NS_T" "$T_IP"
    run_download linux "$NS_C" "$L_IP"
    run_upload tunstack "$NS_T" "$T_IP"
    run_upload linux "$NS_C" "$L_IP"
    for i in "${!VAR_NAMES[@]}"; do
        n="tunstack-${VAR_NAMES[$i]}"
        run_wrk "$n" "${VAR_NS[$i]}" "${VAR_IPS[$i]}"
        run_ab "$n" "${VAR_NS[$i]}" "${VAR_IPS[$i]}"
        run_download "$n" "${VAR_NS[$i]}" "${VAR_IPS[$i]}"
        run_upload "$n" "${VAR_NS[$i]}" "${VAR_IPS[$i]}"
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
idle tunstack "$NS_T" "$T_IP" "$T_PID"
idle linux "$NS_C" "$L_IP" "$L_PID"
echo "=== measured in $((SECONDS - started)) s"

# --- the table -----------------------------------------------------------------------------
python3 - "$RAW" "$ROUNDS" "${VAR_NAMES[@]}" <<'EOF' | tee "$OUT/table.md"
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
    ("  wrk's own CPU per request, µs", "wrk_us", "{:.2f}"),
    ("  most any server could get from wrk -t1 (1e6 / that)", "wrk_max", "{:,.0f}"),
    ("new connections/s (ab -c50)", "cps", "{:,.0f}"),
    ("  ab's own CPU per connection, µs", "ab_us", "{:.2f}"),
    ("  most any server could get from ab (1e6 / that)", "ab_max", "{:,.0f}"),
    ("download Gbit/s (256 MiB GET)", "down", "{:.2f}"),
    ("upload Gbit/s (32 MiB POST /echo, incl. echo)", "up", "{:.2f}"),
    ("idle conns served (of 10,000)", "served", "{:,.0f}"),
    ("  server RSS with them open, MiB", "rss_idle_kib", "{:.1f}"),
    ("  server RSS after serving, MiB", "rss_after_kib", "{:.1f}"),
    ("  seconds to serve them", "serve_s", "{:.2f}"),
]
variants = ["tunstack-" + v for v in sys.argv[3:]]
print(f"medians of {sys.argv[2]} rounds (idle test: one run)\n")
print("| metric | tunstack | Linux | tunstack/Linux | " + " | ".join(variants) + (" |" if variants else ""))
print("|---|---:|---:|---:|" + "---:|" * len(variants))
# A ceiling's ratio is to what Linux measured: the largest ratio any server could reach.
against = {"wrk_max": "rps", "ab_max": "cps"}
for label, key, fmt in rows:
    t, l = med("tunstack", key), med("linux", key)
    base = med("linux", against.get(key, key))
    if key.startswith("rss"):
        t, l, base = t / 1024, l / 1024, base / 1024
    ratio = t / base if base and base == base and t == t else float("nan")
    extra = ""
    for v in variants:
        x = med(v, key)
        extra += " " + ("" if x != x else fmt.format(x) + f" ({x / base:.2f})" if base and base == base else fmt.format(x)) + " |"
    print(f"| {label} | {fmt.format(t)} | {fmt.format(l)} | {ratio:.2f} |{extra}")
print()
print("Client ceilings: wrk -t1 and ab are single-threaded, so a client that needs C µs of CPU")
print("per request cannot issue more than 1e6 / C requests per second, however fast the server.")
print("Their ratio column is that ceiling over Linux's measured figure: the most any server behind")
print("this client could reach. Over the veth the client's system calls also run the Linux server's")
print("receive path (softirq), so the Linux column's client figure is not the client alone.")
EOF
