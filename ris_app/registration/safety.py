"""The safety rules checked before an exam: one table, evaluated when an order is placed,
when its step is booked or moved, and when the patient checks in.

Each rule names the exams it applies to (a predicate of APPLIES), the condition of the
patient's record that fires it (a function of CONDITIONS, returning the values of its
message or None), whether it blocks or warns, and its message. A block refuses the API
and the pages (Unsafe, 422) and holds an order the EHR sent (HL7 cannot be refused for
a clinical reason: the desk resolves it). Only a radiologist lifts a block, with a
reason; the override names the rules it covers, so a new block (a newer eGFR, say)
needs its own. The outcome of the last check is kept on the step (`step.safety`): the
order page, the reading worklist and the worklist's MedicalAlerts show it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from sqlalchemy.orm import object_session

from ris_app.clock import to_site, utcnow
from ris_app.errors import Conflict, Invalid, Unsafe
from ris_app.model import Patient, ScheduledProcedureStep, StepSafety
from ris_app.registration.record import latest_lab
from ris_app.registration.settings import RegistrationSettings, current

log = logging.getLogger(__name__)

BLOCK, WARN = "block", "warn"
# Modalities that give ionising radiation (DICOM defined terms).
IONISING = frozenset({"CT", "CR", "DX", "MG", "RF", "XA", "NM", "PT", "IO", "PX", "RG", "BMD", "DG"})


@dataclass(frozen=True)
class Exam:
    """What the rules look at: the exam and the patient."""

    modality: str
    contrast: str  # the procedure's contrast class, "" none
    patient: Patient
    now: datetime
    settings: RegistrationSettings


@dataclass(frozen=True)
class Rule:
    id: str
    applies_to: str  # a key of APPLIES
    condition: str  # a key of CONDITIONS
    action: str  # block | warn
    message: str  # str.format with the condition's values


APPLIES: dict[str, Callable[[Exam], bool]] = {
    "contrast": lambda e: bool(e.contrast),
    "mr": lambda e: e.modality == "MR",
    "ionising": lambda e: e.modality in IONISING,
}


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _recent_egfr(e: Exam):
    r = latest_lab(e.patient, "egfr")
    if r is None or r.observed_at < e.now - timedelta(days=e.settings.egfr_max_age_days):
        return None
    return r


def _egfr_low(e: Exam) -> dict | None:
    r = _recent_egfr(e)
    if r is None or r.value >= e.settings.egfr_min:
        return None
    return {"egfr": _number(r.value), "on": f"{to_site(r.observed_at):%Y-%m-%d}", "min": _number(e.settings.egfr_min)}


def _egfr_missing(e: Exam) -> dict | None:
    return {"days": e.settings.egfr_max_age_days} if _recent_egfr(e) is None else None


def _contrast_allergy(e: Exam) -> dict | None:
    agents = [a.agent for a in e.patient.allergies if a.agent_class in (e.contrast, "contrast")]  # type: ignore[attr-defined]
    return {"agents": ", ".join(agents), "contrast": e.contrast} if agents else None


def _implants(e: Exam, labels: tuple[str, ...]) -> dict | None:
    found = [i.description for i in e.patient.implants if i.mr_safety in labels]  # type: ignore[attr-defined]
    return {"implants": ", ".join(found)} if found else None


def _pregnancy(e: Exam, status: str) -> dict | None:
    rec = e.patient.record  # type: ignore[attr-defined]
    return {} if rec is not None and rec.pregnancy_status == status else None


CONDITIONS: dict[str, Callable[[Exam], dict | None]] = {
    "egfr_below_minimum": _egfr_low,
    "egfr_missing_or_old": _egfr_missing,
    "contrast_allergy": _contrast_allergy,
    "implant_not_mr_conditional": lambda e: _implants(e, ("unsafe", "unknown")),
    "implant_mr_conditional": lambda e: _implants(e, ("conditional",)),
    "pregnant": lambda e: _pregnancy(e, "pregnant"),
    "possibly_pregnant": lambda e: _pregnancy(e, "possibly_pregnant"),
}

RULES: tuple[Rule, ...] = (
    Rule(
        "contrast-egfr",
        "contrast",
        "egfr_below_minimum",
        BLOCK,
        "eGFR {egfr} ({on}) is below {min}: no {contrast_word} contrast without a radiologist",
    ),
    Rule(
        "contrast-egfr-missing",
        "contrast",
        "egfr_missing_or_old",
        WARN,
        "no eGFR within {days} days: check kidney function before contrast",
    ),
    Rule(
        "contrast-allergy",
        "contrast",
        "contrast_allergy",
        WARN,
        "previous reaction to contrast ({agents}): premedication per protocol",
    ),
    Rule("mr-implant", "mr", "implant_not_mr_conditional", BLOCK, "implant not MR conditional: {implants}"),
    Rule(
        "mr-implant-conditional",
        "mr",
        "implant_mr_conditional",
        WARN,
        "MR conditional implant, follow its conditions: {implants}",
    ),
    Rule(
        "ionising-pregnant",
        "ionising",
        "pregnant",
        BLOCK,
        "patient is pregnant: ionising radiation needs a radiologist",
    ),
    Rule(
        "ionising-possibly-pregnant",
        "ionising",
        "possibly_pregnant",
        WARN,
        "patient may be pregnant: confirm before exposure",
    ),
)
BY_ID = {r.id: r for r in RULES}


class SafetyPolicy(Enum):
    """What a block does: REFUSE (API, pages) or HOLD (HL7: accepted, held for the desk)."""

    REFUSE = "refuse"
    HOLD = "hold"


def exam_of(step: ScheduledProcedureStep) -> Exam:
    rp = step.requested_procedure
    code = rp.procedure_code
    return Exam(
        modality=step.modality,
        contrast=code.contrast if code is not None else "",
        patient=rp.order.patient,
        now=utcnow(),
        settings=current(),
    )


def evaluate(exam: Exam) -> list[dict]:
    """The rules that fire for this exam: [{rule, action, message}], in table order."""
    out = []
    for rule in RULES:
        if not APPLIES[rule.applies_to](exam):
            continue
        values = CONDITIONS[rule.condition](exam)
        if values is None:
            continue
        message = rule.message.format(contrast_word=exam.contrast, **values)
        out.append({"rule": rule.id, "action": rule.action, "message": message})
    return out


def _new_safety(step: ScheduledProcedureStep) -> StepSafety:
    safety = StepSafety(
        step=step,
        findings=[],
        hold=False,
        hold_reason="",
        override_rules="",
        override_by="",
        override_reason="",
        checked_on="",
    )
    session = object_session(step)
    if session is not None:  # SQLAlchemy 2 does not cascade along the backref on its own
        session.add(safety)
    return safety


def check(step: ScheduledProcedureStep, event: str, policy: SafetyPolicy = SafetyPolicy.REFUSE) -> StepSafety | None:
    """Run the rules for `step` (event: order, book, arrive) and keep the outcome on it. A
    block not covered by an override raises Unsafe (REFUSE) or holds the step (HOLD);
    a step whose blocks are gone or overridden is released."""
    findings = evaluate(exam_of(step))
    if not findings and step.safety is None:  # type: ignore[attr-defined]
        return None  # nothing to keep: most steps never get a row
    safety = step.safety or _new_safety(step)  # type: ignore[attr-defined]
    overridden = set(filter(None, safety.override_rules.split(",")))
    for f in findings:
        f["overridden"] = f["action"] == BLOCK and f["rule"] in overridden
    blocks = [f["message"] for f in findings if f["action"] == BLOCK and not f["overridden"]]
    if blocks and policy is SafetyPolicy.REFUSE:
        raise Unsafe("; ".join(blocks), field="procedure_code", code="unsafe")
    safety.findings = findings
    safety.checked_at = utcnow()
    safety.checked_on = event
    safety.hold = bool(blocks)
    safety.hold_reason = "; ".join(blocks)[:512]
    if blocks:
        log.info("step %s held by safety rules (%s)", step.sps_id, event)
    return safety


def override(step: ScheduledProcedureStep, user: str, role: str, reason: str) -> StepSafety:
    """A radiologist lifts the blocks that fire now, with a reason (recorded: who, when,
    why, which rules). The step is released and the places that show it are told."""
    from ris_app.scheduling.orders import lock_step, step_changed  # scheduling imports this module

    if role != "radiologist":
        raise Unsafe("only a radiologist may override a safety block", field="role", code="override_forbidden")
    reason = (reason or "").strip()
    if not reason or len(reason) > 500:
        raise Invalid("a reason of 1 to 500 characters is required", field="reason")
    lock_step(step)
    blocks = sorted({f["rule"] for f in evaluate(exam_of(step)) if f["action"] == BLOCK})
    if not blocks:
        raise Conflict("no safety rule blocks this exam", field="reason", code="nothing_to_override")
    safety = step.safety or _new_safety(step)  # type: ignore[attr-defined]
    safety.override_rules = ",".join(blocks)
    safety.override_by = user[:64]
    safety.override_at = utcnow()
    safety.override_reason = reason
    check(step, "override", SafetyPolicy.HOLD)
    step_changed(step)
    log.info("safety block of step %s overridden (%s)", step.sps_id, ",".join(blocks))
    return safety


def safety_json(step: ScheduledProcedureStep) -> dict:
    s = step.safety  # type: ignore[attr-defined]
    if s is None:
        return {"findings": [], "hold": False, "hold_reason": "", "override": None}
    return {
        "findings": list(s.findings or []),
        "hold": s.hold,
        "hold_reason": s.hold_reason,
        "checked_on": s.checked_on,
        "override": (
            {
                "by": s.override_by,
                "at": s.override_at.isoformat(),
                "reason": s.override_reason,
                "rules": s.override_rules.split(","),
            }
            if s.override_at
            else None
        ),
    }


def alerts(step: ScheduledProcedureStep) -> list[str]:
    """The check's outcome as MedicalAlerts lines (LO: 64 characters each)."""
    s = step.safety  # type: ignore[attr-defined]
    if s is None:
        return []
    out = []
    if s.hold:
        out.append(f"ON HOLD: {s.hold_reason}")
    for f in s.findings or []:
        if f["action"] == BLOCK and f.get("overridden"):
            out.append(f"OVERRIDDEN {f['rule']} by {s.override_by}: {s.override_reason}")
        elif f["action"] == WARN:
            out.append(f"WARN: {f['message']}")
    return out
