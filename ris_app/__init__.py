"""orthanc-ris: the RIS (Flask + SQLAlchemy) and its glue to Orthanc."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from flask import Flask, g, request

from ris_app import clock
from ris_app.config import Config
from ris_app.db import make_engine, make_sessionmaker

__version__ = "0.1.0"


def create_app(config: Config | None = None) -> Flask:
    """Application factory: one app per configuration (tests make their own)."""
    config = config or Config.from_env()
    app = Flask(__name__)
    from ris_app.web.validation import BoundedIntConverter

    app.url_map.converters["int"] = BoundedIntConverter  # before any route is added
    app.config["RIS"] = config
    app.config["SECRET_KEY"] = config.secret_key
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    # Logins are held server side (web/login_guard.py); the cookie keeps its login-time
    # signature, so itsdangerous also refuses one older than the absolute lifetime.
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=config.session_max_hours)
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024
    engine = make_engine(config.database_url)
    app.extensions["ris_engine"] = engine
    app.extensions["ris_sessions"] = make_sessionmaker(engine)
    logging.getLogger("ris_app").setLevel(config.log_level)
    # Pages, API, DICOM and HL7 built in this process speak the configured site's time.
    clock.set_site_zone(clock.site_zone(config))

    from ris_app.ops.health import bp as health_bp
    from ris_app.reporting.api import bp as report_api_bp
    from ris_app.reporting.pages import bp as reading_bp
    from ris_app.scheduling.api import bp as api_bp
    from ris_app.scheduling.pages import bp as pages_bp
    from ris_app.tracking.api import bp as tracking_api_bp
    from ris_app.tracking.pages import bp as tracking_pages_bp
    from ris_app.web.auth import bp as auth_bp
    from ris_app.web.errors import register_error_handlers
    from ris_app.web.templating import register_template_helpers
    from ris_app.worklist.api import bp as worklist_admin_bp

    register_error_handlers(app)
    register_template_helpers(app)
    app.register_blueprint(health_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(pages_bp)
    from ris_app.scheduling.order_pages import bp as order_pages_bp

    app.register_blueprint(order_pages_bp)  # the order page's edit and cancel-with-reason
    app.register_blueprint(reading_bp)
    app.register_blueprint(report_api_bp)
    from ris_app.hl7.views import api as hl7_api_bp
    from ris_app.hl7.views import pages as hl7_pages_bp

    app.register_blueprint(hl7_api_bp)
    app.register_blueprint(hl7_pages_bp)
    app.register_blueprint(worklist_admin_bp)
    app.register_blueprint(tracking_api_bp)
    app.register_blueprint(tracking_pages_bp)
    from ris_app.web.openapi import bp as openapi_bp
    from ris_app.web.validation import install as install_input_limits

    app.register_blueprint(openapi_bp)
    from ris_app.audit.api import bp as audit_api_bp
    from ris_app.audit.pages import bp as audit_pages_bp

    app.register_blueprint(audit_api_bp)
    app.register_blueprint(audit_pages_bp)
    from ris_app.registration.api import bp as registration_api_bp
    from ris_app.registration.pages import bp as registration_pages_bp

    app.register_blueprint(registration_api_bp)
    app.register_blueprint(registration_pages_bp)
    from ris_app.frontdesk.api import bp as frontdesk_api_bp

    app.register_blueprint(frontdesk_api_bp)
    from ris_app.frontdesk.pages import bp as calendar_bp

    app.register_blueprint(calendar_bp)  # the calendar, the waiting list, moving an exam
    from ris_app.frontdesk.clash_pages import bp as clash_pages_bp
    from ris_app.frontdesk.setup_pages import bp as setup_pages_bp

    app.register_blueprint(setup_pages_bp)
    app.register_blueprint(clash_pages_bp)
    from ris_app.reminders import pages as reminder_pages
    from ris_app.reminders.plan import set_lead_hours

    reminder_pages.register(app)
    from ris_app.billing.api import bp as billing_api_bp
    from ris_app.billing.pages import bp as billing_pages_bp

    app.register_blueprint(billing_api_bp)
    app.register_blueprint(billing_pages_bp)
    from ris_app.analytics.api import bp as analytics_api_bp
    from ris_app.analytics.pages import bp as analytics_pages_bp

    app.register_blueprint(analytics_api_bp)
    app.register_blueprint(analytics_pages_bp)
    set_lead_hours(config.reminder_lead_hours)  # the reminders a booking here plans

    install_input_limits(app)

    from ris_app.web.users import bp as users_bp

    app.register_blueprint(users_bp)
    from ris_app.web.access import install as install_access_rules

    install_access_rules(app)  # a route that declares no rule is refused

    from ris_app.web.audit import install as install_audit

    install_audit(app)  # every read and write of patient data leaves an audit event

    access = logging.getLogger("ris_app.access")

    @app.before_request
    def _start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def _access_log(response):
        # The route's pattern, never the concrete path: paths hold MRNs and accession
        # numbers, which stay out of logs above DEBUG.
        rule = request.url_rule.rule if request.url_rule is not None else "(no route)"
        access.info(
            "%s %s %d %.1f ms",
            request.method,
            rule,
            response.status_code,
            (time.perf_counter() - g.get("started", time.perf_counter())) * 1000,
        )
        access.debug("path %s", request.path)
        return response

    @app.teardown_appcontext
    def _close_session(_exc):
        session = g.pop("db", None)
        if session is not None:
            session.close()

    return app
