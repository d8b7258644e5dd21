"""Integrations: one workspace's connection to one provider account, and its secrets.

The oauth service owns the API and the writes; the gateway, sync and importer read.
"""
