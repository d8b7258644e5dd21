"""Code every hookhub service uses: contracts, wiring and per-provider knowledge."""
