"""Any Standard Webhooks or Svix-signed sender (Clerk, Resend, …)."""
