"""hedgerd: automated delta hedging for crypto options books."""

__version__ = "0.1.0"
