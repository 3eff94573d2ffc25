"""Operator control: the one command layer (commands.py) and its HTTP surfaces (server.py)."""
