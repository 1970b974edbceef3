"""The region reports against a month of real cross-region listing (see conftest ``october``):
the figures are checked person by person against what happened."""

from __future__ import annotations

import csv
import io
import re
from datetime import date

import pytest

from producers.reports import build, data
from producers.reports.source import source_for

AT_END = date(2026, 10, 31)


def src(region):
    return source_for(region.config, region.db.engine)


def run(write, region, *args, **kw) -> bytes:
    source = src(region)
    try:
        buf = io.BytesIO()
        write(source, *args, buf, **kw)
        return buf.getvalue()
    finally:
        source.close()


def rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"))))


def unit_id(o, region: str, i: int) -> str:
    return o.regions[region].config.units[i].hsa_id


def who(o, pids) -> set[str]:
    names = {v: k for k, v in o.p.items()}
    return {names.get(pid, "?") for pid in pids}


def test_listed_at_month_end_person_by_person(october):
    o, r01 = october, october.regions["01"]
    got = rows(run(build.write_listed, r01, AT_END, "csv"))

    assert who(o, [r["person_id"] for r in got]) == {"a", "b", "c", "e", "m", "n", "h"}
    by = {r["person_id"]: r for r in got}
    assert by[o.p["a"]]["home_county"] == "08" and by[o.p["a"]]["since"] == "2026-09-20"
    assert by[o.p["a"]]["home_county_name"] == "Kalmar län"
    assert by[o.p["m"]]["home_county"] == "03"  # moved 08 → 03: the new home region pays
    assert by[o.p["n"]]["home_county"] == "08"  # moved away from us, still listed here
    assert by[o.p["h"]]["unit_hsa_id"] == unit_id(o, "01", 2)
    assert by[o.p["h"]]["since"] == "2026-10-14"
    assert by[o.p["b"]]["listing_type"] == "PV"
    assert by[o.p["b"]]["unit_name"] == r01.config.units[0].name
    # sorted by unit, then person
    keys = [(r["unit_hsa_id"], r["person_id"]) for r in got]
    assert keys == sorted(keys)


def test_listed_totals_and_an_earlier_day(october):
    o, r01 = october, october.regions["01"]
    source = src(r01)
    with source.snapshot() as conn:
        t = data.listed_totals(conn, r01.config, AT_END)
        earlier = list(data.listed_rows(conn, r01.config, date(2026, 10, 9)))
        november = data.listed_totals(conn, r01.config, date(2026, 11, 25))
    source.close()
    per_unit = {u.hsa_id: (u.listed, u.other_counties) for u in t.units}
    assert per_unit[unit_id(o, "01", 0)] == (3, 2)  # a, e from other counties; b
    assert per_unit[unit_id(o, "01", 1)] == (1, 0)  # c (d left on the 11th)
    assert per_unit[unit_id(o, "01", 2)] == (3, 2)  # m, n, h
    assert sum(u.listed for u in t.units) == t.total == 7
    assert {c: n for c, _, n in t.counties} == {"01": 3, "08": 2, "03": 2}
    assert t.counties[0][0] == "01"  # own county first
    # on 9 October d and q were still here and h not yet
    assert who(o, [r[0] for r in earlier]) == {"a", "b", "c", "d", "e", "q", "m", "n"}
    # p listed on 3 November, r on the 4th
    assert november.total == 9


def test_listed_totals_only_csv_matches_the_person_list(october):
    r01 = october.regions["01"]
    persons = rows(run(build.write_listed, r01, AT_END, "csv"))
    totals = rows(run(build.write_listed, r01, AT_END, "csv", totals_only=True))
    units = {r["code"]: int(r["listed"]) for r in totals if r["group"] == "unit"}
    for u in r01.config.units:
        assert units[u.hsa_id] == sum(1 for p in persons if p["unit_hsa_id"] == u.hsa_id)
    total = next(r for r in totals if r["group"] == "total")
    assert int(total["listed"]) == len(persons) == 7


