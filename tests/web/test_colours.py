"""The status colours of the pages: every badge, flash and link reads at WCAG AA (text
contrast at least 4.5:1), and the step statuses a desk tells apart at a glance ("scheduled"
and "arrived") do not share a colour. Read from the style sheets themselves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ris_app.scheduling.states import SPSStatus

STATIC = Path(__file__).resolve().parents[2] / "ris_app" / "static"
AA = 4.5


def _rules(css: str) -> list[tuple[list[str], dict[str, str]]]:
    """(selectors, declarations) of each plain rule (media blocks read as plain rules)."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    css = re.sub(r"@media[^{]*\{", "", css)
    rules = []
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        decls = {}
        for part in body.split(";"):
            if ":" in part:
                name, value = part.split(":", 1)
                decls[name.strip()] = value.strip()
        rules.append(([s.strip() for s in selectors.split(",")], decls))
    return rules


RULES = _rules((STATIC / "ris.css").read_text() + (STATIC / "reading.css").read_text())
ROOT = next(d for sel, d in RULES if sel == [":root"])


def _colour(value: str) -> tuple[float, float, float]:
    value = value.replace("!important", "").strip()
    match = re.fullmatch(r"var\((--[\w-]+)\)", value)
    if match:
        value = ROOT[match.group(1)]
    match = re.fullmatch(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})", value)
    assert match, f"not a colour this test reads: {value!r}"
    hex_ = match.group(1)
    if len(hex_) == 3:
        hex_ = "".join(c * 2 for c in hex_)
    return tuple(int(hex_[i : i + 2], 16) / 255 for i in (0, 2, 4))


def luminance(rgb) -> float:
    """WCAG 2 relative luminance of an sRGB colour (channels 0..1)."""
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(fg, bg) -> float:
    """WCAG 2 contrast ratio, 1..21."""
    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _declared(selector: str, prop: str) -> str | None:
    found = None
    for selectors, decls in RULES:
        if selector in selectors and prop in decls:
            found = decls[prop]  # the last rule wins, as in the browser
    return found


def _badge_rules():
    """Each status or badge rule: (selector, text colour, background), falling back to the
    family's base rule (.status, .badge) for what the rule does not set."""
    pattern = re.compile(r"^\.(status-[\w-]+|badge\.[\w-]+|st-\w+|prio-\w+|flash\.\w+)$")
    seen = {}
    for selectors, decls in RULES:
        for sel in selectors:
            if pattern.match(sel) and ("color" in decls or "background" in decls):
                base = ".status" if sel.startswith(".status") else ".flash" if sel.startswith(".flash") else ".badge"
                fg = _declared(sel, "color") or _declared(base, "color") or ROOT["--ink"]
                bg = _declared(sel, "background") or _declared(base, "background") or "#ffffff"
                seen[sel] = (fg, bg)
    return sorted(seen.items())


BADGES = _badge_rules()


def test_the_formula_matches_wcag_reference_values():
    assert contrast((0, 0, 0), (1, 1, 1)) == pytest.approx(21)
    assert contrast((1, 1, 1), (1, 1, 1)) == pytest.approx(1)
    # #767676 on white is the well-known lightest grey that passes AA (4.54:1).
    assert contrast(_colour("#767676"), _colour("#ffffff")) == pytest.approx(4.54, abs=0.01)


def test_every_status_and_badge_rule_is_found():
    names = {sel for sel, _ in BADGES}
    for status in SPSStatus:
        assert f".status-{status.value.lower()}" in names, f"no colour for step status {status.value}"
    assert {".badge.error", ".badge.warn", ".flash.error", ".flash.ok"} <= names


@pytest.mark.parametrize(("selector", "colours"), BADGES, ids=[s for s, _ in BADGES])
def test_badge_text_passes_wcag_aa(selector, colours):
    fg, bg = colours
    ratio = contrast(_colour(fg), _colour(bg))
    assert ratio >= AA, f"{selector}: {fg} on {bg} is {ratio:.2f}:1, below {AA}:1"


@pytest.mark.parametrize(
    ("what", "fg", "bg"),
    [
        ("links", _declared("a", "color"), _declared("body", "background")),
        ("links on a card", _declared("a", "color"), _declared(".card", "background")),
        ("muted text", ROOT["--muted"], _declared("table.list th", "background")),
        ("field errors", _declared(".field-error", "color"), ROOT["--err-bg"]),
        ("the bar's links", _declared("header.top a", "color"), _declared("header.top", "background")),
        ("canceled rows", _declared("tr.row-canceled td", "color"), "#ffffff"),
    ],
)
def test_text_on_the_pages_passes_wcag_aa(what, fg, bg):
    ratio = contrast(_colour(fg), _colour(bg))
    assert ratio >= AA, f"{what}: {fg} on {bg} is {ratio:.2f}:1"


def _distance(a, b) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5 * 255


def test_step_statuses_have_distinct_colours():
    """Each step status looks different from the others unless it shares their meaning on
    purpose (one rule for both: arrived/ready, started/departed, canceled/discontinued)."""
    by_rule = {}
    for selectors, _ in RULES:
        statuses = [s for s in selectors if s.startswith(".status-")]
        for s in statuses:
            by_rule[s] = tuple(statuses)
    colours = dict(BADGES)
    steps = [f".status-{s.value.lower()}" for s in SPSStatus]
    for i, a in enumerate(steps):
        for b in steps[i + 1 :]:
            if b in by_rule[a]:
                continue
            bg = _distance(_colour(colours[a][1]), _colour(colours[b][1]))
            fg = _distance(_colour(colours[a][0]), _colour(colours[b][0]))
            assert bg >= 25 and fg >= 40, f"{a} and {b} look alike (background {bg:.0f}, text {fg:.0f} apart)"
