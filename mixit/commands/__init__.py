"""The console scripts, one thin module each: `mixit-<name>` is `mixit.commands.<name>`.

Each module defines its absl flags at its top and turns them into one call of the
library (`mixit.training.loop`, `mixit.serving.*`, `eval.fuss`, ...), which defines
no flags; `python -m mixit.commands.<name>` is the same program as the script.
"""

from mixit.commands import cli as _cli

# The quiet start of a command-line run, before any command module imports TensorFlow.
_cli.start()
