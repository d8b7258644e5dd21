"""The gateway: verifies inbound webhooks and puts them on Kafka."""
