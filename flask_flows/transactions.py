"""The request's database transaction: ended early when it holds nothing to write.

A request keeps its pooled connection from its first query until it commits or ends.
Before slow work (an argon2 hash takes tens of milliseconds and a slot of its own)
:func:`release_connection` ends a transaction that has written nothing, so a burst of
password guesses cannot hold every connection of the pool while it hashes. A
transaction that has written (flushed objects, DML statements) is left alone: ending it
early would commit half of someone's work.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, scoped_session

_WROTE = "flows_transaction_wrote"


def release_connection(session: Session | scoped_session[Any]) -> None:
    """Hand the connection back to the pool if the transaction has nothing to write,
    keeping every object it loaded as it is (they are used right after)."""
    db_session = session() if isinstance(session, scoped_session) else session
    if not db_session.in_transaction() or db_session.in_nested_transaction():
        return
    if db_session.info.get(_WROTE):
        return
    if db_session.new or db_session.dirty or db_session.deleted:
        return
    commit_keeping_loaded_state(db_session)


def commit_keeping_loaded_state(session: Session | scoped_session[Any]) -> None:
    """Commit without expiring what this request has loaded: re-reading an object used
    moments later would only repeat its SELECT."""
    db_session = session() if isinstance(session, scoped_session) else session
    expire_on_commit = db_session.expire_on_commit
    db_session.expire_on_commit = False
    try:
        db_session.commit()
    finally:
        db_session.expire_on_commit = expire_on_commit


@event.listens_for(Session, "after_flush")
def _note_flush(session: Session, _context: Any) -> None:
    session.info[_WROTE] = True


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    if state.is_update or state.is_delete or state.is_insert:
        state.session.info[_WROTE] = True


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_writes(session: Session) -> None:
    session.info.pop(_WROTE, None)
