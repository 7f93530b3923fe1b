"""Small server-side charts as inline SVG (no scripts, nothing loaded from elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from html import escape


@dataclass(frozen=True)
class Frame:
    """One drawing of a chart: its size in SVG units, margins, type size and labels."""

    width: int
    height: int
    left: int
    right: int
    top: int  # the legend has a row of its own above it, clear of every grid line
    bottom: int
    font: int
    dates: int  # labels on the x axis
    legend_gap: int


# The SVG scales with its box: a wide drawing for screens, a narrow one for phones, so
# that the text never comes out below 11 px (CSS in pages/base.html picks one at 760 px).
WIDE = Frame(720, 260, 44, 12, 44, 36, 12, 6, 150)
NARROW = Frame(360, 260, 36, 10, 48, 34, 13, 3, 130)


def _nice_max(value: int) -> int:
    for step in (1, 2, 5):
        for scale in (1, 10, 100, 1000, 10000, 100000, 1000000):
            if step * scale >= value:
                return step * scale
    return value


def daily_lines_svg(days: list[date], series: dict[str, tuple[list[int], str]], title: str) -> str:
    """A line per series (name -> (values per day, colour)), with labelled axes and a legend:
    a wide drawing and a narrow one, of which the page shows the one that fits."""
    wide = _drawing(days, series, title, WIDE, "chart chart-wide")
    return wide + _drawing(days, series, title, NARROW, "chart chart-narrow")


def _drawing(
    days: list[date], series: dict[str, tuple[list[int], str]], title: str, f: Frame, css: str
) -> str:
    peak = _nice_max(max((max(v) for v, _c in series.values() if v), default=0) or 1)
    plot_w, plot_h = f.width - f.left - f.right, f.height - f.top - f.bottom
    step = plot_w / max(len(days) - 1, 1)

    def x(i: int) -> float:
        return f.left + i * step

    def y(v: int) -> float:
        return f.top + plot_h - plot_h * v / peak

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css}" '
        f'viewBox="0 0 {f.width} {f.height}" role="img" aria-label="{escape(title)}" '
        f'style="width:100%;height:auto;font:{f.font}px system-ui,sans-serif">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in (0, peak // 2, peak):  # y axis: three labelled grid lines
        parts.append(
            f'<line class="grid" x1="{f.left}" x2="{f.width - f.right}" y1="{y(tick):.1f}" '
            f'y2="{y(tick):.1f}" stroke="#e4e4e8"/>'
            f'<text x="{f.left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
            f'fill="#5c5c66">{tick}</text>'
        )
    last = len(days) - 1
    for i in range(last, -1, -max(len(days) // f.dates, 1)):  # x axis: dates, to today
        anchor = "end" if i == last else "start" if i < len(days) // (2 * f.dates) else "middle"
        parts.append(
            f'<text x="{x(i):.1f}" y="{f.height - f.bottom + 18}" text-anchor="{anchor}" '
            f'fill="#5c5c66">{days[i].strftime("%d %b")}</text>'
        )
    legend_y = f.font + 2  # the legend's own row, above the top grid line
    for n, (name, (values, colour)) in enumerate(series.items()):
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        # Where two lines are equal they lie on each other: the first is wide and solid,
        # each next one narrower and dashed on top, so both stay visible (the legend too).
        width, dashes = (4, "") if n == 0 else (2, ' stroke-dasharray="6 4"')
        legend_x = f.left + 8 + n * f.legend_gap
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="{width}"{dashes} '
            f'points="{points}"/>'
            f'<line x1="{legend_x}" x2="{legend_x + 24}" y1="{legend_y - 4}" '
            f'y2="{legend_y - 4}" stroke="{colour}" stroke-width="{width}"{dashes}/>'
            f'<text class="legend" x="{legend_x + 30}" y="{legend_y}" fill="#1d1d1f">'
            f"{escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
