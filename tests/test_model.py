"""Tests of the TDCN++ network (mixit/model.py, mixit/layers.py)."""
import dataclasses
import glob
import inspect
import os

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from mixit import gin_config
from mixit import layers
from mixit import model
from mixit import network_parts

GIN_MODELS = sorted(glob.glob(os.path.join(gin_config.package_gin_dir(), 'models', '*.gin')))

# A tiny network: fast on CPU, every feature on (skip links, pred_source weights).
TINY = dict(bottleneck=8, conv_channels=16, num_repeats=2, num_dilations=3,
            skip_from=[0], skip_to=[3], num_sources=4)


@pytest.fixture(autouse=True)
def clear_gin():
  # Bindings parsed by one test must not configure the networks of the next.
  gin.clear_config()
  yield
  gin.clear_config()


def tiny(**overrides):
  settings = dict(TINY)
  settings.update(overrides)
  return model.build_network(**settings)


def noise(batch, length, seed=0):
  return (0.3 * np.random.default_rng(seed).standard_normal([batch, length])).astype(np.float32)


def separate(network, mixture):
  return network(tf.constant(mixture), training=False)['separated_waveforms'].numpy()


def copy_weights(source, target):
  assert len(source.weights) == len(target.weights)
  for a, b in zip(source.weights, target.weights):
    b.assign(a)


# ----------------------------------------------------------------------------
# Layers against independent references.

def numpy_depthwise_time_conv(x, kernel, bias, dilation):
  """`y[t] = b + sum_i w[i] x[t + i d - p]`, float64; TF's 'SAME' padding p = (k - 1) d // 2."""
  k = kernel.shape[0]
  before = (k - 1) * dilation // 2
  x64 = x.astype(np.float64)
  y = np.zeros_like(x64) + bias
  for t in range(x.shape[1]):
    for i in range(k):
      source = t + i * dilation - before
      if 0 <= source < x.shape[1]:
        y[:, t] += kernel[i] * x64[:, source]
  return y


@pytest.mark.parametrize('kernel_size,dilation,frames',
                         [(3, 1, 11), (3, 4, 11), (2, 3, 11), (5, 2, 11), (3, 16, 5), (4, 8, 1)])
def test_depthwise_time_conv_matches_numpy(kernel_size, dilation, frames):
  x = noise(2, 7 * frames, seed=1).reshape(2, frames, 7)
  conv = layers.DepthwiseTimeConv(kernel_size, dilation)
  conv.build(x.shape)
  conv.bias.assign(np.arange(7, dtype=np.float32))
  expected = numpy_depthwise_time_conv(x, conv.kernel.numpy(), conv.bias.numpy(), dilation)
  np.testing.assert_allclose(conv(x).numpy(), expected, atol=1e-5)
  # Any number of frames in one traced function (dilation wider than the input included),
  # on both paths: TF's depthwise kernel, and the shifted products XLA compiles.
  for jit in (False, True):
    traced = tf.function(conv, input_signature=[tf.TensorSpec([None, None, 7], tf.float32)],
                         jit_compile=jit)
    np.testing.assert_allclose(traced(x).numpy(), expected, atol=1e-5)


def test_depthwise_time_conv_gradients_match_numpy():
  kernel_size, dilation, frames = 3, 4, 13
  x = noise(2, 5 * frames, seed=3).reshape(2, frames, 5)
  upstream = noise(2, 5 * frames, seed=4).reshape(2, frames, 5)
  conv = layers.DepthwiseTimeConv(kernel_size, dilation)
  conv.build(x.shape)
  xt = tf.constant(x)

  def gradients(xt):
    with tf.GradientTape() as tape:
      tape.watch(xt)
      objective = tf.reduce_sum(conv(xt) * upstream)
    return tape.gradient(objective, [xt, conv.kernel, conv.bias])

  dx, dkernel, dbias = gradients(xt)
  xla = tf.function(gradients, jit_compile=True)(xt)
  # The map is linear in x, in the kernel and in the bias: each gradient is the
  # numpy convolution's response to a unit input, summed against `upstream`.
  kernel = conv.kernel.numpy()
  expected_dx = np.zeros_like(x, dtype=np.float64)
  for t in range(frames):
    for i in range(kernel_size):
      source = t + i * dilation - (kernel_size - 1) * dilation // 2
      if 0 <= source < frames:
        expected_dx[:, source] += kernel[i] * upstream[:, t]
  expected_dkernel = np.stack([
      (numpy_depthwise_time_conv(x, np.eye(kernel_size)[i][:, None] * np.ones(5), 0.0, dilation)
       * upstream).sum(axis=(0, 1)) for i in range(kernel_size)])
  np.testing.assert_allclose(dx.numpy(), expected_dx, atol=1e-5)
  np.testing.assert_allclose(dkernel.numpy(), expected_dkernel, atol=1e-4)
  np.testing.assert_allclose(dbias.numpy(), upstream.sum(axis=(0, 1)), atol=1e-4)
  for got, want in zip(xla, (expected_dx, expected_dkernel, upstream.sum(axis=(0, 1)))):
    np.testing.assert_allclose(got.numpy(), want, atol=1e-4)


