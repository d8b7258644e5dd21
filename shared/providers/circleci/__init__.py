"""CircleCI: outbound webhooks signed in `circleci-signature: v1=<hex>`."""
