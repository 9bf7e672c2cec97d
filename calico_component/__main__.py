"""Entry point for ``python -m calico_component``."""

import sys

from .cli import main

sys.exit(main())
