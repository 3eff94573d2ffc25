"""hedgerd.pricing."""
