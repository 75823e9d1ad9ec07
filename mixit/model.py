"""The TDCN++ separation network and its gin-configurable factory.

`build_network(**overrides)` (gin name `network`) returns a `SeparationNetwork`:
`network(mixture [batch, time], training=False)` ->
`{'separated_waveforms': [batch, source, time]}` (+ `'source_logits'
[batch, source, class]` when `num_classes > 0`). Every variable is created in the
constructor, so a checkpoint restores into a fresh network before its first call.
"""
from typing import Optional, Sequence

import gin
import keras
import tensorflow as tf

from mixit import layers
from mixit import stft_constants

FRONT_ENDS = ('stft', 'learned')
FEATURE_NORMS = ('auto', 'mean_and_variance', 'mean_and_variance_fused', 'none')


class SeparationNetwork(keras.Model):
  """TDCN++ masking network (docs/formulas.md, "Model"); build it with `build_network`.

  Attributes: `num_sources` (M), `sample_rate`, `num_classes` (0 without the
  classification head). The front end, masks, synthesis, mixture consistency and
  classification head always run in float32; only `core` follows the global
  Keras dtype policy (e.g. mixed_float16).
  """

  def __init__(self,
               num_sources: int,
               sample_rate: int,
               front_end: str,
               window_samples: int,
               hop_samples: int,
               fft_length: Optional[int],
               zero_pad_start: bool,
               num_basis: int,
               input_feature_norm: str,
               bottleneck: int,
               conv_channels: int,
               kernel_size: int,
               dilations: Sequence[int],
               norm: str,
               block_scale: str,
               skip_from: Sequence[int],
               skip_to: Sequence[int],
               mixture_consistency: str,
               num_classes: int,
               name: str = 'separation_network'):
    super().__init__(name=name, dtype='float32')
    if num_sources < 1:
      raise ValueError(f'num_sources must be >= 1, got {num_sources}')
    if num_classes < 0:
      raise ValueError(f'num_classes must be >= 0, got {num_classes}')
    if front_end not in FRONT_ENDS:
      raise ValueError(f'unknown front_end {front_end!r}; expected one of {FRONT_ENDS}')
    if input_feature_norm not in FEATURE_NORMS[1:]:
      raise ValueError(f'unknown input_feature_norm {input_feature_norm!r}; expected one of '
                       f'{FEATURE_NORMS}')
    if len(skip_from) != len(skip_to):
      raise ValueError(f'skip_from {list(skip_from)} and skip_to {list(skip_to)} differ in '
                       'length')
    self.num_sources = int(num_sources)
    self.sample_rate = int(sample_rate)
    self.num_classes = int(num_classes)
    self._config = dict(
        num_sources=num_sources, sample_rate=sample_rate, front_end=front_end,
        window_samples=window_samples, hop_samples=hop_samples, fft_length=fft_length,
        zero_pad_start=zero_pad_start, num_basis=num_basis,
        input_feature_norm=input_feature_norm, bottleneck=bottleneck,
        conv_channels=conv_channels, kernel_size=kernel_size, dilations=list(dilations),
        norm=norm, block_scale=block_scale, skip_from=list(skip_from),
        skip_to=list(skip_to), mixture_consistency=mixture_consistency,
        num_classes=num_classes, name=name)

    if front_end == 'stft':
      self.front_end = layers.StftFrontEnd(window_samples, hop_samples, fft_length,
                                           zero_pad_start, dtype='float32', name='stft')
    else:
      self.front_end = layers.LearnedBasisFrontEnd(window_samples, hop_samples, num_basis,
                                                   dtype='float32', name='learned_basis')
    num_bins = self.front_end.num_coefficients
    # Mean and variance over (frame, bin) of each example, scalar gain and bias.
    # '_fused' computes it as the official code does (layers.ScalarNorm).
    self.feature_norm = (layers.ScalarNorm((1, 2), fused=input_feature_norm.endswith('_fused'),
                                           dtype='float32', name='feature_norm')
                         if input_feature_norm != 'none' else None)
    self.core = layers.TdcnCore(
        num_bins, bottleneck, conv_channels, kernel_size, dilations, norm,
        layers.block_scales(len(dilations), block_scale), list(zip(skip_from, skip_to)),
        name='core')
    self.mask_head = layers.MaskHead(num_sources, num_bins, dtype='float32', name='mask_head')
    self.consistency = layers.MixtureConsistency(mixture_consistency, num_sources, bottleneck,
                                                 dtype='float32', name='consistency')
    self.classifier = (layers.SourceClassifier(num_classes, num_bins, dtype='float32',
                                               name='classifier')
                       if num_classes else None)
    self.build((None, None))

  def build(self, input_shape):
    del input_shape
    num_bins = self.front_end.num_coefficients
    self.front_end.build((None, None))
    if self.feature_norm is not None:
      self.feature_norm.build((None, None, num_bins))
    self.core.build((None, None, num_bins))
    self.mask_head.build((None, None, self.core.bottleneck))
    self.consistency.build(None)
    if self.classifier is not None:
      self.classifier.build(None)

  def get_config(self):
    return dict(self._config)

  @property
  def hop_samples(self) -> int:
    return self.front_end.frame_step

  @property
  def window_samples(self) -> int:
    return self.front_end.frame_length

  def call(self, mixture, training=False):
    """`mixture [batch, time]` -> dict of `separated_waveforms [batch, source, time]`."""
    del training  # No dropout or batch statistics: training and inference agree.
    mixture = tf.convert_to_tensor(mixture)
    if mixture.shape.rank is not None and mixture.shape.rank != 2:
      raise ValueError(f'mixture must be [batch, time], got shape {mixture.shape}')
    mixture = tf.cast(mixture, tf.float32)
    length = tf.shape(mixture)[-1]

    coefficients = self.front_end.encode(mixture)
    features = self.front_end.magnitude(coefficients)
    if self.feature_norm is not None:
      features = self.feature_norm(features)
    core_activations = tf.cast(self.core(features), tf.float32)

    masks = self.mask_head(core_activations)
    masked = self.front_end.apply_mask(masks, coefficients)
    separated = self.front_end.decode(masked, length)
    separated = self.consistency(mixture, separated, core_activations)
    outputs = {'separated_waveforms': separated}
    if self.classifier is not None:
      outputs['source_logits'] = self.classifier(masks, features)
    return outputs


