"""`python -m digitforge.training` / `torchrun -m digitforge.training`: see digitforge.training.launch."""
import sys

from digitforge.training.launch import main

if __name__ == "__main__":
    sys.exit(main())
