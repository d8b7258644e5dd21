"""Google Chat: a Chat app on an HTTP endpoint, with a service account."""
