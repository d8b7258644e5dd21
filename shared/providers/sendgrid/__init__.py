"""SendGrid: Event Webhook batches signed with ECDSA P-256."""
