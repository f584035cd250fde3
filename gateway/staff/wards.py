"""The ward switcher: an administrator holding several wards chooses the one the staff screens show.

The choice is kept in the user's server-side session (staff_sessions), so it holds on every
instance and ends with the session; `current_ward` reads it for every view.
"""
from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from flask import session as cookie
from flask_babel import gettext as _
from flask_login import current_user, login_required

from gateway.models import GRANTABLE_ROLE
from gateway.services.staff_wards import switch_ward, wards_of
from gateway.staff import SESSION_KEY
from gateway.staff.views import _session, bp, current_ward


@bp.route("/ward", methods=["POST"])
@login_required
def ward() -> Any:
    """Show another ward the user holds; a ward they do not hold is a 404 and changes nothing."""
    token = cookie.get(SESSION_KEY)
    chosen = switch_ward(_session(), token if isinstance(token, str) else "", current_user,
                         request.form.get("ward", ""))
    flash(_("%(name)s（%(code)s）の画面に切り替えました。", name=chosen.name, code=chosen.code), "info")
    return redirect(url_for("staff.home"))  # the page before may show an object of the other ward


@bp.context_processor
def _ward_switcher() -> dict[str, Any]:
    """The header's switcher, for a user who holds more than the home ward."""
    if not getattr(current_user, "is_authenticated", False) or current_user.role != GRANTABLE_ROLE:
        return {}
    held = wards_of(_session(), current_user)
    if len(held) < 2:
        return {}
    return {"held_wards": held, "ward_in_effect": current_ward()}
