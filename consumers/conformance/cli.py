"""``listning conformance`` and ``listning mock-producer``.

    listning conformance --endpoint URL --county 08 --data TESTDATA.toml \\
        [--cert C --key K --ca CA] [--junit FILE] [--html FILE] [--only CONTRACT]
    listning conformance --endpoints pilot-data/endpoints.json --county 08 [...]
    listning mock-producer --county 08 [--host H --port N --cert C --key K --ca CA]

(also ``python -m consumers.conformance conformance|mock-producer ...``.)
Exit status of ``conformance``: 0 every case passed, 1 some case failed, 2 unusable input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("consumers.conformance")


class UsageError(Exception):
    """Input the suite cannot use: printed as one line, exit 2."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from consumers.conformance import modes

    p = subparsers.add_parser(
        "conformance", help="run the conformance suite against a region's producer",
        description="Run the carelisting 2.1 conformance cases against a producer, directly "
        "(--endpoint: the producer's base URL; each contract's path is appended) or through the "
        "platform of a running pilot (--endpoints endpoints.json). Prints one line per case and "
        "ends with 'N passed, N failed'. Exit 0: all passed, 1: some failed, 2: unusable input.")
    add_conformance_arguments(p)
    p.set_defaults(handler=run_conformance)

    m = subparsers.add_parser(
        "mock-producer", help="serve canned responses for every contract (for consumers' tests)",
        description="A mock region producer: every contract of the domain (and "
        "PingForConfiguration) at its RIV-TA path, answering canned, schema-valid responses "
        "chosen by the x-mock-response HTTP header; GET <path>?wsdl gives the contract's WSDL.",
        epilog=modes.modes_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    modes.add_arguments(m)
    m.set_defaults(handler=run_mock)


def add_conformance_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint", metavar="URL", help="the producer's base URL (direct)")
    p.add_argument("--endpoints", metavar="FILE", type=Path,
                   help="a running pilot's endpoints.json: through its platform, with its tester "
                   "certificate, CA and the region's test data")
    p.add_argument("--county", required=True, help="the producer's county code: the logical "
                   "address of every call")
    p.add_argument("--data", metavar="TESTDATA.toml", type=Path,
                   help="the test data: persons and units the producer has, in the state the "
                   "suite expects (see consumers/conformance/README.md); required with "
                   "--endpoint; with --endpoints the region's testdata file or one built from "
                   "its configuration")
    p.add_argument("--cert", type=Path, help="client certificate (PEM) for mutual TLS")
    p.add_argument("--key", type=Path, help="its private key (PEM)")
    p.add_argument("--ca", type=Path, help="CA certificate that signed the server's")
    p.add_argument("--junit", metavar="FILE", type=Path, help="write JUnit XML here")
    p.add_argument("--html", metavar="FILE", type=Path, help="write an HTML report here")
    p.add_argument("--only", metavar="CONTRACT",
                   help="run only this contract's cases (a contract name, or Robustness); "
                   "cases that build on an earlier contract's case are skipped")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="client timeout per call: a producer that does not answer in time fails")
    p.add_argument("--sla-calls", type=int, default=100, metavar="N",
                   help="calls in the service-level case (95 %% must be under 1 s)")


def run_mock(args: argparse.Namespace) -> int:
    from consumers.conformance import mock

    return mock.run(args)


def _file(path: Path | None, what: str) -> Path | None:
    if path is not None and not path.is_file():
        raise UsageError(f"{what} {path}: no such file")
    return path


