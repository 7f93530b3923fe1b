"""Access: editors and API tokens."""