def test_settlement_october_for_stockholm(october):
    r01 = october.regions["01"]
    got = {r["counterpart"]: r for r in rows(run(build.write_settlement, r01, "2026-10",
                                                 "csv"))}
    as_int = {c: {k: int(v) for k, v in r.items() if k not in ("counterpart",
                                                                "counterpart_region")}
              for c, r in got.items()}
    assert as_int["08"] == {
        "theirs_here_at_month_end": 2,  # a, n (n moved to 08 on the 20th)
        "theirs_here_started": 1,  # n: 08 pays from the 20th
        "theirs_here_ended": 2,  # d went home on the 10th; m moved to 03 on the 15th
        "ours_there_at_month_end": 1,  # f
        "ours_there_started": 0,
        "ours_there_ended": 1,  # h came home on the 14th
    }
    assert as_int["03"] == {
        "theirs_here_at_month_end": 2,  # e, and m who moved 08 → 03
        "theirs_here_started": 3,  # e, q, and m: 03 pays from the 15th
        "theirs_here_ended": 1,  # q went to 08 on the 20th
        "ours_there_at_month_end": 1,  # g (effective 1 October: 03 lists from the 1st)
        "ours_there_started": 1,
        "ours_there_ended": 0,
    }
    assert got["total"]["theirs_here_at_month_end"] == "4"
    assert got["total"]["ours_there_at_month_end"] == "2"
    assert got["08"]["counterpart_region"] == "Region Kalmar län"


def test_settlement_persons_split_the_mover_between_old_and_new_home_region(october):
    o, r01 = october, october.regions["01"]
    source = src(r01)
    with source.snapshot() as conn:
        st = data.settlement(conn, r01.config, "2026-10", with_persons=True)
    source.close()
    rows_m = [r for r in st.persons if r[2] == o.p["m"]]
    assert [(r[0], r[1], r[5][:10], r[6][:10], r[7], r[8], r[9]) for r in rows_m] == [
        ("theirs_here", "03", "2026-10-15", "", True, True, False),
        ("theirs_here", "08", "2026-09-20", "2026-10-15", False, False, True)]
    q = next(r for r in st.persons if r[2] == o.p["q"])
    assert (q[5][:10], q[6][:10], q[8], q[9], q[10]) == ("2026-10-03", "2026-10-21", True,
                                                          True, "listed_elsewhere")
    assert not any(r[2] == o.p["p"] for r in st.persons)  # November


def _settlements(o, month: str) -> dict[str, dict[str, data.Counterpart]]:
    st = {}
    for code, region in o.regions.items():
        source = src(region)
        with source.snapshot() as conn:
            st[code] = {c.county: c for c in data.settlement(
                conn, region.config, month, with_persons=True).counterparts}
        source.close()
    return st


@pytest.mark.parametrize("month", ["2026-09", "2026-10", "2026-11"])
def test_settlement_agrees_between_the_regions_every_month(october, month):
    """What one region bills, the other pays: month-end snapshots, and the listings started and
    ended in the month, match pairwise — also for months with moves between counties."""
    o = october
    st = _settlements(o, month)
    for a in o.regions:
        for b in o.regions:
            if a != b:
                ours = st[a].get(b, data.Counterpart(b))
                theirs = st[b].get(a, data.Counterpart(a))
                assert (ours.ours_there_at_end, ours.ours_there_started,
                        ours.ours_there_ended) == (theirs.theirs_here_at_end,
                                                   theirs.theirs_here_started,
                                                   theirs.theirs_here_ended), (month, a, b)


def test_settlement_agrees_between_the_regions(october):
    """October, region by region (see the fixture)."""
    o = october
    st = _settlements(o, "2026-10")
    # 08 as the old home region: d came home, m moved away while listed in 01
    assert st["08"]["01"].ours_there_ended == 2
    assert st["08"]["01"].ours_there_at_end == 2  # a, and n who moved in on the 20th
    assert st["08"]["01"].ours_there_started == 1  # n became 08's in October
    assert st["03"]["01"].ours_there_at_end == 2  # e, and m who moved in
    assert st["03"]["08"].ours_there_at_end == 1  # q


