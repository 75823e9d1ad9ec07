"""Tests of the MixIT train/validation steps (mixit/training/trainer.py) with the real model,
losses and data pipeline on synthetic FUSS data."""
import dataclasses
import inspect
import math

import numpy as np
import pytest

import mixit  # noqa: F401
import gin
import keras
import tensorflow as tf

from data_pipeline import inputs
from data_pipeline import sources
from eval import metrics as eval_metrics
from mixit import gin_config
from mixit import losses
from mixit import model as model_lib
from mixit.training import loop as train_loop
from mixit.training import settings as settings_lib
from mixit.training import trainer as trainer_lib

from conftest import TINY_GIN_FILES, tiny_params

# The tiny network's loader settings of these tests.
TRAIN_DATA = ['train_data.seed = 3']


def parse_tiny(fuss_root, *params, labels=False):
  files = list(TINY_GIN_FILES)
  if labels:
    files.append('datasets/weak_labels.gin')
  gin_config.parse(files, tiny_params(fuss_root, *TRAIN_DATA, *params))


@pytest.fixture(autouse=True)
def clean_state():
  keras.mixed_precision.set_global_policy('float32')
  yield
  gin.clear_config()
  keras.mixed_precision.set_global_policy('float32')


def build(lr=1e-3, name='adam', **trainer_overrides):
  network = model_lib.build_network()
  trainer = trainer_lib.build_trainer(network, **trainer_overrides)
  optimizer = trainer_lib.build_optimizer(learning_rate=lr, name=name)
  trainer.compile(optimizer=optimizer)
  optimizer.build(network.trainable_variables)
  return network, trainer, optimizer


def first_batch(dataset):
  return {k: v for k, v in next(iter(dataset)).items()}


# ---------------------------------------------------------------- training


def test_a_few_steps_lower_the_loss_on_synthetic_fuss(fuss_root):
  parse_tiny(fuss_root, 'batch_size = 4', 'train_data.source = @fuss_mixtures()')
  keras.utils.set_random_seed(0)
  network = model_lib.build_network()
  held_out = [first_batch(inputs.train_input_fn(None)) for _ in range(2)]

  @tf.function
  def mixit_loss(mom, mixtures):
    estimates = network(mom, training=False)['separated_waveforms']
    return tf.reduce_mean(losses.mixit_loss(mixtures, estimates, 'least_squares')[0])

  def held_out_loss():
    return float(np.mean([mixit_loss(b['mom'], b['mixtures']) for b in held_out]))

  before = held_out_loss()
  out = train_loop.train(
      str(fuss_root) + "_model", num_steps=40,
      checkpoints=settings_lib.CheckpointSettings(every=40),
      logs=settings_lib.LogSettings(every=10, summary_every=10),
      validation=settings_lib.ValidationSettings(every=0),
      builders=settings_lib.Builders(
          network_fn=lambda: network,
          optimizer_fn=lambda: trainer_lib.build_optimizer(learning_rate=3e-3)))
  after = held_out_loss()
  assert out["step"] == 40
  # MixIT loss is in dB: the trained network remixes the held-out MoMs' references
  # clearly better than at initialisation.
  assert after < before - 1.0, (before, after)


def _concat(*batches):
  return {k: tf.concat([b[k] for b in batches], axis=0) for k in batches[0]}


