"""hedgerd.ops."""
