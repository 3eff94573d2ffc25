"""hedgerd.control."""
