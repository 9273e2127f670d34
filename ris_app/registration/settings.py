"""The settings registration reads in every process (web, HL7 listener): from the
environment, with the defaults of ris_app.config.SETTINGS; tests set their own."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ris_app.config import SETTINGS

_DEFAULTS = {s.env: s.default for s in SETTINGS}


def _codes(value: str) -> tuple[str, ...]:
    return tuple(c.strip().upper() for c in value.split(",") if c.strip())


@dataclass(frozen=True)
class RegistrationSettings:
    egfr_min: float = 30.0
    egfr_max_age_days: int = 90
    mrn_type_codes: tuple[str, ...] = ("MR",)
    mrn_authority: str = ""
    creatinine_codes: tuple[str, ...] = ("2160-0",)
    egfr_codes: tuple[str, ...] = ("33914-3", "62238-1", "98979-8")
    mrn_case_insensitive: bool = True  # p2001 and P2001 are one patient

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RegistrationSettings:
        env = dict(os.environ if env is None else env)

        def get(name: str) -> str:
            return (env.get(name) or _DEFAULTS[name]).strip()

        try:
            egfr_min = float(get("ORTHANC_RIS_SAFETY_EGFR_MIN"))
            max_age = int(get("ORTHANC_RIS_SAFETY_EGFR_MAX_AGE_DAYS"))
        except ValueError:
            raise ValueError("ORTHANC_RIS_SAFETY_EGFR_MIN is a number, _MAX_AGE_DAYS a whole number of days") from None
        return cls(
            egfr_min=egfr_min,
            egfr_max_age_days=max_age,
            mrn_type_codes=_codes(get("ORTHANC_RIS_HL7_MRN_TYPE_CODES")) or ("MR",),
            mrn_authority=get("ORTHANC_RIS_HL7_MRN_AUTHORITY"),
            creatinine_codes=_codes(get("ORTHANC_RIS_HL7_CREATININE_CODES")),
            egfr_codes=_codes(get("ORTHANC_RIS_HL7_EGFR_CODES")),
            mrn_case_insensitive=get("ORTHANC_RIS_MRN_CASE_INSENSITIVE").lower() in ("1", "true", "yes"),
        )


_current: RegistrationSettings | None = None


def use(settings: RegistrationSettings | None) -> None:
    """Use these settings in this process (tests); None reads the environment again."""
    global _current
    _current = settings


def current() -> RegistrationSettings:
    global _current
    if _current is None:
        _current = RegistrationSettings.from_env()
    return _current
