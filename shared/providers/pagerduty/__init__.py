"""PagerDuty: v3 webhook subscriptions signed in `X-PagerDuty-Signature: v1=<hex>[,v1=…]`."""