def test_xla_context_is_detected():
  seen = {}

  def probe(x):
    seen['xla'] = layers.in_xla_context()
    return x

  assert not layers.in_xla_context()  # eager
  tf.function(probe)(tf.constant(1.0))
  assert seen['xla'] is False
  tf.function(probe, jit_compile=True)(tf.constant(1.0))
  assert seen['xla'] is True
  # A plain function called inside an XLA-compiled one is compiled too.
  tf.function(lambda x: tf.function(probe)(x), jit_compile=True)(tf.constant(1.0))
  assert seen['xla'] is True


@pytest.mark.parametrize('norm_type,axes', [('instance_norm', (1,)), ('global_layer_norm', (1,)),
                                            ('global_layer_norm_full', (1, 2)),
                                            ('layer_norm', (2,))])
def test_scalar_norm_matches_numpy(norm_type, axes):
  x = noise(3, 40, seed=2).reshape(3, 8, 5) * np.arange(1, 6, dtype=np.float32) + 2.0
  norm = layers.ScalarNorm(layers.NORM_AXES[norm_type])
  norm.build(x.shape)
  norm.gamma.assign(1.7)
  norm.beta.assign(-0.3)
  x64 = x.astype(np.float64)
  mean = x64.mean(axis=axes, keepdims=True)
  var = x64.var(axis=axes, keepdims=True)
  expected = 1.7 * (x64 - mean) / np.sqrt(var + layers.NORM_EPSILON) - 0.3
  np.testing.assert_allclose(norm(x).numpy(), expected, atol=2e-5)


