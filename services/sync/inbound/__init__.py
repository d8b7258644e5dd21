"""Provider → chat: provider message events become `hookhub.chat.inbound` envelopes."""
