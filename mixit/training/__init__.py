"""Training: the MixIT train step (`trainer`), the loop (`loop`) and tf.distribute (`strategy`)."""
