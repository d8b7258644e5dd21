"""OAuth 2.0 with providers: the contract each provider fills in, the flow, and tokens at rest."""
