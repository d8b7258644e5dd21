"""The provider apps resource: `/api/providers/{provider}`."""