@pytest.mark.parametrize('norm_type', ['instance_norm', 'global_layer_norm_full', 'layer_norm'])
def test_scalar_norm_gradients_match_numpy_finite_differences(norm_type):
  axes = layers.NORM_AXES[norm_type]
  x = noise(3, 40, seed=7).reshape(3, 8, 5) * np.arange(1, 6, dtype=np.float32) + 2.0
  upstream = noise(3, 40, seed=8).reshape(3, 8, 5)
  gamma, beta = 1.7, -0.3

  def objective(x64, gamma, beta):  # float64 numpy reference
    mean = x64.mean(axis=axes, keepdims=True)
    var = x64.var(axis=axes, keepdims=True)
    return np.sum((gamma * (x64 - mean) / np.sqrt(var + layers.NORM_EPSILON) + beta) * upstream)

  x64 = x.astype(np.float64)
  step = 1e-6
  expected_dx = np.zeros_like(x64)
  for index in np.ndindex(x.shape):
    plus, minus = x64.copy(), x64.copy()
    plus[index] += step
    minus[index] -= step
    expected_dx[index] = (objective(plus, gamma, beta) - objective(minus, gamma, beta)) / (2 * step)
  expected_dgamma = (objective(x64, gamma + step, beta)
                     - objective(x64, gamma - step, beta)) / (2 * step)
  expected_dbeta = upstream.astype(np.float64).sum()

  norm = layers.ScalarNorm(axes)
  norm.build(x.shape)
  norm.gamma.assign(gamma)
  norm.beta.assign(beta)
  xt = tf.constant(x)

  def gradients(xt):
    with tf.GradientTape() as tape:
      tape.watch(xt)
      value = tf.reduce_sum(norm(xt) * upstream)
    return tape.gradient(value, [xt, norm.gamma, norm.beta])

  # Eager and traced (sums over frames as matmuls), and XLA (plain reductions).
  for run in (gradients, tf.function(gradients), tf.function(gradients, jit_compile=True)):
    d_x, d_gamma, d_beta = run(xt)
    np.testing.assert_allclose(d_x.numpy(), expected_dx, atol=2e-4)
    np.testing.assert_allclose(float(d_gamma), expected_dgamma, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(float(d_beta), expected_dbeta, rtol=1e-5)


@pytest.mark.parametrize('alpha', [0.1, -0.4, 1.7])
def test_prelu_values_and_gradients_match_numpy(alpha):
  x = noise(2, 15, seed=5).reshape(2, 3, 5)
  x[0, 0, :2] = 0.0  # the kink: gradient 0, as autodiff of relu(x) - alpha relu(-x) gives
  upstream = noise(2, 15, seed=6).reshape(2, 3, 5)
  prelu = layers.PReLU()
  prelu.build(x.shape)
  prelu.alpha.assign(alpha)
  xt = tf.constant(x)
  with tf.GradientTape() as tape:
    tape.watch(xt)
    objective = tf.reduce_sum(prelu(xt) * upstream)
  d_x, d_alpha = tape.gradient(objective, [xt, prelu.alpha])
  x64 = x.astype(np.float64)
  np.testing.assert_allclose(prelu(xt).numpy(), np.where(x64 > 0, x64, alpha * x64), atol=1e-6)
  slope = np.where(x64 > 0, 1.0, np.where(x64 < 0, alpha, 0.0))
  np.testing.assert_allclose(d_x.numpy(), slope * upstream, atol=1e-6)
  np.testing.assert_allclose(float(d_alpha), np.sum(np.minimum(x64, 0) * upstream), rtol=1e-5)


def test_prelu_and_initial_values():
  network = tiny()
  block = network.core.blocks[2]
  assert float(block.prelu1.alpha) == pytest.approx(0.1)
  assert float(block.dense1.scale) == pytest.approx(1.0)
  assert float(block.dense2.scale) == pytest.approx(0.9**2)
  x = np.array([[-2.0, 0.0, 3.0]], np.float32)
  np.testing.assert_allclose(block.prelu1(x).numpy(), [[-0.2, 0.0, 3.0]], atol=1e-7)


# ----------------------------------------------------------------------------
# Mixture consistency.

@pytest.mark.parametrize('kind', ['pred_source', 'uniform', 'power'])
def test_outputs_sum_to_the_mixture(kind):
  mixture = noise(2, 1500, seed=3)
  separated = separate(tiny(mixture_consistency=kind), mixture)
  assert separated.shape == (2, 4, 1500)
  np.testing.assert_allclose(separated.sum(axis=1), mixture, atol=1e-5)
  # The sources are not trivially the mixture split evenly.
  assert np.abs(separated - mixture[:, None] / 4).max() > 1e-3


@pytest.mark.parametrize('kind', ['uniform', 'power'])
def test_consistency_projection_matches_numpy(kind):
  mixture = noise(2, 900, seed=4)
  raw_network = tiny(mixture_consistency='none')
  network = tiny(mixture_consistency=kind)
  copy_weights(raw_network, network)
  raw = separate(raw_network, mixture).astype(np.float64)
  assert np.abs(raw.sum(axis=1) - mixture).max() > 1e-2  # 'none' leaves the residual.
  if kind == 'uniform':
    weights = np.full([2, 4, 1], 0.25)
  else:
    power = 1e-8 + np.mean(raw**2, axis=-1, keepdims=True)
    weights = power / power.sum(axis=1, keepdims=True)
  expected = raw + weights * (mixture[:, None] - raw.sum(axis=1, keepdims=True))
  np.testing.assert_allclose(separate(network, mixture), expected, atol=1e-5)


def test_pred_source_weights_follow_a_softmax_of_pooled_core_activations():
  network = tiny()
  mixture = noise(1, 800, seed=5)
  core = network.core(network.feature_norm(
      network.front_end.magnitude(network.front_end.encode(tf.constant(mixture)))))
  logits = core.numpy().mean(axis=1) @ network.consistency.weight_dense.kernel.numpy()
  expected = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
  weights = network.consistency.mix_weights(None, core).numpy()[:, :, 0]
  np.testing.assert_allclose(weights, expected, rtol=1e-5)


# ----------------------------------------------------------------------------
# Lengths, batch and sizes.

@pytest.mark.parametrize('zero_pad_start', [False, True])
@pytest.mark.parametrize('length', [1, 100, 511, 1000, 1024, 1237])
def test_stft_round_trip_any_length(length, zero_pad_start):
  """With all masks at 0.5 every output is half the input (perfect reconstruction),
  except the first window - hop samples without the zero padding at the start."""
  network = tiny(mixture_consistency='none', zero_pad_start=zero_pad_start)
  network.mask_head.dense.kernel.assign(tf.zeros_like(network.mask_head.dense.kernel))
  mixture = noise(2, length, seed=6)
  separated = separate(network, mixture)
  assert separated.shape == (2, 4, length)
  start = 0 if zero_pad_start else 512 - 128
  np.testing.assert_allclose(separated[..., start:], 0.5 * np.repeat(
      mixture[:, None, start:], 4, axis=1), atol=1e-5)


@pytest.mark.parametrize('length', [7, 40, 101, 1003])
def test_learned_basis_any_length(length):
  network = tiny(front_end='learned', num_basis=32)
  mixture = noise(2, length, seed=7)
  separated = separate(network, mixture)
  assert separated.shape == (2, 4, length)
  np.testing.assert_allclose(separated.sum(axis=1), mixture, atol=1e-5)


@pytest.mark.parametrize('num_sources', [4, 8, 16])
def test_number_of_sources(num_sources):
  network = tiny(num_sources=num_sources)
  assert network.num_sources == num_sources
  mixture = noise(3, 700, seed=8)
  separated = separate(network, mixture)
  assert separated.shape == (3, num_sources, 700)
  np.testing.assert_allclose(separated.sum(axis=1), mixture, atol=1e-5)


def test_examples_of_a_batch_are_separated_independently():
  network = tiny()
  mixture = noise(3, 1100, seed=9)
  mixture[1] *= 20.0  # Per-example normalisation: a loud neighbour changes nothing.
  batched = separate(network, mixture)
  for b in range(3):
    np.testing.assert_allclose(batched[b], separate(network, mixture[b:b + 1])[0],
                               atol=1e-5 * max(1.0, np.abs(mixture[b]).max()))


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match='norm'):
    tiny(norm='batch_norm')
  with pytest.raises(ValueError, match='mixture consistency'):
    tiny(mixture_consistency='magic')
  with pytest.raises(ValueError, match='skip-residual'):
    tiny(skip_from=[3], skip_to=[1])
  with pytest.raises(ValueError, match='front_end'):
    tiny(front_end='wavelet')
  with pytest.raises(ValueError, match=r'\[batch, time\]'):
    tiny()(tf.zeros([2, 3, 400]))


