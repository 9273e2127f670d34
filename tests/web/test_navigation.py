"""The bar shows each role exactly the pages it may open: every link answers 200, and every
page without parameters the role may open is in the bar or reached from a page that is
(navigation.REACHED_FROM). The roles are also the operators' table in docs/roles.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ris_app.model import ROLES
from ris_app.web.access import access_table
from ris_app.web.navigation import NAV, REACHED_FROM
from tests.fixtures.web import login

DOCS = Path(__file__).resolve().parents[2] / "docs" / "roles.md"


def _openable(app, role: str) -> set[str]:
    """Parameterless GET pages (not files) that `role` may open."""
    table = access_table(app)
    return {
        r.endpoint
        for r in app.url_map.iter_rules()
        if table[r.endpoint].kind == "page"
        and "GET" in r.methods
        and not r.arguments
        and not r.rule.endswith((".csv", ".pdf"))
        and role in table[r.endpoint].roles
    }


@pytest.mark.parametrize("role", ROLES)
def test_the_bar_shows_each_role_the_pages_it_may_open(app, client, role):
    login(app, client, role)
    home = client.get("/login")  # a logged-in user is sent to their own first page
    assert home.status_code == 302
    page = client.get(home.headers["Location"], follow_redirects=True)  # a manager's /analytics: its first theme
    assert page.status_code == 200
    nav = re.search(r"<nav[^>]*>(.*?)</nav>", page.text, re.S).group(1)
    urls = set(re.findall(r'href="([^"]+)"', nav))
    by_url = {}
    with app.test_request_context():
        from flask import url_for

        for group in NAV:
            for endpoint, _ in group.links:
                by_url[url_for(endpoint)] = endpoint
    shown = {by_url[u] for u in urls}
    for url in urls:
        # 302: a page that sends on to its first view (/analytics to its first theme)
        assert client.get(url).status_code in (200, 302), f"{role} sees {url} in the bar but may not open it"
    expected = {e for e in _openable(app, role) if REACHED_FROM.get(e) not in shown}
    assert shown == expected


def test_the_roles_table_in_the_docs_is_the_route_table(app):
    """docs/roles.md lists every page (GET) with the roles that may open it."""
    rows = {}
    for line in DOCS.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 1 + len(ROLES):
            rows[cells[0].strip("`")] = {r for r, c in zip(ROLES, cells[1:], strict=True) if c == "yes"}
    table = access_table(app)
    pages = {
        r.rule: set(table[r.endpoint].roles)
        for r in app.url_map.iter_rules()
        if table[r.endpoint].kind == "page" and "GET" in r.methods
    }
    assert rows == pages
