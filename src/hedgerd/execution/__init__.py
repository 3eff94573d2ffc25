"""hedgerd.execution."""