def test_the_network_is_composed_of_its_parts():
  """`SeparationNetwork` takes the settings of its four parts; `build_network` (gin `network`)
  hands each flat `network.*` keyword to the part that declares it."""
  parts = dict(
      front_end=network_parts.FrontEndSettings(front_end='learned', num_basis=32),
      core=network_parts.TdcnSettings(bottleneck=8, conv_channels=16, num_repeats=2,
                                      num_dilations=3, skip_from=[0], skip_to=[3]),
      mask_head=network_parts.MaskHeadSettings(num_sources=4, mixture_consistency='power'),
      classifier=network_parts.ClassifierSettings(num_classes=3))
  composed = model.SeparationNetwork(**parts)
  flat = tiny(front_end='learned', num_basis=32, mixture_consistency='power', num_classes=3)
  assert composed.get_config() == flat.get_config()
  assert [(v.path, v.shape) for v in composed.weights] == [(v.path, v.shape) for v in flat.weights]
  settings = flat.get_config()
  assert settings.pop('name') == 'separation_network'
  assert network_parts.split_settings(settings) == parts
  assert model.build_network(**settings).count_params() == flat.count_params()
  # Every setting is declared by one part, and is one `network.*` gin name.
  names = [f.name for part in network_parts.PARTS.values() for f in dataclasses.fields(part)]
  assert len(names) == len(set(names)) == len(settings)
  assert list(inspect.signature(model.build_network).parameters) == ['name'] + names
  with pytest.raises(ValueError, match=r"unknown network setting\(s\) \['bottlenek'\]"):
    tiny(bottlenek=8)
  with pytest.raises(ValueError, match="'network' doesn't have a parameter named 'bottlenek'"):
    gin_config.parse(['models/tdcnpp_small.gin'], ['network.bottlenek = 8'])


def expected_parameter_count(bins, sources, bottleneck, channels, kernel, blocks, skips):
  feature_norm = 2
  initial = bins * bottleneck + bottleneck + 1
  block = (bottleneck * channels + 1) + 2 + 4 + (kernel * channels + channels) + (
      channels * bottleneck + 1)
  skip = bottleneck * bottleneck + bottleneck + 1
  return (feature_norm + initial + blocks * block + skips * skip + bottleneck * bins * sources
          + bottleneck * sources)


def test_parameter_count_matches_the_architecture():
  network = tiny()
  assert network.count_params() == expected_parameter_count(257, 4, 8, 16, 3, 6, 1)


