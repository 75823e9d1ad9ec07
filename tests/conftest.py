"""Shared test settings: the Keras backend, the synthetic FUSS data and the tiny network.

Test modules import the constants and helpers below (`from conftest import ...`; pytest puts
this folder on `sys.path`) and request the fixtures by name.
"""
import os

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import pytest

# Synthetic clips of the training tests: short and at a low rate, so a step takes milliseconds.
SAMPLE_RATE = 8000
CLIP_SECONDS = 0.25
TINY_GIN_FILES = ('models/tdcnpp_small.gin', 'datasets/synthetic.gin', 'optimization/base.gin')
# A TDCN++ of two blocks: the smallest network that runs every code path.
TINY_NETWORK = (
    'NUM_SOURCES = 4', f'SAMPLE_RATE = {SAMPLE_RATE}', f'CLIP_SECONDS = {CLIP_SECONDS}',
    'network.bottleneck = 16', 'network.conv_channels = 32', 'network.num_repeats = 1',
    'network.num_dilations = 2', 'network.skip_from = []', 'network.skip_to = []',
    'train_data.shuffle_buffer = 8',
)


def write_fuss_eval_folder(root, examples, rate, source_name=lambda j: f's{j}'):
  """Writes FUSS-layout eval examples and `eval_example_list.txt` under `root`.

  `examples` is a list of source arrays `[S, T]`; each source is quantised to 16 bits (as a
  FUSS wav holds it), the mixture is written as float. Returns (list path, {name: sources}).
  """
  import numpy as np
  from data_pipeline import audio_io
  lines, all_sources = [], {}
  for index, sources in enumerate(examples):
    name = f'example{index:05d}'
    sources = audio_io.quantize_pcm16(sources).astype(np.float32) / 32768.0
    paths = []
    for j, source in enumerate(sources):
      relative = f'eval/{name}_sources/{source_name(j)}.wav'
      audio_io.write_wav(os.path.join(root, relative), source, rate)
      paths.append(relative)
    audio_io.write_wav(os.path.join(root, f'eval/{name}.wav'), sources.sum(0), rate,
                       subtype='FLOAT')
    lines.append('\t'.join([f'eval/{name}.wav'] + paths))
    all_sources[name] = sources
  list_path = os.path.join(root, 'eval_example_list.txt')
  import tensorflow as tf
  with tf.io.gfile.GFile(list_path, 'w') as f:  # `root` may be on ram:// (`ram_dir`)
    f.write('\n'.join(lines) + '\n')
  return list_path, all_sources


@pytest.fixture
def ram_dir():
  """A fresh folder on TensorFlow's in-memory file system (`ram://...`), removed afterwards:
  a non-local path that everything going through `tf.io.gfile` must handle."""
  import uuid
  import tensorflow as tf
  path = f'ram://mixit_test_{uuid.uuid4().hex}'
  tf.io.gfile.makedirs(path)
  yield path
  if tf.io.gfile.exists(path):
    tf.io.gfile.rmtree(path)


def tiny_params(data_root: str, *params: str) -> list:
  """gin bindings of the tiny network on the data in `data_root`, then `params`."""
  return [f"DATA_ROOT = '{data_root}'", *TINY_NETWORK, *params]


@pytest.fixture(scope='session')
def make_synthetic_fuss(tmp_path_factory):
  """`make(num_train, num_validation, num_eval=0, seed=1, sample_rate=SAMPLE_RATE,
  clip_seconds=CLIP_SECONDS) -> root`: a synthetic FUSS-format root
  (`data_pipeline.synthetic.make_dataset`), written once per session and set of arguments.
  Tests must not write into it."""
  made = {}

  def make(num_train, num_validation, num_eval=0, seed=1, sample_rate=SAMPLE_RATE,
           clip_seconds=CLIP_SECONDS):
    from data_pipeline import synthetic
    key = (num_train, num_validation, num_eval, seed, sample_rate, clip_seconds)
    if key not in made:
      root = str(tmp_path_factory.mktemp('synthetic_fuss'))
      synthetic.make_dataset(root, num_train=num_train, num_validation=num_validation,
                             num_eval=num_eval, seed=seed, sample_rate=sample_rate,
                             clip_seconds=clip_seconds)
      made[key] = root
    return made[key]

  return make


@pytest.fixture(scope='session')
def fuss_root(make_synthetic_fuss):
  """The training tests' data: 12 training and 4 validation examples of `CLIP_SECONDS` at
  `SAMPLE_RATE`."""
  return make_synthetic_fuss(num_train=12, num_validation=4, seed=1)
