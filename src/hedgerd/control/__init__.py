"""Operator control: the one command layer (commands.py) and its HTTP surfaces (server.py);
for hedgerctl, socket discovery (locate.py), the documents read (views.py) and shown (render.py,
watch.py)."""
