"""The kernel: infrastructure that knows no business concept (settings, Kafka, MongoDB, the
service runtime and its HTTP app, envelopes, tracing, metrics, the sandbox, ...).

It imports nothing of shared.domain, shared.providers or services (tests/test_imports.py);
what it needs of them it declares as a protocol or a registration point, which the layers
above fill in (docs/development.md, Layers)."""
