"""The accounting staff's workbench: a slip's whole story, beside the exception queue.

The exception page (views.exception_detail) shows the evidence timeline of gateway.services.timeline
and the kind's playbook; this module adds the slip page that the evidence links to.
"""
from __future__ import annotations

from typing import Any

from flask import abort, render_template

from gateway.services.timeline import slip_story
from gateway.staff.views import RECONCILE, _session, bp, current_ward, roles


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
