"""The provider catalog: `/api/provider-catalog`."""
