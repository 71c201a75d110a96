"""`python -m asdlab ...` = the `asdlab` command; the module form is what launchers run
(`torchrun --nproc-per-node 2 -m asdlab pretrain ...`, `srun python -m asdlab ...`)."""

import sys

from asdlab.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
