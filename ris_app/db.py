"""Database engine, sessions and the column type of every stored time (SQLAlchemy 2.0,
portable SQL only)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import DateTime, MetaData, create_engine, event, inspect, select, text
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.types import TypeDecorator

from ris_app.clock import utcnow  # noqa: F401  (the one clock, long imported from here)

# Named constraints keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UtcDateTime(TypeDecorator):
    """A point in time, stored in UTC and read back timezone-aware in UTC, on SQLite and
    PostgreSQL alike. Binding a naive datetime raises: it names no zone, and guessing one
    is how times end up hours off (convert site wall-clock time with clock.from_site).

    PostgreSQL stores `timestamp with time zone`; SQLite has no such type and keeps the
    UTC wall time as text, as it always did, so the text still sorts by time."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"a UTC time column takes a datetime, not {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} bound to a UTC column: "
                "make it aware (clock.utcnow, clock.from_site)"
            )
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets foreign keys, WAL and a busy timeout so several
    worker processes can share one file. Bound parameters (names, birth dates, report
    text) never appear in SQLAlchemy's logs or error messages: hide_parameters."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            # The driver's own transaction handling sends no BEGIN before a SELECT, so a
            # read-then-write is not one transaction: take BEGIN into our hands (below).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # A writer takes the database's write lock before its first read, so what it
            # read is still true when it writes; readers do not block each other (WAL).
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITER) else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session], *, write: bool = True) -> Iterator[Session]:
    """One unit of work: commit on success, roll back everything on any error. A writer by
    default (begin_write: what it reads is still true when it writes); write=False for a
    long read that must not hold other writers back."""
    session = factory()
    try:
        if write:
            begin_write(session)
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# --------------------------------------------------------------------------- write locks
# The one way a read-then-write is made safe against other processes, right on both
# databases:
#   SQLite      the writer's transaction starts with BEGIN IMMEDIATE (begin_write): the
#               database's single write lock is held from its first read to its commit.
#   PostgreSQL  transactions run concurrently; lock_row() re-reads the row it is about to
#               change with SELECT ... FOR UPDATE, so a second writer waits for the first
#               and then sees its change. Counters are sequences (scheduling.orders.next_id).
#               A row that does not exist yet cannot be locked: lock_key() takes a
#               transaction-scoped advisory lock on a name instead (a new patient's MRN).
# Both: versioned rows (steps, reports) carry lock_version, so an UPDATE that lost a race
# anyway fails with StaleDataError instead of overwriting (a 409, an HL7 retry).
WRITER = "ris_writer"
log = logging.getLogger(__name__)


def is_sqlite(session: Session) -> bool:
    bind = session.get_bind()
    return bind.dialect.name == "sqlite"


def begin_write(session: Session) -> Session:
    """Start the session's transaction as a writer (BEGIN IMMEDIATE on SQLite; nothing
    more on PostgreSQL, where lock_row does the work). Idempotent within a transaction.

    A SQLite transaction that began as a reader cannot become a writer now; it stays
    correct all the same (one BEGIN covers its reads and writes, and SQLite refuses the
    first write with "database is locked" when another writer committed since the reads:
    db.is_retryable). Beginning as a writer turns that refusal into a short wait."""
    if is_sqlite(session) and session.info.get(WRITER) is None:
        session.connection(execution_options={WRITER: True})
    return session


@event.listens_for(Session, "after_begin")
def _note_writer(session: Session, _transaction, connection: Connection) -> None:
    session.info[WRITER] = bool(connection.get_execution_options().get(WRITER))


@event.listens_for(Session, "after_transaction_end")
def _forget_writer(session: Session, transaction) -> None:
    if transaction.parent is None:
        session.info.pop(WRITER, None)


Row = TypeVar("Row")


def lock_row(session: Session, row: Row) -> Row:
    """Hold `row` for this transaction and bring it up to date: SELECT ... FOR UPDATE on
    PostgreSQL; on SQLite the writer's BEGIN IMMEDIATE holds the database already. Call it
    before reading what a write depends on (a step's status, a report's version)."""
    state = inspect(row)
    mapper = state.mapper
    if state.key is None:  # pending: nobody else can see it yet
        return row
    if is_sqlite(session):
        begin_write(session)
    stmt = select(mapper).where(*[col == val for col, val in zip(mapper.primary_key, state.identity, strict=True)])
    if not is_sqlite(session):
        stmt = stmt.with_for_update(of=mapper.local_table)
    # Pending changes are flushed first (autoflush), so populate_existing drops none.
    session.execute(stmt.execution_options(populate_existing=True)).scalars().one()
    return row


def lock_key(session: Session, scope: str, key: str) -> None:
    """Hold the name `scope`:`key` for this transaction, so that two writers about to
    create the same thing (the same MRN in another case) take turns: the second then finds
    the first's row. pg_advisory_xact_lock on PostgreSQL; on SQLite the writer's BEGIN
    IMMEDIATE holds the database already."""
    if is_sqlite(session):
        begin_write(session)
        return
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": f"{scope}:{key}"})


# --------------------------------------------------------------------------- who wrote
ACTOR = "ris_actor"


def set_actor(session: Session, actor: str | Callable[[], str]) -> Session:
    """Name who this session writes for ("page:alice", "api:billing", "hl7:EHR",
    "mpps:CT1", "images"), or a function that names it when the write happens. Every row
    with a `changed_by` column that the session changes is stamped with it."""
    session.info[ACTOR] = actor
    return session


def current_actor(session: Session) -> str:
    """Who the session writes for (set_actor), "" when nobody said."""
    actor = session.info.get(ACTOR)
    if actor is None:
        return ""
    return (actor() if callable(actor) else actor)[:64]


@event.listens_for(Session, "before_flush")
def _stamp_changed_by(session: Session, _context, _instances) -> None:
    if session.info.get(ACTOR) is None:
        return
    name = None
    for obj in (*session.new, *session.dirty):
        if hasattr(obj, "changed_by") and (obj in session.new or session.is_modified(obj)):
            if name is None:
                name = current_actor(session)
            obj.changed_by = name


T = TypeVar("T")
# What a concurrent writer can make a transaction fail with, and a retry mends: a unique
# key inserted by the other first, a versioned row it changed, a deadlock or
# serialization failure (PostgreSQL), a busy database (SQLite).
PG_RETRY_CODES = {"40001", "40P01", "55P03"}


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, IntegrityError | StaleDataError):
        return True
    if isinstance(exc, DBAPIError):
        code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
        return code in PG_RETRY_CODES or "database is locked" in str(exc.orig)
    return False


def retrying(work: Callable[[], T], *, attempts: int = 5, what: str = "transaction") -> T:
    """Run `work` (which opens, commits and closes its own transaction) again when a
    concurrent writer made it fail in a way a fresh attempt mends; the last failure is
    raised. For automatic paths (HL7, MPPS, images); people get a 409 and decide."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except Exception as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            log.info("%s lost a race with another writer (%s); attempt %d", what, type(exc).__name__, attempt + 1)
            time.sleep(random.uniform(0.005, 0.05) * attempt)
    raise AssertionError("unreachable")
