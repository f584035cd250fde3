"""The accounting staff's workbench: a slip's whole story, and the playbooks of the exception queue.

The exception page (views.exception_detail) shows the evidence timeline of gateway.services.timeline
and the kind's playbook; this module adds the slip page that the evidence links to, and the
administrator's pages that edit the ward's playbooks (gateway.services.playbooks).
"""
from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from gateway.errors import InvalidSearch
from gateway.models import EXCEPTION_KINDS, RESOLUTIONS
from gateway.services import search as search_service
from gateway.services.playbooks import defaults, playbook_of, playbooks_of, reset_playbook, save_playbook
from gateway.services.timeline import slip_story
from gateway.staff.views import ADMIN, RECONCILE, _session, bp, current_ward, roles


@bp.route("/slips/<string:number>")
@roles(*RECONCILE)
def slip(number: str) -> Any:
    """A slip number's sheets, its instalment and everything that happened to them and their money."""
    if not number.isdigit() or len(number) > 16:
        abort(404)
    story = slip_story(_session(), current_ward(), number)
    if story is None:
        abort(404)
    return render_template("staff/slip.html", story=story)


@bp.route("/playbook")
@roles(*ADMIN)
def playbooks() -> Any:
    """The ward's playbook of every exception kind: the default, or the ward's own edit."""
    return render_template("staff/playbooks.html", books=playbooks_of(_session(), current_ward()))


@bp.route("/playbook/<string:kind>", methods=["GET", "POST"])
@roles(*ADMIN)
def playbook_edit(kind: str) -> Any:
    """Edit one kind's playbook: what it means, what to check, which resolutions, who must agree."""
    session, ward = _session(), current_ward()
    if kind not in EXCEPTION_KINDS:
        abort(404)
    if request.method == "POST":
        form = request.form
        chosen = [{"code": key.removeprefix("allow-"), "effect": form.get(f"effect-{key[6:]}", ""),
                   "second_person": form.get(f"second-{key[6:]}") == "on"}
                  for key in form if key.startswith("allow-") and form[key] == "on"]  # in the page's order
        save_playbook(session, ward, kind, meaning=form.get("meaning", ""),
                      checks=form.get("checks", "").splitlines(), resolutions=chosen, actor=current_user.username)
        flash(_("手引きを保存しました。"), "info")
        return redirect(url_for("staff.playbooks"))
    book = playbook_of(session, ward, kind)
    order = [play.code for play in book.resolutions] + [code for code in RESOLUTIONS if book.allows(code) is None]
    return render_template("staff/playbook.html", book=book, resolutions={code: RESOLUTIONS[code] for code in order},
                           default=defaults()[kind])


@bp.route("/playbook/<string:kind>/reset", methods=["POST"])
@roles(*ADMIN)
def playbook_reset(kind: str) -> Any:
    """Go back to the default playbook of the kind."""
    if kind not in EXCEPTION_KINDS:
        abort(404)
    reset_playbook(_session(), current_ward(), kind, actor=current_user.username)
    flash(_("標準の手引きに戻しました。"), "info")
    return redirect(url_for("staff.playbooks"))


@bp.route("/search", methods=["GET", "POST"])
@roles(*RECONCILE)
def search() -> Any:
    """Find slips, payments and exceptions of the ward; the form posts, so no criterion is ever in a URL."""
    found, criteria, problem = None, None, None
    if request.method == "POST":
        try:
            criteria = search_service.parse_criteria(request.form)
            found = search_service.search(_session(), current_app.extensions["kokin.cipher"], current_ward(), criteria)
        except InvalidSearch as exc:
            problem = exc
    return render_template("staff/search.html", found=found, criteria=criteria, problem=problem,
                           limit=search_service.LIMIT, tokyo=search_service.TOKYO)
