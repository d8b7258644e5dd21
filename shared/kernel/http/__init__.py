"""HTTP plumbing every service shares: the app factory, errors, admin auth, pagination."""
