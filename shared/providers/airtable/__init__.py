"""Airtable: webhook notification pings."""
