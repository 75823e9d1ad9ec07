"""The TDCN++ separation network, composed of its four parts, and its gin factory.

`SeparationNetwork(front_end, core, mask_head, classifier)` takes the settings of its parts
(`mixit.network_parts`: `FrontEndSettings`, `TdcnSettings`, `MaskHeadSettings`,
`ClassifierSettings`), each declared once there. `build_network(**settings)` (gin name
`network`) builds it from the flat `network.*` settings, each a field of one part:
`network(mixture [batch, time], training=False)` ->
`{'separated_waveforms': [batch, source, time]}` (+ `'source_logits'
[batch, source, class]` when `num_classes > 0`). Every variable is created in the
constructor, so a checkpoint restores into a fresh network before its first call.
"""
import gin
import keras
import tensorflow as tf

from mixit import network_parts


class SeparationNetwork(keras.Model):
  """TDCN++ masking network (docs/formulas.md, "Model"), composed of its parts.

  Attributes: `num_sources` (M), `sample_rate`, `num_classes` (0 without the
  classification head), and the layers of the parts: `front_end`, `feature_norm`
  (None without), `core`, `mask_head`, `consistency`, `classifier` (None without).
  The front end, masks, synthesis, mixture consistency and classification head
  always run in float32; only `core` follows the global Keras dtype policy (e.g.
  mixed_float16).
  """

  def __init__(self,
               front_end: network_parts.FrontEndSettings = network_parts.FrontEndSettings(),
               core: network_parts.TdcnSettings = network_parts.TdcnSettings(),
               mask_head: network_parts.MaskHeadSettings = network_parts.MaskHeadSettings(),
               classifier: network_parts.ClassifierSettings = (
                   network_parts.ClassifierSettings()),
               name: str = 'separation_network'):
    super().__init__(name=name, dtype='float32')
    self.num_sources = mask_head.num_sources
    self.sample_rate = front_end.sample_rate
    self.num_classes = classifier.num_classes
    self._config = dict(network_parts.flat_settings(
        front_end=front_end, core=core, mask_head=mask_head, classifier=classifier), name=name)

    # The attribute names are the checkpoint's keys; the order, that of `weights`.
    self.front_end = front_end.build_front_end()
    num_bins = self.front_end.num_coefficients
    self.feature_norm = front_end.build_feature_norm()
    self.core = core.build(num_bins)
    self.mask_head, self.consistency = mask_head.build(num_bins, core.bottleneck)
    self.classifier = classifier.build(num_bins)
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


@gin.configurable('network')
@network_parts.takes_part_settings
def build_network(name: str = 'separation_network', **settings) -> SeparationNetwork:
  """Builds a TDCN++ `SeparationNetwork`; gin-configurable as `network.*`.

  Each keyword is a field of one part, documented there: `FrontEndSettings`
  (sample_rate, front_end, window_seconds, hop_seconds, fft_length,
  zero_pad_start, num_basis, input_feature_norm), `TdcnSettings` (bottleneck,
  conv_channels, kernel_size, num_repeats, num_dilations, dilations, norm,
  block_scale, skip_from, skip_to), `MaskHeadSettings` (num_sources,
  mixture_consistency) and `ClassifierSettings` (num_classes); the others keep
  their defaults. `name` is the Keras name of the network.
  """
  return SeparationNetwork(**network_parts.split_settings(settings), name=name)
