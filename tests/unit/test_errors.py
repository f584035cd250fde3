"""The error catalogue: every code is API, so each class keeps its code and HTTP status."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import gateway
import reconciliation
from gateway import errors
from gateway.errors import GatewayError

CATALOGUE = {
    "GatewayError": ("gateway_error", 400),
    "ValidationFailed": ("validation_failed", 422),
    "NotFound": ("not_found", 404),
    "Conflict": ("conflict", 409),
    "SlipNotPayable": ("slip_not_payable", 409),
    "SlipExpired": ("slip_expired", 409),
    "Unauthorized": ("unauthorized", 401),
    "SignInRefused": ("sign_in_refused", 401),
    "SignInThrottled": ("sign_in_throttled", 429),
    "SignInExpired": ("sign_in_expired", 401),
    "Forbidden": ("forbidden", 403),
    "IdempotencyConflict": ("idempotency_conflict", 422),
    "IdempotencyInProgress": ("idempotency_in_progress", 409),
    "InvalidSignature": ("invalid_signature", 400),
    "MalformedNotification": ("malformed_notification", 400),
    "MalformedRequest": ("malformed_request", 400),
    "InvalidCharacters": ("invalid_characters", 400),
    "JsonTooDeep": ("json_too_deep", 400),
    "ProviderUnavailable": ("provider_unavailable", 503),
    "ProviderRejected": ("provider_rejected", 502),
    "LedgerFileRejected": ("ledger_file_rejected", 422),
    "AgencyFileInvalid": ("agency_file_rejected", 422),
    "DepositFileRejected": ("deposit_file_rejected", 422),
    "SettlementFileInvalid": ("settlement_file_rejected", 422),
    "ReceiptsNotWritable": ("receipts_not_writable", 422),
    "RevenueNotWritable": ("counter_revenue_not_writable", 422),
    "InvalidField": ("invalid_field", 422),
    "InvalidFilter": ("invalid_filter", 422),
    "InvalidSearch": ("invalid_search", 422),
    "BulkRefused": ("bulk_refused", 409),
}


def _catalogued() -> dict[str, type[GatewayError]]:
    return {name: cls for name, cls in inspect.getmembers(errors, inspect.isclass)
            if issubclass(cls, GatewayError) and cls.__module__ == errors.__name__}


def test_the_catalogue_holds_exactly_the_listed_errors() -> None:
    assert sorted(_catalogued()) == sorted(CATALOGUE)


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_each_error_keeps_its_code_and_status(name: str) -> None:
    cls = _catalogued()[name]

    assert (cls.code, cls.status) == CATALOGUE[name]
    assert cls.__doc__, "each error says when it is raised"


def test_no_gateway_error_is_defined_outside_the_catalogue() -> None:
    def subclasses(cls: type[GatewayError]) -> set[type[GatewayError]]:
        return {sub for direct in cls.__subclasses__() for sub in {direct} | subclasses(direct)}

    for package in (gateway, reconciliation):  # load every module that could define one
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not module.name.endswith(".__main__"):  # `python -m gateway.cli` runs the command when imported
                importlib.import_module(module.name)

    assert {cls.__module__ for cls in subclasses(GatewayError)} == {errors.__name__}


def test_the_pure_core_refuses_an_illegal_transition_with_its_own_stable_code() -> None:
    from domain.errors import DomainError, IllegalTransition

    assert (IllegalTransition.code, IllegalTransition.status) == ("illegal_transition", 409)
    assert issubclass(IllegalTransition, DomainError) and issubclass(GatewayError, DomainError)
    assert errors.IllegalTransition is IllegalTransition  # named in the catalogue, defined in the core