def test_out_of_county_counts_and_persons(october):
    o, r01 = october, october.regions["01"]
    source = src(r01)
    with source.snapshot() as conn:
        out = data.out_of_county(conn, r01.config, AT_END)
        sept = data.out_of_county(conn, r01.config, date(2026, 9, 30))
    source.close()
    assert {c: n for c, _, n in out.per_region} == {"03": 1, "08": 1}  # g, f
    assert out.total == 2
    # f and h in 08 at the end of September (h came home on 14 October); g's took effect on
    # 1 October
    assert {c: n for c, _, n in sept.per_region} == {"08": 2}
    listed = rows(run(build.write_out_of_county, r01, AT_END, "csv", with_persons=True))
    assert {(r["person_id"], r["listing_county"]) for r in listed} == {
        (o.p["f"], "08"), (o.p["g"], "03")}
    assert next(r for r in listed if r["person_id"] == o.p["g"])["since"] == "2026-10-01"
    summary = rows(run(build.write_out_of_county, r01, AT_END, "csv"))
    assert all(not re.fullmatch(r"\d{12}", v) for r in summary for v in r.values())
    assert sum(int(r["residents"]) for r in summary) == 2


def test_later_changes_do_not_rewrite_a_past_month(october):
    """November ended g's listing in 03 (unit closure) and f moved 01 → 03 while listed in 08;
    the home records no longer know either, but October's reports, run in late November, still
    count both — and November's show how they ended."""
    o, r01, r08 = october, october.regions["01"], october.regions["08"]
    source = src(r01)
    with source.snapshot() as conn:
        october_out = data.out_of_county(conn, r01.config, AT_END)
        now_out = data.out_of_county(conn, r01.config, date(2026, 11, 25))
        nov = data.settlement(conn, r01.config, "2026-11", with_persons=True)
    source.close()
    assert {c: n for c, _, n in october_out.per_region} == {"03": 1, "08": 1}  # g, f
    assert now_out.total == 0
    parts = {c.county: c for c in nov.counterparts}
    assert (parts["03"].ours_there_at_end, parts["03"].ours_there_ended) == (0, 1)  # g
    assert (parts["08"].ours_there_at_end, parts["08"].ours_there_ended) == (0, 1)  # f
    ended = {who(o, [r[2]]).pop(): r[10] for r in nov.persons
             if r[0] == "ours_there" and r[9]}
    assert ended == {"g": "returned", "f": "moved_away"}

    # 08 lists f: 01 paid for October, 03 pays from 10 November
    st08 = _settlements(o, "2026-10")["08"]
    assert st08["01"].theirs_here_at_end == 1  # f
    assert st08["03"].theirs_here_at_end == 1  # q only
    source = src(r08)
    with source.snapshot() as conn:
        nov08 = {c.county: c for c in data.settlement(conn, r08.config, "2026-11").counterparts}
    source.close()
    assert (nov08["01"].theirs_here_at_end, nov08["01"].theirs_here_ended) == (0, 1)
    assert (nov08["03"].theirs_here_at_end, nov08["03"].theirs_here_started) == (2, 1)  # q, f


