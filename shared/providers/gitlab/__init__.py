"""GitLab: webhooks carrying `X-Gitlab-Token`, or a signing token's Standard Webhooks signature."""