def test_loss_terms_weights_and_clipped_update_match_a_direct_computation(fuss_root):
  """Semi-supervised batch, labels, every lambda on, SGD: the logged terms are the
  masked means of the loss functions and the update is -lr * clip(grad)."""
  parse_tiny(fuss_root, 'batch_size = 2', 'NUM_CLASSES = 6', labels=True)
  supervised = first_batch(inputs.train_input_fn(None, sources.FussSources()))
  unsupervised = first_batch(inputs.train_input_fn(None, sources.FussMixtures()))
  batch = _concat(supervised, unsupervised)
  assert batch['supervised'].numpy().tolist() == [True, True, False, False]
  weights = dict(lambda_sparse=0.3, lambda_cov=0.7, lambda_class=0.2, lambda_sup=1.5)
  keras.utils.set_random_seed(1)
  lr, clip = 0.5, 0.01
  network, trainer, _ = build(lr=lr, name='sgd', clip_norm=clip, sparsity_kind='lp',
                              mixit_method='exhaustive', **weights)
  variables = network.trainable_variables
  initial = [v.numpy() for v in variables]

  with tf.GradientTape() as tape:
    outputs = network(batch['mom'], training=True)
    est = outputs['separated_waveforms']
    mixit_values, mix_matrix = losses.mixit_loss(batch['mixtures'], est, 'exhaustive')
    pit_values, _ = losses.pit_loss(batch['sources'], est, batch['mom'], batch['num_sources'])
    expected = {
        'mixit': tf.reduce_mean(mixit_values[2:]),
        'supervised': tf.reduce_mean(pit_values[:2]),
        'sparsity': tf.reduce_mean(losses.sparsity_loss(est, batch['mom'], kind='lp')),
        'covariance': tf.reduce_mean(losses.covariance_loss(est)),
        'classification': tf.reduce_mean(losses.classification_loss(
            outputs['source_logits'], mix_matrix, batch['labels'])),
    }
    total = (expected['mixit'] + 1.5 * expected['supervised'] + 0.3 * expected['sparsity'] +
             0.7 * expected['covariance'] + 0.2 * expected['classification'])
  grads = tape.gradient(total, variables)
  norm = math.sqrt(sum(float(tf.reduce_sum(tf.square(g))) for g in grads))
  assert norm > clip  # the clip is active
  expected_weights = [w - lr * g.numpy() * clip / norm for w, g in zip(initial, grads)]

  logs = tf.function(trainer.train_step)(batch)
  for name, value in expected.items():
    np.testing.assert_allclose(float(logs[name]), float(value), rtol=1e-4, atol=1e-5,
                               err_msg=name)
  np.testing.assert_allclose(float(logs['loss']), float(total), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(float(logs['grad_norm']), norm, rtol=1e-3)
  assert float(logs['finite']) == 1.0
  for v, w in zip(variables, expected_weights):
    np.testing.assert_allclose(v.numpy(), w, rtol=1e-3, atol=1e-6, err_msg=v.path)


def test_nonfinite_loss_skips_the_update_and_names_the_term(fuss_root):
  parse_tiny(fuss_root, 'batch_size = 2', 'train_data.source = @fuss_mixtures()')
  network, trainer, _ = build()
  batch = first_batch(inputs.train_input_fn(None))
  # NaN only in the reference mixtures: the MoM (the network input) stays clean,
  # so only the MixIT term (and the total) is non-finite.
  mixtures = batch['mixtures'].numpy()
  mixtures[0, 0, 5] = np.nan
  batch['mixtures'] = tf.constant(mixtures)
  before = [v.numpy() for v in network.trainable_variables]
  logs = {k: float(v) for k, v in tf.function(trainer.train_step)(batch).items()}
  assert logs['finite'] == 0.0
  assert math.isnan(logs['mixit']) and math.isfinite(logs['sparsity'])
  for v, w in zip(network.trainable_variables, before):
    np.testing.assert_array_equal(v.numpy(), w)
  message = train_loop.nonfinite_message(7, logs)
  assert 'step 7' in message and 'mixit=nan' in message and 'sparsity' not in message


def _poisoned_input_fn(fuss_root, bad_step):
  """The real training stream with NaN reference mixtures in batch number `bad_step`."""
  def input_fn(input_context=None):
    dataset = inputs.train_input_fn(input_context).enumerate(start=1)

    def poison(index, batch):
      bad = tf.equal(index, bad_step)
      batch = dict(batch)
      batch['mixtures'] = tf.where(bad, batch['mixtures'] * np.nan, batch['mixtures'])
      return batch

    return dataset.map(poison)
  return input_fn


def test_training_loop_stops_on_nan_naming_step_and_term_or_skips(fuss_root, tmp_path):
  parse_tiny(fuss_root, 'batch_size = 2', 'train_data.source = @fuss_mixtures()')
  # The stops without XLA, to save its compile; the skip below runs the default, XLA.
  with pytest.raises(FloatingPointError, match=r'step 3: mixit=nan, loss=nan'):
    train_loop.train(str(tmp_path / 'stop'), num_steps=5, jit_compile=False,
                     checkpoints=settings_lib.CheckpointSettings(every=2),
                     validation=settings_lib.ValidationSettings(every=0),
                     builders=settings_lib.Builders(
                         train_input_fn=_poisoned_input_fn(fuss_root, 3)))
  # The checkpoint before the bad batch is intact.
  assert tf.train.latest_checkpoint(str(tmp_path / 'stop')).endswith('ckpt-2')
  # Diverging at step 1, before any checkpoint, does not claim one is intact.
  parse_tiny(fuss_root, 'batch_size = 2', 'train_data.source = @fuss_mixtures()')
  with pytest.raises(FloatingPointError, match='no checkpoint was written yet') as raised:
    train_loop.train(str(tmp_path / 'first'), num_steps=5, jit_compile=False,
                     checkpoints=settings_lib.CheckpointSettings(every=2),
                     validation=settings_lib.ValidationSettings(every=0),
                     builders=settings_lib.Builders(
                         train_input_fn=_poisoned_input_fn(fuss_root, 1)))
  assert 'is intact' not in str(raised.value)

  parse_tiny(fuss_root, 'batch_size = 2', 'train_data.source = @fuss_mixtures()',
             'trainer.nonfinite = "skip"')
  captured = []

  def network_fn():
    captured.append(model_lib.build_network())
    return captured[-1]

  out = train_loop.train(str(tmp_path / 'skip'), num_steps=4,
                         checkpoints=settings_lib.CheckpointSettings(every=4),
                         validation=settings_lib.ValidationSettings(every=0),
                         builders=settings_lib.Builders(
                             network_fn=network_fn,
                             train_input_fn=_poisoned_input_fn(fuss_root, 2)))
  assert out['step'] == 4
  assert all(np.all(np.isfinite(v.numpy())) for v in captured[0].trainable_variables)
  # The LR schedule follows applied updates: three of the four batches.
  reader = tf.train.load_checkpoint(str(tmp_path / 'skip'))
  iterations = [k for k in reader.get_variable_to_shape_map() if 'iteration' in k]
  assert iterations and reader.get_tensor(iterations[0]) == 3


# ------------------------------------------------------------- bad input


def test_bad_training_batches_raise_naming_the_problem(fuss_root):
  parse_tiny(fuss_root, 'batch_size = 2')
  network, trainer, _ = build()
  good = first_batch(inputs.train_input_fn(None))
  cases = [
      ({'mom': good['mom']}, "'mom' .* and 'mixtures'"),
      (dict(good, mixtures=good['mixtures'][:, :1]), 'N >= 2'),
      (dict(good, mom=good['mom'][:1]), 'inconsistent batch dimension'),
      (dict(good, mom=good['mom'][:, :-1]), 'inconsistent time dimension'),
      (dict(good, mom=good['mom'][:, None]), r"batch\['mom'\] must have rank 2"),
      (dict(good, mixtures=tf.zeros([2, 5, good['mom'].shape[1]])), 'M >= N'),
  ]
  for batch, pattern in cases:
    with pytest.raises(ValueError, match=pattern):
      trainer.train_step(batch)
  _, semantic, _ = build(lambda_class=1.0)
  with pytest.raises(ValueError, match='no labels'):
    semantic.train_step(good)
  with pytest.raises(ValueError, match="'mixture' .* and 'sources'"):
    trainer.test_step({'mixture': good['mom']})


def test_trainer_settings_and_optimizer_are_checked():
  network = model_lib.build_network(num_sources=2, bottleneck=8, conv_channels=8,
                                    num_repeats=1, num_dilations=1)
  with pytest.raises(ValueError, match="mixit_method.*'exhastive'"):
    trainer_lib.build_trainer(network, mixit_method='exhastive')
  with pytest.raises(ValueError, match='nonfinite'):
    trainer_lib.build_trainer(network, nonfinite='ignore')
  with pytest.raises(ValueError, match='lambda_cov'):
    trainer_lib.build_trainer(network, lambda_cov=-1.0)
  trainer = trainer_lib.build_trainer(network)
  trainer.compile(optimizer=keras.optimizers.Adam())
  batch = {'mom': tf.zeros([2, 800]), 'mixtures': tf.zeros([2, 2, 800])}
  with pytest.raises(ValueError, match='sum them over the replicas again'):
    trainer.train_step(batch)


def test_loss_settings_are_configured_by_gin_and_taken_by_build_trainer():
  """`LossSettings` is the gin configurable `trainer`: its fields are the `trainer.*`
  bindings, and `build_trainer` takes the settings instead of repeating them."""
  gin_config.parse(['losses/mixit_exhaustive.gin', 'losses/sparsity_lp.gin'],
                   ['trainer.lambda_cov = 0.25', 'trainer.sparsity_warmup_steps = 7'])
  defaults = {field.name: field.default for field in dataclasses.fields(trainer_lib.LossSettings)}
  settings = trainer_lib.LossSettings()
  assert dataclasses.asdict(settings) == dict(
      defaults, mixit_method='exhaustive', sparsity_kind='lp', sparsity_p=0.5,
      lambda_sparse=1.0, lambda_cov=0.25, sparsity_warmup_steps=7)
  network = model_lib.build_network(num_sources=2, bottleneck=8, conv_channels=8,
                                    num_repeats=1, num_dilations=1)
  assert trainer_lib.build_trainer(network).settings == settings
  assert trainer_lib.MixITTrainer(network).settings == settings
  given = trainer_lib.LossSettings(lambda_sparse=3.0)  # explicit arguments win over gin
  assert (given.lambda_sparse, given.mixit_method) == (3.0, 'exhaustive')
  assert trainer_lib.build_trainer(network, given).settings is given
  assert trainer_lib.build_trainer(network, given, lambda_cov=2.0).settings == \
      dataclasses.replace(given, lambda_cov=2.0)
  assert list(inspect.signature(trainer_lib.build_trainer).parameters) == [
      'network', 'settings', 'overrides']
  gin_config.parse(['losses/mixit_least_squares.gin'], ["trainer.lambda_sparse = 'high'"])
  with pytest.raises(ValueError, match="trainer.lambda_sparse = 'high': expected float, got str"):
    gin_config.check_binding_types()


def test_learning_rate_halves_every_decay_steps_as_a_staircase():
  optimizer = trainer_lib.build_optimizer(learning_rate=1e-4, decay_steps=3, decay_rate=0.5)
  optimizer.build([tf.Variable(0.0)])
  for iterations, expected in [(0, 1e-4), (2, 1e-4), (3, 5e-5), (5, 5e-5), (6, 2.5e-5),
                               (10, 1.25e-5)]:
    optimizer.iterations.assign(iterations)
    assert trainer_lib.current_learning_rate(optimizer) == pytest.approx(expected)
  with pytest.raises(ValueError, match='schedule'):
    trainer_lib.build_optimizer(decay_rate=0.0)
  assert isinstance(trainer_lib.build_optimizer(loss_scale=True),
                    keras.optimizers.LossScaleOptimizer)


def test_cosine_schedule_follows_the_formula_then_holds_its_floor():
  lr0, steps, floor = 3e-3, 100, 0.05
  optimizer = trainer_lib.build_optimizer(learning_rate=lr0, decay_steps=steps,
                                          schedule='cosine', final_fraction=floor)
  optimizer.build([tf.Variable(0.0)])
  for iterations in [0, 1, 25, 50, 99, 100, 250]:
    optimizer.iterations.assign(iterations)
    t = min(iterations, steps) / steps
    expected = lr0 * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t)))
    assert trainer_lib.current_learning_rate(optimizer) == pytest.approx(expected, rel=1e-5)
  with pytest.raises(ValueError, match='optimizer.schedule.*linear'):
    trainer_lib.build_optimizer(schedule='linear')
  with pytest.raises(ValueError, match='final_fraction'):
    trainer_lib.build_optimizer(schedule='cosine', final_fraction=1.5)


