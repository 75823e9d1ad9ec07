"""Keras 3 layers of the TDCN++ masking network (docs/formulas.md, "Model").

Shapes: waveforms `[batch, time]` or `[batch, source, time]`, encoder coefficients
`[batch, frame, bin]`, core activations `[batch, frame, channel]`, masks
`[batch, source, frame, bin]`.

The computation follows the public TF1 code of google-research/sound-separation
closely enough that its checkpoints load and reproduce its outputs (see
`mixit/import_official.py`): every scalar parameter, the epsilon of the norms and
the order of the operations matter for that. Layers that must stay in float32
under a mixed-precision policy (front ends, mask head, mixture consistency) are
created with `dtype='float32'` by the network; the TDCN++ core follows the
global policy.
"""
import math
from typing import List, Optional, Sequence, Tuple

import keras
import tensorflow as tf

# tf.keras.layers.LayerNormalization's default epsilon: the official scalar-parameter
# norms inherit it, and imported models only match with the same value.
NORM_EPSILON = 1e-3

# Axes of a `[batch, frame, channel]` tensor that each norm reduces over.
# 'global_layer_norm' is the bin-wise global layer norm of the FUSS baseline: despite
# its name it normalises every channel over time only, as instance norm does (the two
# differ only in their official variable names). 'global_layer_norm_full' is the
# models/train variant that reduces over time and channels together.
NORM_AXES = {
    'instance_norm': (1,),
    'global_layer_norm': (1,),
    'global_layer_norm_full': (1, 2),
    'layer_norm': (2,),
}
NORM_ALIASES = {'instance': 'instance_norm', 'gln': 'global_layer_norm'}
CONSISTENCY_TYPES = ('pred_source', 'uniform', 'power', 'none')


def canonical_norm_type(norm_type: str) -> str:
  norm_type = NORM_ALIASES.get(norm_type, norm_type)
  if norm_type not in NORM_AXES:
    raise ValueError(f'unknown norm {norm_type!r}; expected one of '
                     f'{sorted(NORM_AXES) + sorted(NORM_ALIASES)}')
  return norm_type


def sqrt_hann_window(frame_length, dtype=tf.float32):
  """Square root of the periodic Hann window (perfect reconstruction at hop <= 1/2)."""
  return tf.sqrt(tf.signal.hann_window(frame_length, periodic=True, dtype=dtype))


def enclosing_power_of_two(value: int) -> int:
  return 1 << max(int(value) - 1, 0).bit_length()


def _dense(x, kernel):
  """`x [..., in] @ kernel [in, out]` for any leading dims."""
  return tf.tensordot(x, kernel, axes=[[-1], [0]])


class ScaledDense(keras.layers.Layer):
  """Dense layer with an optional bias and an optional learnable scalar scale.

  `y = scale * activation(x W + b)`: the official `dense_layer` with `dense_scale`.
  `scale=None` means no scale variable.
  """

  def __init__(self, units: int, use_bias: bool = False, scale: Optional[float] = None,
               activation: Optional[str] = None, **kwargs):
    super().__init__(**kwargs)
    self.units = int(units)
    self.use_bias = bool(use_bias)
    self.scale_init = scale
    self.activation = activation
    if activation not in (None, 'relu'):
      raise ValueError(f'unsupported activation {activation!r}')

  def build(self, input_shape):
    input_dim = int(input_shape[-1])
    self.kernel = self.add_weight(name='kernel', shape=(input_dim, self.units),
                                  initializer='glorot_uniform')
    self.bias = (self.add_weight(name='bias', shape=(self.units,), initializer='zeros')
                 if self.use_bias else None)
    self.scale = (self.add_weight(name='scale', shape=(),
                                  initializer=keras.initializers.Constant(self.scale_init))
                  if self.scale_init is not None else None)

  def call(self, x):
    if self.scale is not None and self.activation is None:
      # scale (x W + b) = x (scale W) + scale b: the scale costs a product over the
      # kernel, not two passes over the activations (forward and backward).
      y = _dense(x, self.scale * self.kernel)
      return y + self.scale * self.bias if self.bias is not None else y
    y = _dense(x, self.kernel)
    if self.bias is not None:
      y = y + self.bias
    if self.activation == 'relu':
      y = tf.nn.relu(y)
    if self.scale is not None:
      y = self.scale * y
    return y


