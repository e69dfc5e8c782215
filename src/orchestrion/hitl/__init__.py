"""hitl."""
