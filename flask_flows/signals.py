"""Blinker signals sent by flask-flows; connect to them for audit logs and metrics.

Every signal is sent with the Flask app as sender. Keyword arguments are listed with
each signal; none of them ever carries a secret (no passwords, codes or TOTP seeds).
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A plan was built and a flow started. kwargs: ``flow``, ``plan``.
flow_started = _signals.signal("flow-started")
#: A stage accepted its input. kwargs: ``flow``, ``stage``, ``plan``.
stage_completed = _signals.signal("stage-completed")
#: The last stage completed. kwargs: ``flow``, ``plan``, ``redirect_to``.
flow_completed = _signals.signal("flow-completed")
#: The flow's requirement or policies refused the request, or a stage denied it.
#: kwargs: ``flow``, ``messages``.
flow_denied = _signals.signal("flow-denied")
#: A user logged in. kwargs: ``user``, ``flow``.
user_logged_in = _signals.signal("user-logged-in")
#: A user logged out. kwargs: ``user``.
user_logged_out = _signals.signal("user-logged-out")
#: An identification or password check failed. kwargs: ``identifier``, ``stage``, ``reason``.
login_failed = _signals.signal("login-failed")
#: A user was created. kwargs: ``user``.
user_created = _signals.signal("user-created")
#: A user is about to be deleted, in the transaction that deletes them: receivers delete
#: or reassign the app's own rows that refer to the user, through the app's session, and
#: do not commit (raising undoes everything). kwargs: ``user``.
user_deleting = _signals.signal("user-deleting")
#: A user was deleted. kwargs: ``user_id``.
user_deleted = _signals.signal("user-deleted")
#: A user's password changed. kwargs: ``user``.
password_changed = _signals.signal("password-changed")
#: An authenticator (TOTP, recovery codes) was added. kwargs: ``user``, ``device``.
authenticator_added = _signals.signal("authenticator-added")
#: An authenticator was removed (settings page).
#: kwargs: ``user``, ``kind`` ("totp" or "static"), ``device_id``, ``name``.
authenticator_removed = _signals.signal("authenticator-removed")
