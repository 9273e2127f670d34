"""One labelled time on every page (issue 14): the site's zone, ISO date, 24-hour clock,
inside <time datetime="UTC instant">, whatever the server's own zone.

The site is Europe/Berlin on a server in America/New_York (tests/fixtures/site_times.py):
an HL7 order received at 10:10 UTC must read "2026-11-30 11:10 CET" on the HL7, order and
journey pages, and no page may show a time outside a <time> element, a microsecond stamp
or a month-day date such as "11-30"."""

from __future__ import annotations

import re

import pytest

from tests.fixtures.site_times import ABBREVIATION, RECEIVED_ATTR, SHOWN, SITE_ZONE, berlin  # noqa: F401
from tests.fixtures.web import login

pytestmark = pytest.mark.db

TIME_TAG = re.compile(r'<time(?: datetime="([^"]*)")?>([^<]*)</time>')
LABELLED = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(?::\d{2})? ([A-Z]{2,5}|[+-]\d{2,4})")
RANGE_START = re.compile(r"[A-Z]{2,5}</time>\s*(?:-|\u2013)\s*$")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
TIME_OF_DAY = re.compile(r"\d{2}:\d{2}(?::\d{2})?")
# What must not be seen outside a <time> element.
CLOCK = re.compile(r"(?<![\d:])\d{1,2}:\d{2}(?![\d])")
MICROSECONDS = re.compile(r"\d{2}:\d{2}:\d{2}\.\d{3,6}")
ISO_T = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
MONTH_DAY = re.compile(r"(?<![\d-])\d{2}-\d{2}(?![\d-])")


def times_on(html: str, attr: str) -> list[str]:
    """The texts of the <time> elements that carry the UTC instant `attr`."""
    return [text for at, text in TIME_TAG.findall(html) if at == attr]


def test_one_hl7_message_reads_the_same_labelled_time_on_every_page(berlin):  # noqa: F811
    app = berlin.app
    client = app.test_client()
    login(app, client, "admin")
    pages = {
        "HL7 messages": "/hl7",
        "HL7 message": f"/hl7/messages/{berlin.message_id}",
        "order": f"/orders/{berlin.accession}",
        "journey": f"/orders/{berlin.accession}/journey",
    }
    for name, path in pages.items():
        r = client.get(path)
        assert r.status_code == 200, (name, r.status_code)
        shown = times_on(r.get_data(as_text=True), RECEIVED_ATTR)
        assert shown, f"{name}: no <time datetime={RECEIVED_ATTR}>"
        for text in shown:  # seconds only where the page needs them (the HL7 log)
            assert re.fullmatch(rf"{SHOWN}(:00)? {ABBREVIATION}", text), (name, text)
        assert "10:10" not in r.get_data(as_text=True).replace(RECEIVED_ATTR, ""), f"{name} shows UTC"


def _pages(app, berlin) -> list[str]:  # noqa: F811
    """Every page (GET, not the API, not a download) with this site's rows in its path."""
    from ris_app.analytics.boards import THEMES

    values = {
        "accession": [berlin.accession],
        "study_id": [str(berlin.study_id)],
        "message_id": [str(berlin.message_id)],
        "query_id": ["1"],
        "mrn": [berlin.mrn],
        "theme": list(THEMES),
        "aet": ["CT1"],
        "code": ["CTHEAD"],
    }
    paths = set()
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.rule.startswith(("/api/", "/static", "/appointment/")):
            continue
        if rule.rule.endswith((".csv", ".pdf", ".json")) or rule.endpoint == "auth.logout":
            continue
        names = re.findall(r"<(?:\w+:)?(\w+)>", rule.rule)
        if not all(n in values for n in names):
            continue  # a page for rows this fixture has none of (a viewer, a share link)
        if not names:
            paths.add(rule.rule)
        for name in names:  # one row per name is enough; themes are many
            for v in values[name]:
                paths.add(
                    re.sub(
                        r"<(?:\w+:)?(\w+)>",
                        lambda m, n=name, v=v: v if m.group(1) == n else values[m.group(1)][0],
                        rule.rule,
                    )
                )
    return sorted(paths)


def _problems(html: str) -> list[str]:
    zone_named = SITE_ZONE in html
    found = []
    for m in TIME_TAG.finditer(html):
        text = m.group(2)
        # The end of a range may give the time of day only, right after its labelled start.
        range_end = RANGE_START.search(html, 0, m.start()) is not None
        ok = LABELLED.fullmatch(text) or DATE.fullmatch(text)
        ok = ok or (TIME_OF_DAY.fullmatch(text) and (zone_named or range_end))
        if not ok:
            found.append(f"<time>{text}</time> is neither labelled nor on a page naming {SITE_ZONE}")
    body = re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S)
    body = TIME_TAG.sub(" ", body)
    visible = re.sub(r"<[^>]+>", " ", body)
    for pattern, what in ((CLOCK, "unlabelled time"), (MICROSECONDS, "microsecond stamp"), (ISO_T, "raw ISO stamp")):
        found += [f"{what}: ...{visible[max(0, m.start() - 40) : m.end() + 20]!r}" for m in pattern.finditer(visible)]
    found += [f"month-day date: {m.group(0)!r}" for m in MONTH_DAY.finditer(visible)]
    found += [f"microsecond stamp in markup: {m.group(0)}" for m in MICROSECONDS.finditer(body)]
    return found


def test_no_page_shows_an_unlabelled_time(berlin):  # noqa: F811
    app = berlin.app
    client = app.test_client()
    login(app, client, "admin")
    checked, problems = [], {}
    for path in _pages(app, berlin):
        r = client.get(path)
        if r.status_code != 200 or not r.content_type.startswith("text/html"):
            continue
        checked.append(path)
        found = _problems(r.get_data(as_text=True))
        if found:
            problems[path] = found
    assert not problems, "\n".join(f"{p}: {x}" for p, xs in problems.items() for x in xs)
    expected = {"/hl7", "/", "/studies", "/sync", "/audit", f"/orders/{berlin.accession}/journey"}
    assert expected <= set(checked), expected - set(checked)
    assert len(checked) >= 25, checked


@pytest.mark.parametrize(
    "html, problem",
    [
        ("<td>10:10</td>", "unlabelled time"),
        ("<td>2026-11-30 10:10</td>", "unlabelled time"),
        ("<td>2026-11-30T10:10:00.123456+00:00</td>", "microsecond stamp"),
        ("<td>11-30 10:10</td>", "month-day date"),
        ('<time datetime="2026-11-30T10:10:00Z">2026-11-30 11:10</time>', "neither labelled"),
        ('<time datetime="2026-11-30T10:10:00Z">11:10</time>', "neither labelled"),
    ],
)
def test_the_page_check_catches_what_it_must(html, problem):
    assert any(problem in p for p in _problems(html)), _problems(html)


def test_the_page_check_passes_labelled_times():
    html = (
        '<p>times in Europe/Berlin</p><time datetime="2026-11-30T10:10:00Z">2026-11-30 11:10 CET</time>'
        '<time datetime="2026-11-30T10:10:00Z">11:10</time><time datetime="2026-11-30">2026-11-30</time>'
        '<input type="time" value="14:30">'
        '<time datetime="2026-11-30T13:30:00Z">2026-11-30 14:30 CET</time>-<time datetime="2026-11-30T13:45:00Z">14:45</time>'
    )
    assert _problems(html) == []
