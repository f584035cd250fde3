"""The pay pages' error page for what their views do not answer themselves (an unknown address, a wrong method).

The resident gets the pages' own message page in their language, with the status; never the
API's JSON. Registered for every path under /pay (`gateway.errors.html_error_pages`).
"""
from __future__ import annotations

from typing import Any

from flask import Flask, render_template, request

from gateway.errors import html_error_pages
from gateway.public.present import text


def error_page(exc: Exception, status: int) -> Any:
    """The message page: "page not found" for a 404, "could not start the payment" otherwise."""
    lang = "en" if request.args.get("lang") == "en" else "ja"
    title, message = ("not_found_title", "not_found") if status == 404 else ("error_title", "error_other")
    return render_template("public/message.html", title_key=title, message_key=message, lang=lang,
                           t=lambda key, **values: text(lang, key, **values),
                           switch_url=request.path + ("" if lang == "en" else "?lang=en"),
                           lang_args={"lang": "en"} if lang == "en" else {}), status


def register(app: Flask) -> None:
    html_error_pages(app, "/pay", error_page)
