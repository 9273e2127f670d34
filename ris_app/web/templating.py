"""What every page's template may use: the logged-in user, site times, readable names.

Times on pages follow one rule (docs/configuration.md, "Times on pages"): every time is a
<time> element whose datetime attribute is the UTC instant and whose text is the site's
wall-clock time, YYYY-MM-DD HH:MM and the zone's abbreviation ("2026-11-30 11:10 CET").
A column or grid that shows only the time of day names the zone in its header or on the
page instead ("Time (Europe/Berlin)")."""

from __future__ import annotations

from datetime import date, datetime

from flask import Flask
from markupsafe import Markup

from ris_app.clock import as_utc, site_text, site_zone, to_site, zone_name
from ris_app.scheduling.names import readable
from ris_app.web.auth import current_user
from ris_app.web.navigation import home_endpoint, nav_for

NONE = "—"


def style_of(style: str) -> str:
    """A style name (clock.TIME_STYLES), or a strftime pattern as older templates pass it,
    read as the style it asks for: the format is the site's one, never the caller's, so
    "%m-%d %H:%M" still shows the full date."""
    if "%" not in style:
        return style
    if "%S" in style:
        return "seconds" if ("%d" in style or "%Y" in style) else "time_seconds"
    if "%H" in style:
        return "minutes" if ("%d" in style or "%Y" in style) else "time"
    return "date"


def _instant(value: datetime | str) -> datetime:
    # An ISO 8601 string with an offset (an API answer shown on a page) is read first.
    return as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def time_text(value: datetime | str | None, style: str = "minutes") -> str:
    """The plain text of a time (for attributes, links and form values): "—" for none."""
    if value is None or value == "":
        return NONE
    return site_text(_instant(value), style_of(style))


def time_tag(value: datetime | str | None, style: str = "minutes") -> Markup:
    """A time for a page: <time datetime="2026-11-30T10:10:00Z">2026-11-30 11:10 CET</time>. Browsers and tests read the instant from the attribute."""
    if value is None or value == "":
        return Markup(NONE)
    style = style_of(style)
    at = _instant(value)
    if style == "date":
        return Markup('<time datetime="{0}">{0}</time>').format(to_site(at).date().isoformat())
    stamp = at.isoformat(timespec="seconds").replace("+00:00", "Z")
    return Markup('<time datetime="{}">{}</time>').format(stamp, site_text(at, style))


def day_text(day: date) -> str:
    """A calendar day in headings and day links: "Mon 2026-11-30" (ISO, unambiguous)."""
    return day.strftime("%a %Y-%m-%d")


def register_template_helpers(app: Flask) -> None:
    @app.context_processor
    def _inject():
        # zone_label: the site's zone as pages name it next to the times they show
        # nav: the bar's groups as this user sees them (web/navigation.py)
        user = current_user()
        return {
            "user": user,
            "zone_label": zone_name(site_zone()),
            "nav": nav_for(user) if user else [],
            "home": home_endpoint(user) if user else "auth.login",
        }

    # Times are stored in UTC (clock.utcnow); people read them in the site's wall-clock
    # time (ORTHANC_RIS_TIMEZONE), scheduled starts and event times alike.
    app.add_template_filter(time_tag, "local")
    app.add_template_filter(time_text, "local_text")
    app.add_template_filter(day_text, "iso_day")

    @app.template_filter("person_name")
    def person_name(value: str | None) -> str:
        """A DICOM PN as a scanner sent it ("Family^Given^Middle=ideographic...") for reading."""
        return readable(value) or "—"
