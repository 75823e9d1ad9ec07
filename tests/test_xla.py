"""XLA as the default of training (`training.jit_compile`, mixit/training/loop.py): a run of
the old default (no XLA) resumes under it, an XLA run resumes, validates and exports a model
that separates; what XLA cannot compile falls back or fails in one line; every shipped
training config lowers its train step to XLA. The XLA and plain steps agree under the default
and a mirrored strategy in tests/test_distributed.py."""
import logging
import os

import numpy as np
import pytest
import soundfile

import mixit  # noqa: F401
import gin
import keras
import tensorflow as tf

from data_pipeline import inputs  # noqa: F401  (registers train_data / eval_data)
from mixit import gin_config
from mixit import model as model_lib
from mixit.serving import export as export_lib
from mixit.training import loop as train_loop
from mixit.training import settings as settings_lib
from mixit.training import trainer as trainer_lib

from conftest import TINY_GIN_FILES, tiny_params
from test_gin_configs import GIN_FILES, _parse

# Two steps between validations, one validation batch; a checkpoint at every step.
RUN = ['batch_size = 2', 'eval_data.batch_size = 2', 'train_data.seed = 3',
       'checkpoints.every = 1', 'validation.every = 2', 'validation.steps = 1', 'logs.every = 1']


@pytest.fixture
def built(monkeypatch):
  """The `_TrainState`s the training runs of a test built (their trainers)."""
  states = []
  build_state = train_loop._build_state

  def recording(*args):
    states.append(build_state(*args))
    return states[-1]

  monkeypatch.setattr(train_loop, '_build_state', recording)
  yield states
  gin.clear_config()


def _train(fuss_root, model_dir, num_steps, **overrides):
  """`mixit-train`'s call on the tiny config, which binds no `training.jit_compile`."""
  gin_config.parse(list(TINY_GIN_FILES),
                   tiny_params(fuss_root, *RUN, f'training.num_steps = {num_steps}'))
  try:
    return train_loop.train_from_gin(model_dir, **overrides)
  finally:
    gin.clear_config()


def _xla(state):
  """Whether the state's trainer ran its forward/backward pass XLA-compiled."""
  return state.trainer.jit_compile is True and state.trainer._xla_forward_backward is not None


def test_an_old_default_run_resumes_under_xla_which_validates_resumes_and_exports(
    fuss_root, tmp_path, built, caplog):
  caplog.set_level(logging.INFO)
  caplog.set_level(logging.INFO, logger='absl')
  model_dir = str(tmp_path / 'model')
  # What the old default ran: no XLA, and a config.gin that does not name jit_compile.
  _train(fuss_root, model_dir, 1, jit_compile=False)
  assert not _xla(built[-1])
  with open(os.path.join(model_dir, 'config.gin')) as f:
    assert 'jit_compile' not in f.read()

  # The same command now: resumed, XLA-compiled, validated at step 2.
  out = _train(fuss_root, model_dir, 2)
  assert _xla(built[-1])
  assert 'resumed from' in caplog.text and 'ckpt-1 at step 1' in caplog.text
  assert 'XLA-compiled forward/backward pass (training.jit_compile): on' in caplog.text
  assert out['step'] == 2 and np.isfinite(out['loss']), out
  assert out['eval/num_examples'] == 2 and np.isfinite(out['eval/si_snr']), out

  # A run trained with XLA resumes (more steps in the same model dir).
  caplog.clear()
  out = _train(fuss_root, model_dir, 3)
  assert _xla(built[-1]) and 'ckpt-2 at step 2' in caplog.text
  assert out['step'] == 3 and np.isfinite(out['loss']), out

  # Its export separates a validation mixture into the sources that sum to it.
  export_dir = str(tmp_path / 'export')
  metadata = export_lib.export_saved_model(model_dir, export_dir)
  assert metadata['checkpoint'].endswith('ckpt-3') and metadata['step'] == 3
  with open(os.path.join(fuss_root, 'validation_example_list.txt')) as f:
    mixture_path = os.path.join(fuss_root, f.readline().split('\t')[0].strip())
  mixture, rate = soundfile.read(mixture_path, dtype='float32')
  assert rate == metadata['sample_rate']
  loaded = tf.saved_model.load(export_dir)
  separated = loaded.signatures['serving_default'](
      mixture_waveform=tf.constant(mixture[None]))['separated_waveforms'].numpy()
  assert separated.shape == (1, 4, len(mixture)) and np.all(np.isfinite(separated))
  np.testing.assert_allclose(separated.sum(axis=1)[0], mixture, atol=1e-4)
  network, _, _ = export_lib.restore_network(model_dir)
  gin.clear_config()
  expected = network(tf.constant(mixture[None]), training=False)['separated_waveforms']
  np.testing.assert_allclose(separated, expected.numpy(), atol=1e-5)


class _WithHostOp(keras.Model):
  """The tiny network behind a `tf.numpy_function` (adding zeros), which XLA cannot compile."""

  def __init__(self, network):
    super().__init__(name='with_host_op')
    self.inner = network
    self.num_sources = network.num_sources
    self.sample_rate = network.sample_rate

  def call(self, mom, training=False):
    zeros = tf.numpy_function(np.zeros_like, [mom], tf.float32, stateful=False)
    return self.inner(mom + tf.ensure_shape(zeros, mom.shape), training=training)


