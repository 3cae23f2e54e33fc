#!/usr/bin/env bash
# Run the TCP scripts of a packetdrill checkout against tunstack, in virtual time, and
# print pass / fail / unsupported per directory.
#
#   scripts/packetdrill-corpus.sh ~/src/packetdrill            # every directory
#   DIRS="sack close" scripts/packetdrill-corpus.sh ~/src/packetdrill
#   VERBOSE=1 scripts/packetdrill-corpus.sh ~/src/packetdrill  # every script's line too
#   TUNSTACK_BIN=/path/to/tunstack scripts/packetdrill-corpus.sh DIR
#   PD_ARGS="--tolerance_usecs=10000" scripts/packetdrill-corpus.sh DIR
#
# DIR is a packetdrill checkout you already have (github.com/google/packetdrill); this
# script downloads nothing and runs no script's shell commands (tunstack reads their
# sysctl lines, see docs/packetdrill.md). Its scripts stay where they are: their licence
# is not ours. The scripts are written for Linux; docs/tcp-rfc-coverage.md explains the
# failures we know of.
#
# PSH flags are not compared (--ignore_psh): where a sender sets PSH is its own choice,
# and Linux's placement (per write and per TSO chunk) is not a rule we copy.
#
# Exit status: 0 when no script had a runner error (a parse error or unreadable file);
# FAILs are results, not errors of this script.
set -euo pipefail

if [ $# -ne 1 ] || [ ! -d "$1/gtests/net/tcp" ]; then
    echo "usage: $0 PACKETDRILL_CHECKOUT   (a directory with gtests/net/tcp/)" >&2
    exit 2
fi
root="$1/gtests/net/tcp"
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${TUNSTACK_BIN:-}"
if [ -z "$bin" ]; then
    (cd "$here" && cargo build --quiet --bin tunstack)
    bin="$here/target/debug/tunstack"
fi

if [ -n "${DIRS:-}" ]; then
    read -r -a dirs <<<"$DIRS"
else
    dirs=()
    for d in "$root"/*/; do
        d="$(basename "$d")"
        [ "$d" = common ] && continue
        compgen -G "$root/$d/*.pkt" >/dev/null && dirs+=("$d")
    done
fi

printf '%-20s %5s %5s %5s %12s %6s\n' directory total pass fail unsupported error
errors=0
tp=0 tf=0 tu=0 te=0 tt=0
for d in "${dirs[@]}"; do
    mapfile -t files < <(find "$root/$d" -name '*.pkt' | sort)
    [ ${#files[@]} -eq 0 ] && continue
    # shellcheck disable=SC2086 # PD_ARGS is a list of flags
    out="$("$bin" packetdrill --ignore_psh ${PD_ARGS:-} "${files[@]}" || true)"
    if [ -n "${VERBOSE:-}" ]; then
        grep -v ' passed, ' <<<"$out" | sed "s#$root/##" >&2
    fi
    p=$(grep -c '^PASS ' <<<"$out" || true)
    f=$(grep -c '^FAIL ' <<<"$out" || true)
    u=$(grep -c '^UNSUPPORTED ' <<<"$out" || true)
    e=$(grep -c '^ERROR ' <<<"$out" || true)
    n=${#files[@]}
    printf '%-20s %5d %5d %5d %12d %6d\n' "$d" "$n" "$p" "$f" "$u" "$e"
    tp=$((tp + p)) tf=$((tf + f)) tu=$((tu + u)) te=$((te + e)) tt=$((tt + n))
    errors=$((errors + e))
done
printf '%-20s %5d %5d %5d %12d %6d\n' total "$tt" "$tp" "$tf" "$tu" "$te"
[ "$errors" -eq 0 ]
