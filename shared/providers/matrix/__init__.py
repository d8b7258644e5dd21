"""Matrix, as an application service (shared/providers/matrix/messages.py)."""
