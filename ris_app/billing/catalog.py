"""The billable side of the procedure catalog: which codes a procedure bills (its own
row, its components and add-ons, and the rows a performed code switches to), the price of
each on a given day, the default rows a new site starts from, and the import of a price
list (CSV)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from ris_app.billing.settings import current
from ris_app.errors import Conflict, Invalid, NotFound
from ris_app.model import BillingItem, BillingPrice, ProcedureCode
from ris_app.model.billing import ITEM_KINDS

SINCE = date(2000, 1, 1)  # the default prices hold from the start
# procedure, kind, billed code, code system ("" = ORTHANC_RIS_BILLING_CODE_SYSTEM),
# description, quantity, unit price in cents, performed code ("" = always)
DEFAULT_BILLING: tuple[tuple[str, str, str, str, str, int, int, str], ...] = (
    ("CTHEAD", "procedure", "70450", "", "CT head without contrast", 1, 25000, ""),
    ("CTHEAD", "procedure", "70460", "", "CT head with contrast", 1, 30000, "CTHEAD_C"),
    ("CTCHEST", "procedure", "71260", "", "CT chest with contrast", 1, 35000, ""),
    ("CTCHEST", "contrast", "Q9967", "HCPCS", "Low osmolar contrast, per ml", 80, 50, ""),
    ("CTABD", "procedure", "74177", "", "CT abdomen and pelvis with contrast", 1, 40000, ""),
    ("CTABD", "procedure", "74176", "", "CT abdomen and pelvis without contrast", 1, 32000, "CTABD_NC"),
    ("CTABD", "contrast", "Q9967", "HCPCS", "Low osmolar contrast, per ml", 100, 50, ""),
    ("MRBRAIN", "procedure", "70551", "", "MR brain without contrast", 1, 50000, ""),
    ("MRKNEE", "technical", "73721-TC", "", "MR knee, technical component", 1, 38000, ""),
    ("MRKNEE", "professional", "73721-26", "", "MR knee, professional component", 1, 7000, ""),
    ("XRCHEST", "procedure", "71046", "", "XR chest 2 views", 1, 6000, ""),
    ("USABD", "procedure", "76700", "", "US abdomen complete", 1, 15000, ""),
    ("MGSCREEN", "procedure", "77067", "", "Screening mammography, bilateral", 1, 12000, ""),
    ("MGSCREEN", "supplies", "A4649", "HCPCS", "Surgical supply, miscellaneous", 1, 500, ""),
)


def seed_default_billing(session: Session) -> int:
    """Give the default procedures that have no billable row the default rows and prices
    (a new site, or one upgraded to billing). Returns how many rows were added."""
    procedures = {p.code: p for p in session.scalars(select(ProcedureCode))}
    billed = set(session.scalars(select(BillingItem.procedure_code_id)))
    added = 0
    for proc_code, kind, code, system, description, quantity, cents, performed in DEFAULT_BILLING:
        proc = procedures.get(proc_code)
        if proc is None or proc.id in billed:
            continue
        item = BillingItem(
            procedure_code=proc,
            kind=kind,
            code=code,
            code_system=system or current().code_system,
            description=description,
            quantity=quantity,
            performed_code=performed,
            active=True,
        )
        item.prices.append(BillingPrice(amount_cents=cents, valid_from=SINCE, valid_to=None, changed_by="seed"))
        session.add(item)
        added += 1
    session.flush()
    return added


def price_on(item: BillingItem, day: date) -> int | None:
    """The unit price (cents) of `item` on site day `day`; the latest-starting price list
    entry that covers the day wins. None: no price holds that day."""
    valid = [p for p in item.prices if p.valid_from <= day and (p.valid_to is None or day <= p.valid_to)]
    return max(valid, key=lambda p: (p.valid_from, p.id or 0)).amount_cents if valid else None


def items_of(session: Session, procedure: ProcedureCode) -> list[BillingItem]:
    return list(
        session.scalars(
            select(BillingItem)
            .where(BillingItem.procedure_code_id == procedure.id, BillingItem.active)
            .order_by(BillingItem.id)
        )
    )


def find_item(session: Session, item_id: int) -> BillingItem:
    item = session.get(BillingItem, item_id)
    if item is None:
        raise NotFound("no billing item with this id", field="item_id")
    return item


def add_item(
    session: Session,
    procedure: ProcedureCode,
    *,
    kind: str,
    code: str,
    description: str = "",
    code_system: str = "",
    quantity: int = 1,
    performed_code: str = "",
) -> BillingItem:
    """A new billable row of `procedure` (no price yet: set one with set_price)."""
    if kind not in ITEM_KINDS:
        raise Invalid(f"kind must be one of {', '.join(ITEM_KINDS)}", field="kind")
    if not code or len(code) > 16:
        raise Invalid("a billing code of 1 to 16 characters is required", field="code")
    if quantity < 1:
        raise Invalid("quantity must be at least 1", field="quantity")
    exists = session.scalar(
        select(BillingItem.id).where(
            BillingItem.procedure_code_id == procedure.id,
            BillingItem.kind == kind,
            BillingItem.code == code,
            BillingItem.performed_code == performed_code,
        )
    )
    if exists is not None:
        raise Conflict("this procedure already bills this code", field="code")
    item = BillingItem(
        procedure_code=procedure,
        kind=kind,
        code=code,
        code_system=(code_system or current().code_system)[:16],
        description=description[:128],
        quantity=quantity,
        performed_code=performed_code[:16],
        active=True,
    )
    session.add(item)
    session.flush()
    return item


def set_price(session: Session, item: BillingItem, cents: int, valid_from: date, changed_by: str = "") -> BillingPrice:
    """A new price from `valid_from` on: the entry in force then ends the day before.
    Charges already captured keep the price of their day (they are never re-priced)."""
    if cents < 0:
        raise Invalid("a price cannot be negative", field="amount")
    for p in item.prices:
        if p.valid_from >= valid_from:
            raise Conflict("a price already starts on or after this day", field="valid_from")
        if p.valid_to is None or p.valid_to >= valid_from:
            p.valid_to = date.fromordinal(valid_from.toordinal() - 1)
    price = BillingPrice(amount_cents=cents, valid_from=valid_from, valid_to=None, changed_by=changed_by)
    item.prices.append(price)
    session.flush()
    return price


def parse_amount(text: str) -> int:
    """'120', '120.5', '120.50' -> cents."""
    value = text.strip()
    whole, _, frac = value.partition(".")
    if not whole.isdigit() or (frac and (not frac.isdigit() or len(frac) > 2)):
        raise Invalid(f"{value!r} is not an amount such as 120.50", field="amount")
    return int(whole) * 100 + int((frac + "00")[:2])


def import_prices(session: Session, text: str, changed_by: str = "import") -> int:
    """A price list as CSV: procedure,kind,code,amount,valid_from[,description,code_system,
    quantity,performed_code]. Rows unknown to the catalog are added. Returns prices set."""
    procedures = {p.code: p for p in session.scalars(select(ProcedureCode))}
    count = 0
    rows: Iterable[dict[str, str]] = csv.DictReader(io.StringIO(text))
    for n, row in enumerate(rows, start=2):
        proc = procedures.get((row.get("procedure") or "").strip())
        if proc is None:
            raise Invalid(f"line {n}: unknown procedure {row.get('procedure')!r}", field="procedure")
        kind, code = (row.get("kind") or "procedure").strip(), (row.get("code") or "").strip()
        performed = (row.get("performed_code") or "").strip()
        item = session.scalar(
            select(BillingItem).where(
                BillingItem.procedure_code_id == proc.id,
                BillingItem.kind == kind,
                BillingItem.code == code,
                BillingItem.performed_code == performed,
            )
        )
        if item is None:
            item = add_item(
                session,
                proc,
                kind=kind,
                code=code,
                description=(row.get("description") or "").strip(),
                code_system=(row.get("code_system") or "").strip(),
                quantity=int((row.get("quantity") or "1").strip() or 1),
                performed_code=performed,
            )
        try:
            day = date.fromisoformat((row.get("valid_from") or "").strip())
        except ValueError:
            raise Invalid(f"line {n}: valid_from must be YYYY-MM-DD", field="valid_from") from None
        set_price(session, item, parse_amount(row.get("amount") or ""), day, changed_by)
        count += 1
    return count