def test_an_op_xla_cannot_compile_stops_the_first_step_in_one_line(fuss_root, tmp_path):
  gin_config.parse(list(TINY_GIN_FILES), tiny_params(fuss_root, *RUN))
  try:
    def run(model_dir, **jit):
      return train_loop.train(
          model_dir, num_steps=1, validation=settings_lib.ValidationSettings(every=0),
          builders=settings_lib.Builders(
              network_fn=lambda: _WithHostOp(model_lib.build_network())), **jit)

    with pytest.raises(ValueError) as failed:
      run(str(tmp_path / 'xla'))
    message = str(failed.value)
    assert message.startswith('the XLA-compiled train step failed'), message
    assert 'PyFunc' in message and "'training.jit_compile = False'" in message, message
    assert '\n' not in message and '{{' not in message, message
    # Nothing was saved that a rerun would have to match.
    assert not os.path.exists(tmp_path / 'xla' / 'config.gin')
    assert tf.train.latest_checkpoint(str(tmp_path / 'xla')) is None
    # The remedy works: the same network trains without XLA.
    assert run(str(tmp_path / 'plain'), jit_compile=False)['step'] == 1
  finally:
    gin.clear_config()


def test_a_network_keras_will_not_xla_compile_trains_without_it_and_says_so(fuss_root,
                                                                          caplog):
  gin_config.parse(list(TINY_GIN_FILES), tiny_params(fuss_root, *RUN))
  try:
    def network_fn():
      network = model_lib.build_network()
      network.supports_jit = False  # Keras' flag of a layer XLA cannot compile
      return network

    builders = settings_lib.Builders(network_fn=network_fn).resolved(validates=False)
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger='absl')
    state = train_loop._build_state(tf.distribute.get_strategy(), builders, True)
  finally:
    gin.clear_config()
  assert state.trainer.jit_compile is False
  assert 'Keras cannot XLA-compile this network here' in caplog.text
  assert 'XLA-compiled forward/backward pass (training.jit_compile): off' in caplog.text
  assert state.trainer._gradient_fn() == state.trainer._forward_backward


# Every shipped config that trains (the model files with the default losses). The default run
# lowers one of each front end, assignment, sparsity kind, extra loss and data kind; the rest
# (the same parts at other M) are slow tests.
TRAINING_CONFIGS = [f for f in GIN_FILES if f.startswith(('papers/', 'demo/', 'real_audio/',
                                                          'models/'))
                    and not f.endswith('/base.gin')]
LOWERED_BY_DEFAULT = {
    'models/tdcnpp_learned_basis.gin', 'demo/synthetic_small.gin',
    'papers/waspaa2021/mixit_m4_exhaustive.gin',
    'papers/waspaa2021/mixit_m8_efficient_sparse_l1l2_proxy.gin',
    'papers/waspaa2021/mixit_m8_efficient_sparse_lp.gin',
    'papers/waspaa2021/mixit_m8_efficient_sparse_covariance.gin',
    'papers/waspaa2021/mixit_m16_efficient_sparse_classification.gin',
    'papers/waspaa2021/semi_supervised_m8_efficient_sparse.gin',
}


@pytest.mark.parametrize('gin_file', [
    pytest.param(f, marks=() if f in LOWERED_BY_DEFAULT else pytest.mark.slow)
    for f in TRAINING_CONFIGS])
def test_every_training_config_lowers_its_train_step_to_xla(gin_file):
  """XLA is on for every shipped experiment: its network (the shrunken core of
  test_gin_configs.py; front end, outputs and head as configured) and losses have an XLA
  kernel for every op of the forward/backward pass, on a batch holding every optional part
  (supervised sources, and the labels when the network classifies). Lowered to HLO, not
  compiled to machine code: the lowering is where an op without an XLA kernel fails."""
  _parse(gin_file, shrink=True)
  try:
    network = model_lib.build_network()
    trainer = trainer_lib.build_trainer(network)
    trainer.compile(optimizer=trainer_lib.build_optimizer(), jit_compile=True)
    assert trainer.jit_compile is True
    rng = np.random.default_rng(0)
    time, outputs = 4000, network.num_sources
    sources = 0.1 * rng.standard_normal([2, min(4, outputs), time]).astype(np.float32)
    mixtures = np.stack([sources[:, :2].sum(axis=1), sources[:, 2:].sum(axis=1)], axis=1)
    batch = {'mom': mixtures.sum(axis=1), 'mixtures': mixtures, 'sources': sources,
             'num_sources': np.array([2, 3], np.int32), 'supervised': np.array([True, False])}
    if getattr(network, 'num_classes', 0):
      batch['labels'] = np.eye(2, network.num_classes, dtype=np.float32)[None].repeat(2, 0)
    batch = {k: tf.constant(v) for k, v in batch.items()}
    counts = {'all': tf.constant(2.0), 'supervised': tf.constant(1.0),
              'unsupervised': tf.constant(1.0)}
    hlo = trainer._gradient_fn().experimental_get_compiler_ir(batch, counts)(stage='hlo')
    assert 'ENTRY' in hlo
  finally:
    gin.clear_config()
