"""Front-desk resources: when each station (room, scanner) is open, when it is blocked,
which procedures it does and how long they take there."""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import ForeignKey, Index, Integer, SmallInteger, String, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ris_app.clock import utcnow
from ris_app.db import Base, UtcDateTime

# What a block is for: shown to the front desk; all of them close the station alike.
BLOCK_KINDS = ("holiday", "maintenance", "blocked")


class StationHours(Base):
    """One opening period of a station on one weekday, in the site's wall-clock time (the
    department opens at 08:00 local time all year, whatever UTC says). A station with
    none is not under booking rules: it takes orders at any time, clashes included."""

    __tablename__ = "station_hours"

    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("station.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(SmallInteger)  # 0 Monday .. 6 Sunday (date.weekday())
    opens: Mapped[time] = mapped_column(Time)
    closes: Mapped[time] = mapped_column(Time)  # after opens, the same day


class StationBlock(Base):
    """Time a station cannot be booked: a holiday, maintenance, or blocked with a reason.
    Stored in UTC like every time; a whole-day block is the site day's bounds."""

    __tablename__ = "station_block"

    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("station.id", ondelete="CASCADE"))
    start_datetime: Mapped[datetime] = mapped_column(UtcDateTime)
    end_datetime: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(16), default="blocked")
    reason: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), default="")


class StationProcedure(Base):
    """A procedure a station does, with its duration there when it differs from the
    catalog's. A station with none does every procedure of its modality."""

    __tablename__ = "station_procedure"
    __table_args__ = (UniqueConstraint("station_id", "procedure_code_id", name="uq_station_procedure_pair"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("station.id", ondelete="CASCADE"), index=True)
    procedure_code_id: Mapped[int] = mapped_column(ForeignKey("procedure_code.id", ondelete="CASCADE"), index=True)
    duration_minutes: Mapped[int | None] = mapped_column(Integer)


Index("ix_station_block_station_start", StationBlock.station_id, StationBlock.start_datetime)
