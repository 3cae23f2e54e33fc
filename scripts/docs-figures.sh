#!/usr/bin/env bash
# Regenerate the ladder diagrams in docs/img/ from live traffic. Run inside a lab shell
# (sudo scripts/lab.sh shell) from the repository root, with `tunstack` on PATH.
set -euo pipefail
scripts/lab.sh serve --pcap /tmp/lab/figures.pcap
curl -s -o /dev/null http://10.0.0.2/                                # 1: one request
curl -s -o /dev/null -o /dev/null http://10.0.0.2/ http://10.0.0.2/  # 2: keep-alive
# 3: HTTP/1.0 from a client that reads until the server closes (curl --http1.0 races
#    the server's FIN with its own: see docs/walkthrough.md)
exec 3<>/dev/tcp/10.0.0.2/80; printf 'GET / HTTP/1.0\r\n\r\n' >&3; cat <&3 >/dev/null; exec 3<&-
scripts/lab.sh stop
# 4: the stack's second full-sized data segment is dropped once, on its way to the kernel.
#    Without offloads (--no-offload) each segment crosses the TUN as its own packet; with
#    them the whole response is one super-segment, and there is no "second" to drop.
scripts/lab.sh serve --no-offload --pcap /tmp/lab/figures-loss.pcap
nft add table inet figures
nft add chain inet figures from_stack '{ type filter hook prerouting priority -300; }'
nft add rule inet figures from_stack iifname tun0 tcp sport 80 meta length gt 1000 \
    numgen inc mod 1000 == 1 drop
curl -s -o /dev/null http://10.0.0.2/
nft delete table inet figures
scripts/lab.sh stop
tunstack diagram /tmp/lab/figures.pcap --connection 1 -o docs/img/one-request.svg
tunstack diagram /tmp/lab/figures.pcap --connection 2 -o docs/img/keep-alive.svg
tunstack diagram /tmp/lab/figures.pcap --connection 3 -o docs/img/http10-close.svg
tunstack diagram /tmp/lab/figures-loss.pcap --connection 1 -o docs/img/retransmission.svg
