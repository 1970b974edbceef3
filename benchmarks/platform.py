"""Platform benchmark: the same canned producer called directly, through the platform (VP) and
through nginx as a plain reverse proxy, in one run, over loopback.

    .venv/bin/python benchmarks/platform.py [--seconds 5] [--concurrency 32] [--repeat 3]

Load comes from wrk (a C load generator: a Python client would be the bottleneck). wrk has no
request-count mode, so each run is bounded by time (``--seconds``), which bounds the count; the
count of every run is in the JSON.
Two modes per target: throughput (many connections) and latency (one connection, so p50/p99 are
service times, not queueing). The proxy under test (VP or nginx, one worker each) is pinned to
CPU 1, wrk and the producer to CPU 0 (``--no-pin`` to turn that off). The producer is nginx
answering a canned SOAP response (fast, so it does not limit the proxies); without nginx an
aiohttp producer is used and the nginx row is skipped with a note.

The platform is called on its plain-HTTP listener with the client certificate forwarded by a
trusted proxy address (the deployment behind a TLS-terminating proxy), so VP and nginx do the
same HTTP work; its full request path runs (identity, envelope read, route, permission, headers,
producer call, response check, JSON call log to a file).

A fourth row, ``aiohttp-floor``, is a bare aiohttp forwarder (server + pooled ClientSession, no
checks): the floor for the platform's stack, to tell the platform's own cost from aiohttp's.
Besides req/s the proxy process's own CPU time per request is recorded (from /proc): on a shared
machine that is a steadier per-core figure than req/s.

Writes benchmarks/results/platform.json (every run, plus medians).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from routing import pki  # noqa: E402
from routing.snapshot import Permission, Route, Snapshot  # noqa: E402

NS = "urn:riv:supportprocess:logistics:carelisting:GetListingResponder:2"
CONSUMER = "SE2321000016-1177"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
REQUEST = (f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP}">'
           '<soap:Header><h:LogicalAddress xmlns:h="urn:riv:itintegration:registry:1">08'
           f'</h:LogicalAddress></soap:Header><soap:Body><GetListing xmlns="{NS}"><personId>'
           "<root>1.2.752.129.2.1.3.1</root><extension>191212121212</extension></personId>"
           "</GetListing></soap:Body></soap:Envelope>")
RESPONSE = (f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Body><GetListingResponse xmlns="{NS}">'
            "<listing><careUnit>SE2321000073-vc1</careUnit></listing><resultCode>OK"
            "</resultCode></GetListingResponse></soap:Body></soap:Envelope>")
PATH = "/GetListing/2/rivtabp21"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def pinned(cpu: int | None, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if cpu is not None and shutil.which("taskset") \
        else cmd


@contextmanager
def process(cmd: list[str], port: int, log: Path, env: dict[str, str] | None = None):
    """``env``: extra environment variables for the process (on top of ours)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                env={**os.environ, **env} if env else None)
    try:
        wait_port(port)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def nginx_conf(work: Path, name: str, port: int, cpu: int | None, body: str) -> Path:
    prefix = work / name
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    affinity = f"worker_cpu_affinity {1 << cpu:b};" if cpu is not None else ""
    conf = prefix / "nginx.conf"
    conf.write_text(textwrap.dedent(f"""
        daemon off;
        worker_processes 1;
        {affinity}
        pid {prefix}/nginx.pid;
        error_log {prefix}/logs/error.log warn;
        events {{ worker_connections 1024; }}
        http {{
          access_log off;
          client_body_temp_path {prefix}/body;
          proxy_temp_path {prefix}/proxy;
          fastcgi_temp_path {prefix}/fcgi; uwsgi_temp_path {prefix}/uwsgi;
          scgi_temp_path {prefix}/scgi;
          client_body_buffer_size 1m;
          keepalive_requests 1000000;
          {body}
        }}
    """))
    return conf


