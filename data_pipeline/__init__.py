"""Input pipelines: audio I/O, FUSS and in-the-wild readers, mixtures of mixtures."""
