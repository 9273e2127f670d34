"""Which station gets an order that names none: the site's rules, then the station table.

Rules come from ORTHANC_RIS_HL7_STATION_RULES, e.g.
    procedure:MRKNEE=MR2;modality:CT=CT1\\CT2
A procedure rule wins over a modality rule. Without a rule, every station of the order's
modality in the station table is scheduled (a multi-valued ScheduledStationAETitle, so
each of those scanners finds the step); with none, the AE title stays empty, and a scanner
that queries without an AE title still finds it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ris_app.hl7.settings import parse_rules
from ris_app.model import Station


def pick_station(session: Session, rules: str, *, modality: str, procedure_code: str) -> str:
    """The ScheduledStationAETitle value (may be several, backslash-separated) for an order."""
    table = parse_rules(rules)
    if procedure_code and ("procedure", procedure_code.upper()) in table:
        return table[("procedure", procedure_code.upper())]
    if ("modality", modality.upper()) in table:
        return table[("modality", modality.upper())]
    aets = session.scalars(select(Station.aet).where(Station.modality == modality.upper()).order_by(Station.aet)).all()
    return "\\".join(aets)[:128]