def nginx_cmd(conf: Path) -> list[str]:
    return ["nginx", "-p", str(conf.parent), "-c", str(conf), "-e", str(conf.parent / "logs/e")]


@contextmanager
def producer(work: Path, cpu: int | None, use_nginx: bool, response: str = RESPONSE):
    """A producer answering every POST with ``response`` (a canned SOAP envelope)."""
    port = free_port()
    if use_nginx:
        body = response.replace("'", "\\'")
        conf = nginx_conf(work, "producer", port, cpu, f"""
          server {{
            listen 127.0.0.1:{port} backlog=1024;
            location / {{ default_type "text/xml; charset=utf-8"; return 200 '{body}'; }}
          }}""")
        with process(nginx_cmd(conf), port, work / "producer.log") as proc:
            yield f"http://127.0.0.1:{port}", "nginx (return 200 canned SOAP)", proc
        return
    script = work / "producer.py"
    script.write_text(textwrap.dedent(f"""
        from aiohttp import web
        BODY = {response!r}.encode()
        async def answer(request):
            await request.read()
            return web.Response(body=BODY, content_type="text/xml", charset="utf-8")
        app = web.Application()
        app.router.add_post("/{{tail:.*}}", answer)
        web.run_app(app, host="127.0.0.1", port={port}, access_log=None, print=None)
    """))
    with process(pinned(cpu, [sys.executable, str(script)]), port,
                 work / "producer.log") as proc:
        yield f"http://127.0.0.1:{port}", "aiohttp (canned SOAP)", proc


@contextmanager
def nginx_proxy(work: Path, cpu: int | None, upstream: str):
    port = free_port()
    conf = nginx_conf(work, "proxy", port, cpu, f"""
      upstream producer {{ server {upstream.removeprefix('http://')}; keepalive 64; }}
      server {{
        listen 127.0.0.1:{port} backlog=1024;
        location / {{
          proxy_pass http://producer;
          proxy_http_version 1.1;
          proxy_set_header Connection "";
          proxy_request_buffering off;
        }}
      }}""")
    with process(nginx_cmd(conf), port, work / "nginx-proxy.log") as proc:
        yield f"http://127.0.0.1:{port}", proc


@contextmanager
def vp(work: Path, cpu: int | None, upstream: str, contract: str = NS, path: str = PATH,
       extra: tuple[str, ...] = (), env: dict[str, str] | None = None):
    """The platform, routing ``contract`` at logical address 08 to ``upstream + path``;
    ``extra``: more ``serve`` arguments, ``env``: more environment variables."""
    snap = work / "snapshot.json"
    forever = (date(2020, 1, 1), date(2099, 12, 31))
    Snapshot("bench", datetime.now(UTC),
             [Route(contract, "08", upstream + path, "RIVTABP21", "SE2321000073-lk08",
                    *forever)],
             [Permission(CONSUMER, contract, "08", *forever)]).save(snap)
    port = free_port()
    cmd = [sys.executable, "-m", "routing.vp", "serve", "--catalogue", str(snap), "--port", "-1",
           "--http-port", str(port), "--trusted-proxy", "127.0.0.1", "--state-dir",
           str(work / "vp-state"), "--instance-name", "vp-bench", *extra]
    with process(pinned(cpu, cmd), port, work / "vp.log", env) as proc:
        yield f"http://127.0.0.1:{port}", proc


FLOOR = """
# The floor for this stack: aiohttp server + one pooled ClientSession forwarding raw bytes,
# with no identity, parsing, routing, checks or logging.
import sys
import aiohttp
from aiohttp import web
UPSTREAM = sys.argv[1]
async def forward(request):
    body = await request.read()
    async with request.app["session"].post(UPSTREAM, data=body,
                                           headers={"Content-Type": "text/xml"}) as r:
        data = await r.read()
    return web.Response(body=data, content_type="text/xml")
async def session(app):
    app["session"] = aiohttp.ClientSession()
    yield
    await app["session"].close()
app = web.Application()
app.router.add_post("/{tail:.*}", forward)
app.cleanup_ctx.append(session)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), access_log=None, print=None)
"""


