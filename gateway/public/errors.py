"""The pay pages' error page for what their views do not answer themselves (an unknown address, a wrong method).

The resident gets the pages' own message page in their language, with the status; never the
API's JSON. Registered for every path under /pay (`gateway.errors.html_error_pages`).
"""
from __future__ import annotations

from typing import Any

from flask import Flask, render_template, request

from gateway.errors import html_error_pages
from gateway.i18n import current_language
from gateway.public.present import ERROR_OTHER, ERROR_TITLE, NOT_FOUND, NOT_FOUND_TITLE


def error_page(exc: Exception, status: int) -> Any:
    """The message page: "page not found" for a 404, "could not start the payment" otherwise."""
    lang = current_language()
    title, message = (NOT_FOUND_TITLE, NOT_FOUND) if status == 404 else (ERROR_TITLE, ERROR_OTHER)
    return render_template("public/message.html", title=title, message=message, lang=lang,
                           switch_url=request.path + ("" if lang == "en" else "?lang=en"),
                           lang_args={"lang": "en"} if lang == "en" else {}), status


def register(app: Flask) -> None:
    html_error_pages(app, "/pay", error_page)
