"""Drive `tunstack serve --step` (or `--trace`) through a pseudo-terminal, as a person at a
terminal would.

argv: NS TUN BIN [MODE [COLOR [SERVE_ARGS...]]]; MODE is `step` (default) or `trace`, COLOR
is `plain` (default: NO_COLOR=1 is set) or `color`; SERVE_ARGS go to `serve` as they are. Starts the server in namespace NS on a pty, starts
one curl once the server listens, presses Enter at every step prompt until the HTTP handler
has been reached, then types `c`, waits for curl, stops the server with SIGTERM and prints
the transcript followed by CURL_RC=<code> HTTP=<status> PROMPTS=<n> CONTINUED=<bool>.
"""
import os, pty, select, signal, subprocess, sys, time

ns, tun, binary = sys.argv[1], sys.argv[2], sys.argv[3]
mode = sys.argv[4] if len(sys.argv) > 4 else "step"
color = len(sys.argv) > 5 and sys.argv[5] == "color"
extra = sys.argv[6:]
PROMPT = b"step> "
pid, fd = pty.fork()
if pid == 0:
    os.environ["RUST_LOG"] = "info"
    # A terminal gets colours unless NO_COLOR is set; plain text is easier to assert on.
    if color:
        os.environ.pop("NO_COLOR", None)
    else:
        os.environ["NO_COLOR"] = "1"
    os.execvp("ip", ["ip", "netns", "exec", ns, binary, "serve", "--" + mode, "--tun", tun,
                     "--host-ip", "10.0.0.1/24", "--ip", "10.0.0.2", "--port", "80"] + extra)

out = bytearray()
seen = 0          # prompts answered so far
curl = None
continued = False
deadline = time.time() + 90
try:
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if curl is None and b"http: listening" in out:
            curl = subprocess.Popen(
                ["ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "60", "-o", "/dev/null",
                 "-w", "%{http_code}", "http://10.0.0.2/"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        prompts = out.count(PROMPT)
        while seen < prompts:
            seen += 1
            if not continued and b"the HTTP handler runs now" in out:
                os.write(fd, b"c\n")
                continued = True
            elif not continued:
                os.write(fd, b"\n")
        if curl is not None and curl.poll() is not None:
            break
    code = curl.wait(timeout=70) if curl is not None else None
    body = curl.stdout.read().decode() if curl is not None else ""
    # Let the close finish being traced, then stop the server.
    time.sleep(0.5)
    try:
        while True:
            r, _, _ = select.select([fd], [], [], 0.2)
            if not r:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out += chunk
    except OSError:
        pass
finally:
    os.kill(pid, signal.SIGTERM)
    end = time.time() + 10
    while time.time() < end:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

sys.stdout.write(out.decode("utf-8", "replace"))
print(f"\nCURL_RC={code} HTTP={body} PROMPTS={seen} CONTINUED={continued}")
