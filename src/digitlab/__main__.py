"""`python -m digitlab` (also what `torchrun -m digitlab ...` runs)."""
import sys

from digitlab.cli import main

if __name__ == "__main__":
    sys.exit(main())
