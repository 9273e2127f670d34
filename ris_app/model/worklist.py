"""What the worklist keeps besides the steps themselves: the log of C-FIND queries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ris_app.clock import utcnow
from ris_app.db import Base, UtcDateTime


class WorklistQueryLog(Base):
    """One worklist C-FIND as the RIS received it: who asked, with which keys, what came
    back. The query explainer reads it; keys may hold patient data, so this table, not the
    log files, keeps them."""

    __tablename__ = "worklist_query_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    calling_aet: Mapped[str] = mapped_column(String(16), default="", index=True)
    called_aet: Mapped[str] = mapped_column(String(16), default="")
    query: Mapped[dict] = mapped_column(JSON)  # the C-FIND identifier as DICOM JSON
    answers: Mapped[int] = mapped_column(Integer, default=0)
    incomplete: Mapped[bool] = mapped_column(default=False)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
