"""Database migrations (Alembic), run by `orthanc-ris migrate` and `orthanc-ris up`."""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str, site_zone: tzinfo | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = url
    if site_zone is not None:  # 0006 converts scheduled times from this zone's wall time to UTC
        cfg.attributes["site_zone"] = site_zone
    return cfg


def upgrade(url: str, revision: str = "head", site_zone: tzinfo | None = None) -> None:
    """Bring the database at `url` to `revision` (creates it for SQLite). `site_zone`:
    the department's zone (default: this process's, ris_app.clock.site_zone)."""
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url, site_zone), revision)


def downgrade(url: str, revision: str, site_zone: tzinfo | None = None) -> None:
    """Take the database at `url` back to `revision` (tests of the migrations)."""
    command.downgrade(alembic_config(url, site_zone), revision)


def revision(url: str, message: str) -> None:
    command.revision(alembic_config(url), message=message, autogenerate=True)
