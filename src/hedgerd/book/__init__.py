"""hedgerd.book."""
