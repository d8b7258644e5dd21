"""The domain: hookhub's business concepts shared by the services (workspaces, the audit log,
usage, retention, the message map, API keys, integrations and their OAuth tokens, templates,
...), on the kernel.

It imports nothing of shared.providers or services (tests/test_imports.py); the providers
are handed to it by whoever composes both (docs/development.md, Layers)."""
