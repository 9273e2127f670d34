"""What every page's template may use: the logged-in user, site times, readable names."""

from __future__ import annotations

from datetime import datetime

from flask import Flask

from ris_app.clock import site_zone, to_site, zone_name
from ris_app.scheduling.names import readable
from ris_app.web.auth import current_user
from ris_app.web.navigation import home_endpoint, nav_for


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

    @app.template_filter("local")
    def local_time(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        """Times are stored in UTC (clock.utcnow); people read them in the site's wall-clock
        time (ORTHANC_RIS_TIMEZONE), scheduled starts and event times alike. An ISO 8601
        string with an offset (an API answer shown on a page) is read first."""
        if value is None or value == "":
            return "—"
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return to_site(value).strftime(fmt)

    @app.template_filter("person_name")
    def person_name(value: str | None) -> str:
        """A DICOM PN as a scanner sent it ("Family^Given^Middle=ideographic...") for reading."""
        return readable(value) or "—"
