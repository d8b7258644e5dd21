"""`POST /api/templates/test`: a template tried on a payload, for the console's editor."""
