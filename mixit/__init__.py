"""mixit: sparse, efficient and semantic mixture invariant training.

Importing the package has no side effect beyond choosing Keras's TensorFlow
backend (`KERAS_BACKEND`, unless already set): it imports no TensorFlow and
writes nothing. The console scripts' plumbing is `mixit/commands/cli.py`.
"""
import os as _os

# Keras 3 must run on the TensorFlow backend: the train step, tf.distribute and
# SavedModel export all rely on it.
_os.environ.setdefault('KERAS_BACKEND', 'tensorflow')


def __getattr__(name):
  # Lazy, so that `import mixit` does not pull in TensorFlow.
  if name == 'load_separator':
    from mixit.serving.separator import load_separator
    return load_separator
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
