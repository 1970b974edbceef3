"""The pilot: the whole exchange on one machine, with real processes, real SOAP, mutual TLS.

``listning pilot`` prepares a data directory on first start — the test PKI, the catalogue
(routes for each region, permissions for the regions, the e-service and a conformance
tester), the synthetic population — and then runs, each as its own process: the catalogue
service, the platform, the population register, one listing system per region and the 1177
e-service. On a restart everything is reused (the ports too, so the catalogue's routes stay
true). ``endpoints.json`` is written once every process answers.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from interactions.identifiers import counties
from listning.supervisor import Service, Supervisor, free_port
from producers.population.test_persons import TEST_PERSONS
from routing import pki
from routing.catalogue import PLATFORM_HSA_ID

log = logging.getLogger("listning.pilot")

REGIONS_DIR = Path(__file__).resolve().parent.parent / "producers" / "regions"
ESERVICE_HSA_ID = "SE5565594230-1177"  # Inera runs 1177; the e-service's system HSA-id
TESTER_HSA_ID = "SE5565594230-CONF"  # a conformance tester allowed to call every region
HOST = "127.0.0.1"

# Fixed default ports, so bookmarks and the README stay true; --free-ports picks others.
DEFAULT_PORTS = {"catalogue": 8401, "population": 8402, "platform": 8443, "platform-ops": 8444,
                 "eservice": 8080}
REGION_PORT_BASE = 8500  # region NN listens on 8500 + NN


@dataclass
class PilotPlan:
    data_dir: Path
    regions: list[str]
    population: int
    free_ports: bool = False
    seed: int = 1


def shipped_regions() -> list[str]:
    return sorted(p.stem for p in REGIONS_DIR.glob("[0-9][0-9].toml"))


def parse_regions(text: str) -> list[str]:
    """``01,08`` or ``all`` → county codes; every one must have a shipped configuration."""
    available = shipped_regions()
    if text.strip().lower() == "all":
        return available
    wanted = [c.strip().zfill(2) for c in text.split(",") if c.strip()]
    known = set(counties())  # a dict keyed by county code
    for code in wanted:
        if code not in known:
            raise ValueError(f"{code} is not a county code")
        if code not in available:
            raise ValueError(f"there is no region configuration for county {code} "
                             f"(shipped: {', '.join(available)})")
    if not wanted:
        raise ValueError("no regions given")
    return wanted


def _ports(plan: PilotPlan) -> dict[str, int]:
    """The ports of this data directory: chosen on first start, reused after that."""
    path = plan.data_dir / "ports.json"
    ports: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
    wanted = dict(DEFAULT_PORTS)
    for code in plan.regions:
        wanted[f"region-{code}"] = REGION_PORT_BASE + int(code)
    for name, default in wanted.items():
        if name not in ports:
            ports[name] = free_port() if plan.free_ports else default
    path.write_text(json.dumps(ports, indent=1))
    return ports


@cache  # asked for every pair of regions when the catalogue is prepared
def _region_hsa_id(code: str) -> str:
    from producers.config import load_config

    return load_config(REGIONS_DIR / f"{code}.toml").hsa_id


def _prepare_pki(d: Path, regions: list[str]) -> dict[str, pki.Identity]:
    ca = pki.create_ca(d)
    ids = {
        "platform": pki.ensure(d, "platform", PLATFORM_HSA_ID),
        "eservice": pki.ensure(d, "eservice", ESERVICE_HSA_ID),
        "tester": pki.ensure(d, "tester", TESTER_HSA_ID),
    }
    for code in regions:
        ids[f"region-{code}"] = pki.ensure(d, f"region-{code}", _region_hsa_id(code))
    ids["ca"] = ca
    return ids


def _prepare_catalogue(db_url: str, plan: PilotPlan, ports: dict[str, int]) -> None:
    """Routes and permissions for every region of the plan not yet connected; publish."""
    from routing.catalogue.service import Catalogue

    cat = Catalogue(db_url)
    try:
        routed = {r.logical_address for r in cat.build_snapshot().routes}
        grants: list[tuple[str, str, str]] = []  # (consumer, contract, logical address)
        if PLATFORM_HSA_ID not in routed:
            grants += [(consumer, "GetLogicalAddresseesByServiceContract", PLATFORM_HSA_ID)
                       for consumer in (ESERVICE_HSA_ID, TESTER_HSA_ID)]
        new = [code for code in plan.regions if code not in routed]
        for code in new:
            # 1177 and the tester may call everything at the new region; the regions may
            # notify each other (UpdateListing) and read each other's listings.
            grants += [(consumer, "all", code) for consumer in (ESERVICE_HSA_ID, TESTER_HSA_ID)]
            for other in plan.regions:
                if other != code:
                    grants += [(_region_hsa_id(code), "all", other),
                               (_region_hsa_id(other), "all", code)]
        # The permissions first, in one transaction (~900 for all 21 regions, which took
        # minutes one commit each), then the routes: a start stopped half way permits again
        # on the next start (adding what is there is a no-op) because the route is missing.
        cat.permit_many(grants)
        if PLATFORM_HSA_ID not in routed:
            cat.route_catalogue_service(f"http://{HOST}:{ports['catalogue']}")
        for code in new:
            cat.connect_region(code, f"https://{HOST}:{ports[f'region-{code}']}",
                               _region_hsa_id(code))
        changed = bool(grants)
        if changed or cat.published() is None:
            snap = cat.publish()
            log.info("catalogue published: %s", snap.snapshot_id)
    finally:
        cat.close()


def _prepare_population(db_url: str, plan: PilotPlan) -> int:
    from producers.population.register import PopulationRegister

    reg = PopulationRegister(db_url)
    try:
        have = reg.count()
        if have == 0:
            print(f"generating a synthetic population of {plan.population} persons ...",
                  flush=True)
            reg.generate(plan.population, plan.seed)
            have = reg.count()
        return have
    finally:
        reg.close()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "listning", *args]


# glibc gives every thread that allocates its own malloc arena and keeps freed memory there;
# the producers parse large bodies in a thread pool, so RSS would creep up with the number of
# threads that ever saw a big request. Two arenas keep memory bounded at a small cost.
SERVICE_ENV = {"MALLOC_ARENA_MAX": "2"}


def plan_services(plan: PilotPlan, ports: dict[str, int], ids: dict[str, pki.Identity],
                  dbs: dict[str, str]) -> list[Service]:
    d, logs = plan.data_dir, plan.data_dir / "logs"
    ca = str(ids["ca"].cert)

    def tls(name: str) -> list[str]:
        return ["--cert", str(ids[name].cert), "--key", str(ids[name].key), "--ca", ca]

    platform_url = f"https://{HOST}:{ports['platform']}"
    population_url = f"http://{HOST}:{ports['population']}"
    services = [
        Service("catalogue", _cli("tak", "serve", "--db", dbs["tak"], "--host", HOST,
                                  "--port", str(ports["catalogue"])),
                ports["catalogue"], logs / "catalogue.log"),
        Service("platform", _cli("platform", "serve",
                                 "--catalogue", f"http://{HOST}:{ports['catalogue']}",
                                 "--host", HOST, "--port", str(ports["platform"]),
                                 *tls("platform"),
                                 "--ops-port", str(ports["platform-ops"]),
                                 "--state-dir", str(d / "platform"),
                                 "--instance-name", "pilot-vp",
                                 # publish → in use within 2 s: a region connected while the
                                 # pilot runs is reachable at once, without a restart
                                 "--catalogue-poll", "2",
                                 # every leg's metadata in a signed hash chain:
                                 # `listning platform verify-log` checks it
                                 "--message-log", str(logs / "platform-messages.jsonl")),
                ports["platform"], logs / "platform.log"),
        Service("population", _cli("population", "serve", "--db", dbs["population"],
                                   "--host", HOST, "--port", str(ports["population"])),
                ports["population"], logs / "population.log"),
    ]
    for code in plan.regions:
        name = f"region-{code}"
        services.append(Service(
            name, _cli("region", "serve", "--config", str(REGIONS_DIR / f"{code}.toml"),
                       "--data-dir", str(d / "regions" / code),
                       "--host", HOST, "--port", str(ports[name]), *tls(name),
                       "--platform-url", platform_url, "--platform-hsa-id", PLATFORM_HSA_ID,
                       "--population-url", population_url),
            ports[name], logs / f"{name}.log"))
    services.append(Service(
        "eservice", _cli("eservice", "serve", "--platform-url", platform_url, *tls("eservice"),
                         "--hsa-id", ESERVICE_HSA_ID, "--population-url", population_url,
                         "--data-dir", str(d / "eservice"), "--host", HOST,
                         "--port", str(ports["eservice"]), "--pilot"),
        ports["eservice"], logs / "eservice.log"))
    for service in services:
        service.env = {**SERVICE_ENV, **service.env}
    return services


def _prepare_testdata(plan: PilotPlan, population_db: str) -> dict[str, Path]:
    """Conformance test data per region, with persons no earlier run has used."""
    from consumers.conformance.testdata import write_pilot_testdata

    out = plan.data_dir / "conformance"
    out.mkdir(exist_ok=True)
    configs = {code: REGIONS_DIR / f"{code}.toml" for code in plan.regions}
    return write_pilot_testdata(configs, population_db, out)


def endpoints(plan: PilotPlan, ports: dict[str, int], ids: dict[str, pki.Identity],
              testdata: dict[str, Path] | None = None) -> dict:
    return {
        "platform_url": f"https://{HOST}:{ports['platform']}",
        "platform_ops_url": f"http://{HOST}:{ports['platform-ops']}",
        "platform_hsa_id": PLATFORM_HSA_ID,
        "ca_cert": str(ids["ca"].cert),
        "tester": {"hsa_id": TESTER_HSA_ID, "cert": str(ids["tester"].cert),
                   "key": str(ids["tester"].key)},
        "eservice_url": f"http://{HOST}:{ports['eservice']}",
        "population_url": f"http://{HOST}:{ports['population']}",
        "regions": {
            code: {"producer_url": f"https://{HOST}:{ports[f'region-{code}']}",
                   "hsa_id": ids[f"region-{code}"].hsa_id,
                   "config": str(REGIONS_DIR / f"{code}.toml"),
                   "data_dir": str(plan.data_dir / "regions" / code),
                   **({"testdata": str(testdata[code])} if testdata and code in testdata else {})}
            for code in plan.regions
        },
        "catalogue_admin": {"url": f"http://{HOST}:{ports['catalogue']}",
                            "db": f"sqlite:///{plan.data_dir / 'tak.db'}"},
        "logs": str(plan.data_dir / "logs"),
    }


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)  # atomic: a reader never sees half a file


def print_table(info: dict) -> None:
    rows = [("1177 e-service", info["eservice_url"]),
            ("platform (mTLS)", info["platform_url"]),
            ("platform operations", info["platform_ops_url"] + "/status"),
            ("catalogue", info["catalogue_admin"]["url"] + "/status"),
            ("population register", info["population_url"])]
    rows += [(f"region {code} listing system", r["producer_url"])
             for code, r in info["regions"].items()]
    print("\nListning pilot is running. Stop it with Ctrl-C.\n")
    for name, url in rows:
        print(f"  {name:<28} {url}")
    print("\n  Test persons (log in at the e-service with the test e-ID):")
    for p in TEST_PERSONS:
        name = f"{p.first_name} {p.last_name}"
        print(f"    {p.person_id}  {name:<20} county {p.county}  {p.description}")
    print(f"\n  endpoints.json: {Path(info['logs']).parent / 'endpoints.json'}")
    print(f"  logs:           {info['logs']}\n", flush=True)


def run(plan: PilotPlan) -> int:
    d = plan.data_dir = plan.data_dir.resolve()
    d.mkdir(parents=True, exist_ok=True)
    (d / "endpoints.json").unlink(missing_ok=True)  # only a running pilot's file is true
    ports = _ports(plan)
    ids = _prepare_pki(d / "pki", plan.regions)
    dbs = {"tak": f"sqlite:///{d / 'tak.db'}", "population": f"sqlite:///{d / 'population.db'}"}
    _prepare_catalogue(dbs["tak"], plan, ports)
    persons = _prepare_population(dbs["population"], plan)
    log.info("population: %d persons", persons)
    testdata = _prepare_testdata(plan, dbs["population"])

    supervisor = Supervisor()
    try:
        for service in plan_services(plan, ports, ids, dbs):
            supervisor.start(service)
        info = endpoints(plan, ports, ids, testdata)
        _write_json(d / "endpoints.json", info)
        print_table(info)
        return supervisor.watch()
    except RuntimeError as exc:
        print(f"pilot: {exc}", file=sys.stderr)
        return 1
    finally:
        supervisor.stop_all()
        (d / "endpoints.json").unlink(missing_ok=True)
