"""UptimeRobot: webhook alert contacts, with a token header or a token in the URL."""