def _setup(args: argparse.Namespace) -> tuple[Any, Any, str, bool]:
    """(transport, test data, target description, via platform) or UsageError."""
    from consumers.conformance.testdata import (
        TestDataError,
        load_testdata,
        parse_testdata,
        region_testdata,
    )
    from interactions import identifiers as ids
    from producers.config import ConfigError

    county = args.county.strip()
    if not ids.is_county_code(county):
        raise UsageError(f"--county {args.county!r} is not a two-digit county code")
    if bool(args.endpoint) == bool(args.endpoints):
        raise UsageError("give either --endpoint URL (direct) or --endpoints FILE (pilot)")
    for name in ("junit", "html"):
        out = getattr(args, name)
        if out is not None and not out.parent.is_dir():
            raise UsageError(f"--{name} {out}: the folder {out.parent} does not exist")
    if args.sla_calls < 0 or args.timeout <= 0:
        raise UsageError("--sla-calls must be >= 0 and --timeout > 0")
    cert, key, ca = args.cert, args.key, args.ca
    via_platform = False
    try:
        if args.endpoints:
            try:
                info = json.loads(Path(args.endpoints).read_text(encoding="utf-8"))
                base = info["platform_url"]
                region = info["regions"].get(county)
                cert = cert or Path(info["tester"]["cert"])
                key = key or Path(info["tester"]["key"])
                ca = ca or Path(info["ca_cert"])
            except OSError as exc:
                raise UsageError(f"--endpoints {args.endpoints}: {exc.strerror}") from None
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise UsageError(f"--endpoints {args.endpoints}: not a pilot's endpoints.json "
                                 f"({type(exc).__name__}: {exc})") from None
            if region is None:
                raise UsageError(f"the pilot has no region {county} (it has "
                                 f"{', '.join(sorted(info['regions'])) or 'none'})")
            via_platform = True
            if args.data:
                data = load_testdata(_file(args.data, "--data"))
            elif region.get("testdata"):  # written by the pilot (write_region_testdata)
                data = load_testdata(_file(Path(region["testdata"]), "the region's testdata"))
            elif region.get("config"):
                data = parse_testdata(region_testdata(_file(Path(region["config"]),
                                                          "the region's config")),
                                      f"region {county}'s configuration")
            else:
                raise UsageError(f"the pilot names no test data for region {county}; give --data")
        else:
            base = args.endpoint
            if not base.startswith(("http://", "https://")):
                raise UsageError(f"--endpoint {base!r} is not an http(s) URL")
            if args.data is None:
                raise UsageError("--data TESTDATA.toml is required with --endpoint")
            data = load_testdata(_file(args.data, "--data"))
    except TestDataError as exc:
        raise UsageError(f"test data {exc.source}: {'; '.join(exc.problems)}") from None
    except ConfigError as exc:
        raise UsageError(f"region configuration {exc.path}: {'; '.join(exc.problems)}") from None
    if (cert is None) != (key is None):
        raise UsageError("give both --cert and --key for mutual TLS, or neither")
    _file(cert, "--cert"), _file(key, "--key"), _file(ca, "--ca")
    if data.county != county:
        raise UsageError(f"the test data is for county {data.county}, not {county}")
    from consumers.conformance.transport import Transport

    transport = Transport(base, cert=str(cert) if cert else None,
                          key=str(key) if key else None, ca=str(ca) if ca else None,
                          timeout=args.timeout)
    target = f"{base} (county {county}{', through the platform' if via_platform else ''})"
    return transport, data, target, via_platform


def run_conformance(args: argparse.Namespace) -> int:
    try:
        transport, data, target, via_platform = _setup(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from consumers.conformance import cases  # noqa: F401  (registers the cases)
    from consumers.conformance.report import (
        console_line,
        summary_line,
        write_html,
        write_junit,
    )
    from consumers.conformance.suite import CASES, Suite

    if args.only and args.only not in {c.contract for c in CASES}:
        print(f"error: --only {args.only!r}: no such contract; choose from "
              f"{', '.join(sorted({c.contract for c in CASES}))}", file=sys.stderr)
        return 2
    reachable = _preflight(transport)
    if reachable is not None:
        print(f"error: cannot reach {transport.base_url}: {reachable}", file=sys.stderr)
        return 2
    suite = Suite(transport, data, logical_address=args.county, sla_calls=args.sla_calls,
                  via_platform=via_platform)
    print(f"conformance: {target}, test data {data.source}", flush=True)
    try:
        results = suite.run(args.only, progress=lambda r: print(console_line(r), flush=True))
    finally:
        transport.close()
    title = f"Conformance of county {args.county}'s producer (carelisting 2.1)"
    try:
        if args.junit:
            write_junit(args.junit, results, suite_name=f"conformance-{args.county}")
        if args.html:
            write_html(args.html, results, title=title, target=target)
    except OSError as exc:
        print(f"error: cannot write the report: {exc}", file=sys.stderr)
        print(summary_line(results))
        return 2
    print(summary_line(results), flush=True)
    return 1 if any(r.verdict == "failed" for r in results) else 0


def _preflight(transport: Any) -> str | None:
    """A connection (and TLS) problem makes the input unusable; anything else is a verdict."""
    from interactions.contracts import all_contracts

    ex = transport.post(all_contracts()["PingForConfiguration"], b"")
    if ex.error and not ex.timed_out:
        return ex.error.split(" (Caused by")[0]
    return None


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.filterwarnings("ignore", message="'cgi' is deprecated", category=DeprecationWarning)
    parser = argparse.ArgumentParser(prog="python -m consumers.conformance")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
