"""Bitbucket Cloud: webhooks signed in `X-Hub-Signature: sha256=<hex>`."""
