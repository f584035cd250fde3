"""The staff screens. Views are thin: a form in, one service call, a template out."""
from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as cookie
from flask_babel import gettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required, logout_user
from markupsafe import Markup
from werkzeug.wrappers import Response

from adapters.base import Capability
from domain.calendar import TOKYO, business_date
from domain.errors import DomainError
from domain.fiscal import fiscal_year_of
from gateway.db import utcnow
from gateway.errors import (
    BulkRefused,
    Conflict,
    GatewayError,
    InvalidFilter,
    MalformedRequest,
    NotFound,
    RevenueNotWritable,
)
from gateway.i18n import label, yen
from gateway.models import CHANNELS, EXCEPTION_KINDS, Municipality, Payment, Refund, Sale
from gateway.models import Counter as CounterDesk
from gateway.services import counters as counter_service
from gateway.services import fee_items as fee_service
from gateway.services import queue as queue_service
from gateway.services import sales as sales_service
from gateway.services import staff_sign_in
from gateway.services.exceptions import (
    assign_exception,
    comment_exception,
    comments_of,
    decide_resolution,
    get_exception,
    resolve_exception,
)
from gateway.services.playbooks import playbook_of
from gateway.services.refunds import decide_refund, execute_refund, refund_queue
from gateway.services.staff_sessions import sign_out
from gateway.services.staff_wards import ward_in_effect
from gateway.services.timeline import detail_facts, exception_evidence, subject_of
from gateway.staff import SESSION_KEY, csrf, usage_tables
from gateway.staff.errors import error_page
from gateway.staff.refusals import refusal
from reconciliation import counter_revenue
from reconciliation import reports as reports_module
from reconciliation import usage as usage_module
from reconciliation.balance import balance as feed_balance
from reconciliation.receipts import resend as resend_receipts
from reconciliation.receipts import sent_files

bp = Blueprint("staff", __name__, url_prefix="/staff", template_folder="templates", static_folder="static",
               static_url_path="/static")
F = TypeVar("F", bound=Callable[..., Any])
# Who may do what (issue: counter staff cannot approve refunds or open reconciliation).
SELL = ("counter_staff", "counter_supervisor")
VOID = ("counter_supervisor",)
CLOSE = ("counter_staff", "counter_supervisor", "accounting", "auditor")
APPROVE = ("approver", "accounting")
ACT = ("accounting", "approver")  # auditors read only
RECONCILE = ("accounting", "approver", "auditor")
ADMIN = ("administrator",)


def _session():  # type: ignore[no-untyped-def]
    return current_app.extensions["kokin.db"].scoped()


def _today() -> date:
    return business_date(utcnow())


def _terminal_adapters() -> dict[str, Any]:
    adapters: dict[str, Any] = current_app.extensions["kokin.adapters"]
    return adapters


@bp.before_request
def _csrf() -> None:
    if request.method == "POST":
        csrf.protect()


def roles(*allowed: str) -> Callable[[F], F]:
    """Only staff with one of these roles; others get 403 (signed-out users go to sign-in)."""
    def decorate(view: F) -> F:
        @functools.wraps(view)
        @login_required
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in allowed:
                abort(403)
            return view(*args, **kwargs)
        return wrapper  # type: ignore[return-value]
    return decorate


def current_ward() -> int:
    """The id of the ward the signed-in user's screens show: every view asks here, never the user's own ward.

    The home ward, or another an administrator holds and chose for this session
    (gateway.services.staff_wards); read once per request.
    """
    if "staff_ward" not in g:
        token = cookie.get(SESSION_KEY)
        g.staff_ward = ward_in_effect(_session(), token if isinstance(token, str) else "", current_user)
    return int(g.staff_ward)


# Refusals answered with the error page, not flashed: a request refused before any view (no form
# to go back to), and no such object for this user's ward (the same 404 as a wrong number).
SHOWN_AS_PAGE = (MalformedRequest, NotFound)


@bp.errorhandler(DomainError)
def _gateway_error(exc: DomainError) -> Any:
    if isinstance(exc, SHOWN_AS_PAGE):
        return error_page(exc, exc.status)
    flash(refusal(exc), "error")
    back = urlsplit(request.referrer or "")
    own = back.netloc == request.host and back.path.startswith("/staff")
    return redirect(f"{back.path}?{back.query}" if own else url_for("staff.home"))


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "POST":
        try:
            step = staff_sign_in.sign_in(_session(), request.form.get("username", ""),
                                         request.form.get("password", ""), client_address(),
                                         staff_sign_in.SignInPolicy.from_config(current_app.config))
        except staff_sign_in.SignInThrottled as exc:
            return throttled(exc, "staff/login.html")
        except staff_sign_in.SignInRefused:
            return render_template("staff/login.html", error=REFUSED), 401
        start_session(step.token)
        if step.next == "code":
            return redirect(url_for("staff.mfa_code"))
        if step.next == "enrol":
            return redirect(url_for("staff.mfa_enrol"))
        return redirect(url_for("staff.home"))
    return render_template("staff/login.html")


