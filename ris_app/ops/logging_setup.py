"""Logging for every process: one line per event, no patient data above DEBUG."""

from __future__ import annotations

import logging
import os


def setup_logging(level: str | None = None, part: str = "ris") -> None:
    level = (level or os.environ.get("ORTHANC_RIS_LOG_LEVEL") or "INFO").upper()
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s {part} %(levelname)s %(name)s: %(message)s",
    )
