"""Meta (Facebook, Instagram, WhatsApp, Messenger): Graph API webhooks."""
