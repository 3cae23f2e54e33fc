"""Open tunstack's live view in a real headless Chromium and watch one curl appear in it.

Run inside the client's network namespace (`ip netns exec NS python3 ...`), so that the
browser, its chromedriver and curl all reach the server the way a learner's would.

argv: PAGE_URL CURL_URL PROFILE_DIR [SCREENSHOT.png]

Starts chromedriver on a free loopback port, drives it through the WebDriver HTTP API
(W3C WebDriver, stdlib urllib only), loads PAGE_URL, waits until the page says its event
stream is live, runs `curl CURL_URL`, then polls the DOM until the connection table has
curl's connection closed. Prints tab-separated lines: `CURL rc status local-port`, one
`ROW conn state history http` per row of the connection table, `LADDER alt-text` of the
ladder image, then the packet panel (`PACKETS …`) and the counters (`COUNTERS …`) line
by line; with SCREENSHOT, a PNG of the page is written there. On failure, one line
`{"error": …}` and exit status 1. Every wait is bounded.
"""
import base64, json, os, shutil, socket, subprocess, sys, time, urllib.error, urllib.request

page_url, curl_url, profile = sys.argv[1], sys.argv[2], sys.argv[3]
screenshot = sys.argv[4] if len(sys.argv) > 4 else None
DEADLINE = time.time() + 150

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1500", "--user-data-dir=" + profile]


def fail(msg):
    print(json.dumps({"error": msg}))
    sys.exit(1)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(method, path, body=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read() or b"{}").get("value")
    except urllib.error.HTTPError as e:
        fail(f"{method} {path}: HTTP {e.code}: {e.read()[:500]!r}")


def wait_until(what, probe, limit):
    end = min(DEADLINE, time.time() + limit)
    last = None
    while time.time() < end:
        last = probe()
        if last:
            return last
        time.sleep(0.25)
    fail(f"timed out waiting for {what}; last: {last!r}")


driver_bin = shutil.which("chromedriver") or fail("no chromedriver on PATH")
browser = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser")
                if os.path.exists(p)), None) or fail("no chromium")
port = free_port()
BASE = f"http://127.0.0.1:{port}"
driver = subprocess.Popen([driver_bin, f"--port={port}"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
session = None
try:
    def ready():
        try:
            with urllib.request.urlopen(BASE + "/status", timeout=2) as r:
                return json.loads(r.read())["value"].get("ready")
        except (OSError, ValueError, KeyError):
            return False
    wait_until("chromedriver", ready, 60)
    caps = {"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": browser, "args": FLAGS}}}}
    session = call("POST", "/session", caps, timeout=90)["sessionId"]
    S = f"/session/{session}"
    call("POST", S + "/timeouts", {"pageLoad": 60000, "script": 30000})
    call("POST", S + "/url", {"url": page_url})

    def js(script):
        return call("POST", S + "/execute/sync", {"script": script, "args": []})
    wait_until("the event stream", lambda: js(
        "return document.getElementById('status').textContent === 'live'"), 60)

    c = subprocess.run(["curl", "-sS", "--max-time", "30", "-o", "/dev/null",
                        "-w", "%{local_port} %{http_code}", curl_url],
                       capture_output=True, text=True, timeout=60)
    local_port, _, status = c.stdout.strip().partition(" ")
    peer_suffix = ":" + local_port

    table_js = """
      return Array.from(document.querySelectorAll('#conns tr')).map(tr => ({
        conn: tr.dataset.conn, state: tr.dataset.state || '',
        history: tr.querySelector('.hist').textContent,
        http: tr.querySelector('.http').textContent,
        selected: tr.classList.contains('selected')}));"""

    def closed():
        rows = js(table_js)
        mine = [r for r in rows if r["conn"].endswith(peer_suffix)]
        if mine and "CLOSED" in mine[0]["history"] and mine[0]["http"]:
            return rows
        return None
    rows = wait_until("curl's connection to close in the table", closed, 60)

    def ladder():
        return js("const i = document.querySelector('#ladder img');"
                  "return i && i.complete && i.naturalWidth > 0 ? i.alt : null")
    ladder_alt = wait_until("the ladder diagram", ladder, 30)
    packets = js("return document.getElementById('packets').innerText")
    counters = js("return document.getElementById('counters').innerText")
    if screenshot:
        png = base64.b64decode(call("GET", S + "/screenshot"))
        with open(screenshot, "wb") as f:
            f.write(png)
    # One fact per line, tab-separated: easy to assert on without a JSON parser.
    print(f"CURL\t{c.returncode}\t{status}\t{local_port}")
    for r in rows:
        print(f"ROW\t{r['conn']}\t{r['state']}\t{r['history']}\t{r['http']}")
    print(f"LADDER\t{ladder_alt}")
    for line in packets.splitlines():
        print(f"PACKETS\t{line}")
    for line in counters.splitlines():
        print(f"COUNTERS\t{line}")
finally:
    if session:
        try:
            call("DELETE", f"/session/{session}", timeout=30)
        except Exception:
            pass
    driver.terminate()
    try:
        driver.wait(10)
    except subprocess.TimeoutExpired:
        driver.kill()