REFUSED = _l("ユーザー名またはパスワードが違います。または、サインインに続けて失敗したため、アカウントが"
             "一時的にロックされています（しばらく待つか、管理者に解除を依頼してください）。")


def client_address() -> str:
    """The browser's address, as the WSGI server (or a configured proxy fix) reports it."""
    return request.remote_addr or "unknown"


def start_session(token: str) -> None:
    """Put a new session token in the cookie, and nothing else of the old cookie (no fixation)."""
    cookie.clear()
    cookie[SESSION_KEY] = token


def throttled(exc: staff_sign_in.SignInThrottled, template: str) -> Any:
    minutes = max(1, (exc.retry_after + 59) // 60)
    message = _("このアドレスからのサインインの失敗が多すぎます。%(minutes)s分ほど待ってから、もう一度お試しください。",
                minutes=minutes)
    response = make_response(render_template(template, error=message), 429)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    """Revoke this browser's session in the database (a copy of the cookie is refused afterwards)."""
    token = cookie.get(SESSION_KEY)
    if isinstance(token, str) and token:
        sign_out(_session(), token)
    logout_user()
    cookie.clear()
    flash(_("サインアウトしました。"), "info")
    return redirect(url_for("staff.login"))


@bp.route("/")
@login_required
def home() -> Any:
    if current_user.role in SELL:
        return redirect(url_for("staff.counter"))
    if current_user.role in RECONCILE:
        return redirect(url_for("staff.exceptions"))
    return render_template("staff/home.html")


@bp.route("/counter")
@roles(*SELL)
def counter() -> Any:
    session = _session()
    code = request.args.get("counter") or current_user.counter_code or "resident"
    counter_row, terminals = counter_service.counter_terminals(session, current_ward(), code)
    items = fee_service.catalogue(session, current_ward(), code, _today())
    return render_template("staff/counter.html", counter=counter_row, terminals=terminals, items=items,
                           brands=sales_service.BRANDS,
                           counters=counter_service.list_counters(session, current_ward()))


@bp.route("/counter/sales", methods=["POST"])
@roles(*SELL)
def create_sale() -> Any:
    form = request.form
    lines = [sales_service.SaleLineRequest(key.removeprefix("qty-"), _quantity(value))
             for key, value in form.items() if key.startswith("qty-")]
    # The sale is of the seller's home ward: no role that sells holds another (staff_wards).
    sale = sales_service.start_sale(_session(), _terminal_adapters(), user=current_user,
                                    counter_code=form.get("counter", ""), terminal_id=_int(form.get("terminal")),
                                    lines=lines, brand=form.get("brand", ""), business_date=_today())
    return redirect(url_for("staff.show_sale", sale_id=sale.id))


def _quantity(value: str) -> int:
    try:
        return int(value or 0)
    except ValueError:
        raise GatewayError(f"quantity {value!r} is not a whole number", code="invalid_quantity", status=422) from None


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _own_sale(sale_id: int) -> Any:
    """The sale, if it belongs to the ward in effect; 404 otherwise (never another's)."""
    sale = _session().get(Sale, (sale_id, current_ward()))
    if sale is None:
        abort(404)
    return sale


@bp.route("/counter/sales/<int:sale_id>")
@roles(*SELL)
def show_sale(sale_id: int) -> Any:
    session = _session()
    sale = _own_sale(sale_id)
    attempt = sales_service.sale_attempt(session, current_ward(), sale_id)
    sandbox = _sandbox_terminal(attempt.adapter if attempt else None)
    return render_template("staff/sale.html", sale=sale,
                           lines=sales_service.sale_lines(session, sale.municipality_id, sale_id),
                           brand=sales_service.BRANDS.get(sale.brand, sale.brand), sandbox=sandbox)


@bp.route("/counter/sales/<int:sale_id>/status")
@roles(*SELL)
def sale_status(sale_id: int) -> Any:
    _own_sale(sale_id)
    sale = sales_service.follow_sale(_session(), _terminal_adapters(), current_ward(), sale_id)
    return jsonify({"status": sale.status, "receipt_number": sale.receipt_number})


@bp.route("/counter/sales/<int:sale_id>/cancel", methods=["POST"])
@roles(*SELL)
def cancel_sale(sale_id: int) -> Any:
    _own_sale(sale_id)
    sales_service.cancel_sale(_session(), _terminal_adapters(), current_ward(), sale_id, actor=current_user.username)
    return redirect(url_for("staff.show_sale", sale_id=sale_id))


@bp.route("/counter/sales/<int:sale_id>/simulate", methods=["POST"])
@roles(*SELL)
def simulate_terminal(sale_id: int) -> Any:
    """Sandbox only: play the resident at the simulated terminal (complete, cancel, time out)."""
    sale = _own_sale(sale_id)
    attempt = sales_service.sale_attempt(_session(), current_ward(), sale_id)
    adapter = _sandbox_terminal(attempt.adapter if attempt else None)
    action = request.form.get("action", "")
    if adapter is None or attempt is None or not attempt.provider_ref or action not in ("complete", "cancel",
                                                                                          "timeout"):
        abort(404)
    try:
        if action == "complete":
            adapter.simulator.simulate_device(attempt.provider_ref, "start")
        adapter.simulator.simulate_device(attempt.provider_ref, action)
    except ValueError as exc:  # the device has finished with the sale's checkout (paid, cancelled, timed out)
        # it may have given up on its own: the sale learns it before the clerk is told
        sales_service.follow_sale(_session(), _terminal_adapters(), current_ward(), sale_id)
        status = sales_service.get_sale(_session(), current_ward(), sale_id).status
        raise Conflict(f"sale {sale.receipt_number} is {status}", code="sale_not_waiting") from exc
    sales_service.follow_sale(_session(), _terminal_adapters(), current_ward(), sale_id)
    return redirect(url_for("staff.show_sale", sale_id=sale_id))


def _sandbox_terminal(adapter_name: str | None) -> Any:
    adapter = _terminal_adapters().get(adapter_name or "")
    return adapter if adapter is not None and getattr(adapter, "simulator", None) is not None else None


@bp.route("/counter/sales/<int:sale_id>/receipt")
@roles(*SELL, *CLOSE)
def receipt(sale_id: int) -> Any:
    session = _session()
    sale = _own_sale(sale_id)
    if sale.status not in ("paid", "voided", "refund_requested"):
        abort(404)
    return render_template("staff/receipt.html", sale=sale,
                           lines=sales_service.sale_lines(session, sale.municipality_id, sale_id),
                           brand=sales_service.BRANDS.get(sale.brand, sale.brand),
                           municipality=session.get(Municipality, sale.municipality_id),
                           counter=session.get(CounterDesk, (sale.counter_id, sale.municipality_id)),
                           paid_at=sale.completed_at.astimezone(TOKYO) if sale.completed_at else None)


@bp.route("/counter/sales/<int:sale_id>/void", methods=["POST"])
@roles(*VOID)
def void_sale(sale_id: int) -> Any:
    _own_sale(sale_id)
    sale = sales_service.void_sale(_session(), _terminal_adapters(), current_ward(), sale_id, supervisor=current_user,
                                   today=_today())
    flash(_("取り消しました。") if sale.status == "voided" else _("返金を依頼しました（会計課の承認待ち）。"), "info")
    return redirect(url_for("staff.close"))


@bp.route("/close")
@roles(*CLOSE)
def close() -> Any:
    session = _session()
    day = _date(request.args.get("date")) or _today()
    session.rollback()  # the user loader's read ends here: no transaction while the providers are asked
    reports = {name: adapter.settlement_report(day) for name, adapter in _terminal_adapters().items()
               if adapter.capabilities & Capability.TERMINAL and adapter.capabilities & Capability.SETTLEMENT_REPORT}
    result = sales_service.daily_close(session, current_ward(), day, reports, record=False)
    return render_template("staff/close.html", close=result, day=day, brands=sales_service.BRANDS,
                           sales=sales_service.sales_of_day(session, current_ward(), day),
                           can_void=current_user.role in VOID)


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@bp.route("/exceptions")
@roles(*RECONCILE)
def exceptions() -> Any:
    """The queue: counts per kind and age on top, filters, and the rows to select for work in bulk."""
    session, ward, today = _session(), current_ward(), _today()
    try:
        chosen = queue_service.parse_filter(request.args, me=current_user.username)
        problem = None
    except InvalidFilter as exc:
        chosen, problem = queue_service.QueueFilter(), exc
    rows, total = queue_service.queue(session, ward, chosen, today=today)
    playbook = playbook_of(session, ward, chosen.kind) if chosen.kind else None
    return render_template("staff/exceptions.html", rows=rows, total=total, f=chosen, problem=problem,
                           counts=queue_service.counts(session, ward, today=today), ages=queue_service.AGES,
                           kinds=EXCEPTION_KINDS, channels=CHANNELS, statuses=queue_service.STATUSES,
                           assignees=queue_service.assignees(session, ward), playbook=playbook,
                           can_act=current_user.role in ACT, query=request.query_string.decode("ascii", "replace"))


BULK_REFUSALS = {"unknown_exception": _l("ありません"), "exception_not_open": _l("未処理ではありません"),
                 "resolution_not_in_playbook": _l("手引きで選べない処理です"),
                 "not_pending_approval": _l("承認待ちではありません"),
                 "four_eyes_required": _l("自分が提案した処理は承認できません")}


@bp.route("/exceptions/bulk", methods=["POST"])
@roles(*ACT)
def exceptions_bulk() -> Any:
    """Many exceptions at once with one reason, all or nothing; then back to the same filtered queue."""
    form = request.form
    back = url_for("staff.exceptions") + "?" + (form.get("back") or "").lstrip("?")
    try:
        ids = [int(value) for value in form.getlist("ids")]
    except ValueError:
        raise GatewayError("the selection holds something that is not an exception number",
                           code="invalid_selection", status=422) from None
    action = form.get("action", "")
    assignee = current_user.username if action == "assign_me" else form.get("assignee", "")
    try:
        done = queue_service.bulk(_session(), current_ward(), ids, "assign" if action == "assign_me" else action,
                                  actor=current_user.username, resolution=form.get("resolution", ""),
                                  note=form.get("note", ""), assignee=assignee)
    except BulkRefused as exc:
        listed = "、".join(f"#{i}（{BULK_REFUSALS.get(code, code)}）" for i, code in exc.refusals[:20])
        flash(gettext("何も変更していません。次の例外はこの操作ができません: %(listed)s", listed=listed), "error")
        return redirect(back)
    flash(gettext("%(n)s件の例外を処理しました。", n=done), "info")
    return redirect(back)


@bp.route("/exceptions/<int:exception_id>")
@roles(*RECONCILE)
def exception_detail(exception_id: int) -> Any:
    session = _session()
    item = get_exception(session, current_ward(), exception_id)
    story, own = exception_evidence(session, item)
    return render_template("staff/exception.html", item=item, comments=comments_of(session, item.municipality_id,
                                                                                   exception_id),
                           story=story, own=own, subject=subject_of(item), facts=detail_facts(item.details),
                           playbook=playbook_of(session, item.municipality_id, item.kind),
                           can_act=current_user.role in ACT)


@bp.route("/exceptions/<int:exception_id>/<string:action>", methods=["POST"])
@roles(*ACT)
def exception_action(exception_id: int, action: str) -> Any:
    """Assign, comment, resolve, approve or send back: each audited; money needs two people."""
    session, form, who = _session(), request.form, current_user.username
    municipality_id = current_ward()
    if action == "assign":
        assign_exception(session, municipality_id, exception_id, form.get("assignee", ""), actor=who)
    elif action == "comment":
        comment_exception(session, municipality_id, exception_id, form.get("text", ""), actor=who)
    elif action == "resolve":
        resolve_exception(session, municipality_id, exception_id, form.get("resolution", ""),
                          form.get("note", ""), actor=who)
    elif action in ("approve", "send_back"):
        decide_resolution(session, municipality_id, exception_id, approve=action == "approve", actor=who)
    else:
        abort(404)
    return redirect(url_for("staff.exception_detail", exception_id=exception_id))


REPORT_ROLES = ("counter_supervisor", "accounting", "approver", "auditor", "administrator")


@bp.route("/reports")
@roles(*REPORT_ROLES)
def reports() -> Any:
    return render_template("staff/reports.html", names=REPORT_TITLES, feed=url_for("staff.feed"))


@bp.route("/reports/<string:name>")
@roles(*REPORT_ROLES)
def report(name: str) -> Any:
    """One report on screen (with its chart), or as CSV or PDF with ?format=csv|pdf."""
    build = reports_module.REPORTS.get(name)
    if build is None and name != "usage":
        abort(404)
    session = current_app.extensions["kokin.replica"].session()  # long reads: the replica when there is one
    code = session.get(Municipality, current_ward()).code
    if build is None:
        return _usage_report(session, code)
    day, why = _date(request.args.get("date")), ""
    if day is None:  # yesterday is not reconciled before the night's run: open on a day that has figures
        day, why = reports_module.default_day(session, code, _today())
    result = build(session, code, day) if name == "daily" else build(session, code)
    fmt = request.args.get("format")
    if fmt in ("csv", "pdf"):
        body = reports_module.to_csv(result) if fmt == "csv" else reports_module.to_pdf(result)
        filename = f"{name}-{day:%Y%m%d}.{fmt}" if name == "daily" else f"{name}.{fmt}"
        return Response(body, mimetype="text/csv" if fmt == "csv" else "application/pdf",
                        headers={"Content-Disposition": f"attachment; filename={filename}"})
    return render_template("staff/report.html", report=result, name=name, day=day, why=why if name == "daily" else "",
                           chart=Markup(reports_module.bar_chart_svg(result)))  # noqa: S704 - every text escaped


def _usage_report(session: Any, code: str) -> Any:
    """The council's page: trend per channel, share per fund, the counter's tenders; CSV and PDF of the same tables."""
    current = fiscal_year_of(_today())
    asked, error = request.args.get("fy", ""), ""
    year = current
    if asked:
        if asked.isdigit() and 2000 <= int(asked) <= current + 1:
            year = int(asked)
        else:
            error = _("年度の指定が正しくありません（%(low)s〜%(high)sの西暦の数字）。%(year)s年度を表示しています。",
                      low=2000, high=current + 1, year=current)
    figures = usage_module.usage(session, code, year)
    parts = usage_tables.sections(figures)
    title = _("収納経路の利用状況 %(year)s年度（%(start)s〜%(end)s）", year=year, start=figures.months[0],
              end=figures.months[-1])
    note = _("ゲートウェイの支払は受け付けた月、他の経路の納付は基幹システムの状況連携が報告した消込日の月に計上します"
             "（月は日本時間）。返金した支払も納付された経路として数え、取り消された支払は含みません。")
    group_name = usage_tables.group_names()
    months, series = usage_module.stacks(figures, label, group_name)
    fmt = request.args.get("format")
    if fmt == "csv":
        return Response(usage_module.to_csv(title, parts), mimetype="text/csv",
                        headers={"Content-Disposition": f"attachment; filename=usage-{year}.csv"})
    if fmt == "pdf":
        return Response(usage_module.to_pdf(title, note, parts, months, series), mimetype="application/pdf",
                        headers={"Content-Disposition": f"attachment; filename=usage-{year}.pdf"})
    chart = usage_module.stacked_chart_svg(
        _("月別・経路別の金額（積み上げ）"),
        _("%(year)s年度の各月の金額を経路ごとに積み上げた棒グラフ。数値は隣の表にあります。", year=year),
        months, series, yen=yen)
    fund_rows = []
    for code_, name_ in figures.funds:
        ours, theirs = (figures.fund_figures.get((code_, g), (0, 0))[1]
                        for g in (usage_module.GATEWAY, usage_module.ELSEWHERE))
        share = usage_module.shares([ours, theirs])
        fund_rows.append((f"{code_} {name_}", share[0], share[1]))
    share_chart = usage_module.share_chart_svg(_("会計区分別のキャッシュレスの割合（金額）"), fund_rows,
                                               group_name[usage_module.GATEWAY], group_name[usage_module.ELSEWHERE])
    years = list(range(current + 1, current - 6, -1))
    return render_template("staff/usage.html", title=title, note=note, error=error, parts=parts, year=year,
                           years=years, chart=Markup(chart), share_chart=Markup(share_chart))  # noqa: S704 - escaped


@bp.route("/feed")
@roles(*REPORT_ROLES)
def feed() -> Any:
    """The receipts feed: every yen accounted for per channel, and the files sent to the core system."""
    session = _session()
    code = session.get(Municipality, current_ward()).code
    start, end = _date(request.args.get("from")), _date(request.args.get("to"))
    return render_template("staff/feed.html", balance=feed_balance(session, code, start, end),
                           files=sent_files(session, current_ward()), start=start, end=end,
                           local=lambda moment: moment.astimezone(TOKYO))


@bp.route("/feed/<int:sequence>")
@roles(*REPORT_ROLES)
def feed_file(sequence: int) -> Any:
    """A sent receipts file again, byte for byte."""
    session = _session()
    code = session.get(Municipality, current_ward()).code
    try:
        result = resend_receipts(session, code, sequence)
    except NotFound:
        abort(404)
    return Response(result.data, mimetype="text/csv" if result.layout.endswith("csv") else "application/octet-stream",
                    headers={"Content-Disposition": f"attachment; filename=receipts-{sequence:06d}."
                                                    f"{'csv' if result.layout.endswith('csv') else 'dat'}",
                             "X-Content-SHA256": result.sha256})


REPORT_TITLES = {"daily": _l("日次照合"), "remittances": _l("入金予定と実績"), "receipts": _l("会計区分・年度別の収納"),
                 "usage": _l("収納経路の利用状況")}


@bp.route("/revenue")
@roles(*RECONCILE)
def revenue() -> Any:
    """歳入日計: the counter revenue journal of a day for financial accounting, and the files sent."""
    session = _session()
    day = _date(request.args.get("date")) or _today() - timedelta(days=1)
    try:
        journal = counter_revenue.revenue_journal(session, current_ward(), day, day)
    except RevenueNotWritable as exc:  # shown here: the error handler would send the browser back to this page
        flash(refusal(exc), "error")
        journal = []
    files = counter_revenue.sent_files(session, current_ward())
    sent_in = next((f for f in files if f.first_day and f.last_day and f.first_day <= day <= f.last_day), None)
    late = counter_revenue.written_after_sending(session, current_ward())
    return render_template("staff/revenue.html", day=day, journal=journal, files=files, sent_in=sent_in, late=late,
                           closed=day < _today(), brands=sales_service.BRANDS, tokyo=TOKYO,
                           total_count=sum(line.count for line in journal),
                           total_amount=sum(line.amount for line in journal))


@bp.route("/revenue/files/<int:sequence>")
@roles(*RECONCILE)
def revenue_file(sequence: int) -> Any:
    """A counter revenue file as it was sent, byte for byte."""
    session = _session()
    code = session.get(Municipality, current_ward()).code
    sent = counter_revenue.resend(session, code, sequence)
    return Response(sent.data, mimetype="text/csv" if sent.layout.endswith("csv") else "application/octet-stream",
                    headers={"Content-Disposition": f"attachment; filename=counter-revenue-{sequence:06d}."
                                                    f"{'csv' if sent.layout.endswith('csv') else 'dat'}",
                             "X-Content-SHA256": sent.sha256})


@bp.route("/refunds")
@roles(*APPROVE)
def refunds() -> Any:
    return render_template("staff/refunds.html", rows=refund_queue(_session(), current_ward()))


@bp.route("/refunds/<int:refund_id>/decide", methods=["POST"])
@roles(*APPROVE)
def decide(refund_id: int) -> Any:
    """A second person approves or rejects a refund; the database refuses the requester's own approval."""
    ward = current_ward()
    if _session().get(Refund, (refund_id, ward)) is None:
        abort(404)
    approve = request.form.get("decision") == "approve"
    refund = decide_refund(_session(), ward, refund_id, approve=approve, decided_by=current_user.username)
    if approve and refund.status == "approved":
        payment = _session().get(Payment, (refund.payment_id, ward))
        if payment is not None and payment.channel in ("card", "paypay", "emoney"):  # agencies: by transfer
            refund = execute_refund(_session(), _terminal_adapters(), ward, refund_id, actor=current_user.username)
    if refund.status == "failed":
        flash(_("承認しましたが、決済事業者が返金を断りました（交通系ICなど）。現金または振込で返金してください。"),
              "error")
    else:
        flash(_("承認しました。") if approve else _("却下しました。"), "info")
    return redirect(url_for("staff.refunds"))


@bp.route("/fees", methods=["GET", "POST"])
@roles(*ADMIN)
def fees() -> Any:
    session = _session()
    if request.method == "POST":
        valid_from = _date(request.form.get("valid_from"))
        if valid_from is None:
            raise GatewayError("choose the date the new fee applies from", code="invalid_date", status=422)
        fee_service.set_fee(session, current_ward(), request.form.get("item", ""),
                                _quantity(request.form.get("fee", "")), valid_from, actor=current_user.username,
                                today=_today())
        flash(_("手数料を登録しました。"), "info")
        return redirect(url_for("staff.fees"))
    history = fee_service.fee_history(session, current_ward())
    return render_template("staff/fees.html", history=history)

