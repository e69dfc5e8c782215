"""Runnable example workflows shipped with the package (used by `orchestrion demo`)."""
