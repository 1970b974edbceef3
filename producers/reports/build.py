"""The three reports, each written as CSV, self-contained HTML (inline SVG charts) or xlsx.

Every ``write_*`` function reads one snapshot of the region's database (``Source.snapshot``),
writes to a binary stream as rows arrive and returns an ``Outcome`` with the figures for the
one-line summary. Person lists (personal identity numbers) are written only where the report
is a person list by nature (``listed`` CSV/xlsx) or when asked for (``with_persons``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from html import escape
from typing import IO, Any

from producers.reports import charts, data
from producers.reports.progress import Progress
from producers.reports.source import Source, shown_url

FORMATS = ("csv", "html", "xlsx")
Tick = Callable[[int], None]


@dataclass
class Outcome:
    summary: str
    rows: int = 0  # person rows written
    figures: dict[str, Any] = field(default_factory=dict)


def _text(out: IO[bytes]) -> io.TextIOWrapper:
    return io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=False)


def _counted(rows: Iterable[tuple], tick: Tick | None, counter: list[int]) -> Iterator[tuple]:
    for row in rows:
        counter[0] += 1
        if tick is not None:
            tick(1)
        yield row


# --- HTML pieces --------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
p.lead { font-size: 1.1em; } .note { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.2em 0.7em; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: bold; border-top: 2px solid #888; }
svg.chart { display: block; margin: 1em 0; max-width: 100%; height: auto; }
"""


def _page_start(title: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="sv"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
            f"<h1>{escape(title)}</h1>\n")


def _page_end(source: Source, notes: list[str]) -> str:
    items = "".join(f"<li>{escape(n)}</li>" for n in notes)
    return (f'<footer class="note"><ul>{items}</ul><p>Read from {escape(shown_url(source.url))}'
            f" at {datetime.now().replace(microsecond=0).isoformat(sep=' ')}.</p></footer>"
            "</body></html>\n")


def _table(head: Iterable[str], rows: Iterable[Iterable[Any]], numeric: set[int],
           total: Iterable[Any] | None = None, table_id: str = "") -> Iterator[str]:
    attr = f' id="{table_id}"' if table_id else ""
    cells = "".join(f'<th{" class=n" if i in numeric else ""}>{escape(h)}</th>'
                    for i, h in enumerate(head))
    yield f"<table{attr}><thead><tr>{cells}</tr></thead><tbody>\n"

    def tr(row: Iterable[Any], cls: str = "") -> str:
        tds = "".join(f'<td{" class=n" if i in numeric else ""}>{escape(str(v))}</td>'
                      for i, v in enumerate(row))
        return f"<tr{cls}>{tds}</tr>\n"

    for row in rows:
        yield tr(row)
    if total is not None:
        yield tr(total, ' class="total"')
    yield "</tbody></table>\n"


TOP_SERIES = 7


def _top_series(series: dict[str, list[int]]) -> dict[str, list[int]]:
    """The regions with most listings at the last point, the rest summed as "other regions"."""
    ranked = sorted(series.items(), key=lambda kv: (-kv[1][-1], kv[0]))
    top = dict(sorted(ranked[:TOP_SERIES]))
    shown = {f"{k} {data.county_name(k)}": v for k, v in top.items()}
    rest = [v for _, v in ranked[TOP_SERIES:]]
    if rest:
        shown[f"{len(rest)} other regions"] = [sum(col) for col in zip(*rest, strict=True)]
    return shown


def _flow_charts(flows: data.Flows) -> str:
    labels = [data.point_label(m) for m in flows.months]
    inflow, outflow = _top_series(flows.inflow), _top_series(flows.outflow)
    return (charts.line_chart("Residents of other regions listed here, month by month",
                              labels, inflow) + "\n" +
            charts.line_chart("Our residents listed in other regions, month by month",
                              labels, outflow))


# --- xlsx ---------------------------------------------------------------------------------------

def _workbook() -> Any:
    try:
        from openpyxl import Workbook
    except ImportError:  # pragma: no cover - openpyxl is an install requirement
        from producers.reports.source import ReportError

        raise ReportError("xlsx needs openpyxl (pip install openpyxl)") from None
    return Workbook(write_only=True)


