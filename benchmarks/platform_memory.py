"""Platform memory under repeated load: does the platform process level off or keep growing?

    .venv/bin/python benchmarks/platform_memory.py [--rounds 10] [--calls 300] [--units 275]

The platform is started as ``benchmarks/platform.py`` starts it (its ``vp`` and ``producer``:
the plain-HTTP listener, the client certificate forwarded by a trusted proxy address, pinned to
CPU 1), with the message log on as in the pilot (``--no-message-log`` to leave it off). The
producer is an aiohttp process answering every call with one canned
GetAvailableHealthcareFacilitiesResponse of ``--units`` units (275: Västra Götaland's, about
150 KB), built here and checked against the contract's schema before the run.

Each of ``--rounds`` rounds sends ``--calls`` GetAvailableHealthcareFacilities calls at once
(one aiohttp client session, one connection per call, kept alive between rounds), then waits
for the platform to settle and reads its memory from /proc: VmRSS and VmHWM
(``/proc/PID/status``), Pss (``/proc/PID/smaps_rollup``). After the last round the client
closes its connections and, after ``--idle`` seconds, memory is read once more.

Verdict: the mean RSS over the last half of the rounds against the first half (round 1 is
warm-up: it is counted in neither), per round between the halves' centres; "levels off" below
``LEVEL_MB_PER_ROUND`` MB a round. The mean, not the last reading: before the fix in
``routing.vp.pipeline.SentResponse`` the RSS after a round swung by 40 MB from round to round.

Each run is repeated per ``--variants`` entry: ``default`` (the platform's environment as is)
and environment settings such as ``MALLOC_ARENA_MAX=2`` (several joined with ``+``).

Writes benchmarks/results/platform_memory.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmarks/platform.py would shadow the standard library's platform module.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import quote  # noqa: E402

REPO = HERE.parent
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402

from interactions.validator import validate_bytes  # noqa: E402
from routing import pki  # noqa: E402


def _load_platform_bench() -> Any:
    """benchmarks/platform.py (how it starts the platform and a canned producer)."""
    spec = importlib.util.spec_from_file_location("platform_bench", HERE / "platform.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


bench = _load_platform_bench()

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS = "urn:riv:supportprocess:logistics:carelisting:GetAvailableHealthcareFacilitiesResponder:2"
CORE = "urn:riv:supportprocess:logistics:carelisting:2"
EXT = "urn:riv:supportprocess:logistics:carelisting:2.1"
PATH = "/GetAvailableHealthcareFacilities/2/rivtabp21"
REQUEST = (f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP}">'
           '<soap:Header><h:LogicalAddress xmlns:h="urn:riv:itintegration:registry:1">08'
           f'</h:LogicalAddress></soap:Header><soap:Body><GetAvailableHealthcareFacilities '
           f'xmlns="{NS}"/></soap:Body></soap:Envelope>')
LEVEL_MB_PER_ROUND = 0.5  # below this growth a round over the last half: "levels off"
PLACES = ("Angered", "Backa", "Biskopsgården", "Borås Centrum", "Frölunda", "Gamlestaden",
          "Hisingen", "Kungälv", "Lerum", "Majorna", "Mölndal", "Partille", "Skövde",
          "Trollhättan", "Uddevalla", "Vänersborg", "Lidköping", "Alingsås", "Stenungsund")


def facilities_response(units: int) -> str:
    """A GetAvailableHealthcareFacilitiesResponse with ``units`` units (2.1 queue extension)."""
    parts = [f'<soap:Envelope xmlns:soap="{SOAP}"><soap:Body>'
             f'<GetAvailableHealthcareFacilitiesResponse xmlns="{NS}" xmlns:core="{CORE}" '
             f'xmlns:ext="{EXT}">']
    for i in range(units):
        queue = i % 7 == 0
        parts.append(
            "<healthcareFacilities>"
            f"<core:id>SE2321000131-E{i:06d}</core:id>"
            f"<core:name>Vårdcentralen {PLACES[i % len(PLACES)]} {i // len(PLACES) + 1}"
            "</core:name>"
            f"<core:hasQueue>{'true' if queue else 'false'}</core:hasQueue>"
            "<core:supportedListingTypes><core:code>PV</core:code>"
            "<core:codeSystem>1.2.752.129.5.1.27</core:codeSystem>"
            "<core:displayName>Primärvårdslistning</core:displayName>"
            "</core:supportedListingTypes>"
            f"<core:supportsHealthcarePersonnel>{'true' if i % 3 else 'false'}"
            "</core:supportsHealthcarePersonnel>"
            f"<ext:queueLength>{i % 50 if queue else 0}</ext:queueLength>"
            f"<ext:estimatedWaitInQueue>{i % 90 if queue else 0}</ext:estimatedWaitInQueue>"
            "</healthcareFacilities>")
    parts.append("<resultCode>OK</resultCode></GetAvailableHealthcareFacilitiesResponse>"
                 "</soap:Body></soap:Envelope>")
    return "".join(parts)


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon (/proc/PID/status) and Pss (smaps_rollup) of one process, in MB."""
    def fields(path: str) -> dict[str, int]:
        out = {}
        for line in Path(path).read_text().splitlines():
            key, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                out[key] = int(value.split()[0])
        return out
    status = fields(f"/proc/{pid}/status")
    rollup = fields(f"/proc/{pid}/smaps_rollup")
    return {"rss_mb": round(status["VmRSS"] / 1024, 1), "hwm_mb": round(status["VmHWM"] / 1024, 1),
            "anon_mb": round(status.get("RssAnon", 0) / 1024, 1),
            "pss_mb": round(rollup["Pss"] / 1024, 1), "threads": status_threads(pid)}


