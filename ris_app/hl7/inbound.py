"""What each inbound message does to patients and orders: the dispatch table. The handlers
live in `adt` and `orders` and go through the RIS's own write paths
(ris_app.scheduling.orders), so every change rebuilds the worklist items it touches.

ADT^A01/A04 register (or update a known patient), A08 updates, A40 merges, A03/A11 update
demographics only (the RIS keeps no visits); A01/A04/A08 also bring AL1 allergies and
OBX weight and height. ORU^R01 brings renal results (creatinine, eGFR). ORM^O01 (2.3.1) and OMI^O23 (2.5.1) carry one
order group per ORC: NW creates, XO changes, CA cancels, DC discontinues (or cancels a step
that has not started). Content problems raise Hl7Error AE naming the field; messages we do
not handle raise AR.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ris_app.hl7.adt import adt_demographics_only, adt_merge, adt_register, adt_update
from ris_app.hl7.clinical import lab_results
from ris_app.hl7.orders import order_message
from ris_app.hl7.parse import (
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    Message,
    reject,
)
from ris_app.hl7.reading import Context

log = logging.getLogger(__name__)


HANDLERS: dict[tuple[str, str], Callable[[Context, Message], str]] = {
    ("ADT", "A01"): adt_register,
    ("ADT", "A04"): adt_register,
    ("ADT", "A08"): adt_update,
    ("ADT", "A40"): adt_merge,
    ("ADT", "A03"): adt_demographics_only,
    ("ADT", "A11"): adt_demographics_only,
    ("ORM", "O01"): order_message,
    ("OMI", "O23"): order_message,
    ("ORU", "R01"): lab_results,
}
SUPPORTED_TYPES = sorted(f"{c}^{t}" for c, t in HANDLERS)


def handle(ctx: Context, msg: Message) -> str:
    """Apply one parsed message inside the caller's transaction. Returns a summary for the
    ACK text; raises Hl7Error when the message is refused."""
    handler = HANDLERS.get((msg.message_code, msg.trigger))
    if handler is None:
        if any(code == msg.message_code for code, _ in HANDLERS):
            raise reject(UNSUPPORTED_EVENT_CODE, f"{msg.message_type} is not supported", "MSH-9.2")
        raise reject(UNSUPPORTED_MESSAGE_TYPE, f"{msg.message_type or 'this message type'} is not supported", "MSH-9")
    return handler(ctx, msg)
