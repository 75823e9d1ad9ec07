"""mixit: sparse, efficient and semantic mixture invariant training."""
import os as _os

# Keras 3 must run on the TensorFlow backend: the train step, tf.distribute and
# SavedModel export all rely on it.
_os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
