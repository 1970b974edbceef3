"""Write ``producers/regions/NN.toml`` for the counties that have no region file yet.

    .venv/bin/python benchmarks/make_regions.py            # writes only missing files
    .venv/bin/python benchmarks/make_regions.py --force    # rewrites the generated ones

Made once (issue 9, item 3); the TOML files are the source from then on — edit them, not this.
01, 08 and 03 were written by hand and are never touched. Deterministic (seeded per county).

- Units: about 1,200 nationally. The 43 hand-written units of 01/03/08 stay; the other counties
  share the rest in proportion to their populations (counties.csv). Every municipality of a
  county gets at least one unit; the rest go by the same weights the population generator uses
  (the county seat, code ..80, six; other towns, ..81–..89, two; the rest one), so units sit
  where the synthetic residents live.
- Names follow each region's custom: "Hälsocentralen X" in the north (and Kalmar), "Närhälsan X
  vårdcentral" for part of Västra Götaland's, "Vårdcentralen Bra Liv X" in Jönköpings län,
  "Vårdcentralen X" elsewhere; X is the municipality, then a district name for further units.
- Caps: the county's population over its units, times 1.05–1.25, varied ±25 % per unit and
  rounded to 100; one small unit (cap 2–3) per region, so queues can be tried everywhere.
- Fixed doctor contact (with 2–3 doctors each) in regions that offer it, on a regional share of
  units; rules (changes per year, queues, guardians' ages, consent, when a listing takes
  effect, passive listing, home region unreachable) per region below.
- HSA-ids: ``SE<region org number>-<NNN><VC|HC>`` for units, ``-L<NNNN>`` for staff.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from interactions.identifiers import counties, municipalities  # noqa: E402

REGIONS_DIR = REPO / "producers" / "regions"
HAND_WRITTEN = ("01", "03", "08")
NATIONAL_UNITS = 1200

DISTRICTS = (
    "centrum", "Norr", "Söder", "Öster", "Väster", "Haga", "Ekbacken", "Solhem", "Lindängen",
    "Berga", "Björkhagen", "Granlunda", "Sjöstaden", "Ängen", "Kvarnbacken", "Tallbacken",
    "Hagalund", "Björkvik", "Strandvägen", "Torget", "Stationen", "Parken", "Slottsstaden",
    "Backa", "Valla", "Brunnsgatan", "Rosendal", "Skogsby", "Lövsta", "Ekhagen", "Furulund",
    "Gärdet", "Kyrkbacken", "Höjden", "Viken", "Åsen", "Bäckby", "Hammarby", "Nyby", "Lund",
    "Sörby", "Ryd", "Fredriksdal", "Östermalm", "Vallby", "Marieberg", "Norrby", "Källby",
)
FIRST = ("Anna", "Maria", "Karin", "Sara", "Emma", "Elin", "Lena", "Eva", "Sofia", "Ingrid",
         "Fatima", "Johanna", "Erik", "Lars", "Anders", "Johan", "Per", "Mikael", "Nils", "Olof",
         "Gustav", "Jonas", "Ahmed", "Ali", "Karl", "Fredrik", "Henrik", "Hanna", "Linnéa")
LAST = ("Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson",
        "Persson", "Svensson", "Gustafsson", "Pettersson", "Lindberg", "Lindqvist", "Berg",
        "Holm", "Sjöberg", "Strand", "Nyberg", "Forsberg", "Wikström", "Ekström", "Öberg",
        "Åkesson", "Hassan", "Mohammed", "Lundgren", "Dahl", "Falk", "Björk", "Nordin")
TITLES = ("Specialist i allmänmedicin", "Specialist i allmänmedicin", "Distriktsläkare",
          "ST-läkare i allmänmedicin")


@dataclass(frozen=True)
class Custom:
    """How a region names its units and the rules it chose."""

    word: str = "Vårdcentralen"  # or "Hälsocentralen"
    fixed_share: float = 0.0  # share of units offering a fixed doctor contact
    changes: int = 2
    queue_at_cap: bool = True
    guardian_below: int = 13
    citizen_from: int = 13
    both_guardians: bool = False
    takes_effect: str = "same_day"
    passive: bool = False
    grace: int = 14
    home_unreachable: str = "refuse"
    regional_type: tuple[str, str, bool] | None = None  # (code, display name, shared)
    queue_allowed_share: float = 1.0


HC = "Hälsocentralen"
CUSTOMS: dict[str, Custom] = {
    "04": Custom(fixed_share=0.3, takes_effect="next_day", home_unreachable="outbox"),
    "05": Custom(fixed_share=0.5, both_guardians=True, takes_effect="same_day"),
    "06": Custom(fixed_share=1.0, changes=2, takes_effect="next_day", passive=True, grace=30,
                 home_unreachable="outbox"),
    "07": Custom(fixed_share=0.2, guardian_below=16, citizen_from=16,
                 takes_effect="first_of_next_month"),
    "09": Custom(fixed_share=0.0, passive=True, grace=21, queue_at_cap=False,
                 queue_allowed_share=0.0),
    "10": Custom(fixed_share=0.4, changes=3, takes_effect="next_day"),
    "12": Custom(fixed_share=0.6, changes=2, both_guardians=True, takes_effect="same_day",
                 home_unreachable="outbox",
                 regional_type=("FAM", "Familjeläkarmottagning", False)),
    "13": Custom(fixed_share=0.5, changes=3, takes_effect="next_day"),
    "14": Custom(fixed_share=0.3, changes=2, takes_effect="same_day", home_unreachable="outbox",
                 regional_type=("BVC", "Barnavårdscentral", True)),
    "17": Custom(fixed_share=0.0, guardian_below=16, citizen_from=16, takes_effect="next_day",
                 queue_allowed_share=0.5),
    "18": Custom(fixed_share=0.5, passive=True, grace=14, takes_effect="first_of_next_month"),
    "19": Custom(fixed_share=0.3, both_guardians=True, takes_effect="next_day"),
    "20": Custom(fixed_share=0.2, takes_effect="same_day", home_unreachable="outbox",
                 queue_at_cap=False, queue_allowed_share=0.0),
    "21": Custom(word=HC, fixed_share=0.0, passive=True, grace=30, takes_effect="next_day"),
    "22": Custom(word=HC, fixed_share=0.3, changes=3, takes_effect="next_day",
                 home_unreachable="outbox"),
    "23": Custom(word=HC, fixed_share=0.0, passive=True, grace=14, queue_allowed_share=0.5),
    "24": Custom(word=HC, fixed_share=0.4, passive=True, grace=14, guardian_below=16,
                 citizen_from=16, takes_effect="next_day", home_unreachable="outbox"),
    "25": Custom(word=HC, fixed_share=0.2, passive=True, grace=30,
                 takes_effect="first_of_next_month", home_unreachable="outbox"),
}


def _weight(code: str) -> int:  # as producers/population/generator.py weighs municipalities
    tail = int(code[2:])
    return 6 if tail == 80 else 2 if 81 <= tail <= 89 else 1


def unit_counts() -> dict[str, int]:
    """Units per generated county: about NATIONAL_UNITS in all, in proportion to population."""
    from producers.config import shipped_config

    existing = sum(len(shipped_config(c).units) for c in HAND_WRITTEN)
    todo = {c: k.population for c, k in counties().items() if c not in HAND_WRITTEN}
    left, total = NATIONAL_UNITS - existing, sum(todo.values())
    return {c: max(3, round(left * p / total)) for c, p in todo.items()}


def _spread(munis: list[str], n: int) -> dict[str, int]:
    """n units over the municipalities: one each, the rest by weight (largest remainder)."""
    n = max(n, len(munis))
    out = dict.fromkeys(munis, 1)
    rest = n - len(munis)
    weights = {m: _weight(m) for m in munis}
    total = sum(weights.values())
    shares = {m: rest * w / total for m, w in weights.items()}
    for m in munis:
        out[m] += int(shares[m])
    short = n - sum(out.values())
    for m in sorted(munis, key=lambda m: shares[m] - int(shares[m]), reverse=True)[:short]:
        out[m] += 1
    return out


def _unit_name(custom: Custom, county: str, muni: str, k: int, rng: random.Random) -> str:
    place = muni if k == 0 else f"{muni} {DISTRICTS[(k - 1) % len(DISTRICTS)]}"
    if county == "14" and rng.random() < 0.5:
        return f"Närhälsan {place} vårdcentral"
    if county == "06":
        return f"Vårdcentralen Bra Liv {place}"
    return f"{custom.word} {place}"


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _b(v: bool) -> str:
    return "true" if v else "false"


def render(county: str, n_units: int) -> str:
    c = counties()[county]
    custom = CUSTOMS[county]
    rng = random.Random(int(county) * 7919)
    prefix = c.hsa_prefix
    munis = sorted(m.code for m in municipalities().values() if m.county_code == county)
    by_code = municipalities()
    spread = _spread(munis, n_units)
    n_units = sum(spread.values())
    mean_cap = c.population / n_units * rng.uniform(1.05, 1.25)
    system = f"1.2.752.129.2.2.1.18.{county}.27"
    kind = "HC" if custom.word == HC else "VC"
    out = [
        f"# {c.region_name} — synthetic configuration (units and staff invented; municipality",
        "# codes and centres real). Generated once by benchmarks/make_regions.py; this file is",
        f"# the source now. {n_units} units for about {c.population:,} residents"
        .replace(",", " ") + ".",
        "",
        "[region]",
        f"county = {_q(county)}",
        f"name = {_q(c.region_name)}",
        f'hsa_id = "{prefix}-LIST"',
        'data_dir = "region-data"',
        "",
        "[rules]",
        f"changes_per_12_months = {custom.changes}",
        f"queue_at_cap = {_b(custom.queue_at_cap)}",
        f"guardian_may_act_below_age = {custom.guardian_below}",
        f"citizen_may_act_from_age = {custom.citizen_from}",
        f"both_guardians_must_consent = {_b(custom.both_guardians)}",
        f"takes_effect = {_q(custom.takes_effect)}",
        f"passive_listing = {_b(custom.passive)}",
    ]
    if custom.passive:
        out.append(f"passive_listing_grace_days = {custom.grace}")
    out += [f"home_unreachable = {_q(custom.home_unreachable)}", ""]
    if custom.regional_type:
        code, display, shared = custom.regional_type
        out += ["[[listing_types]]", f"code = {_q(code)}", f"code_system = {_q(system)}",
                f"display_name = {_q(display)}", f"shared = {_b(shared)}", ""]
    i = staff_no = 0
    small = rng.randrange(n_units)
    for muni in munis:
        m = by_code[muni]
        for k in range(spread[muni]):
            i += 1
            fixed = rng.random() < custom.fixed_share
            cap = 2 + rng.randrange(2) if i - 1 == small else \
                max(500, round(mean_cap * rng.uniform(0.75, 1.25) / 100) * 100)
            queue = custom.queue_at_cap and (i - 1 == small
                                             or rng.random() < custom.queue_allowed_share)
            types = ["PV"]
            if custom.regional_type and rng.random() < 0.4:
                types.append(custom.regional_type[0])
            lat = min(69.0, max(55.2, m.latitude + rng.gauss(0, 0.02)))
            lon = min(24.1, max(11.0, m.longitude + rng.gauss(0, 0.035)))
            out += [
                "[[units]]",
                f'hsa_id = "{prefix}-{i:03d}{kind}"',
                f"name = {_q(_unit_name(custom, county, m.name, k, rng))}",
                f"municipality = {_q(muni)}  # {m.name}",
                f"latitude = {lat:.5f}",
                f"longitude = {lon:.5f}",
                f"cap = {cap}",
                f"queue_allowed = {_b(queue)}",
                f"fixed_doctor_contact = {_b(fixed)}",
                "listing_types = [" + ", ".join(_q(t) for t in types) + "]",
                "",
            ]
            if fixed:
                for _ in range(2 + rng.randrange(2)):
                    staff_no += 1
                    out += ["  [[units.staff]]", f'  hsa_id = "{prefix}-L{staff_no:04d}"',
                            f"  name = {_q(rng.choice(FIRST) + ' ' + rng.choice(LAST))}",
                            f"  title = {_q(rng.choice(TITLES))}", ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--force", action="store_true", help="rewrite generated files that exist")
    p.add_argument("--out", type=Path, default=REGIONS_DIR)
    args = p.parse_args(argv)
    from producers.config import load_config

    total = 0
    for county, n in unit_counts().items():
        path = args.out / f"{county}.toml"
        if path.exists() and not args.force:
            print(f"{path}: exists, kept")
            total += len(load_config(path).units)
            continue
        path.write_text(render(county, n), encoding="utf-8")
        cfg = load_config(path)  # every written file must load
        total += len(cfg.units)
        print(f"{path}: {len(cfg.units)} units, "
              f"{sum(len(u.staff) for u in cfg.units)} staff")
    print(f"{total} units in the generated regions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
