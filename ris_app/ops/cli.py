"""The `orthanc-ris` command."""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

import click

from ris_app.config import SETTINGS, Config, redact
from ris_app.model.users import API_ROLES, ROLES
from ris_app.ops.logging_setup import setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """orthanc-ris: a radiology information system on top of Orthanc.

    Settings come from ORTHANC_RIS_* environment variables: `orthanc-ris settings` lists them.
    """
    setup_logging()


def _session_factory(cfg: Config):
    from ris_app.db import make_engine, make_sessionmaker

    return make_sessionmaker(make_engine(cfg.database_url))


@main.command()
def migrate() -> None:
    """Create or upgrade the RIS database to the current schema."""
    from ris_app import clock
    from ris_app.ops import migrate as m

    cfg = Config.from_env()
    m.upgrade(cfg.database_url, site_zone=clock.site_zone(cfg))
    _seed(cfg)
    click.echo("database is up to date")


def _seed(cfg: Config) -> None:
    from ris_app.db import transaction
    from ris_app.scheduling.catalog import seed_default_catalog

    with transaction(_session_factory(cfg)) as s:
        added = seed_default_catalog(s)
    if added:
        click.echo(f"added {added} default procedures to the empty catalog")


@main.command()
@click.option("--start-timeout", default=90.0, show_default=True, help="Seconds each part may take to become healthy.")
def up(start_timeout: float) -> None:
    """Migrate, then start and supervise Orthanc (with our plugin) and the RIS."""
    from ris_app import clock
    from ris_app.billing.settings import BillingSettings
    from ris_app.hl7.settings import Hl7Settings
    from ris_app.ops import migrate as m
    from ris_app.ops.pidfile import AlreadyRunning, PidFile, end_stale
    from ris_app.ops.supervisor import run
    from ris_app.orthanc.config import render

    cfg = Config.from_env()
    try:
        Hl7Settings.from_env()  # every part reads these: refuse bad ones before starting any
        BillingSettings.from_env()  # so do these (every part that moves steps charges)
        render(cfg)  # refuses Orthanc's remote access without authentication
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    cfg.home.mkdir(parents=True, exist_ok=True)
    try:
        pids = PidFile.claim(cfg.home)
    except AlreadyRunning as exc:
        raise click.ClickException(str(exc)) from None
    with pids:  # removed on every orderly exit; a killed supervisor leaves it for the next `up`
        end_stale(pids.earlier, say=click.echo)
        m.upgrade(cfg.database_url, site_zone=clock.site_zone(cfg))
        _seed(cfg)
        code = run(cfg, start_timeout=start_timeout, pids=pids)
    sys.exit(code)


@main.command("hl7-listener")
def hl7_listener() -> None:
    """Run the HL7 MLLP listener and outbound sender (`up` starts it; see docs/hl7-conformance.md)."""
    from ris_app.hl7.listener import run

    sys.exit(run(Config.from_env()))


@main.command("create-user")
@click.argument("username")
@click.option("--role", type=click.Choice(list(ROLES)), required=True)
@click.option("--full-name", default="")
@click.option(
    "--password-env", default="", help="Read the password from this environment variable instead of a prompt."
)
def create_user_cmd(username: str, role: str, full_name: str, password_env: str) -> None:
    """Create a user who can log in to the pages (or reset an existing one's password)."""
    from ris_app.db import transaction
    from ris_app.web.auth import create_user

    cfg = Config.from_env()
    if password_env:
        password = os.environ.get(password_env, "")
    else:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Repeat: "):
            raise click.ClickException("the passwords differ")
    try:
        with transaction(_session_factory(cfg)) as s:
            create_user(s, username, password, role, full_name)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"user {username} ({role}) saved")


@main.command("create-token")
@click.argument("name")
@click.option("--role", type=click.Choice(list(API_ROLES)), required=True)
def create_token_cmd(name: str, role: str) -> None:
    """Create a named REST API token with ROLE and print its secret (shown this once only)."""
    from ris_app.db import transaction
    from ris_app.web.tokens import create_token

    cfg = Config.from_env()
    try:
        with transaction(_session_factory(cfg)) as s:
            secret = create_token(s, name, role)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"token {name} ({role}) created; its secret, shown only now:", err=True)
    click.echo(secret)


@main.command("import-prices")
@click.argument("csv_file", type=click.File("r", encoding="utf-8"))
def import_prices_cmd(csv_file) -> None:
    """Import a price list: CSV with procedure,kind,code,amount,valid_from[,description,
    code_system,quantity,performed_code] (docs/billing.md)."""
    from ris_app.billing.catalog import import_prices
    from ris_app.db import transaction
    from ris_app.errors import DomainError

    cfg = Config.from_env()
    try:
        with transaction(_session_factory(cfg)) as s:
            count = import_prices(s, csv_file.read(), "cli")
    except DomainError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{count} price(s) imported")


@main.command("list-tokens")
def list_tokens_cmd() -> None:
    """List the named REST API tokens (never their secrets)."""
    from ris_app.web.tokens import list_tokens

    cfg = Config.from_env()
    with _session_factory(cfg)() as s:
        rows = list_tokens(s)
    if not rows:
        click.echo("no named tokens (ORTHANC_RIS_API_TOKEN is the admin token)")
    for t in rows:
        used = t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "never"
        state = f"revoked {t.revoked_at.isoformat(timespec='seconds')}" if t.revoked_at else "active"
        click.echo(
            f"{t.name}\t{t.role}\tcreated {t.created_at.isoformat(timespec='seconds')}\tlast used {used}\t{state}"
        )


