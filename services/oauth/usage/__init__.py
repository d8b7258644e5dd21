"""What each workspace uses: `GET /api/usage` (SPEC §14; the counters: shared.domain.usage)."""
