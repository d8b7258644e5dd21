"""Provider actions: a GitHub or Jira issue created from a chat message, exactly once."""