@pytest.mark.parametrize('num_sources', [4, 8])
def test_paper_config_has_about_9m_parameters(num_sources):
  gin_config.parse(['models/tdcnpp_paper.gin'], [f'NUM_SOURCES = {num_sources}'])
  network = model.build_network()
  count = network.count_params()
  assert count == expected_parameter_count(257, num_sources, 256, 512, 3, 32, 6)
  assert 8.5e6 < count < 10e6


@pytest.mark.parametrize('gin_file', GIN_MODELS, ids=os.path.basename)
def test_every_model_gin_parses_and_builds(gin_file):
  assert len(GIN_MODELS) >= 2
  gin_config.parse([os.path.relpath(gin_file, gin_config.package_gin_dir())],
                   ['NUM_SOURCES = 4', 'NUM_CLASSES = 3'])
  network = model.build_network()
  assert (network.num_sources, network.num_classes, network.sample_rate) == (4, 3, 16000)
  mixture = noise(1, 600, seed=10)
  outputs = network(tf.constant(mixture))
  assert outputs['source_logits'].shape == (1, 4, 3)
  np.testing.assert_allclose(outputs['separated_waveforms'].numpy().sum(axis=1), mixture,
                             atol=1e-5)


# ----------------------------------------------------------------------------
# Classification head, mixed precision, checkpoints, tf.function, tf.distribute.

def test_classification_head_shape_and_gradient():
  network = tiny(num_classes=5)
  assert network.num_classes == 5
  mixture = tf.constant(noise(2, 900, seed=11))
  with tf.GradientTape() as tape:
    outputs = network(mixture, training=True)
    loss = tf.reduce_sum(tf.square(outputs['source_logits'][:, 0, 1]))
  assert outputs['source_logits'].shape == (2, 4, 5)
  grads = tape.gradient(loss, [network.classifier.dense.kernel, network.mask_head.dense.kernel,
                               network.core.initial_dense.kernel])
  for grad in grads:
    assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0
  assert 'source_logits' not in tiny()(mixture)


@pytest.mark.parametrize('policy', ['mixed_float16', 'mixed_bfloat16'])
def test_mixed_precision_outputs_float32_that_sum_to_the_input(policy):
  mixture = noise(2, 1000, seed=12)
  reference_network = tiny()
  keras.mixed_precision.set_global_policy(policy)
  try:
    network = tiny()
  finally:
    keras.mixed_precision.set_global_policy('float32')
  assert network.core.compute_dtype == policy.split('_')[1]
  assert all(v.dtype == 'float32' for v in network.weights)
  copy_weights(reference_network, network)
  outputs = network(tf.constant(mixture))['separated_waveforms']
  assert outputs.dtype == tf.float32
  np.testing.assert_allclose(outputs.numpy().sum(axis=1), mixture, atol=1e-5)
  reference = separate(reference_network, mixture)
  error = np.abs(outputs.numpy() - reference).max() / np.abs(reference).max()
  assert error < 0.1


def test_checkpoint_round_trip(tmp_path):
  network = tiny(num_classes=2)
  mixture = noise(2, 800, seed=13)
  # Make the weights differ from any fresh initialisation.
  for variable in network.weights:
    variable.assign(variable + 0.01)
  expected = network(tf.constant(mixture))
  path = tf.train.Checkpoint(network=network).save(str(tmp_path / 'ckpt'))
  restored = tiny(num_classes=2)
  tf.train.Checkpoint(network=restored).restore(path).assert_consumed()
  actual = restored(tf.constant(mixture))
  for key in ('separated_waveforms', 'source_logits'):
    np.testing.assert_array_equal(actual[key].numpy(), expected[key].numpy())


def test_tf_function_with_dynamic_shapes():
  network = tiny()
  serve = tf.function(lambda x: network(x, training=False)['separated_waveforms'],
                      input_signature=[tf.TensorSpec([None, None], tf.float32)])
  for batch, length in [(1, 300), (3, 1301)]:
    mixture = noise(batch, length, seed=length)
    np.testing.assert_allclose(serve(tf.constant(mixture)).numpy(), separate(network, mixture),
                               atol=1e-6)


def test_under_a_distribution_strategy():
  strategy = tf.distribute.MirroredStrategy(['/cpu:0'])
  with strategy.scope():
    network = tiny()
  mixture = noise(2, 700, seed=14)

  @tf.function
  def step(x):
    return network(x, training=True)['separated_waveforms']

  distributed = strategy.run(step, args=(tf.constant(mixture),))
  result = strategy.experimental_local_results(distributed)[0].numpy()
  eager = tiny()
  copy_weights(network, eager)
  np.testing.assert_allclose(result, separate(eager, mixture), atol=1e-6)
