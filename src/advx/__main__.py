"""``python -m advx`` (also what ``torchrun -m advx`` runs)."""

from advx.cli import main

main()