class PReLU(keras.layers.Layer):
  """Parametric ReLU with one scalar slope shared by every channel."""

  def __init__(self, alpha_init: float = 0.1, **kwargs):
    super().__init__(**kwargs)
    self.alpha_init = float(alpha_init)

  def build(self, input_shape):
    del input_shape
    self.alpha = self.add_weight(name='alpha', shape=(),
                                 initializer=keras.initializers.Constant(self.alpha_init))

  def call(self, x):
    return _prelu(x, tf.cast(self.alpha, x.dtype))


@tf.custom_gradient
def _prelu(x, alpha):
  """`relu(x) - alpha relu(-x)` in three passes over `x`, its gradient in about six.

  Autodiff of the two-ReLU form makes about eleven: on the TDCN++ these tensors are the
  largest of the step and every pass over them is bandwidth-bound.
  """
  negative = tf.minimum(x, 0)
  y = x + (alpha - 1) * negative

  def grad(upstream):
    # ReLU's gradient kernel on x and on -min(x, 0): at x = 0 the gradient is 0, as
    # autodiff of the two-ReLU form (the official one) gives.
    d_x = (tf.raw_ops.ReluGrad(gradients=upstream, features=x)
           + alpha * tf.raw_ops.ReluGrad(gradients=upstream, features=-negative))
    d_alpha = tf.reduce_sum(upstream * negative)
    return d_x, tf.cast(d_alpha, alpha.dtype)

  return y, grad


class ScalarNorm(keras.layers.Layer):
  """Mean-and-variance normalisation over `axes` with a scalar gain and bias.

  `y = gamma (x - mean) / sqrt(var + eps) + beta`, statistics per example over
  `axes` (biased variance). Statistics are computed in float32 whatever the
  compute dtype, since float16 variances of long signals overflow.

  `fused=True` (trailing `axes` only) computes it as the official
  `LayerNormalizationScalarParams` does for trailing axes: TF's FusedBatchNorm
  kernel on the input reshaped to NCHW `[1, batch, rest, 1]`, then `* gamma +
  beta`. That kernel sums in float32 in an order that loses digits as the
  reduced size grows (its mean of 32k values is off by 1.5e-6 relative, of
  321k values by 1.4e-5), so only this computes the official
  outputs; the default is the accurate one (DESIGN.md, "Official imports").
  """

  def __init__(self, axes: Sequence[int], epsilon: float = NORM_EPSILON, fused: bool = False,
               **kwargs):
    super().__init__(**kwargs)
    self.axes = tuple(int(a) for a in axes)
    self.epsilon = float(epsilon)
    self.fused = bool(fused)
    if self.fused and (any(a < 1 for a in self.axes)
                       or list(self.axes) != list(range(self.axes[0],
                                                        self.axes[0] + len(self.axes)))):
      raise ValueError(f'a fused norm needs contiguous non-batch axes, got {self.axes}')

  def build(self, input_shape):
    del input_shape
    self.gamma = self.add_weight(name='gamma', shape=(), initializer='ones', autocast=False)
    self.beta = self.add_weight(name='beta', shape=(), initializer='zeros', autocast=False)

  def call(self, x):
    dtype = x.dtype
    x = tf.cast(x, tf.float32)
    if self.fused:
      return tf.cast(self._fused_call(x), dtype)
    y = _scalar_norm(x, tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32),
                     self.axes, self.epsilon)
    return tf.cast(y, dtype)

  def _fused_call(self, x):
    if x.shape.rank is not None and self.axes[-1] != x.shape.rank - 1:
      raise ValueError(f'a fused norm needs trailing axes, got {self.axes} of rank '
                       f'{x.shape.rank}')
    shape = tf.shape(x)
    groups = tf.reduce_prod(shape[:self.axes[0]])
    ones = tf.fill([groups], 1.0)
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(
        tf.reshape(x, [1, groups, -1, 1]), scale=ones, offset=tf.zeros_like(ones),
        epsilon=self.epsilon, data_format='NCHW', is_training=True)
    return tf.reshape(y, shape) * self.gamma + self.beta


