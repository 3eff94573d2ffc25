"""hedgerd.risk."""
