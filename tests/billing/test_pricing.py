"""Unit tests of billing's tables: which catalog rows an exam bills (performed codes,
partial), the price of a day, and the moves of a charge."""

from __future__ import annotations

from datetime import date

import pytest

from ris_app.billing.capture import billable
from ris_app.billing.catalog import parse_amount, price_on
from ris_app.billing.charges import STATUSES, TRANSITIONS, IllegalChargeMove, next_status
from ris_app.billing.dft import amount
from ris_app.errors import Invalid
from ris_app.model import BillingItem, BillingPrice


def item(kind="procedure", code="70450", performed="", prices=()):
    i = BillingItem(kind=kind, code=code, code_system="CPT", quantity=1, performed_code=performed, active=True)
    for n, (cents, start, end) in enumerate(prices, start=1):
        i.prices.append(BillingPrice(id=n, amount_cents=cents, valid_from=start, valid_to=end))
    return i


def test_the_price_of_the_day_applies():
    i = item(prices=[(10000, date(2026, 1, 1), date(2026, 6, 30)), (12000, date(2026, 7, 1), None)])
    assert price_on(i, date(2025, 12, 31)) is None
    assert price_on(i, date(2026, 1, 1)) == 10000
    assert price_on(i, date(2026, 6, 30)) == 10000
    assert price_on(i, date(2026, 7, 1)) == 12000
    assert price_on(i, date(2030, 1, 1)) == 12000


def test_a_later_starting_price_wins_an_overlap():
    i = item(prices=[(10000, date(2026, 1, 1), None), (9000, date(2026, 3, 1), date(2026, 3, 31))])
    assert price_on(i, date(2026, 3, 15)) == 9000
    assert price_on(i, date(2026, 4, 1)) == 10000


def test_the_performed_code_replaces_the_ordered_procedure():
    plain, contrast = item(code="70450"), item(code="70460", performed="CTHEAD_C")
    addon, addon_if = item("contrast", "Q9967"), item("supplies", "A4649", performed="KIT")
    rows = [plain, contrast, addon, addon_if]
    assert billable(rows, set(), partial=False) == [plain, addon]
    assert billable(rows, {"CTHEAD_C"}, partial=False) == [contrast, addon]
    assert billable(rows, {"CTHEAD_C", "KIT"}, partial=False) == [contrast, addon, addon_if]
    assert billable(rows, {"OTHER"}, partial=False) == [plain, addon]


def test_partial_bills_the_procedure_and_technical_rows_only():
    rows = [item(), item("technical", "X-TC"), item("professional", "X-26"), item("contrast", "Q9967")]
    assert [i.code for i in billable(rows, set(), partial=True)] == ["70450", "X-TC"]


@pytest.mark.parametrize(
    ("current", "action", "target"),
    [
        ("new", "review", "reviewed"),
        ("new", "send", "sent"),
        ("reviewed", "send", "sent"),
        ("sent", "acknowledge", "acknowledged"),
        ("sent", "reject", "rejected"),
        ("acknowledged", "credit", "credited"),
        ("rejected", "credit", "credited"),
    ],
)
def test_charge_moves(current, action, target):
    assert next_status(current, action) == target


def test_a_sent_charge_waits_for_its_answer_and_an_acknowledged_one_is_never_resent():
    for current, action in [("sent", "credit"), ("acknowledged", "send"), ("credited", "send"), ("new", "acknowledge")]:
        with pytest.raises(IllegalChargeMove):
            next_status(current, action)
    with pytest.raises(Invalid):
        next_status("new", "edit")
    assert {t for _, t in TRANSITIONS.values()} | {"new"} == set(STATUSES)


def test_amounts():
    assert parse_amount("120") == 12000
    assert parse_amount("120.5") == 12050
    assert parse_amount("0.05") == 5
    for bad in ("", "1,20", "1.234", "-1", "abc"):
        with pytest.raises(Invalid):
            parse_amount(bad)
    assert amount(12050) == "120.50" and amount(-5) == "-0.05" and amount(0) == "0.00"


def test_settings_refuse_unknown_rules():
    from ris_app.billing.settings import BillingSettings
    from ris_app.hl7.settings import Hl7Settings

    assert BillingSettings.from_env({}) == BillingSettings("CPT", "none", "review")
    for env in ({"ORTHANC_RIS_BILLING_DISCONTINUED": "half"}, {"ORTHANC_RIS_BILLING_SEND": "later"}):
        with pytest.raises(ValueError):
            BillingSettings.from_env(env)
    hl7 = Hl7Settings.from_env(
        {"ORTHANC_RIS_HL7_FINANCIAL_DESTINATIONS": "BILL=h:1;B2=h:2", "ORTHANC_RIS_HL7_FINANCIAL_VERSIONS": "B2=2.3.1"}
    )
    assert [hl7.financial_version(d.name) for d in hl7.financial_destinations] == ["2.5.1", "2.3.1"]
    assert [d.name for d in hl7.all_destinations] == ["BILL", "B2"]
    with pytest.raises(ValueError):
        Hl7Settings.from_env(
            {"ORTHANC_RIS_HL7_FINANCIAL_DESTINATIONS": "BILL=h:1", "ORTHANC_RIS_HL7_FINANCIAL_VERSIONS": "BILL=3"}
        )