def test_sparsity_weight_ramps_up_linearly_over_the_warmup_steps(fuss_root):
  """The total loss weighs the sparsity term by lambda * min(1, step / warmup), where
  step is the optimizer's iteration count (saved in checkpoints, so a resumed run
  continues the ramp)."""
  parse_tiny(fuss_root, 'batch_size = 2')
  batch = first_batch(inputs.train_input_fn(None, sources.FussMixtures()))
  keras.utils.set_random_seed(1)
  lam, warmup = 4.0, 10
  network, trainer, optimizer = build(lr=1e-12, name='sgd', lambda_sparse=lam,
                                      sparsity_warmup_steps=warmup)
  step = tf.function(trainer.train_step)
  for iterations in [0, 3, 10, 25]:
    optimizer.iterations.assign(iterations)
    logs = step(batch)
    weight = lam * min(1.0, iterations / warmup)
    np.testing.assert_allclose(float(logs['loss']),
                               float(logs['mixit']) + weight * float(logs['sparsity']),
                               rtol=1e-5, atol=1e-6, err_msg=f'step {iterations}')
    assert float(logs['sparsity_weight']) == pytest.approx(weight)
  with pytest.raises(ValueError, match='sparsity_warmup_steps'):
    trainer_lib.build_trainer(network, sparsity_warmup_steps=-1)


