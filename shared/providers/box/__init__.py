"""Box: file and folder events of V2 webhooks, signed with the app's two signature keys."""