def _samples(seconds: float, sample_rate: int, what: str) -> int:
  samples = int(round(seconds * sample_rate))
  if samples < 1:
    raise ValueError(f'{what} of {seconds} s at {sample_rate} Hz is under one sample')
  return samples


@gin.configurable('network')
def build_network(num_sources: int = 8,
                  sample_rate: int = 16000,
                  front_end: str = 'stft',
                  window_seconds: Optional[float] = None,
                  hop_seconds: Optional[float] = None,
                  fft_length: Optional[int] = None,
                  zero_pad_start: bool = False,
                  num_basis: int = 256,
                  input_feature_norm: str = 'auto',
                  bottleneck: int = 256,
                  conv_channels: int = 512,
                  kernel_size: int = 3,
                  num_repeats: int = 4,
                  num_dilations: int = 8,
                  dilations: Optional[Sequence[int]] = None,
                  norm: str = 'global_layer_norm',
                  block_scale: str = 'exponential',
                  skip_from: Sequence[int] = (),
                  skip_to: Sequence[int] = (),
                  mixture_consistency: str = 'pred_source',
                  num_classes: int = 0,
                  name: str = 'separation_network') -> SeparationNetwork:
  """Builds a TDCN++ `SeparationNetwork`; gin-configurable as `network.*`.

  Args:
    num_sources: number of outputs M.
    sample_rate: Hz; frame sizes in seconds are rounded to samples at this rate.
    front_end: 'stft' (sqrt periodic Hann, pad_end) or 'learned' (basis).
    window_seconds, hop_seconds: frame sizes; None gives 32/8 ms for 'stft' and
      2.5/1.25 ms for 'learned'.
    fft_length: STFT size; None for the power of two enclosing the window.
    zero_pad_start: STFT only: prepend window - hop zeros (models/train).
    num_basis: number of learned basis coefficients.
    input_feature_norm: 'mean_and_variance' (scalar gain and bias), 'none', or
      'auto' (the official choice: normalised STFT magnitudes, raw learned
      coefficients); 'mean_and_variance_fused' is the same normalisation with
      the float32 rounding of the official TF1 code (what imports use).
    bottleneck, conv_channels, kernel_size: TDCN++ sizes.
    num_repeats, num_dilations: dilations 1, 2, ..., 2**(num_dilations-1), repeated;
      `dilations` (a list, one per block) overrides both.
    norm: 'instance_norm', 'global_layer_norm' (bin-wise, the FUSS baseline's; the
      same computation as instance norm), 'global_layer_norm_full' (time and
      channels) or 'layer_norm' (channels).
    block_scale: 'exponential' (block b's output scale starts at 0.9**b) or 'none'.
    skip_from, skip_to: skip-residual links from the input of block skip_from[i]
      to the input of block skip_to[i] (paper: [0,0,0,8,8,16] -> [8,16,24,16,24,24]).
    mixture_consistency: 'pred_source', 'uniform', 'power' or 'none'.
    num_classes: size of the per-source classification head; 0 for none.
    name: Keras name of the network.
  """
  if front_end not in FRONT_ENDS:
    raise ValueError(f'unknown front_end {front_end!r}; expected one of {FRONT_ENDS}')
  if input_feature_norm not in FEATURE_NORMS:
    raise ValueError(f'unknown input_feature_norm {input_feature_norm!r}; expected one of '
                     f'{FEATURE_NORMS}')
  learned = front_end == 'learned'
  if window_seconds is None:
    window_seconds = (stft_constants.BASIS_WINDOW_SECONDS if learned
                      else stft_constants.STFT_WINDOW_SECONDS)
  if hop_seconds is None:
    hop_seconds = (stft_constants.BASIS_HOP_SECONDS if learned
                   else stft_constants.STFT_HOP_SECONDS)
  if input_feature_norm == 'auto':
    input_feature_norm = 'none' if learned else 'mean_and_variance'
  if dilations is None:
    if num_repeats < 1 or num_dilations < 1:
      raise ValueError(f'num_repeats ({num_repeats}) and num_dilations ({num_dilations}) '
                       'must be >= 1')
    dilations = layers.default_dilations(num_repeats, num_dilations)
  norm = layers.canonical_norm_type(norm)
  return SeparationNetwork(
      num_sources=int(num_sources), sample_rate=int(sample_rate), front_end=front_end,
      window_samples=_samples(window_seconds, sample_rate, 'window'),
      hop_samples=_samples(hop_seconds, sample_rate, 'hop'),
      fft_length=fft_length, zero_pad_start=bool(zero_pad_start), num_basis=int(num_basis),
      input_feature_norm=input_feature_norm, bottleneck=int(bottleneck),
      conv_channels=int(conv_channels), kernel_size=int(kernel_size),
      dilations=[int(d) for d in dilations], norm=norm, block_scale=block_scale,
      skip_from=[int(s) for s in skip_from], skip_to=[int(s) for s in skip_to],
      mixture_consistency=mixture_consistency, num_classes=int(num_classes), name=name)
