"""Entry point for `python -m <package>`: the runtime's commands, run for this project's stages and hooks."""

import sys

from mlops_runtime.cli import main

sys.exit(main(project=__package__))
