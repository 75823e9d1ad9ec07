r"""Training-step speed of the demo's recipe: XLA (`training.jit_compile`) and clip length.

    python benchmarks/demo_speed.py [--seconds 1,2 --rounds 5 --steps 5]

Builds the demo's network and trainer (gin/demo/synthetic_small.gin: the small
TDCN++ with M = 8, batch 8, efficient MixIT + sparsity) for every clip length,
with and without `jit_compile`, and times the full train step (forward,
assignment and losses, backward, clipping, Adam) on fixed random MoMs. The
configurations are timed in interleaved rounds and the best round of each is
kept, so that a shared, noisy machine biases all of them alike; the ratios are
read within this one run. Prints a markdown table.
"""
import os
import time

from absl import app
from absl import flags
import numpy as np

import mixit  # noqa: F401  (KERAS_BACKEND)
import tensorflow as tf

from data_pipeline import inputs  # noqa: F401  (registers the data configurables)
from mixit import gin_config
from mixit import model as model_lib
from mixit.training import trainer as trainer_lib

_SECONDS = flags.DEFINE_list('seconds', ['1', '2'], 'Clip lengths (s).')
_ROUNDS = flags.DEFINE_integer('rounds', 5, 'Interleaved timing rounds.')
_STEPS = flags.DEFINE_integer('steps', 5, 'Steps per round and configuration.')
_GIN = flags.DEFINE_string('gin_file', 'demo/synthetic_small.gin', 'Recipe to time.')

SAMPLE_RATE = 16000


def _build(seconds: float, jit: bool):
  gin_config.parse([_GIN.value], [f'CLIP_SECONDS = {seconds}', "DATA_ROOT = '/nonexistent'"])
  network = model_lib.build_network()
  trainer = trainer_lib.build_trainer(network)
  optimizer = trainer_lib.build_optimizer()
  trainer.compile(optimizer=optimizer, jit_compile=jit)
  optimizer.build(network.trainable_variables)
  batch_size = 8
  samples = int(round(seconds * SAMPLE_RATE))
  rng = np.random.default_rng(0)
  mixtures = tf.constant(rng.standard_normal((batch_size, 2, samples)).astype(np.float32)
                         * np.array([1.0, 0.3], np.float32)[None, :, None])
  batch = {'mom': tf.reduce_sum(mixtures, 1), 'mixtures': mixtures}
  step = tf.function(trainer.train_step)
  step(batch)['loss'].numpy()  # trace / compile
  return lambda: step(batch)['loss'].numpy()


def main(argv):
  del argv
  configs = [(float(s), jit) for s in _SECONDS.value for jit in (False, True)]
  steps = {}
  for config in configs:
    started = time.perf_counter()
    steps[config] = _build(*config)
    print(f'built {config} in {time.perf_counter() - started:.1f} s', flush=True)
  best = {config: float('inf') for config in configs}
  for _ in range(_ROUNDS.value):
    for config in configs:
      started = time.perf_counter()
      for _ in range(_STEPS.value):
        steps[config]()
      best[config] = min(best[config], (time.perf_counter() - started) / _STEPS.value)
  baseline = best[(max(float(s) for s in _SECONDS.value), False)]
  print()
  print(f'Demo recipe ({_GIN.value}), batch 8 of MoMs, {os.cpu_count()} CPU cores; best of '
        f'{_ROUNDS.value} interleaved rounds of {_STEPS.value} steps.')
  print()
  print('| clip (s) | jit_compile | s/step | steps/s | audio s/s | speed-up vs longest clip, '
        'no XLA |')
  print('|---|---|---|---|---|---|')
  for (seconds, jit), value in best.items():
    print(f'| {seconds:g} | {jit} | {value:.3f} | {1 / value:.2f} | {8 * seconds / value:.1f} | '
          f'{baseline / value:.2f}x |')


if __name__ == '__main__':
  app.run(main)
