"""mixit: sparse, efficient and semantic mixture invariant training."""
import os as _os

# Keras 3 must run on the TensorFlow backend: the train step, tf.distribute and
# SavedModel export all rely on it.
_os.environ.setdefault('KERAS_BACKEND', 'tensorflow')


def _quiet_cli_start():
  # A command-line run hides TensorFlow's CPU-only start-up notices (see
  # mixit/cli.py); a library import changes nothing and does not import TF.
  from mixit import cli  # pylint: disable=g-import-not-at-top
  program = cli.cli_program()
  if program:
    cli.quiet_start()


_quiet_cli_start()


def __getattr__(name):
  # Lazy, so that `import mixit` does not pull in TensorFlow.
  if name == 'load_separator':
    from mixit.serving.separator import load_separator  # pylint: disable=g-import-not-at-top
    return load_separator
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