@contextmanager
def aiohttp_floor(work: Path, cpu: int | None, upstream: str):
    script = work / "floor.py"
    script.write_text(FLOOR)
    port = free_port()
    cmd = [sys.executable, str(script), upstream + PATH, str(port)]
    with process(pinned(cpu, cmd), port, work / "floor.log") as proc:
        yield f"http://127.0.0.1:{port}", proc


LUA = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "text/xml; charset=utf-8"
wrk.headers["SOAPAction"] = "{ns}:GetListing"
wrk.headers["x-vp-auth-cert"] = {cert}
"""


def lua_string(s: str) -> str:
    return "[==[" + s + "]==]"


def wrk(url: str, script: Path, connections: int, cpu: int | None, seconds: int) -> dict:
    out = subprocess.run(
        pinned(cpu, ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                     "-s", str(script), url + PATH]),
        capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    total = int(re.search(r"(\d+) requests in", out)[1])
    pct = {m[1]: _ms(m[2], m[3]) for m in re.finditer(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$",
                                                     out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "requests": total, "p50_ms": pct["50"], "p99_ms": pct["99"],
            "non_200": int(errors[1]) if errors else 0,
            "socket_errors": socket_errors[1].strip() if socket_errors else None}


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=5, help="per throughput run")
    ap.add_argument("--latency-seconds", type=int, default=3, help="per latency run (c=1)")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--no-floor", action="store_true",
                    help="skip the bare aiohttp forwarder row (the floor for this stack)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/platform.json")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk is needed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    have_nginx = shutil.which("nginx") is not None
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    load_cpu, proxy_cpu = (0, 1) if pin else (None, None)
    notes = [] if have_nginx else ["nginx not installed: the nginx row is skipped "
                                   "(apt-get install -y nginx-light)"]
    runs: dict[str, list[dict]] = {"direct": [], "platform": [], "nginx": [],
                                   "aiohttp-floor": []}
    load_before = _loadavg()
    with tempfile.TemporaryDirectory(prefix="vp-bench-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        consumer = pki.issue(work / "pki", "consumer", CONSUMER)
        cert = quote(consumer.cert.read_text())
        upstream, producer_kind, producer_proc = stack.enter_context(
            producer(work, load_cpu, have_nginx))
        # name -> (URL, the process whose CPU time is charged to that row)
        targets = {"direct": (upstream, producer_proc),
                   "platform": stack.enter_context(vp(work, proxy_cpu, upstream))}
        if have_nginx:
            targets["nginx"] = stack.enter_context(nginx_proxy(work, proxy_cpu, upstream))
        if not args.no_floor:
            targets["aiohttp-floor"] = stack.enter_context(
                aiohttp_floor(work, proxy_cpu, upstream))
        script = work / "post.lua"
        script.write_text(LUA.format(body=lua_string(REQUEST), ns=NS, cert=lua_string(cert)))
        for url, _ in targets.values():  # warm up connections, code paths and caches
            wrk(url, script, 4, load_cpu, 1)
        for i in range(args.repeat):
            for name, (url, proc) in targets.items():  # interleaved: drift hits all rows alike
                cpu_before = cpu_seconds(proc.pid)
                thr = wrk(url, script, args.concurrency, load_cpu, args.seconds)
                cpu_us = (cpu_seconds(proc.pid) - cpu_before) / max(thr["requests"], 1) * 1e6
                lat = wrk(url, script, 1, load_cpu, args.latency_seconds)
                run = {"rps": thr["rps"], "cpu_us_per_request": round(cpu_us, 1),
                       "p50_ms_loaded": thr["p50_ms"],
                       "p99_ms_loaded": thr["p99_ms"], "p50_ms": lat["p50_ms"],
                       "p99_ms": lat["p99_ms"], "non_200": thr["non_200"] + lat["non_200"],
                       "requests": thr["requests"] + lat["requests"]}
                runs[name].append(run)
                print(f"run {i + 1} {name:<13} {run['rps']:>9.0f} req/s  "
                      f"{run['cpu_us_per_request']:>6.0f} us CPU/req  p50 {run['p50_ms']:.3f}"
                      f" ms  p99 {run['p99_ms']:.3f} ms  (loaded p99 "
                      f"{run['p99_ms_loaded']:.2f} ms, non-200 {run['non_200']})", flush=True)
        time.sleep(0.3)  # the call log is flushed every 50 ms
        own = platform_own_time(work / "vp.log")
    medians = {name: {k: round(statistics.median(r[k] for r in rs), 3) for k in rs[0]}
               for name, rs in runs.items() if rs}
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "kernel": " ".join(os.uname()[2:4]), "cpu": _cpu_model(),
                    # other work on the machine skews everything: say how busy it was
                    "loadavg_before": load_before, "loadavg_after": _loadavg()},
        "settings": {"seconds": args.seconds, "latency_seconds": args.latency_seconds,
                     "concurrency": args.concurrency, "repeat": args.repeat, "pinned": pin,
                     "producer": producer_kind, "load": "wrk -t1"},
        "notes": notes, "runs": runs, "medians": medians,
        # from the platform's call log: response out minus producer round trip, every call
        "platform_own_time_ms": own,
    }
    if "nginx" in medians:
        result["platform_vs_nginx_throughput"] = round(
            medians["platform"]["rps"] / medians["nginx"]["rps"], 3)
        # per core of the proxy's own CPU: less at the mercy of other load than req/s
        result["platform_vs_nginx_per_cpu"] = round(
            medians["nginx"]["cpu_us_per_request"] / medians["platform"]["cpu_us_per_request"], 3)
    result["platform_added_p99_ms"] = round(
        medians["platform"]["p99_ms"] - medians["direct"]["p99_ms"], 3)
    if "nginx" in medians:
        result["nginx_added_p99_ms"] = round(
            medians["nginx"]["p99_ms"] - medians["direct"]["p99_ms"], 3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print("\nmedians:")
    for name, m in medians.items():
        print(f"  {name:<13} {m['rps']:>9.0f} req/s  {m['cpu_us_per_request']:>6.0f} us CPU/req"
              f"  p50 {m['p50_ms']:.3f} ms  "
              f"p99 {m['p99_ms']:.3f} ms  (c={args.concurrency}: p99 {m['p99_ms_loaded']:.2f} ms)")
    for k in ("platform_vs_nginx_throughput", "platform_vs_nginx_per_cpu",
              "platform_added_p99_ms", "nginx_added_p99_ms"):
        if k in result:
            print(f"  {k}: {result[k]}")
    print(f"  platform's own time per call (call log, n={own['calls']}): p50 {own['p50_ms']} ms,"
          f" p99 {own['p99_ms']} ms")
    for n in notes:
        print(f"  note: {n}")
    print(f"written to {args.out}")
    return 0


def platform_own_time(log: Path) -> dict:
    """Per call: duration (request in → response out) minus the producer round trip."""
    prt: dict[str, float] = {}
    own: list[float] = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("event") == "resp-in":
            prt[rec["correlation_id"]] = rec["prt_ms"]
        elif rec.get("event") == "resp-out" and rec["correlation_id"] in prt:
            own.append(rec["duration_ms"] - prt.pop(rec["correlation_id"]))
    if not own:
        return {"calls": 0, "p50_ms": None, "p99_ms": None}
    own.sort()
    return {"calls": len(own), "p50_ms": round(own[len(own) // 2], 3),
            "p99_ms": round(own[int(len(own) * 0.99) - 1], 3)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (nginx's worker), from /proc."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
