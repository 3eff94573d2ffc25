"""hedgerd.hedging."""