def in_xla_context() -> bool:
  """Whether ops created now will be XLA-compiled (`tf.function(jit_compile=True)`, TPU)."""
  if tf.executing_eagerly():
    return False
  try:
    from tensorflow.python.ops import control_flow_util  # pylint: disable=g-import-not-at-top
  except ImportError:  # A private module: without it, take the path that is right everywhere.
    return False
  return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))


def _sum_over(x, axes):
  """`reduce_sum(x, axes, keepdims=True)`; over the frames of `[batch, frame, channel]` as a
  matmul with ones, which runs at memory speed where TF's reduction over a non-minor axis
  is about 4x slower (2-core Xeon, 8000 x 512)."""
  if tuple(axes) == (1,) and x.shape.rank == 3 and not in_xla_context():
    ones = tf.ones(tf.stack([tf.shape(x)[0], 1, tf.shape(x)[1]]), x.dtype)
    return tf.matmul(ones, x)
  return tf.reduce_sum(x, axis=axes, keepdims=True)


def _scalar_norm(x, gamma, beta, axes, epsilon):
  """`gamma (x - mean) / sqrt(var + eps) + beta` over `axes`, with a hand-written gradient.

  With `inv = 1 / sqrt(var + eps)`, `g` the upstream gradient and sums over `axes`
  (n elements): `dx = gamma inv (g - sum(g) / n - xhat sum(g xhat) / n)`, written
  as `a g + b x + c` with per-group `a, b, c`, so it costs five passes over
  the activations where autodiff of the forward formula costs about ten.
  """

  @tf.custom_gradient
  def norm(x, gamma, beta):
    sum_x = _sum_over(x, axes)
    count = tf.cast(tf.size(x) // tf.size(sum_x), x.dtype)
    mean = sum_x / count
    variance = _sum_over(tf.math.squared_difference(x, mean), axes) / count
    inv = tf.math.rsqrt(variance + epsilon)
    gain = inv * gamma
    y = x * gain + (beta - mean * gain)

    def grad(upstream):
      sum_g = _sum_over(upstream, axes)
      sum_gx = _sum_over(upstream * x, axes)
      sum_g_xhat = (sum_gx - mean * sum_g) * inv
      b = -gain * inv * sum_g_xhat / count
      c = -gain * sum_g / count - b * mean
      d_x = upstream * gain + (x * b + c)
      return d_x, tf.reduce_sum(sum_g_xhat), tf.reduce_sum(sum_g)

    return y, grad

  return norm(x, gamma, beta)


class DepthwiseTimeConv(keras.layers.Layer):
  """Depthwise dilated convolution over frames with 'same' padding and a bias.

  Kernel `[kernel_size, channels]`; `y[t] = b + sum_i w[i] x[t + i d - p]`
  with TF's 'SAME' placement of the padding (`p = floor((kernel_size - 1) d / 2)`).

  Two ways to the same sum, chosen by who compiles it:
  - TF's executor (no XLA): TF's depthwise convolution kernel on a
    `[batch, frame, 1, channel]` view. Its backward pass is one kernel per
    operand; the sum written as shifted products costs a strided-slice gradient,
    a product and a reduction per tap, 3.5x the time of the forward and backward
    pass at 8000 frames x 512 channels on a 2-core Xeon.
  - XLA: the shifted products, which XLA fuses with their neighbours. XLA's CPU
    code for a depthwise (grouped) convolution is several times slower than the
    unfused TF kernel.
  """

  def __init__(self, kernel_size: int = 3, dilation: int = 1, **kwargs):
    super().__init__(**kwargs)
    if kernel_size < 1 or dilation < 1:
      raise ValueError(f'kernel_size ({kernel_size}) and dilation ({dilation}) must be >= 1')
    self.kernel_size = int(kernel_size)
    self.dilation = int(dilation)

  def build(self, input_shape):
    channels = int(input_shape[-1])
    # Glorot bound of the official DepthwiseConv2D kernel [k, 1, channels, 1].
    limit = math.sqrt(6.0 / (self.kernel_size * channels + self.kernel_size))
    self.kernel = self.add_weight(
        name='kernel', shape=(self.kernel_size, channels),
        initializer=keras.initializers.RandomUniform(-limit, limit))
    self.bias = self.add_weight(name='bias', shape=(channels,), initializer='zeros')

  def call(self, x):
    kernel = tf.cast(self.kernel, x.dtype)
    bias = tf.cast(self.bias, x.dtype)
    if in_xla_context():
      return self._shifted_products(x, kernel) + bias
    # expand_dims/squeeze, not slicing: their gradients are reshapes, a slice's a copy.
    y = tf.nn.depthwise_conv2d(tf.expand_dims(x, 2), kernel[:, tf.newaxis, :, tf.newaxis],
                               strides=[1, 1, 1, 1], padding='SAME',
                               dilations=[self.dilation, 1])
    return tf.nn.bias_add(tf.squeeze(y, 2), bias)

  def _shifted_products(self, x, kernel):
    pad_total = (self.kernel_size - 1) * self.dilation
    pad_before = pad_total // 2
    padded = tf.pad(x, [[0, 0], [pad_before, pad_total - pad_before], [0, 0]])
    num_frames = tf.shape(x)[1]
    y = None
    for i in range(self.kernel_size):
      start = i * self.dilation
      term = padded[:, start:start + num_frames] * kernel[i]
      y = term if y is None else y + term
    return y


class TdcnBlock(keras.layers.Layer):
  """One TDCN++ block: `x + dense2(norm(prelu(conv(norm(prelu(dense1(x)))))))`.

  dense1: no bias, scale init 1; dense2: no bias, scale init `scale` (0.9**index
  in the paper; None for no scale).
  """

  def __init__(self, bottleneck: int, conv_channels: int, kernel_size: int, dilation: int,
               norm_type: str, scale: Optional[float], **kwargs):
    super().__init__(**kwargs)
    self.bottleneck = int(bottleneck)
    self.conv_channels = int(conv_channels)
    self.norm_type = canonical_norm_type(norm_type)
    axes = NORM_AXES[self.norm_type]
    # Sublayers share this layer's dtype policy (Keras gives them the global one).
    policy = self.dtype_policy
    self.dense1 = ScaledDense(conv_channels, use_bias=False, scale=1.0, name='dense1', dtype=policy)
    self.prelu1 = PReLU(name='prelu1', dtype=policy)
    self.norm1 = ScalarNorm(axes, name='norm1', dtype=policy)
    self.conv = DepthwiseTimeConv(kernel_size, dilation, name='conv', dtype=policy)
    self.prelu2 = PReLU(name='prelu2', dtype=policy)
    self.norm2 = ScalarNorm(axes, name='norm2', dtype=policy)
    self.dense2 = ScaledDense(bottleneck, use_bias=False, scale=scale, name='dense2',
                              dtype=policy)

  def build(self, input_shape):
    if int(input_shape[-1]) != self.bottleneck:
      raise ValueError(f'TDCN++ block expects {self.bottleneck} channels, got {input_shape}')
    inner = (None, None, self.conv_channels)
    self.dense1.build(input_shape)
    for layer in (self.prelu1, self.norm1, self.conv, self.prelu2, self.norm2):
      layer.build(inner)
    self.dense2.build(inner)

  def call(self, x):
    y = self.dense1(x)
    y = self.norm1(self.prelu1(y))
    y = self.conv(y)
    y = self.norm2(self.prelu2(y))
    return x + self.dense2(y)


def default_dilations(num_repeats: int, num_dilations: int) -> List[int]:
  return [2 ** i for i in range(num_dilations)] * num_repeats


class TdcnCore(keras.layers.Layer):
  """TDCN++ core: initial dense, blocks and skip-residual links.

  `call(features [batch, frame, input_dim]) -> [batch, frame, bottleneck]`.
  A skip link (src, dst) adds `ScaledDense(bottleneck, bias, scale 1)` of the
  input of block src to the input of block dst; the input of dst seen by later
  links includes it, as in the official code.
  """

  def __init__(self, input_dim: int, bottleneck: int, conv_channels: int, kernel_size: int,
               dilations: Sequence[int], norm_type: str, block_scales: Sequence[Optional[float]],
               skip_links: Sequence[Tuple[int, int]] = (), **kwargs):
    super().__init__(**kwargs)
    self.input_dim = int(input_dim)
    self.bottleneck = int(bottleneck)
    num_blocks = len(dilations)
    if num_blocks < 1 or len(block_scales) != num_blocks:
      raise ValueError(f'need one scale per block: {len(dilations)} dilations, '
                       f'{len(block_scales)} scales')
    links = sorted((int(s), int(d)) for s, d in skip_links)
    if len(set(links)) != len(links):
      raise ValueError(f'duplicate skip-residual links {links}')
    for src, dst in links:
      if not 0 <= src < dst < num_blocks:
        raise ValueError(f'skip-residual link {src}->{dst} must satisfy '
                         f'0 <= from < to < {num_blocks}')
    # Official order: links into a block are added in increasing source order.
    self.skip_links = sorted(links, key=lambda link: (link[1], link[0]))
    policy = self.dtype_policy
    self.initial_dense = ScaledDense(bottleneck, use_bias=True, scale=1.0,
                                     name='initial_dense', dtype=policy)
    # One attribute per sublayer: tf.train.Checkpoint does not see into the
    # lists that Keras 3 tracks, so a list of blocks would not be saved.
    self.num_blocks = num_blocks
    for i, (d, s) in enumerate(zip(dilations, block_scales)):
      setattr(self, f'block_{i}',
              TdcnBlock(bottleneck, conv_channels, kernel_size, d, norm_type, s,
                        name=f'block_{i}', dtype=policy))
    for src, dst in self.skip_links:
      setattr(self, f'skip_{src}_to_{dst}',
              ScaledDense(bottleneck, use_bias=True, scale=1.0, name=f'skip_{src}_to_{dst}',
                          dtype=policy))

  @property
  def blocks(self) -> List[TdcnBlock]:
    return [getattr(self, f'block_{i}') for i in range(self.num_blocks)]

  @property
  def skip_denses(self) -> List[ScaledDense]:
    return [getattr(self, f'skip_{src}_to_{dst}') for src, dst in self.skip_links]

  def build(self, input_shape):
    del input_shape
    self.initial_dense.build((None, None, self.input_dim))
    inner = (None, None, self.bottleneck)
    for layer in self.blocks + self.skip_denses:
      layer.build(inner)

  def call(self, features):
    h = self.initial_dense(features)
    block_inputs = []
    for index, block in enumerate(self.blocks):
      for (src, dst), dense in zip(self.skip_links, self.skip_denses):
        if dst == index:
          h = h + dense(block_inputs[src])
      block_inputs.append(h)
      h = block(h)
    return h


class StftFrontEnd(keras.layers.Layer):
  """STFT analysis/synthesis with a sqrt periodic Hann window and `pad_end`.

  `zero_pad_start` prepends `window - hop` zeros before analysis and removes them
  after synthesis (models/train), so the first samples are covered by as many
  frames as the rest. No weights.
  """

  def __init__(self, frame_length: int, frame_step: int, fft_length: Optional[int] = None,
               zero_pad_start: bool = False, **kwargs):
    super().__init__(**kwargs)
    if not 0 < frame_step <= frame_length:
      raise ValueError(f'STFT hop ({frame_step} samples) must be in (0, window = '
                       f'{frame_length} samples]')
    self.frame_length = int(frame_length)
    self.frame_step = int(frame_step)
    self.fft_length = int(fft_length or enclosing_power_of_two(frame_length))
    if self.fft_length < self.frame_length:
      raise ValueError(f'fft_length {self.fft_length} < window {self.frame_length}')
    self.zero_pad_start = bool(zero_pad_start)
    self.num_bins = self.fft_length // 2 + 1

  @property
  def num_coefficients(self) -> int:
    return self.num_bins

  def encode(self, waveform):
    """`[..., time]` float32 -> complex64 `[..., frame, bin]`."""
    if self.zero_pad_start:
      pad = [[0, 0]] * (waveform.shape.rank - 1) + [[self.frame_length - self.frame_step, 0]]
      waveform = tf.pad(waveform, pad)
    return tf.signal.stft(waveform, self.frame_length, self.frame_step, self.fft_length,
                          window_fn=sqrt_hann_window, pad_end=True)

  def magnitude(self, coefficients):
    return tf.abs(coefficients)

  def apply_mask(self, mask, coefficients):
    """`mask [b, m, frame, bin]` real, `coefficients [b, frame, bin]` complex."""
    return tf.complex(mask, tf.zeros_like(mask)) * coefficients[:, tf.newaxis]

  def decode(self, coefficients, length):
    """complex `[..., frame, bin]` -> `[..., length]`."""
    waveform = tf.signal.inverse_stft(
        coefficients, self.frame_length, self.frame_step, self.fft_length,
        window_fn=tf.signal.inverse_stft_window_fn(self.frame_step,
                                                   forward_window_fn=sqrt_hann_window))
    if self.zero_pad_start:
      waveform = waveform[..., self.frame_length - self.frame_step:]
    return waveform[..., :length]


class LearnedBasisFrontEnd(keras.layers.Layer):
  """Learned encoder/decoder basis (Conv-TasNet style, the MixIT NeurIPS 2020 model).

  Encoder: frames (`pad_end`, cropped to `1 + ceil((T - window) / hop)` frames) ->
  Dense(num_basis, relu, no bias). Decoder: Dense(window, no bias) -> overlap-add.
  """

  def __init__(self, frame_length: int, frame_step: int, num_basis: int, **kwargs):
    super().__init__(**kwargs)
    if not 0 < frame_step <= frame_length:
      raise ValueError(f'basis hop ({frame_step} samples) must be in (0, window = '
                       f'{frame_length} samples]')
    self.frame_length = int(frame_length)
    self.frame_step = int(frame_step)
    self.num_basis = int(num_basis)
    policy = self.dtype_policy
    self.encoder = ScaledDense(num_basis, use_bias=False, activation='relu', name='encoder',
                               dtype=policy)
    self.decoder = ScaledDense(frame_length, use_bias=False, name='decoder', dtype=policy)

  @property
  def num_coefficients(self) -> int:
    return self.num_basis

  def build(self, input_shape):
    del input_shape
    self.encoder.build((None, None, self.frame_length))
    self.decoder.build((None, None, self.num_basis))

  def encode(self, waveform):
    """`[batch, time]` -> nonnegative `[batch, frame, basis]`."""
    frames = tf.signal.frame(waveform, self.frame_length, self.frame_step, pad_end=True)
    length = tf.shape(waveform)[-1]
    # 1 + ceil((T - window) / hop) frames as the official encoder keeps, but at least
    # one: its formula gives none for inputs shorter than a window.
    num_frames = tf.maximum(1 - (-(length - self.frame_length) // self.frame_step), 1)
    frames = frames[..., :num_frames, :]
    return self.encoder(frames)

  def magnitude(self, coefficients):
    return coefficients

  def apply_mask(self, mask, coefficients):
    return mask * coefficients[:, tf.newaxis]

  def decode(self, coefficients, length):
    """`[..., frame, basis]` -> `[..., length]`."""
    frames = self.decoder(coefficients)
    return tf.signal.overlap_and_add(frames, self.frame_step)[..., :length]


class MaskHead(keras.layers.Layer):
  """Dense(bins x sources, no bias) on core activations -> sigmoid masks.

  `[batch, frame, channel] -> [batch, source, frame, bin]`; the dense outputs are
  ordered source-major, as in the official mask reshape.
  """

  def __init__(self, num_sources: int, num_bins: int, **kwargs):
    super().__init__(**kwargs)
    self.num_sources = int(num_sources)
    self.num_bins = int(num_bins)
    self.dense = ScaledDense(self.num_sources * self.num_bins, use_bias=False, name='dense',
                             dtype=self.dtype_policy)

  def build(self, input_shape):
    self.dense.build(input_shape)

  def call(self, core_activations):
    logits = self.dense(core_activations)
    shape = tf.shape(logits)
    logits = tf.reshape(logits, [shape[0], shape[1], self.num_sources, self.num_bins])
    return tf.sigmoid(tf.transpose(logits, [0, 2, 1, 3]))


class MixtureConsistency(keras.layers.Layer):
  """Time-domain mixture consistency: `s_m += w_m (x - sum_m s_m)`.

  `kind`: 'pred_source' (w = softmax of a Dense(M, no bias) on the time-averaged
  core activations), 'uniform' (1/M), 'power' (w_m proportional to
  `1e-8 + mean_t s_m^2`), or 'none' (outputs left as they are).
  """

  def __init__(self, kind: str, num_sources: int, core_channels: int, **kwargs):
    super().__init__(**kwargs)
    if kind not in CONSISTENCY_TYPES:
      raise ValueError(f'unknown mixture consistency {kind!r}; expected one of '
                       f'{CONSISTENCY_TYPES}')
    self.kind = kind
    self.num_sources = int(num_sources)
    self.core_channels = int(core_channels)
    self.weight_dense = (ScaledDense(num_sources, use_bias=False, name='weight_dense',
                                     dtype=self.dtype_policy)
                         if kind == 'pred_source' else None)

  def build(self, input_shape):
    del input_shape
    if self.weight_dense is not None:
      self.weight_dense.build((None, self.core_channels))

  def mix_weights(self, separated, core_activations):
    """`[batch, source, 1]` weights summing to one over sources (or a scalar)."""
    if self.kind == 'pred_source':
      pooled = tf.reduce_mean(core_activations, axis=1)
      return tf.nn.softmax(self.weight_dense(pooled), axis=-1)[:, :, tf.newaxis]
    if self.kind == 'power':
      power = 1e-8 + tf.reduce_mean(tf.square(separated), axis=-1, keepdims=True)
      return power / tf.reduce_sum(power, axis=1, keepdims=True)
    return tf.constant(1.0 / self.num_sources, separated.dtype)

  def call(self, mixture, separated, core_activations):
    """`mixture [b, t]`, `separated [b, m, t]`, `core_activations [b, f, c]`."""
    if self.kind == 'none':
      return separated
    residual = mixture[:, tf.newaxis] - tf.reduce_sum(separated, axis=1, keepdims=True)
    return separated + self.mix_weights(separated, core_activations) * residual


class SourceClassifier(keras.layers.Layer):
  """Per-source class logits from time-pooled masked features.

  `masks [b, m, f, k]`, `features [b, f, k]` -> logits `[b, m, classes]`:
  `Dense(classes)(mean_f(mask_m * features))`. The features are what the core
  sees (normalised magnitudes), so the logits do not depend on the input gain,
  and the gradient reaches the masks and thus the separator.
  """

  def __init__(self, num_classes: int, num_bins: int, **kwargs):
    super().__init__(**kwargs)
    self.num_classes = int(num_classes)
    self.num_bins = int(num_bins)
    self.dense = ScaledDense(self.num_classes, use_bias=True, name='dense',
                             dtype=self.dtype_policy)

  def build(self, input_shape):
    del input_shape
    self.dense.build((None, None, self.num_bins))

  def call(self, masks, features):
    pooled = tf.reduce_mean(masks * features[:, tf.newaxis], axis=2)
    return self.dense(pooled)


def block_scales(num_blocks: int, scale_type: str) -> List[Optional[float]]:
  """Initial scale of each block's output dense: 'exponential' 0.9**b or 'none'."""
  if scale_type == 'exponential':
    return [0.9 ** b for b in range(num_blocks)]
  if scale_type == 'none':
    return [None] * num_blocks
  raise ValueError(f"unknown block scale type {scale_type!r}; expected 'exponential' or 'none'")