def _sheet(wb: Any, title: str, head: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    ws = wb.create_sheet(title)
    bold = Font(bold=True)
    header = []
    for h in head:
        cell = WriteOnlyCell(ws, value=h)
        cell.font = bold
        header.append(cell)
    ws.append(header)
    ws.freeze_panes = "A2"
    for row in rows:
        ws.append(list(row))


# --- listed -------------------------------------------------------------------------------------

UNIT_HEAD = ("unit_hsa_id", "unit_name", "listed", "of_them_other_counties", "cap", "queued_now")
COUNTY_HEAD = ("home_county", "home_county_name", "listed")


def _unit_rows(t: data.ListedTotals) -> list[tuple]:
    return [(u.hsa_id, u.name, u.listed, u.other_counties, u.cap if u.cap is not None else "",
             u.queued) for u in t.units]


def write_listed(source: Source, at: date, fmt: str, out: IO[bytes], *,
                 with_persons: bool = False, totals_only: bool = False,
                 progress: Callable[[int], Progress] | None = None) -> Outcome:
    """Every listing at the region's units in force at the end of ``at``, and the totals."""
    cfg = source.config
    written = [0]
    with source.snapshot() as conn:
        totals = data.listed_totals(conn, cfg, at)
        bar = progress(totals.total) if progress and not totals_only and (
            fmt != "html" or with_persons) else None
        tick = bar.tick if bar is not None else None
        if fmt == "csv" and not totals_only and data.can_copy(conn):
            # PostgreSQL writes the person list itself: no Python per row (docs/performance.md)
            written[0] = data.copy_listed(conn, cfg, at, out, tick)
        elif fmt == "csv":
            f = _text(out)
            w = csv.writer(f)
            if totals_only:
                w.writerow(("group", "code", "name", "listed"))
                for u in totals.units:
                    w.writerow(("unit", u.hsa_id, u.name, u.listed))
                for c, name, n in totals.counties:
                    w.writerow(("home_county", c, name, n))
                w.writerow(("total", "", "", totals.total))
            else:
                w.writerow(data.LISTED_COLUMNS)
                for chunk in data.listed_chunks(conn, cfg, at):
                    w.writerows(chunk)
                    written[0] += len(chunk)
                    if tick is not None:
                        tick(len(chunk))
            f.flush()
            f.detach()
        elif fmt == "xlsx":
            wb = _workbook()
            if not totals_only:
                _sheet(wb, "Listed", data.LISTED_COLUMNS,
                       _counted(data.listed_rows(conn, cfg, at), tick, written))
            _sheet(wb, "Per unit", UNIT_HEAD, [
                *_unit_rows(totals), ("total", "", totals.total, totals.other_counties, "", "")])
            _sheet(wb, "Per home county", COUNTY_HEAD,
                   [*totals.counties, ("total", "", totals.total)])
            wb.save(out)
        else:
            flows = data.flows(conn, cfg, at)
            f = _text(out)
            title = f"Listed at the units of {cfg.name} at the end of {at.isoformat()}"
            f.write(_page_start(title))
            share = totals.other_counties / totals.total if totals.total else 0.0
            f.write(f'<p class="lead"><span id="total-listed">{totals.total}</span> residents '
                    f"listed at {len(cfg.units)} units; {totals.other_counties} of them "
                    f"({share:.1%}) are residents of other regions.</p>\n")
            f.write("<h2>Listings per unit</h2>\n")
            f.write(charts.bar_chart("Listings per unit",
                                     [(u.name, u.listed) for u in totals.units]))
            f.writelines(_table(("HSA-id", "Unit", "Listed", "Of them other counties", "Cap",
                                 "Queued now"), _unit_rows(totals), {2, 3, 4, 5},
                                ("Total", "", totals.total, totals.other_counties, "", ""),
                                "per-unit"))
            f.write("<h2>Listings per home county</h2>\n")
            f.write(charts.bar_chart("Listings per home county",
                                     [(f"{c} {name}", n) for c, name, n in totals.counties],
                                     colour=charts.PALETTE[2]))
            f.writelines(_table(("County", "Name", "Listed"), totals.counties, {2},
                                ("Total", "", totals.total), "per-county"))
            f.write("<h2>Flows between regions over time</h2>\n")
            f.write(_flow_charts(flows))
            if with_persons:
                f.write("<h2>Residents listed (for authorised use)</h2>\n")
                f.writelines(_table(data.LISTED_COLUMNS,
                                    _counted(data.listed_rows(conn, cfg, at), tick, written),
                                    set(), None, "persons"))
            f.write(_page_end(source, [
                "A listing counts when it is in force at midnight at the end of the day.",
                "Queue figures and queue status are as of now: the queue keeps no history.",
                "Home county is the region paying at that time (after a move, the new home "
                "region from the hand-over).",
                "Our residents listed elsewhere over time come from the home history (where "
                "the listing regions told us they were listed, from when to when)."]))
            f.flush()
            f.detach()
    if bar is not None:
        bar.close()
    return Outcome(f"{cfg.name}: {totals.total} residents listed at the end of {at} "
                   f"({totals.other_counties} from other counties) at {len(cfg.units)} units",
                   written[0], {"total": totals.total, "other_counties": totals.other_counties,
                                "per_unit": {u.hsa_id: u.listed for u in totals.units},
                                "per_county": {c: n for c, _, n in totals.counties}})


# --- out of county ------------------------------------------------------------------------------

def write_out_of_county(source: Source, at: date, fmt: str, out: IO[bytes], *,
                        with_persons: bool = False,
                        progress: Callable[[int], Progress] | None = None) -> Outcome:
    """Our residents listed in other regions at the end of ``at`` (the home records)."""
    cfg = source.config
    written = [0]
    region_head = ("listing_county", "listing_region", "residents")
    type_head = ("listing_county", "listing_type", "residents")
    with source.snapshot() as conn:
        o = data.out_of_county(conn, cfg, at)
        bar = progress(o.total) if progress and with_persons else None
        tick = bar.tick if bar is not None else None
        persons = (_counted(data.out_of_county_rows(conn, cfg, at), tick, written)
                   if with_persons else None)
        if fmt == "csv":
            f = _text(out)
            w = csv.writer(f)
            if persons is not None:
                w.writerow(data.OUT_COLUMNS)
                w.writerows(persons)
            else:
                w.writerow((*region_head, "listing_type", "unit"))
                for c, tcode, n in o.per_type:
                    w.writerow((c, data.region_name(c), n, tcode, ""))
            f.flush()
            f.detach()
        elif fmt == "xlsx":
            wb = _workbook()
            _sheet(wb, "Per region", region_head, [*o.per_region, ("total", "", o.total)])
            _sheet(wb, "Per listing type", type_head, o.per_type)
            if persons is not None:
                _sheet(wb, "Persons", data.OUT_COLUMNS, persons)
            wb.save(out)
        else:
            flows = data.flows(conn, cfg, at)
            f = _text(out)
            f.write(_page_start(f"Residents of {cfg.name} listed in other regions at the end "
                                f"of {at.isoformat()}"))
            listed = o.total + o.listed_at_home
            share = o.total / listed if listed else 0.0
            f.write(f'<p class="lead"><span id="total-out">{o.total}</span> of our '
                    f"{listed} listed residents ({share:.1%}) are listed in other regions; "
                    f"{o.listed_at_home} at our own units.</p>\n")
            f.write(charts.bar_chart("Our residents per listing region",
                                     [(f"{c} {name}", n) for c, name, n in o.per_region],
                                     colour=charts.PALETTE[1]))
            f.writelines(_table(("County", "Region", "Residents"), o.per_region, {2},
                                ("Total", "", o.total), "per-region"))
            f.write("<h2>Per listing region and listing type</h2>\n")
            f.writelines(_table(("County", "Listing type", "Residents"), o.per_type, {2},
                                None, "per-type"))
            f.write("<h2>Flows between regions over time</h2>\n")
            f.write(_flow_charts(flows))
            if persons is not None:
                f.write("<h2>Residents (for authorised use)</h2>\n")
                f.writelines(_table(data.OUT_COLUMNS, persons, set(), None, "persons"))
            f.write(_page_end(source, [
                "From the home history: where our residents were listed, from when to when, "
                "as the listing regions told us (UpdateListing).",
                "The unit is not known here: UpdateListing carries the county, not the unit; "
                "ask the listing region (GetListing) for the unit."]))
            f.flush()
            f.detach()
    if bar is not None:
        bar.close()
    return Outcome(f"{cfg.name}: {o.total} residents listed in other regions at the end of "
                   f"{at} ({', '.join(f'{c}: {n}' for c, _, n in o.per_region) or 'none'})",
                   written[0], {"total": o.total,
                                "per_region": {c: n for c, _, n in o.per_region}})


# --- settlement ---------------------------------------------------------------------------------

def write_settlement(source: Source, month: str, fmt: str, out: IO[bytes], *,
                     with_persons: bool = False) -> Outcome:
    """Per counterpart region: our residents there, theirs here, at the month's end."""
    cfg = source.config
    with source.snapshot() as conn:
        st = data.settlement(conn, cfg, month, with_persons=with_persons)
        flows = data.flows(conn, cfg, st.last) if fmt == "html" else None
    total = st.total()
    rows = [c.row() for c in st.counterparts]
    total_row = ("total", "", *total.row()[2:])
    if fmt == "csv":
        f = _text(out)
        w = csv.writer(f)
        if with_persons:  # one table per file: the persons behind the figures
            w.writerow(data.SETTLEMENT_PERSON_COLUMNS)
            w.writerows(st.persons)
        else:
            w.writerow(data.SETTLEMENT_COLUMNS)
            w.writerows(rows)
            w.writerow(total_row)
        f.flush()
        f.detach()
    elif fmt == "xlsx":
        wb = _workbook()
        _sheet(wb, "Settlement", data.SETTLEMENT_COLUMNS, [*rows, total_row])
        if with_persons:
            _sheet(wb, "Persons", data.SETTLEMENT_PERSON_COLUMNS, st.persons)
        wb.save(out)
    else:
        assert flows is not None
        f = _text(out)
        f.write(_page_start(f"Settlement {month} for {cfg.name}"))
        f.write(f'<p class="lead">Snapshot at the end of {st.last.isoformat()}: '
                f'<span id="theirs-here">{total.theirs_here_at_end}</span> residents of other '
                f'regions listed at our units, <span id="ours-there">{total.ours_there_at_end}'
                f"</span> of our residents listed in other regions.</p>\n")
        f.write(charts.paired_bar_chart(
            f"Listings between regions at the end of {month}",
            [(f"{c.county} {data.county_name(c.county)}", c.theirs_here_at_end,
              c.ours_there_at_end) for c in st.counterparts],
            ("their residents here", "our residents there")))
        f.writelines(_table(("County", "Region", "Ours there at month end", "ours started",
                             "ours ended", "Theirs here at month end", "theirs started",
                             "theirs ended"),
                            rows, {2, 3, 4, 5, 6, 7}, ("Total", "", *total.row()[2:]),
                            "settlement"))
        f.write("<h2>Flows between regions over time</h2>\n")
        f.write(_flow_charts(flows))
        if with_persons:
            f.write("<h2>Residents (for authorised use)</h2>\n")
            f.writelines(_table(data.SETTLEMENT_PERSON_COLUMNS, st.persons, set(), None,
                                "persons"))
        f.write(_page_end(source, [
            "Theirs here: listings at our units paid for by the counterpart (home) region, "
            "from our listing history.",
            "Ours there: from the home history (where our residents were listed, from when "
            "to when).",
            "A resident who moved county counts for the old home region until the move and "
            "for the new one from it."]))
        f.flush()
        f.detach()
    return Outcome(f"{cfg.name} settlement {month}: {total.theirs_here_at_end} residents of "
                   f"other regions here, {total.ours_there_at_end} of ours elsewhere at the end "
                   f"of {st.last} ({len(st.counterparts)} counterpart regions)",
                   len(st.persons), {"counterparts": {c.county: c for c in st.counterparts}})