def status_threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


async def one_round(session: aiohttp.ClientSession, url: str, headers: dict[str, str],
                    calls: int, expect_bytes: int) -> dict[str, Any]:
    async def one() -> tuple[int, int]:
        async with session.post(url, data=REQUEST.encode(), headers=headers) as resp:
            return resp.status, len(await resp.read())

    started = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(calls)), return_exceptions=True)
    seconds = time.perf_counter() - started
    ok = sum(1 for r in results if not isinstance(r, BaseException) and r[0] == 200
             and r[1] == expect_bytes)
    errors = sorted({type(r).__name__ for r in results if isinstance(r, BaseException)})
    return {"calls": calls, "ok": ok, "seconds": round(seconds, 2), "errors": errors}


async def load(pid: int, url: str, cert: str, args: argparse.Namespace,
               expect_bytes: int) -> dict[str, Any]:
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f"{NS}:"
               "GetAvailableHealthcareFacilities", "x-vp-auth-cert": cert}
    rows = [{"round": 0, "calls": 0, "ok": 0, "seconds": 0.0, "errors": [], **memory_mb(pid)}]
    connector = aiohttp.TCPConnector(limit=args.calls)
    async with aiohttp.ClientSession(connector=connector) as session:
        for i in range(1, args.rounds + 1):
            row = {"round": i, **await one_round(session, url + PATH, headers, args.calls,
                                                 expect_bytes)}
            await asyncio.sleep(args.settle)  # call log flushed, connections back in the pool
            row.update(memory_mb(pid))
            row["growth_mb"] = round(row["rss_mb"] - rows[-1]["rss_mb"], 1)
            rows.append(row)
            print(f"  round {i:>3}  {row['ok']:>4}/{row['calls']} ok in {row['seconds']:>5.1f} s"
                  f"  RSS {row['rss_mb']:>6.1f} MB (HWM {row['hwm_mb']:>6.1f})  "
                  f"PSS {row['pss_mb']:>6.1f} MB  growth {row['growth_mb']:>+6.1f} MB"
                  + (f"  errors {', '.join(row['errors'])}" if row["errors"] else ""),
                  flush=True)
    await asyncio.sleep(args.idle)  # the client's connections are closed: the platform idles
    idle = memory_mb(pid)
    print(f"  idle {args.idle:g} s, connections closed: RSS {idle['rss_mb']:.1f} MB  "
          f"PSS {idle['pss_mb']:.1f} MB", flush=True)
    return {"rounds": rows, "idle": idle}


def verdict(rows: list[dict[str, Any]], calls: int) -> dict[str, Any]:
    """Mean and peak RSS over the first and the last half of the rounds (round 1, the warm-up,
    in neither): mean over a half, not the last reading, as RSS after a round can swing."""
    rss = [r["rss_mb"] for r in rows]  # index = round; rss[0] before any call
    n = len(rss) - 1
    mid = 1 + (n - 1) // 2
    first, last = rss[2:mid + 1], rss[mid + 1:n + 1]
    gap = (mid + 1 + n) / 2 - (2 + mid) / 2  # rounds between the halves' centres
    growth = sum(last) / len(last) - sum(first) / len(first)
    return {"warmup_growth_mb": round(rss[1] - rss[0], 1),
            "first_half_rounds": f"2-{mid}", "last_half_rounds": f"{mid + 1}-{n}",
            "first_half_mean_mb": round(sum(first) / len(first), 1),
            "last_half_mean_mb": round(sum(last) / len(last), 1),
            "first_half_peak_mb": max(first), "last_half_peak_mb": max(last),
            "growth_mb_per_round": round(growth / gap, 2),
            "growth_kb_per_call": round(growth * 1024 / (gap * calls), 2),
            "levels_off": growth / gap < LEVEL_MB_PER_ROUND}


def run_variant(work: Path, name: str, env: dict[str, str], args: argparse.Namespace,
                response: str, cert: str, platform_key: Path, cpus: tuple) -> dict[str, Any]:
    load_cpu, proxy_cpu = cpus
    extra: tuple[str, ...] = ()
    if not args.no_message_log:
        extra = ("--key", str(platform_key), "--message-log", str(work / "messages.jsonl"))
    with ExitStack() as stack:
        upstream, _kind, _ = stack.enter_context(
            bench.producer(work, load_cpu, False, response))
        url, proc = stack.enter_context(
            bench.vp(work, proxy_cpu, upstream, NS, PATH, extra, env or None))
        time.sleep(1.0)  # start-up settles (the snapshot, the message log's first record)
        print(f"variant {name}: platform pid {proc.pid}", flush=True)
        result = asyncio.run(load(proc.pid, url, cert, args, len(response.encode())))
    result["env"] = env
    result["verdict"] = verdict(result["rounds"], args.calls)
    return result


