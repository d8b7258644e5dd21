"""Workspace API keys: `/api/workspaces/{workspace_id}/api-keys` (SPEC §13)."""
