"""hedgerd.venues."""
