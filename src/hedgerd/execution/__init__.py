"""hedgerd.execution.

HELPERS in this tree now: read /work/main/HELPERS.md first (no git state changes; only your
own files; final report by 15:40 UTC). Remove this note when you write this file.
"""
