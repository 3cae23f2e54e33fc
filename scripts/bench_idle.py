#!/usr/bin/env python3
"""Hold many idle connections to an HTTP server, then serve one request on each.

Used by scripts/bench.sh:  bench_idle.py HOST PORT COUNT SERVER_PID PATH
Prints one line of key=value pairs: connected, served, failed, connect_s, serve_s,
rss_before_kib, rss_idle_kib, rss_after_kib (RSS of SERVER_PID from /proc).

Every loop is bounded in time; the script ends on its own.
"""
import selectors
import socket
import sys
import time


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def main():
    host, port, count, pid, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    rss_before = rss_kib(pid)
    sel = selectors.DefaultSelector()
    socks = []
    t0 = time.monotonic()
    # Open in waves smaller than the listener's backlog (128 by default): beyond it, SYNs
    # are dropped and retried after 1 s (Linux) or the oldest half-open connection is
    # evicted (tunstack), which would measure the overflow policy, not holding connections.
    wave = 100
    connected = 0
    failed = 0
    deadline = t0 + 90
    pending = 0
    while (len(socks) < count or pending) and time.monotonic() < deadline:
        while len(socks) < count and pending < wave:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect((host, port))
            except BlockingIOError:
                pass
            socks.append(s)
            sel.register(s, selectors.EVENT_WRITE)
            pending += 1
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            sel.unregister(s)
            pending -= 1
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected += 1
            else:
                failed += 1
    connect_s = time.monotonic() - t0
    # Let the server settle (accept and park every connection), then read its RSS.
    time.sleep(3)
    rss_idle = rss_kib(pid)

    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    state = {}
    t1 = time.monotonic()
    for s in socks:
        try:
            s.send(request)
            state[s.fileno()] = bytearray()
            sel.register(s, selectors.EVENT_READ)
        except OSError:
            failed += 1
    served = 0
    deadline = t1 + 90
    waiting = len(state)
    while waiting and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            buf = state[s.fileno()]
            buf += data
            done = False
            head_end = buf.find(b"\r\n\r\n")
            if head_end >= 0:
                length = 0
                for line in bytes(buf[:head_end]).split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if len(buf) >= head_end + 4 + length:
                    done = True
                    if buf.startswith(b"HTTP/1.1 200"):
                        served += 1
            if done or not data:
                sel.unregister(s)
                waiting -= 1
    serve_s = time.monotonic() - t1
    rss_after = rss_kib(pid)
    for s in socks:
        s.close()
    print(
        f"connected={connected} served={served} failed={failed} connect_s={connect_s:.2f} "
        f"serve_s={serve_s:.2f} rss_before_kib={rss_before} rss_idle_kib={rss_idle} "
        f"rss_after_kib={rss_after}"
    )


if __name__ == "__main__":
    main()