def test_resident_who_moves_to_the_listing_region_is_its_own_from_the_move(october):
    """r (08) listed at 01's unit on 4 November and moved to 01 on the 12th: from then 01's own
    resident, no longer billed to 08."""
    o, r01 = october, october.regions["01"]
    by = {r["person_id"]: r for r in rows(run(build.write_listed, r01, date(2026, 11, 25),
                                              "csv"))}
    assert by[o.p["r"]]["home_county"] == "01"
    before = {r["person_id"]: r for r in rows(run(build.write_listed, r01,
                                                  date(2026, 11, 11), "csv"))}
    assert before[o.p["r"]]["home_county"] == "08"  # on the 11th 08 still paid
    source = src(r01)
    with source.snapshot() as conn:
        t11 = data.listed_totals(conn, r01.config, date(2026, 11, 11))
        t25 = data.listed_totals(conn, r01.config, date(2026, 11, 25))
    source.close()
    assert dict((c, n) for c, _, n in t25.counties)["08"] == dict(
        (c, n) for c, _, n in t11.counties)["08"] - 1
    st = _settlements(o, "2026-11")
    r_rows = [r for r in data_persons(o, "01", "2026-11") if r[2] == o.p["r"]]
    assert [(r[0], r[1], r[8], r[9], r[10]) for r in r_rows] == [
        ("theirs_here", "08", True, True, "moved")]
    assert (st["08"]["01"].ours_there_started, st["08"]["01"].ours_there_ended) >= (1, 1)


def data_persons(o, code: str, month: str) -> list[tuple]:
    region = o.regions[code]
    source = src(region)
    with source.snapshot() as conn:
        st = data.settlement(conn, region.config, month, with_persons=True)
    source.close()
    return st.persons


def _svgs(html: str) -> list[str]:
    return re.findall(r"<svg .*?</svg>", html, flags=re.S)


def test_listed_html_has_charts_and_totals_and_is_self_contained(october):
    o, r01 = october, october.regions["01"]
    html = run(build.write_listed, r01, AT_END, "html").decode("utf-8")
    assert '<span id="total-listed">7</span>' in html
    svgs = _svgs(html)
    assert len(svgs) == 4  # per unit, per home county, in and out over time
    per_unit = svgs[0]
    assert f"<title>{r01.config.units[0].name}: 3</title>" in per_unit
    # the per-county table's rows and total
    table = re.search(r'<table id="per-county">.*?</table>', html, flags=re.S).group(0)
    assert "<td>08</td><td>Kalmar län</td><td class=n>2</td>" in table
    assert '<tr class="total"><td>Total</td><td></td><td class=n>7</td></tr>' in table
    # flows over time: 03's residents here at the end of October = 2 (e, m)
    assert "03 Kalmar" not in html
    assert re.search(r"<title>03 [^<]*2026-10: 2</title>", svgs[2])
    # no scripts, no external resources, no person ids without --with-persons
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert o.p["a"] not in html
    with_persons = run(build.write_listed, r01, AT_END, "html", with_persons=True).decode()
    assert o.p["a"] in with_persons


def test_settlement_html_and_xlsx(october):
    from openpyxl import load_workbook

    r01 = october.regions["01"]
    html = run(build.write_settlement, r01, "2026-10", "html").decode("utf-8")
    assert '<span id="theirs-here">4</span>' in html and '<span id="ours-there">2</span>' in html
    assert "<title>08 Kalmar län, their residents here: 2</title>" in html
    assert len(_svgs(html)) == 3
    wb = load_workbook(io.BytesIO(run(build.write_settlement, r01, "2026-10", "xlsx")))
    sheet = list(wb["Settlement"].iter_rows(values_only=True))
    assert sheet[0] == data.SETTLEMENT_COLUMNS
    assert sheet[-1][0] == "total" and sheet[-1][5] == 4 and sheet[-1][2] == 2

    listed = load_workbook(io.BytesIO(run(build.write_listed, r01, AT_END, "xlsx")))
    assert listed.sheetnames == ["Listed", "Per unit", "Per home county"]
    assert len(list(listed["Listed"].iter_rows())) == 1 + 7
    county = {r[0]: r[2] for r in listed["Per home county"].iter_rows(values_only=True)}
    assert county["03"] == 2 and county["total"] == 7


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "oktober", "2026-10-01"])
def test_bad_month_is_refused_readably(month):
    with pytest.raises(ValueError, match="expected YYYY-MM"):
        data.month_bounds(month)
