"""Inline SVG charts for the HTML reports: no JavaScript, no external files.

Each function returns an ``<svg>`` element as text, sized in CSS pixels, with a ``<title>`` on
every bar or point so that hovering shows the exact figure.
"""

from __future__ import annotations

from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39",
           "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363", "#9c9ede")
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


def _scale(v: int, ticks: int = 4) -> tuple[int, int]:
    """(top, step): a round step (1, 2 or 5 × 10^k) and the axis top, a multiple of it."""
    if v <= ticks:
        return ticks, 1
    raw = v / ticks
    mag = 10 ** (len(str(int(raw))) - 1)
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return step * -(-v // step), step


def _nice_max(v: int) -> int:
    return _scale(v)[0]


def _fmt(n: int) -> str:
    return f"{n:,}".replace(",", "\u202f")  # thin space, as Swedish figures are grouped


def bar_chart(title: str, items: list[tuple[str, int]], *, width: int = 760,
              colour: str = PALETTE[0]) -> str:
    """Horizontal bars, one per (label, value), in the order given."""
    label_w, bar_h, gap, top = 260, 16, 6, 30
    plot_w = width - label_w - 70
    height = top + len(items) * (bar_h + gap) + 10
    peak = _nice_max(max((v for _, v in items), default=0))
    out = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" {FONT}>',
           f'<text x="0" y="16" font-weight="bold" font-size="14">{escape(title)}</text>']
    for i, (label, value) in enumerate(items):
        y = top + i * (bar_h + gap)
        w = 0 if peak == 0 else round(plot_w * value / peak, 1)
        short = label if len(label) <= 38 else label[:36] + "…"
        out.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">'
                   f'{escape(short)}</text>')
        out.append(f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="{colour}">'
                   f'<title>{escape(label)}: {_fmt(value)}</title></rect>')
        out.append(f'<text x="{label_w + w + 4}" y="{y + 12}">{_fmt(value)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def paired_bar_chart(title: str, items: list[tuple[str, int, int]], names: tuple[str, str], *,
                     width: int = 760) -> str:
    """Two bars per label (e.g. residents in / out per counterpart region)."""
    label_w, bar_h, top = 260, 12, 46
    row_h = 2 * bar_h + 10
    plot_w = width - label_w - 70
    height = top + len(items) * row_h + 10
    peak = _nice_max(max((max(a, b) for _, a, b in items), default=0))
    out = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" {FONT}>',
           f'<text x="0" y="16" font-weight="bold" font-size="14">{escape(title)}</text>']
    for k, name in enumerate(names):
        out.append(f'<rect x="{label_w + k * 220}" y="24" width="12" height="12" '
                   f'fill="{PALETTE[k]}"/><text x="{label_w + k * 220 + 16}" y="34">'
                   f'{escape(name)}</text>')
    for i, (label, a, b) in enumerate(items):
        y = top + i * row_h
        out.append(f'<text x="{label_w - 6}" y="{y + bar_h + 4}" text-anchor="end">'
                   f'{escape(label)}</text>')
        for k, v in enumerate((a, b)):
            w = 0 if peak == 0 else round(plot_w * v / peak, 1)
            yy = y + k * bar_h
            out.append(f'<rect x="{label_w}" y="{yy}" width="{w}" height="{bar_h - 1}" '
                       f'fill="{PALETTE[k]}"><title>{escape(label)}, {escape(names[k])}: '
                       f'{_fmt(v)}</title></rect>')
            out.append(f'<text x="{label_w + w + 4}" y="{yy + bar_h - 2}" font-size="10">'
                       f'{_fmt(v)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def line_chart(title: str, x_labels: list[str], series: dict[str, list[int]], *,
               width: int = 760, height: int = 300) -> str:
    """One line per series over the x labels (months), with a legend."""
    left, right, top, bottom = 56, 190, 30, 60
    height = max(height, top + 16 * len(series) + bottom)
    plot_w, plot_h = width - left - right, height - top - bottom
    peak, step = _scale(max((max(v) for v in series.values() if v), default=0))
    n = max(len(x_labels), 1)

    def x(i: int) -> float:
        return round(left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2), 1)

    def y(v: int) -> float:
        return round(top + plot_h - (plot_h * v / peak if peak else 0), 1)

    out = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" {FONT}>',
           f'<text x="0" y="16" font-weight="bold" font-size="14">{escape(title)}</text>']
    for v in range(0, peak + 1, step):
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v)}" y2="{y(v)}" '
                   f'stroke="#ddd"/><text x="{left - 6}" y="{y(v) + 4}" text-anchor="end">'
                   f'{_fmt(v)}</text>')
    for i, lab in enumerate(x_labels):
        bx, by = x(i), top + plot_h + 12
        out.append(f'<text x="{bx}" y="{by}" text-anchor="end" font-size="10" '
                   f'transform="rotate(-35 {bx} {by})">{escape(lab)}</text>')
    if not series:
        out.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle">'
                   f'none</text>')
    for k, (name, values) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        pts = " ".join(f"{x(i)},{y(v)}" for i, v in enumerate(values))
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{pts}"/>')
        for i, v in enumerate(values):
            out.append(f'<circle cx="{x(i)}" cy="{y(v)}" r="3" fill="{colour}"><title>'
                       f'{escape(name)} {escape(x_labels[i])}: {_fmt(v)}</title></circle>')
        ly = top + 16 * k
        out.append(f'<rect x="{left + plot_w + 12}" y="{ly}" width="10" height="10" '
                   f'fill="{colour}"/><text x="{left + plot_w + 26}" y="{ly + 9}">'
                   f'{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)