# --------------------------------------------------------------- validation


def test_test_step_accumulates_over_batches_like_one_big_batch(fuss_root):
  parse_tiny(fuss_root, 'eval_data.batch_size = 2')
  network, trainer, _ = build()
  batches = list(inputs.eval_input_fn(None))
  assert len(batches) == 2
  step = tf.function(trainer.test_step)
  trainer.reset_eval()
  for b in batches:
    step(b)
  accumulated = {k: float(v) for k, v in trainer.eval_sums().items()}
  whole = _concat(*batches)
  estimates = network(whole['mixture'])['separated_waveforms'].numpy()
  want = dict(zip(trainer_lib.EVAL_SUMS, eval_metrics.pooled_sums(
      estimates=estimates, references=whole['sources'].numpy(),
      mixtures=whole['mixture'].numpy())))
  assert accumulated['num_examples'] == want['num_examples'] == 4
  for key in trainer_lib.EVAL_SUMS:
    np.testing.assert_allclose(accumulated[key], want[key], rtol=1e-4, atol=2e-3, err_msg=key)
  results = {k: float(v) for k, v in trainer.eval_results().items()}
  assert results['under_separation'] + results['equal_separation'] + \
      results['over_separation'] == pytest.approx(1.0)
  assert results['si_snr'] == pytest.approx(want['si_snr_sum'] / want['si_snr_count'],
                                            abs=1e-3)


