"""Code every hookhub service uses, in three layers: shared.kernel (infrastructure),
shared.domain (business concepts) and shared.providers (per-provider knowledge), each
importing only those before it (docs/development.md, Layers)."""
