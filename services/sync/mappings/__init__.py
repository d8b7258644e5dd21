"""Channel mappings: one chat channel linked to one provider channel of an integration."""