def parse_variant(spec: str) -> dict[str, str]:
    if spec == "default":
        return {}
    return dict(item.split("=", 1) for item in spec.split("+"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--calls", type=int, default=300, help="calls at once, per round")
    ap.add_argument("--units", type=int, default=275, help="units in the producer's answer")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds after a round")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds idle at the end")
    ap.add_argument("--variants", default="default,MALLOC_ARENA_MAX=2",
                    help="comma-separated: 'default' or KEY=VALUE[+KEY=VALUE] for the platform")
    ap.add_argument("--no-message-log", action="store_true",
                    help="without the signed message log (the pilot keeps one)")
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/platform_memory.json")
    args = ap.parse_args()
    if args.rounds < 3:
        ap.error("--rounds must be at least 3 (a warm-up round and two halves)")
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    cpus = (0, 1) if pin else (None, None)
    if pin:
        os.sched_setaffinity(0, {0})  # the load, with the producer; the platform has CPU 1
    response = facilities_response(args.units)
    report = validate_bytes(response.encode())
    if not report.valid:
        print(f"the canned answer is not valid: {report.problems[:3]}", file=sys.stderr)
        return 1
    size_kb = len(response.encode()) / 1024
    print(f"answer: GetAvailableHealthcareFacilitiesResponse, {args.units} units, "
          f"{size_kb:.0f} KB (schema-valid); {args.rounds} rounds of {args.calls} calls at once",
          flush=True)
    load_before = bench._loadavg()
    variants: dict[str, Any] = {}
    for spec in args.variants.split(","):
        with tempfile.TemporaryDirectory(prefix="vp-mem-") as tmp:
            work = Path(tmp)
            consumer = pki.issue(work / "pki", "consumer", bench.CONSUMER)
            platform_id = pki.issue(work / "pki", "platform", "SE2321000016-VPBENCH")
            variants[spec] = run_variant(work, spec, parse_variant(spec), args, response,
                                         quote(consumer.cert.read_text()), platform_id.key,
                                         cpus)
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "kernel": " ".join(os.uname()[2:4]), "cpu": bench._cpu_model(),
                    "loadavg_before": load_before, "loadavg_after": bench._loadavg()},
        "settings": {"rounds": args.rounds, "calls": args.calls, "units": args.units,
                     "answer_bytes": len(response.encode()), "settle_s": args.settle,
                     "idle_s": args.idle, "message_log": not args.no_message_log,
                     "pinned": pin, "producer": "aiohttp (canned SOAP)",
                     "load": "aiohttp client, one connection per call in flight",
                     "levels_off_below_mb_per_round": LEVEL_MB_PER_ROUND},
        "variants": variants,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print_table(variants, args)
    print(f"written to {args.out}")
    return 0


def print_table(variants: dict[str, Any], args: argparse.Namespace) -> None:
    for name, v in variants.items():
        print(f"\n{name} (platform environment: "
              f"{' '.join(f'{k}={x}' for k, x in v['env'].items()) or 'as is'})")
        print(f"  {'round':>5} {'calls':>6} {'ok':>5} {'RSS MB':>8} {'HWM MB':>8} {'PSS MB':>8}"
              f" {'anon MB':>8} {'growth':>7}")
        for r in v["rounds"]:
            growth = f"{r['growth_mb']:+.1f}" if "growth_mb" in r else ""
            print(f"  {r['round']:>5} {r['calls']:>6} {r['ok']:>5} {r['rss_mb']:>8.1f} "
                  f"{r['hwm_mb']:>8.1f} {r['pss_mb']:>8.1f} {r['anon_mb']:>8.1f} {growth:>7}")
        i = v["idle"]
        print(f"  {'idle':>5} {'':>6} {'':>5} {i['rss_mb']:>8.1f} {i['hwm_mb']:>8.1f} "
              f"{i['pss_mb']:>8.1f} {i['anon_mb']:>8.1f}")
        d = v["verdict"]
        print(f"  warm-up (round 1) {d['warmup_growth_mb']:+.1f} MB; RSS mean (peak) rounds "
              f"{d['first_half_rounds']} {d['first_half_mean_mb']:.1f} "
              f"({d['first_half_peak_mb']:.1f}) MB, rounds {d['last_half_rounds']} "
              f"{d['last_half_mean_mb']:.1f} ({d['last_half_peak_mb']:.1f}) MB: "
              f"{d['growth_mb_per_round']:+.2f} MB a round, {d['growth_kb_per_call']:+.2f} KB "
              "a call: " + ("levels off" if d["levels_off"] else "STILL GROWING"))


if __name__ == "__main__":
    sys.exit(main())
