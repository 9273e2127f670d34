"""Billing settings, read from the ORTHANC_RIS_BILLING_* variables named in
ris_app.config.SETTINGS (once per process; tests set their own)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ris_app.config import SETTINGS

_DEFAULTS = {s.env: s.default for s in SETTINGS}
DISCONTINUED_RULES = ("none", "partial")
SEND_MODES = ("review", "auto")


@dataclass(frozen=True)
class BillingSettings:
    code_system: str = "CPT"
    discontinued: str = "none"  # none | partial
    send: str = "review"  # review | auto

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> BillingSettings:
        env = dict(os.environ if env is None else env)

        def get(name: str) -> str:
            return (env.get(name) or _DEFAULTS[name]).strip()

        discontinued = get("ORTHANC_RIS_BILLING_DISCONTINUED").lower()
        if discontinued not in DISCONTINUED_RULES:
            raise ValueError("ORTHANC_RIS_BILLING_DISCONTINUED: none or partial")
        send = get("ORTHANC_RIS_BILLING_SEND").lower()
        if send not in SEND_MODES:
            raise ValueError("ORTHANC_RIS_BILLING_SEND: review or auto")
        return cls(code_system=get("ORTHANC_RIS_BILLING_CODE_SYSTEM")[:16], discontinued=discontinued, send=send)


_settings: BillingSettings | None = None


def current() -> BillingSettings:
    global _settings
    if _settings is None:
        _settings = BillingSettings.from_env()
    return _settings


def set_settings(settings: BillingSettings | None) -> None:
    """Use these settings in this process (tests; None re-reads the environment)."""
    global _settings
    _settings = settings
