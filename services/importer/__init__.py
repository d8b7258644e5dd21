"""The importer service.

Brings message history in from provider APIs and export files."""
