"""Microsoft Graph: change notifications (Outlook, Teams, OneDrive, users and groups)."""
