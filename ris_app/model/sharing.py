"""Second-opinion share links: one study (and, if asked, its signed report) opened by an
outside colleague through the viewer part, for a limited time, with a code sent apart.
Only hashes of the link's token and of its code are stored (ris_app/reporting/sharing.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ris_app.clock import utcnow
from ris_app.db import Base, UtcDateTime
from ris_app.model.tracking import Study
from ris_app.model.users import User


class ShareLink(Base):
    __tablename__ = "share_link"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("study.id"), index=True)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("ris_user.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    recipient: Mapped[str] = mapped_column(String(128))  # the colleague's name or e-mail, as typed
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the link's token
    code_hash: Mapped[str] = mapped_column(String(64))  # sha256 of token and code together
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("ris_user.id"))
    include_report: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_code_attempts: Mapped[int] = mapped_column(Integer, default=0)
    opened_count: Mapped[int] = mapped_column(Integer, default=0)
    last_opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    study: Mapped[Study] = relationship()
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])