@main.command("revoke-token")
@click.argument("name")
def revoke_token_cmd(name: str) -> None:
    """Revoke the REST API token NAME: its next request gets 401."""
    from ris_app.db import transaction
    from ris_app.web.tokens import revoke_token

    cfg = Config.from_env()
    with transaction(_session_factory(cfg)) as s:
        done = revoke_token(s, name)
    if not done:
        raise click.ClickException(f"no active token named {name!r}")
    click.echo(f"token {name} revoked")


@main.command("import-worklists")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
def import_worklists_cmd(folder: Path) -> None:
    """Import every worklist item (.wl / DICOM file, DICOM JSON) under FOLDER as scheduled
    steps, keeping every attribute. Bad files are reported and skipped."""
    from ris_app.worklist.importer import import_folder

    cfg = Config.from_env()
    session = _session_factory(cfg)()
    try:
        outcomes = import_folder(session, folder, accession_prefix=cfg.accession_prefix, uid_root=cfg.uid_root)
    finally:
        session.close()
    for o in outcomes:
        if o.ok:
            click.echo(f"imported {o.source}: accession {o.accession_number}, step {o.sps_id}")
        else:
            click.echo(f"skipped  {o.source}: {o.error}", err=True)
        for w in o.warnings:
            click.echo(f"  warning: {w}", err=True)
    good = sum(o.ok for o in outcomes)
    click.echo(f"{good} imported, {len(outcomes) - good} skipped")
    if good < len(outcomes):
        sys.exit(1)


@main.command()
def settings() -> None:
    """List every setting with its current value (secrets hidden)."""
    for s in SETTINGS:
        click.echo(f"{s.env}={redact(s.env, os.environ.get(s.env, s.default))}\n    {s.help}")


@main.command("orthanc-config")
def orthanc_config_cmd() -> None:
    """Print the Orthanc configuration `up` would generate (token and passwords hidden)."""
    from ris_app.orthanc.config import render

    conf = render(Config.from_env())
    conf["OrthancRIS"]["ApiToken"] = "***"
    if "PostgreSQL" in conf:  # the index URI carries the database password
        conf["PostgreSQL"]["ConnectionUri"] = redact("ConnectionUri", conf["PostgreSQL"]["ConnectionUri"])
    conf["RegisteredUsers"] = {user: "***" for user in conf.get("RegisteredUsers", {})}
    click.echo(json.dumps(conf, indent=2))


@main.command("mpps-scp")
def mpps_scp() -> None:
    """Run the MPPS SCP (N-CREATE/N-SET from modalities) in the foreground."""
    from ris_app import clock
    from ris_app.tracking.mpps import serve

    cfg = Config.from_env()
    clock.set_site_zone(clock.site_zone(cfg))
    serve(cfg.database_url, cfg.mpps_host, cfg.mpps_port, cfg.mpps_aet, allow_unknown=cfg.dicom_allow_unknown_ae)


@main.command("sync-worker")
@click.option("--once", is_flag=True, help="Apply pending Orthanc changes and reconcile once, then exit.")
def sync_worker(once: bool) -> None:
    """Apply queued changes to Orthanc and reconcile Orthanc's studies with the RIS."""
    from ris_app import clock
    from ris_app.tracking.worker import run

    cfg = Config.from_env()
    clock.set_site_zone(clock.site_zone(cfg))  # the report PDFs and instances show the site's time
    run(cfg, once=once)


@main.group()
def audit() -> None:
    """The audit trail: seal (chain) new events, verify the chain."""


@audit.command("seal")
def audit_seal() -> None:
    """Chain the events written since the last seal (the sync worker does it every second)."""
    from ris_app.audit.chain import seal

    click.echo(f"sealed {seal(_session_factory(Config.from_env()))} event(s)")


@audit.command("verify")
def audit_verify() -> None:
    """Recompute the hash chain; exit 1 naming the first rows changed, removed or inserted."""
    from ris_app.audit.chain import seal, verify

    sessions = _session_factory(Config.from_env())
    seal(sessions)
    verdict = verify(sessions)
    for problem in verdict.broken:
        click.echo(f"BROKEN: {problem}", err=True)
    click.echo(
        f"{verdict.checked} event(s) checked, {verdict.unsealed} not sealed yet: {'OK' if verdict.ok else 'FAILED'}"
    )
    if not verdict.ok:
        raise SystemExit(1)


@main.command("demo-data")
@click.option(
    "--days", default=90, show_default=True, type=click.IntRange(1, 3650), help="Site days of history, up to yesterday."
)
@click.option(
    "--scale", default=1.0, show_default=True, type=click.FloatRange(0.01, 1000), help="Multiplies the daily volumes."
)
@click.option("--seed", default=13, show_default=True, help="The same seed gives the same history.")
@click.option("--force", is_flag=True, help="Add demo history to a database that already holds orders.")
def demo_data(days: int, scale: float, seed: int, force: bool) -> None:
    """Fill the database with a plausible history (orders, bookings, no-shows, exams,
    reports) so the analytics dashboards show something; synthetic patients only."""
    from ris_app import clock
    from ris_app.analytics.demo import Refused, generate
    from ris_app.db import make_engine

    cfg = Config.from_env()
    clock.set_site_zone(clock.site_zone(cfg))
    engine = make_engine(cfg.database_url)
    try:
        with engine.begin() as conn:
            summary = generate(conn, days, scale=scale, seed=seed, force=force, progress=click.echo)
    except Refused as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    click.echo(
        f"{summary.steps} steps over {summary.days} days: {summary.no_shows} no-shows, "
        f"{summary.cancelled} cancelled, {summary.reports} reports"
    )


if __name__ == "__main__":  # pragma: no cover
    main()
