"""Every refusal a staff screen flashes has a message of its own (gateway.staff.refusals.BY_CODE).

The codes a staff action can raise are found by reading the code, not by running it. From each
function of gateway.staff, every function, method or class of ours that it names (calls, passes
on, or holds in a table such as reconciliation.reports.REPORTS) is read in turn, and every
DomainError built on the way is a code the action can raise: its `code=` or its class's code.
A `try` whose handler neither raises again nor flashes `refusal(exc)` keeps what it catches from
going further. The classes the staff error handler answers with a page (views.SHOWN_AS_PAGE)
are not flashed.

What reading cannot see: a method called on an object is read when the object's class is named
on the way (building an object names its class, and then every method of the class is read); a
code chosen at run time (`code=f"..."`) is reported as None, and fails the first test.
"""
from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pkgutil
import textwrap
import types
from functools import cache
from typing import Any

import gateway.staff
from domain.errors import DomainError
from gateway.staff.refusals import BY_CODE, refusal
from gateway.staff.views import SHOWN_AS_PAGE

OURS = ("domain", "gateway", "reconciliation", "adapters")
Raised = tuple[str | None, type[DomainError]]  # (code, class)


def _ours(obj: Any) -> bool:
    return (getattr(obj, "__module__", None) or "").split(".")[0] in OURS


def _resolve(node: ast.expr, scope: dict[str, Any]) -> Any:
    """What a name or a dotted name of the code is bound to at import time; None when not known."""
    if isinstance(node, ast.Name):
        return scope.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, scope)
        if base is not None:
            try:
                return inspect.getattr_static(base, node.attr) if isinstance(base, type) else getattr(base, node.attr)
            except Exception:  # an attribute only a request has (current_app.extensions), or none
                return None
    return None


def _functions(obj: Any, depth: int = 0) -> list[types.FunctionType]:
    """The functions of ours that naming `obj` may run."""
    if isinstance(obj, (staticmethod, classmethod, types.MethodType)):
        obj = obj.__func__
    if isinstance(obj, property):
        return [f for f in (obj.fget, obj.fset, obj.fdel) if isinstance(f, types.FunctionType) and _ours(f)]
    if isinstance(obj, types.FunctionType):
        obj = inspect.unwrap(obj)  # a view under its decorators
        return [obj] if _ours(obj) else []
    if isinstance(obj, type):
        if issubclass(obj, BaseException) or not _ours(obj):
            return []
        return [f for klass in obj.__mro__ if _ours(klass) for value in vars(klass).values()
                for f in _functions(value, depth + 1)]
    if depth > 0:
        return []
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [f for value in obj for f in _functions(value, depth + 1)]
    return _functions(type(obj), depth + 1) if _ours(type(obj)) else []


def _error_class(obj: Any) -> type[DomainError] | None:
    return obj if isinstance(obj, type) and issubclass(obj, DomainError) else None


def _built(node: ast.Call, scope: dict[str, Any]) -> set[Raised]:
    """The errors a call builds: an error class called, or passed to a function of ours that may build it."""
    function = _resolve(node.func, scope)
    called = _error_class(function)
    if called is not None:
        code = next((k.value for k in node.keywords if k.arg == "code"), None)
        if code is None:
            return {(called.code, called)}
        return {(code.value if isinstance(code, ast.Constant) else None, called)}
    if not _functions(function):  # isinstance(exc, NotFound), @bp.errorhandler(DomainError)
        return set()
    passed = [_error_class(_resolve(arg, scope)) for arg in [*node.args, *(k.value for k in node.keywords)]]
    return {(cls.code, cls) for cls in passed if cls is not None}


def _passes_on(handler: ast.ExceptHandler, scope: dict[str, Any]) -> bool:
    """Whether what the handler catches still reaches the member of staff: raised again, or flashed."""
    return any(isinstance(node, ast.Raise) or (isinstance(node, ast.Call) and _resolve(node.func, scope) is refusal)
               for node in ast.walk(handler))


def _caught(node: ast.expr | None, scope: dict[str, Any]) -> tuple[type, ...]:
    if node is None:
        return (BaseException,)
    if isinstance(node, ast.Tuple):
        return tuple(cls for element in node.elts for cls in _caught(element, scope))
    cls = _resolve(node, scope)
    return (cls,) if isinstance(cls, type) else ()


_reading: set[types.FunctionType] = set()


@cache
def escaping(function: types.FunctionType) -> frozenset[Raised]:
    """The errors `function` can raise to its caller, read from its code and the code it names."""
    if function in _reading:  # recursion: what it raises is found where it started
        return frozenset()
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError):  # made at run time (a dataclass's __init__): nothing of ours raises there
        return frozenset()
    scope = {**vars(builtins), **function.__globals__}
    found: set[Raised] = set()

    def read(node: ast.AST, caught: tuple[type, ...]) -> None:
        if isinstance(node, ast.Try):
            swallowed = tuple(cls for handler in node.handlers if not _passes_on(handler, scope)
                              for cls in _caught(handler.type, scope))
            for child in node.body:
                read(child, caught + swallowed)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                read(child, caught)
            return
        raised: set[Raised] = set()
        if isinstance(node, ast.Call):
            raised |= _built(node, scope)
        if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load):
            for named in _functions(_resolve(node, scope)):
                raised |= escaping(named)
        found.update(item for item in raised if not issubclass(item[1], caught))
        for child in ast.iter_child_nodes(node):
            read(child, caught)

    _reading.add(function)
    try:
        read(tree, ())
    finally:
        _reading.discard(function)
    return frozenset(found)


def flashed() -> dict[str | None, set[str]]:
    """Every code a function of gateway.staff can raise and the staff error handler flashes: {code: functions}."""
    modules = [gateway.staff] + [importlib.import_module(f"gateway.staff.{m.name}")
                                 for m in pkgutil.iter_modules(gateway.staff.__path__)]
    found: dict[str | None, set[str]] = {}
    for module in modules:
        for name, value in vars(module).items():
            if isinstance(value, types.FunctionType) and value.__module__ == module.__name__:
                for function in _functions(value):
                    for code, cls in escaping(function):
                        if not issubclass(cls, SHOWN_AS_PAGE):
                            found.setdefault(code, set()).add(f"{module.__name__}.{name}")
    return found


def test_every_refusal_a_staff_action_can_flash_has_a_message_of_its_own() -> None:
    missing = {code: sorted(where) for code, where in flashed().items() if code not in BY_CODE}
    assert not missing, f"codes the staff screens flash with no message in gateway.staff.refusals: {missing}"


def test_the_search_reads_through_services_and_past_what_a_view_catches() -> None:
    found = flashed()
    seen = {(code, view.removeprefix("gateway.staff.")) for code, views in found.items() for view in views}
    assert {("terminal_busy", "views.cancel_sale"),  # raised by the service the view calls
            ("illegal_transition", "views.decide"),  # by a state machine's method, two services down
            ("receipts_not_writable", "views.feed_file"),  # an error class handed to the function that raises it
            ("counter_revenue_not_writable", "views.revenue"),  # caught by the view, which flashes it
            ("mfa_enrolled", "sign_in.mfa_enrol")} <= seen  # past the handlers of other sign-in errors
    # caught by the view (the page says it), or answered with the error page, not flashed
    assert not {"invalid_filter", "invalid_search", "bulk_refused", "sign_in_refused", "unknown_sale"} & found.keys()
