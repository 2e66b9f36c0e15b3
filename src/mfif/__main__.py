"""``python -m mfif`` runs the command line."""
from .cli import entry

entry()
