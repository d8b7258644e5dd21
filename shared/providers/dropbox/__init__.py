"""Dropbox: notifications that linked accounts' files changed, signed with the app secret."""