# -------------------------------------------------------- accelerator paths


@pytest.mark.slow
def test_jit_compiled_step_matches_the_plain_step(fuss_root):
  parse_tiny(fuss_root, 'batch_size = 2')
  batch = first_batch(inputs.train_input_fn(None))
  results = []
  for jit in (False, True):
    keras.utils.set_random_seed(5)
    # Half-way through a sparsity warm-up: the XLA step reads the optimizer's step.
    network, trainer, optimizer = build(lambda_sparse=2.0, sparsity_warmup_steps=10)
    trainer.compile(optimizer=trainer.optimizer, jit_compile=jit)
    optimizer.iterations.assign(5)
    logs = tf.function(trainer.train_step)(batch)
    assert float(logs['loss']) == pytest.approx(
        float(logs['mixit']) + 1.0 * float(logs['sparsity']), rel=1e-5)
    assert trainer.jit_compile is jit
    assert (trainer._xla_forward_backward is not None) == jit
    results.append((float(logs['loss']), [v.numpy() for v in network.trainable_variables]))
  assert results[0][0] == pytest.approx(results[1][0], rel=1e-4, abs=1e-4)
  for a, b in zip(results[0][1], results[1][1]):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_mixed_float16_keeps_losses_float32_and_scales_the_loss(fuss_root):
  parse_tiny(fuss_root, 'batch_size = 2', 'precision.policy = "mixed_float16"')
  trainer_lib.set_precision_policy()
  network, trainer, optimizer = build()
  assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
  batch = first_batch(inputs.train_input_fn(None))
  before = [v.numpy() for v in network.trainable_variables]
  step = tf.function(trainer.train_step)
  for _ in range(3):
    logs = step(batch)
  assert all(v.dtype == tf.float32 for v in logs.values())
  assert float(logs['finite']) == 1.0 and math.isfinite(float(logs['loss']))
  assert any(not np.array_equal(v.numpy(), w)
             for v, w in zip(network.trainable_variables, before))
