"""REST API of billing: the charges (billing tokens and admin), corrections, and the
billable catalog with its prices (admin). See docs/billing.md."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from ris_app.billing import catalog, charges
from ris_app.billing import query as q
from ris_app.billing.catalog import parse_amount
from ris_app.model import BillingItem, ProcedureCode
from ris_app.web import actor, commit, db
from ris_app.web import validation as v
from ris_app.web.access import ADMIN, api_roles
from ris_app.web.errors import ApiError

bp = Blueprint("billing_api", __name__, url_prefix="/api")
BILLING = ("billing", "admin")


@bp.get("/charges")
@api_roles(*BILLING)
def get_charges():
    """Charge lines by accession, service day and status.

    ---
    get:
      tags: [billing]
      parameters:
        - {name: accession, in: query, required: false, schema: {type: string}}
        - {name: date, in: query, required: false, schema: {type: string, format: date}}
        - {name: status, in: query, required: false, schema: {type: string, enum: [new, reviewed, sent, acknowledged, rejected, credited]}}
        - {name: format, in: query, required: false, schema: {type: string, enum: [json, csv]}}
      responses:
        200: {description: "The lines (accession, code, description, quantity, unit price, total, status, times) and their total", content: {application/json: {schema: {type: object}}, text/csv: {schema: {type: string}}}}
    """
    args = request.args
    status = args.get("status", "")
    if status and status not in charges.STATUSES:
        raise ApiError(400, f"status must be one of {', '.join(charges.STATUSES)}", field="status")
    rows = q.charges(
        db(), day=v.iso_date(args, "date"), status=status, accession=v.text(args, "accession", max_len=16) or ""
    )
    if args.get("format") == "csv":
        return Response(q.to_csv(rows), mimetype="text/csv")
    return jsonify(items=[q.to_dict(c) for c in rows], total=q.amount(q.total_cents(rows)))


@bp.post("/charges/<int:charge_id>/<action>")
@api_roles(*BILLING)
def post_charge_action(charge_id: int, action: str):
    """Mark a charge reviewed, or send it to the billing system (DFT^P03).

    ---
    post:
      tags: [billing]
      responses:
        200: {description: The charge, content: {application/json: {schema: {type: object}}}}
        409: {description: The charge's status does not allow it}
    """
    if action not in ("review", "send"):
        raise ApiError(404, "unknown action: review or send", field="action")
    charge = charges.find(db(), charge_id)
    if action == "send":
        charges.send(charge)
    else:
        charges.move(charge, action)
    commit()
    return jsonify(q.to_dict(charge))


@bp.post("/charges/<int:charge_id>/correct")
@api_roles(*BILLING)
def post_charge_correct(charge_id: int):
    """Correct a charge: a credit line and a new charge, with a reason (never an edit).

    ---
    post:
      tags: [billing]
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [reason], properties: {reason: {type: string}, quantity: {type: integer}, unit_price: {type: string}, code: {type: string}, description: {type: string}}}
      responses:
        201: {description: The credit line and the new charge, content: {application/json: {schema: {type: object}}}}
    """
    body = v.json_body(request)
    quantity = body.get("quantity")
    if quantity is not None and (not isinstance(quantity, int) or isinstance(quantity, bool)):
        raise ApiError(400, "must be a whole number", field="quantity")
    price = v.text(body, "unit_price", max_len=16)
    credit, replacement = charges.correct(
        charges.find(db(), charge_id),
        v.text(body, "reason", required=True, max_len=512) or "",
        quantity=quantity,
        unit_price_cents=parse_amount(price) if price else None,
        code=v.text(body, "code", max_len=16) or None,
        description=v.text(body, "description", max_len=128) or None,
    )
    commit()
    return jsonify(credit=q.to_dict(credit), charge=q.to_dict(replacement)), 201


def item_json(item) -> dict:
    return {
        "id": item.id,
        "procedure_code": item.procedure_code.code,
        "kind": item.kind,
        "code": item.code,
        "code_system": item.code_system,
        "description": item.description,
        "quantity": item.quantity,
        "performed_code": item.performed_code,
        "prices": [
            {
                "amount": q.amount(p.amount_cents),
                "valid_from": p.valid_from.isoformat(),
                "valid_to": p.valid_to.isoformat() if p.valid_to else None,
            }
            for p in item.prices
        ],
    }


@bp.get("/billing/items")
@api_roles(*BILLING)
def get_billing_items():
    """The billable catalog: each procedure's rows and their price lists.

    ---
    get:
      tags: [billing]
      responses:
        200: {description: The rows, content: {application/json: {schema: {type: object}}}}
    """
    items = db().scalars(
        select(BillingItem).where(BillingItem.active).order_by(BillingItem.procedure_code_id, BillingItem.id)
    )
    return jsonify(items=[item_json(i) for i in items])


def _priced(item, body: dict):
    """Give `item` the price the request body names from its day on; the answer: the row."""
    amount = parse_amount(v.text(body, "amount", required=True, max_len=16) or "")
    catalog.set_price(db(), item, amount, v.iso_date(body, "valid_from", required=True), actor())  # type: ignore[arg-type]
    commit()
    return jsonify(item_json(item)), 201


@bp.post("/billing/items")
@api_roles(*ADMIN)
def post_billing_item():
    """Add a billable row to a procedure, with its first price.

    ---
    post:
      tags: [billing]
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [procedure_code, kind, code, amount, valid_from], properties: {procedure_code: {type: string}, kind: {type: string, enum: [procedure, professional, technical, contrast, supplies]}, code: {type: string}, code_system: {type: string}, description: {type: string}, quantity: {type: integer}, performed_code: {type: string}, amount: {type: string}, valid_from: {type: string, format: date}}}
      responses:
        201: {description: The row, content: {application/json: {schema: {type: object}}}}
    """
    body = v.json_body(request)
    code = v.text(body, "procedure_code", required=True, max_len=16)
    procedure = db().scalar(select(ProcedureCode).where(ProcedureCode.code == code))
    if procedure is None:
        raise ApiError(404, "no procedure with this code", field="procedure_code")
    quantity = body.get("quantity", 1)
    if not isinstance(quantity, int) or isinstance(quantity, bool):
        raise ApiError(400, "must be a whole number", field="quantity")
    item = catalog.add_item(
        db(),
        procedure,
        kind=v.text(body, "kind", max_len=16) or "procedure",  # add_item checks it against ITEM_KINDS
        code=v.text(body, "code", required=True, max_len=16) or "",
        code_system=v.text(body, "code_system", max_len=16) or "",
        description=v.text(body, "description", max_len=128) or "",
        quantity=quantity,
        performed_code=v.text(body, "performed_code", max_len=16) or "",
    )
    return _priced(item, body)


@bp.post("/billing/items/<int:item_id>/prices")
@api_roles(*ADMIN)
def post_billing_price(item_id: int):
    """A new price of a billable row from a day on (the one in force ends the day before).

    ---
    post:
      tags: [billing]
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [amount, valid_from], properties: {amount: {type: string}, valid_from: {type: string, format: date}}}
      responses:
        201: {description: The row with its prices, content: {application/json: {schema: {type: object}}}}
    """
    body = v.json_body(request)
    item = catalog.find_item(db(), item_id)
    return _priced(item, body)
