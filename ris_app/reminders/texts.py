"""The words of the patient's messages, one table per language (en, fr, de), and the one
function that fills them in: the appointment in the site's local time, the place, the
procedure, its preparation, and the confirm and cancel links.

A language without a template falls back to ORTHANC_RIS_REMINDER_LANGUAGE, then English.
Add a language by adding its table here (every key of "en" is needed).
"""

from __future__ import annotations

from dataclasses import dataclass

from ris_app.clock import site_zone, to_site, zone_name
from ris_app.config import Config
from ris_app.model import Reminder, ScheduledProcedureStep

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "confirmation": "Your {procedure} appointment is booked for {when} at {place}.",
        "reminder": "Reminder: your {procedure} appointment is on {when} at {place}.",
        "rescheduled": "Your {procedure} appointment has been moved to {when} at {place}.",
        "canceled": "Your {procedure} appointment on {when} at {place} has been canceled.",
        "subject": "Your appointment on {when}",
        "preparation": "Preparation: {preparation}",
        "confirm": "Confirm you will come: {url}",
        "cancel": "Cancel the appointment: {url}",
    },
    "fr": {
        "confirmation": "Votre rendez-vous ({procedure}) est fixé au {when}, {place}.",
        "reminder": "Rappel : votre rendez-vous ({procedure}) a lieu le {when}, {place}.",
        "rescheduled": "Votre rendez-vous ({procedure}) a été déplacé au {when}, {place}.",
        "canceled": "Votre rendez-vous ({procedure}) du {when}, {place}, est annulé.",
        "subject": "Votre rendez-vous du {when}",
        "preparation": "Préparation : {preparation}",
        "confirm": "Confirmer votre venue : {url}",
        "cancel": "Annuler le rendez-vous : {url}",
    },
    "de": {
        "confirmation": "Ihr Termin ({procedure}) ist am {when} gebucht, Ort: {place}.",
        "reminder": "Erinnerung: Ihr Termin ({procedure}) ist am {when}, Ort: {place}.",
        "rescheduled": "Ihr Termin ({procedure}) wurde auf {when} verlegt, Ort: {place}.",
        "canceled": "Ihr Termin ({procedure}) am {when}, Ort: {place}, wurde abgesagt.",
        "subject": "Ihr Termin am {when}",
        "preparation": "Vorbereitung: {preparation}",
        "confirm": "Termin bestätigen: {url}",
        "cancel": "Termin absagen: {url}",
    },
}
# Dates as numbers (no month names to translate): 2026-12-01 09:30 (Europe/Paris).
WHEN = "%Y-%m-%d %H:%M"


@dataclass(frozen=True)
class Message:
    language: str
    subject: str
    text: str


def language_of(wanted: str, cfg: Config) -> str:
    for lang in (wanted.lower(), wanted.lower().split("-")[0], cfg.reminder_language, "en"):
        if lang in TEXTS:
            return lang
    return "en"


def preparation_of(step: ScheduledProcedureStep) -> str:
    """The procedure's patient preparation text. HOOK: the catalog's `preparation` column
    comes with the resources work of issue 15; until then there is none."""
    code = step.requested_procedure.procedure_code
    return (getattr(code, "preparation", "") or "").strip() if code is not None else ""


def place_of(step: ScheduledProcedureStep, cfg: Config) -> str:
    parts = [p for p in (cfg.institution, step.location, step.station_name) if p]
    return ", ".join(dict.fromkeys(parts)) or step.station_aet or "-"


def compose(row: Reminder, cfg: Config, links: dict[str, str]) -> Message:
    """The message `row` stands for, in its patient's language. `links`: action -> URL
    (empty for a cancellation, which offers none)."""
    step = row.step
    patient = step.requested_procedure.order.patient
    lang = language_of(patient.language, cfg)
    words = TEXTS[lang]
    zone = site_zone(cfg)
    when = f"{to_site(row.appointment_at, zone).strftime(WHEN)} ({zone_name(zone)})"
    procedure = step.description or step.requested_procedure.description or step.modality
    fill = {"when": when, "place": place_of(step, cfg), "procedure": procedure}
    lines = [words[row.kind].format(**fill)]
    preparation = preparation_of(step)
    if preparation and row.kind != "canceled":
        lines.append(words["preparation"].format(preparation=preparation))
    lines.extend(words[action].format(url=url) for action, url in links.items())
    return Message(lang, words["subject"].format(**fill), "\n\n".join(lines))
