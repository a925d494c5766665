"""User delete: deletes the pending or logged-in user, then logs out.

The user row goes together with everything flask-flows stored for them (see
:meth:`~flask_flows.users.UserStore.delete`), in one transaction: if the app's own data
refuses (a foreign key to the user), nothing of the account is deleted and the stage says
so. The browser is logged out just before, so it never holds a login whose user is gone.
The confirmation belongs to the flow, as a password or prompt stage before this one.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from .. import sessions, signals
from ..config import support_contact
from ..i18n import N_, gettext
from ..outcomes import Outcome
from ..plan import PENDING_USER, PROMPT_DATA
from .base import StageForm, StageResult, StageRun, StageType, deny, invalid, ok

MSG_NO_USER = N_("There is no account to delete.")
MSG_NOT_DELETED = N_("Your account could not be deleted. Please try again later.")
#: Other records of the site still refer to the account: trying again will not help.
MSG_STILL_REFERENCED = N_(
    "Your account could not be deleted: other records on this site still refer to it."
    " Please contact {contact} to have it removed."
)


class UserDeleteStage(StageType):
    name = "user_delete"
    #: Shown only when the deletion fails, with the reason and a way out.
    template = "flows/stages/user_delete.html"

    def is_interactive(self, run: StageRun) -> bool:
        return False

    def respond(self, run: StageRun, form: StageForm | None) -> StageResult:
        store = run.state.user_store
        user = run.pending_user()
        if user is None:
            return deny(MSG_NO_USER)
        user_id = store.user_id(user)
        # Log out first: ending this login deletes its row through the ORM, which fails
        # once the bulk deletion below has removed that row in the same transaction.
        sessions.log_out(run.state)
        try:
            store.delete(user)  # a row gone meanwhile raises here, as an SQLAlchemyError
            store.session.commit()
        except IntegrityError as error:
            # The app's own rows refer to the user (its foreign keys): say so, and whom to
            # ask, rather than "try again", which would never work.
            store.session.rollback()
            run.state.log.error(
                "user_delete: user %s not deleted, rows of the app still refer to it (%s);"
                " handle them in a user_deleting receiver (docs/users.md)",
                user_id,
                error.orig,
            )
            contact = support_contact(run.state.config)
            return invalid(gettext(MSG_STILL_REFERENCED, contact=contact))
        except SQLAlchemyError:
            store.session.rollback()
            run.state.log.exception("user_delete: deleting user %s failed", user_id)
            return invalid(MSG_NOT_DELETED)
        run.context.pop(PENDING_USER, None)
        run.context.pop(PROMPT_DATA, None)
        run.state.log.info("user_delete: deleted user %s in flow %s", user_id, run.flow.slug)
        signals.user_deleted.send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            user_id=user_id,
        )
        run.record(Outcome.deleted)
        return ok()
