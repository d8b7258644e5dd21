"""`/api/messages`: the message map, read."""
