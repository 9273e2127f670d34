"""Charts drawn on the server as SVG with pygal (a maintained, pure-Python charting
library): no JavaScript in the page, the same picture in every browser and in a PDF,
and each chart sits beside the table of its numbers."""

from __future__ import annotations

import re

import pygal
from markupsafe import Markup
from pygal.style import Style

STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#1d2733",
    foreground_strong="#1d2733",
    foreground_subtle="#d6dde5",
    colors=("#1f5fbf", "#e07a10", "#067647", "#b42318", "#7a5af8", "#5b6b7c", "#0e9384"),
    font_family="DejaVu Sans, sans-serif",
    label_font_size=13,
    major_label_font_size=13,
    legend_font_size=14,
    title_font_size=17,
    value_font_size=10,
)
BASE = {
    "style": STYLE,
    "width": 720,
    "height": 380,
    "js": [],  # no script: the page stays static (and nothing is fetched from elsewhere)
    "disable_xml_declaration": True,
    "explicit_size": False,
    "legend_at_bottom": True,
    "legend_at_bottom_columns": 4,
    "print_values": False,
    "margin": 12,
    "margin_bottom": 34,  # room for a second row of legend under rotated labels
    "truncate_label": -1,
    "truncate_legend": -1,
}


# pygal always writes its configuration as a <script> for its optional tooltips: the
# pages run no script, so it goes.
_SCRIPT = re.compile(r"<script\b.*?</script>", re.S)


def _svg(chart) -> Markup:
    return Markup(_SCRIPT.sub("", chart.render(is_unicode=True)))  # pygal escapes the text it draws


def bars(
    title: str,
    labels: list[str],
    series: dict[str, list[float | None]],
    *,
    y_title: str = "",
    stacked: bool = False,
) -> Markup:
    chart = (pygal.StackedBar if stacked else pygal.Bar)(
        title=title,
        y_title=y_title,
        x_label_rotation=30 if len(labels) > 5 else 0,
        **BASE,
    )
    chart.x_labels = labels
    for name, values in series.items():
        chart.add(name, values)
    return _svg(chart)


def lines(
    title: str, labels: list[str], series: dict[str, list[float | None]], *, y_title: str = "", every: int = 1
) -> Markup:
    chart = pygal.Line(
        title=title,
        y_title=y_title,
        x_label_rotation=30,
        show_minor_x_labels=False,
        dots_size=2.5,
        include_x_axis=True,
        **BASE,
    )
    chart.x_labels = labels
    chart.x_labels_major = labels[::every]
    for name, values in series.items():
        chart.add(name, values)
    return _svg(chart)


def heat(title: str, rows: list[str], columns: list[str], values: dict[tuple[str, str], float | None]) -> Markup:
    """A heat map as pygal's dot chart: one line per row (weekday), a dot per column (hour)
    whose size is the value."""
    chart = pygal.Dot(title=title, x_label_rotation=0, show_legend=False, **BASE)
    chart.x_labels = columns
    for r in rows:
        chart.add(r, [values.get((r, c)) or 0 for c in columns])
    return _svg(chart)
