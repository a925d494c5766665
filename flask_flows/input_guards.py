"""What a request to the flows may bring: bounded in size, and storable.

Stage forms are small; nothing a person types into them comes near
``FLOWS_MAX_CONTENT_LENGTH`` (1 MiB) or ``FLOWS_MAX_FORM_FIELDS`` fields, so a body
beyond either is refused (413) before it is read, rather than parsed, validated and
logged (an attack sent 20 MB bodies and 5,000 fields). An app that sets Flask's own
``MAX_CONTENT_LENGTH`` or ``MAX_FORM_PARTS`` keeps them. And input that no column can
hold is refused before a query sees it.
"""

from __future__ import annotations

from flask import Flask, abort, current_app, request

#: The largest id a PostgreSQL ``integer`` column holds (SQLite's is larger).
MAX_ID = 2**31 - 1


def refuse_unstorable_input() -> None:
    """A URL no column can hold never reaches a query, where it was a 500: PostgreSQL
    refuses NUL characters in text (a NUL in a slug or a link's token), and ids beyond
    its integer range (SQLite: beyond 64 bits) fail both databases. A NUL is a 400; an
    id that cannot exist is a 404, like any other unknown id. (Form fields are each
    stage's to check, with a message next to the field.)"""
    query = request.args.items(multi=True)
    if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in query):
        abort(400)
    for value in (request.view_args or {}).values():
        if isinstance(value, int) and not 0 <= value <= MAX_ID:
            abort(404)


def limit_request_size() -> None:
    """``before_request`` of the flows blueprint: the size limits, then the field count."""
    config = current_app.config
    if config.get("MAX_CONTENT_LENGTH") is None:
        request.max_content_length = config["FLOWS_MAX_CONTENT_LENGTH"]
    fields = config.get("MAX_FORM_PARTS")
    if fields is None or fields == Flask.default_config.get("MAX_FORM_PARTS"):
        fields = config["FLOWS_MAX_FORM_FIELDS"]  # the app left Flask's default
        request.max_form_parts = fields  # multipart bodies
    if request.method == "POST" and sum(map(len, request.form.listvalues())) > fields:
        abort(413)  # a urlencoded body, which max_form_parts does not bound
