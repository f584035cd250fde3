"""SQLAlchemy models only; services own every transaction."""
from gateway.models.agency import LINE_KINDS, AgencyDeposit, AgencyImport, AgencyReport, AgencyReportLine
from gateway.models.audit import ApiKey, AuditChainHead, Event
from gateway.models.base import ENCRYPTED, Base, encrypted_columns, on_ward, table
from gateway.models.counter import ROLES, SALE_STATUSES, Counter, FeeItem, FeePrice, Sale, SaleLine, StaffUser, Terminal
from gateway.models.jobs import JobRun, ReconRun, SchedulerJob
from gateway.models.journal import FEEDS, RECORD_KINDS, OutboundFile, ReceiptQueue, ReceiptRecord, receipt_claims
from gateway.models.ledger import Assessment, AssessmentRevision, LedgerImport
from gateway.models.payment import IdempotencyKey, Payment, PaymentAttempt, Refund, WebhookDelivery
from gateway.models.recon import (
    EXCEPTION_KINDS,
    RESOLUTIONS,
    ExceptionComment,
    ExceptionPlaybook,
    ProviderSettlement,
    ReconException,
)
from gateway.models.reference import CHANNELS, FundType, Municipality
from gateway.models.sandbox import SandboxObject
from gateway.models.slip import SLIP_STATUSES, IssueRun, Slip, SlipNumberSeries
from gateway.models.staff_session import SignInFailure, StaffSession
from gateway.models.staff_ward import GRANTABLE_ROLE, StaffWard

__all__ = [
    "on_ward",
    "FEEDS",
    "RECORD_KINDS",
    "OutboundFile",
    "ReceiptQueue",
    "receipt_claims",
    "ReceiptRecord",
    "CHANNELS",
    "ROLES",
    "SALE_STATUSES",
    "Counter",
    "FeeItem",
    "FeePrice",
    "Sale",
    "SaleLine",
    "StaffUser",
    "Terminal",
    "EXCEPTION_KINDS",
    "RESOLUTIONS",
    "AgencyDeposit",
    "ExceptionComment",
    "JobRun",
    "ProviderSettlement",
    "ReconRun",
    "SchedulerJob",
    "AgencyImport",
    "AgencyReport",
    "AgencyReportLine",
    "LINE_KINDS",
    "ExceptionPlaybook",
    "ReconException",
    "SLIP_STATUSES",
    "ApiKey",
    "AuditChainHead",
    "Assessment",
    "AssessmentRevision",
    "Base",
    "ENCRYPTED",
    "encrypted_columns",
    "Event",
    "FundType",
    "IdempotencyKey",
    "IssueRun",
    "LedgerImport",
    "Municipality",
    "Payment",
    "PaymentAttempt",
    "Refund",
    "SandboxObject",
    "SignInFailure",
    "StaffSession",
    "StaffWard",
    "GRANTABLE_ROLE",
    "Slip",
    "SlipNumberSeries",
    "WebhookDelivery",
    "table",
]
