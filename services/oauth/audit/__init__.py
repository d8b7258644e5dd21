"""The audit log's listing: `GET /api/audit-events` (SPEC §13; entries: shared.domain.audit)."""
