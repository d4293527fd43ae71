"""Errors of the audit: a target that names nothing the chain knows, or a bad query."""

from __future__ import annotations

from ledger.errors import LedgerError


class AuditError(LedgerError):
    """Root of audit failures that stop an audit before any check runs."""


class AuditTargetError(AuditError, LookupError):
    """The target (model CID, model file or job id) does not name a committed model or a job."""


class ImpactQueryError(AuditError, ValueError):
    """An impact query is malformed (e.g. a grant without grantee or purpose)."""
