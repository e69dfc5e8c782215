"""orchestrion."""
