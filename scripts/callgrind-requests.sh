#!/usr/bin/env bash
# Instructions per keep-alive request, load-independent: a tunstack build serves a fixed number
# of keep-alive requests of a 1 KiB file under callgrind, in its own network namespace.
#
#   sudo scripts/callgrind-requests.sh [BIN]          # default target/release/tunstack
#   N=20000 C=50 sudo scripts/callgrind-requests.sh /path/to/other/tunstack
#   KEEPALIVE=0 N=5000 sudo scripts/callgrind-requests.sh   # a new connection per request
#
# Collection is switched on only around the load (callgrind_control -i on / -d), so start-up
# and the TUN set-up are not counted. Prints Ir, Ir per request and the top functions; the
# callgrind output is left in target/callgrind/ (OUT=... to change) for callgrind_annotate.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN="${1:-$PWD/target/release/tunstack}"
N="${N:-20000}"
C="${C:-50}"
TOP="${TOP:-25}"
KEEPALIVE="${KEEPALIVE:-1}"
KA_FLAG=()
[[ $KEEPALIVE != 0 ]] && KA_FLAG=(-k)
OUT="${OUT:-$PWD/target/callgrind}"
for tool in valgrind callgrind_control callgrind_annotate ab ip; do
    command -v "$tool" >/dev/null || { echo "callgrind-requests.sh: needs $tool" >&2; exit 1; }
done
[[ $EUID -eq 0 ]] || { echo "callgrind-requests.sh: needs root (namespace, TUN)" >&2; exit 1; }

id="$$$((RANDOM % 100))"
NS="tscg-$id"
TUN="tcg$id"
TMP="$(mktemp -d /tmp/tunstack-cg.XXXXXX)"
mkdir -p "$OUT"
name="$(basename "$(dirname "$BIN")")-$(basename "$BIN")"
CG="$OUT/callgrind.$name.$id.out"
PID=
cleanup() {
    set +e
    [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    ip netns delete "$NS" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$TMP/www"
head -c 1024 /dev/urandom >"$TMP/www/1k.bin"
ip netns add "$NS"
ip -n "$NS" link set lo up
RUST_LOG=warn ip netns exec "$NS" valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$CG" "$BIN" serve --tun "$TUN" --host-ip 10.79.0.1/24 --ip 10.79.0.2 \
    --port 80 --root "$TMP/www" --idle-timeout 120 --header-timeout 120 >"$TMP/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 300); do
    ip netns exec "$NS" curl -sf -o /dev/null --max-time 2 http://10.79.0.2/1k.bin && break
    sleep 0.2
done
ip netns exec "$NS" curl -sf -o /dev/null --max-time 2 http://10.79.0.2/1k.bin ||
    { echo "server did not come up" >&2; cat "$TMP/server.log" >&2; exit 1; }
# The server caches a small file only once its last change is 2 s old (CACHE_SETTLE): wait
# for that and cache it, so that no request of the count takes the first-request path.
while (( $(date +%s) - $(stat -c %Z "$TMP/www/1k.bin") < 3 )); do sleep 0.2; done
ip netns exec "$NS" curl -sf -o /dev/null --max-time 5 http://10.79.0.2/1k.bin
callgrind_control -i on "$PID" >/dev/null
ip netns exec "$NS" ab -q "${KA_FLAG[@]}" -s 60 -n "$N" -c "$C" http://10.79.0.2/1k.bin >"$TMP/ab.txt"
callgrind_control -d "$PID" >/dev/null
callgrind_control -i off "$PID" >/dev/null
done_n="$(awk '/^Complete requests:/ {print $3}' "$TMP/ab.txt")"
failed="$(awk '/^Failed requests:/ {print $3}' "$TMP/ab.txt")"
ka="$(awk '/^Keep-Alive requests:/ {print $3}' "$TMP/ab.txt")"
# The dump written by -d is the file with the highest part number.
dump="$(ls -v "$CG".* | tail -n 1)"
callgrind_annotate --inclusive=no "$dump" >"$TMP/annotate.txt" 2>/dev/null
ir="$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}' "$TMP/annotate.txt")"
echo "bin=$BIN requests=$done_n keepalive=$ka failed=$failed Ir=$ir Ir_per_request=$((ir / done_n))"
echo "dump=$dump"
awk '/file:function/ {on = 1; next} on && /^ *[0-9]/ {print; if (++n == top) exit}' top="$TOP" "$TMP/annotate.txt"
