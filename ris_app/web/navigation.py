"""The navigation bar: the pages people open from the top of every page, grouped by task.

Who may open a page is decided once, by the roles on its view (`auth.login_required`,
listed for operators in docs/roles.md); the bar shows a user the entries their role may
open and nothing else, so the bar and the route table cannot disagree. A group is shown as
plain links when it is the user's own work ("home" for their role) or holds a single link,
else as a menu (<details>, no JavaScript) so that every role's bar fits one line at 1280 px.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, request, url_for

from ris_app.web.auth import has_role


@dataclass(frozen=True)
class Group:
    label: str
    home: tuple[str, ...]  # roles for whom this group is their daily work: shown open
    links: tuple[tuple[str, str], ...]  # (endpoint, label)


NAV: tuple[Group, ...] = (
    Group(
        "Today",
        ("clerk", "technologist", "radiologist", "admin"),
        (("pages.today", "Schedule"), ("pages.studies", "Studies")),
    ),
    Group(
        "Front desk",
        ("clerk",),
        (
            ("patients.patients_page", "Patients"),
            ("calendar.day_page", "Calendar"),
            ("pages.new_patient", "Register patient"),
            ("pages.new_order", "New order"),
            ("clashes.clashes_page", "Clashes"),
            ("reminders.reminders_page", "Messages"),
        ),
    ),
    Group(
        "Images",
        ("technologist",),
        (
            ("tracking.inbox", "Inbox"),
            ("worklist_admin.worklist_queries_page", "Worklist queries"),
            ("tracking.sync_page", "Sync"),
        ),
    ),
    Group("Reading", ("radiologist",), (("reading.worklist", "Reading"),)),
    Group("Billing", ("billing",), (("billing.billing_page", "Billing"),)),
    Group(
        "Admin",
        (),
        (
            ("users.users_page", "Users"),
            ("setup.stations", "Setup"),
            ("hl7_pages.messages_page", "HL7"),
            ("tracking.merge_page", "Merge patients"),
            ("audit.audit_page", "Audit"),
            ("analytics.index", "Analytics"),
        ),
    ),
)

# Pages without parameters that are reached from a page of the bar rather than from the
# bar itself (tests/test_navigation.py: every other page a role may open is in its bar).
REACHED_FROM: dict[str, str] = {
    "calendar.week_page": "calendar.day_page",
    "calendar.waiting_page": "calendar.day_page",
    "setup.catalog": "setup.stations",
    "patients.lookup": "patients.patients_page",  # the type-ahead's JSON, used by the page's script
}


@dataclass(frozen=True)
class Shown:
    label: str
    menu: bool  # a <details> menu rather than plain links
    current: bool  # holds the page being shown
    links: list[tuple[str, str, bool]]  # (url, label, is the current page)


def _may(user, endpoint: str) -> bool:
    view = current_app.view_functions.get(endpoint)
    return view is not None and has_role(user, getattr(view, "roles", ()))


def nav_for(user) -> list[Shown]:
    """The groups of the bar as `user` sees them (empty groups left out)."""
    shown = []
    for group in NAV:
        links = [(url_for(e), label, request.endpoint == e) for e, label in group.links if _may(user, e)]
        if links:
            menu = user.role not in group.home and len(links) > 1
            shown.append(Shown(group.label, menu, any(c for _, _, c in links), links))
    return shown


def home_endpoint(user) -> str:
    """Where `user` lands after logging in: the first page of their bar."""
    for group in NAV:
        for endpoint, _ in group.links:
            if _may(user, endpoint):
                return endpoint
    return "pages.today"
