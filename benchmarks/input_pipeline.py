"""Input pipeline throughput: mixtures of mixtures per second on this machine.

    python benchmarks/input_pipeline.py [--num_files 24 --steps 60 --batch_size 4]

Writes, in a temporary folder, 10 s / 16 kHz FUSS-format data with 4 sources
per example (synthetic maker) and the same number of 10 s 44.1 kHz stereo FLAC
"in-the-wild" recordings, then times the training input functions (MoM of
N=2, per-replica batches, prefetch) after a warm-up:

- WAV path: FUSS lists, 16-bit WAV decoded in-graph, mixture = sum of 4 sources.
- Resampling path: FLAC decoded by the audio backend and resampled 44.1 -> 16 kHz.
- Supervised FUSS batches, for reference.

With --model_gin (default: the paper-size TDCN++), it also times one training
step of that network (forward, MixIT loss, backward, Adam) on 10 s MoMs, so
the two rates can be compared on the same machine. Prints a markdown table.
"""
import os
import shutil
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
import soundfile
import tensorflow as tf

from data_pipeline import audio_io
from data_pipeline import inputs
from data_pipeline import synthetic

_NUM_FILES = flags.DEFINE_integer('num_files', 24, 'FUSS examples and FLAC files written.')
_STEPS = flags.DEFINE_integer('steps', 40, 'Timed batches per input pipeline.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 4, 'Batch size (MoM examples per batch).')
_MODEL_GIN = flags.DEFINE_string('model_gin', 'models/tdcnpp_paper.gin',
                                 'Model config to time a training step with ("" skips it).')
_MODEL_BATCH = flags.DEFINE_integer('model_batch_size', 2, 'Batch size of the timed step.')
_MODEL_STEPS = flags.DEFINE_integer('model_steps', 3, 'Timed training steps.')

SAMPLE_RATE = 16000
SECONDS = 10.0


def _time_batches(dataset, steps, batch_size):
  """Steady-state examples/s: the first half of the steps drains what the
  shuffle and prefetch buffers stored during warm-up; the second half is timed."""
  iterator = iter(dataset)
  for _ in range(3):  # warm-up: tracing, shuffle buffer fill, file cache
    next(iterator)
  for _ in range(steps // 2):
    next(iterator)
  timed = steps - steps // 2
  start = time.perf_counter()
  for _ in range(timed):
    batch = next(iterator)
  _ = batch['mom'].numpy()
  elapsed = time.perf_counter() - start
  return timed * batch_size / elapsed


def _write_flac(folder, count):
  rng = np.random.default_rng(0)
  for index in range(count):
    # Stereo, 44.1 kHz: the synthetic mixture upsampled with a little channel offset.
    sources, _ = synthetic.make_example(np.random.default_rng([9, index]), 44100, SECONDS,
                                        source_count_probs=(0, 0, 0, 1))
    mono = sources.astype(np.float32).sum(0) / 32768.0
    stereo = np.stack([mono, 0.9 * mono + 0.01 * rng.standard_normal(mono.shape)], axis=1)
    soundfile.write(os.path.join(folder, f'recording{index:04d}.flac'), stereo, 44100,
                    subtype='PCM_16')


def _time_model_step(gin_file, batch_size, steps):
  from mixit import gin_config
  from mixit import losses
  from mixit import model
  import keras
  gin_config.parse([gin_file], [])
  network = model.build_network()
  optimizer = keras.optimizers.Adam(1e-4)
  length = int(SECONDS * SAMPLE_RATE)
  rng = np.random.default_rng(0)
  mixtures = tf.constant(0.1 * rng.standard_normal([batch_size, 2, length]), tf.float32)

  @tf.function
  def step(mixtures):
    with tf.GradientTape() as tape:
      estimates = network(tf.reduce_sum(mixtures, axis=1), training=True)['separated_waveforms']
      loss, _ = losses.mixit_loss(mixtures, estimates)
      loss = tf.reduce_mean(loss)
    gradients = tape.gradient(loss, network.trainable_variables)
    optimizer.apply_gradients(zip(gradients, network.trainable_variables))
    return loss

  step(mixtures).numpy()  # tracing
  start = time.perf_counter()
  for _ in range(steps):
    step(mixtures).numpy()
  elapsed = time.perf_counter() - start
  parameters = sum(int(np.prod(v.shape)) for v in network.trainable_variables)
  return steps * batch_size / elapsed, parameters


def main(argv):
  del argv
  work = tempfile.mkdtemp(prefix='mixit_bench_')
  try:
    fuss_root = os.path.join(work, 'fuss')
    start = time.perf_counter()
    synthetic.make_dataset(fuss_root, num_train=_NUM_FILES.value, num_validation=0, num_eval=0,
                           sample_rate=SAMPLE_RATE, clip_seconds=SECONDS,
                           source_count_probs=(0, 0, 0, 1))
    make_seconds = time.perf_counter() - start
    wild_folder = os.path.join(work, 'wild')
    os.makedirs(wild_folder)
    _write_flac(wild_folder, _NUM_FILES.value)

    common = dict(batch_size=_BATCH_SIZE.value, sample_rate=SAMPLE_RATE, clip_seconds=SECONDS,
                  seed=0)
    rows = []
    rate = _time_batches(inputs.train_input_fn(data_root=fuss_root, **common),
                         _STEPS.value, _BATCH_SIZE.value)
    rows.append(('MoM (N=2), WAV path: FUSS 4-source 16 kHz WAV, in-graph decode', rate))
    rate = _time_batches(
        inputs.train_input_fn(unsupervised_source='wild', wild_source=wild_folder, **common),
        _STEPS.value, _BATCH_SIZE.value)
    rows.append((f'MoM (N=2), resampling path: 44.1 kHz stereo FLAC -> 16 kHz '
                 f'({audio_io.backend_name()})', rate))
    rate = _time_batches(inputs.train_input_fn(data_root=fuss_root, mode='supervised', **common),
                         _STEPS.value, _BATCH_SIZE.value)
    rows.append(('supervised FUSS examples (4 sources)', rate))
    model_row = None
    if _MODEL_GIN.value:
      rate, parameters = _time_model_step(_MODEL_GIN.value, _MODEL_BATCH.value,
                                          _MODEL_STEPS.value)
      model_row = (f'training step consumes: {_MODEL_GIN.value} ({parameters / 1e6:.1f} M '
                   f'parameters, batch {_MODEL_BATCH.value}, MixIT least squares)', rate)

    print(f'\nInput pipeline, {SECONDS:.0f} s clips at {SAMPLE_RATE} Hz, batch '
          f'{_BATCH_SIZE.value}, {os.cpu_count()} CPU cores, TF {tf.__version__}\n')
    print('| pipeline | examples/s |')
    print('|---|---|')
    for name, rate in rows:
      print(f'| {name} | {rate:.1f} |')
    if model_row is not None:
      print(f'| {model_row[0]} | {model_row[1]:.2f} |')
      slowest = min(rate for _, rate in rows[:2])
      print(f'\nslowest MoM path / training step rate: {slowest / model_row[1]:.0f}x')
    print(f'\n(synthetic maker: {_NUM_FILES.value} 4-source 10 s examples written in '
          f'{make_seconds:.1f} s)')
  finally:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
  app.run(main)
