"""Chat → provider: the durable outbox, paced per provider channel."""
