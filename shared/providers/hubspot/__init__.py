"""HubSpot: webhook batches signed in `X-HubSpot-Signature-v3`."""
