"""Small server-side charts as inline SVG (no scripts, nothing loaded from elsewhere)."""

from __future__ import annotations

from datetime import date
from html import escape

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 16, 36


def _nice_max(value: int) -> int:
    for step in (1, 2, 5):
        for scale in (1, 10, 100, 1000, 10000, 100000, 1000000):
            if step * scale >= value:
                return step * scale
    return value


def daily_lines_svg(days: list[date], series: dict[str, tuple[list[int], str]], title: str) -> str:
    """A line per series (name -> (values per day, colour)), with labelled axes and a legend."""
    peak = _nice_max(max((max(v) for v, _c in series.values() if v), default=0) or 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(days) - 1, 1)

    def x(i: int) -> float:
        return LEFT + i * step

    def y(v: int) -> float:
        return TOP + plot_h - plot_h * v / peak

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" '
        'style="width:100%;height:auto;font:12px system-ui,sans-serif">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in (0, peak // 2, peak):  # y axis: three labelled grid lines
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            'stroke="#e4e4e8"/>'
            f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" '
            f'fill="#5c5c66">{tick}</text>'
        )
    for i in range(len(days) - 1, -1, -max(len(days) // 6, 1)):  # x axis: six dates, to today
        parts.append(
            f'<text x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 18}" '
            f'text-anchor="{"end" if i == len(days) - 1 else "middle"}" fill="#5c5c66">'
            f"{days[i].strftime('%d %b')}</text>"
        )
    for n, (name, (values, colour)) in enumerate(series.items()):
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        # Where two lines are equal they lie on each other: the first is wide and solid,
        # each next one narrower and dashed on top, so both stay visible (the legend too).
        width, dashes = (4, "") if n == 0 else (2, ' stroke-dasharray="6 4"')
        legend_x = LEFT + 8 + n * 150
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="{width}"{dashes} '
            f'points="{points}"/>'
            f'<line x1="{legend_x}" x2="{legend_x + 24}" y1="{TOP + 3}" y2="{TOP + 3}" '
            f'stroke="{colour}" stroke-width="{width}"{dashes}/>'
            f'<text x="{legend_x + 30}" y="{TOP + 7}" fill="#1d1d1f">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
