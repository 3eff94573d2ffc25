"""Backtest harness: the hedge controller's kernel over simulated paths (`hedgerd backtest`)."""
