"""``python -m simulations.realnet {ci,soak}``: see simulations/realnet/cli.py."""

import sys

from simulations.realnet.cli import main

sys.exit(main(sys.argv[1:]))
