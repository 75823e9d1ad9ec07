"""The four parts of the TDCN++ network, each declared once as a frozen settings dataclass.

A `SeparationNetwork` (mixit/model.py) is composed of
- `FrontEndSettings`: the analysis/synthesis transform (STFT or learned basis) and the
  normalisation of its magnitudes,
- `TdcnSettings`: the TDCN++ core,
- `MaskHeadSettings`: the M masks and the mixture-consistency projection of the outputs,
- `ClassifierSettings`: the optional per-source classification head.
Each dataclass holds its settings with their defaults, checks them, and builds its Keras
layers (the Keras classes themselves are never gin-decorated).

gin configures the parts through the one `network.*` namespace: every field name is unique
across the parts, so `build_network(**settings)` hands each keyword to the part that declares
it (`split_settings`): `network.bottleneck = 64` sets `TdcnSettings.bottleneck`.
`takes_part_settings` gives that factory the fields as its signature, so gin refuses an
unknown `network.*` name when it parses a file.
"""
import dataclasses
import inspect
from typing import Dict, Optional, Sequence

from mixit import layers
from mixit import stft_constants

FRONT_ENDS = ('stft', 'learned')
FEATURE_NORMS = ('auto', 'mean_and_variance', 'mean_and_variance_fused', 'none')


def _set(settings, name: str, value) -> None:
  """Normalises a field of a frozen dataclass in `__post_init__`."""
  object.__setattr__(settings, name, value)


def _samples(seconds: float, sample_rate: int, what: str) -> int:
  samples = int(round(seconds * sample_rate))
  if samples < 1:
    raise ValueError(f'{what} of {seconds} s at {sample_rate} Hz is under one sample')
  return samples


@dataclasses.dataclass(frozen=True)
class FrontEndSettings:
  """The front end: encoder, decoder and the normalisation of the magnitudes.

  Attributes:
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
  """
  sample_rate: int = 16000
  front_end: str = 'stft'
  window_seconds: Optional[float] = None
  hop_seconds: Optional[float] = None
  fft_length: Optional[int] = None
  zero_pad_start: bool = False
  num_basis: int = 256
  input_feature_norm: str = 'auto'

  def __post_init__(self):
    if self.front_end not in FRONT_ENDS:
      raise ValueError(f'unknown front_end {self.front_end!r}; expected one of {FRONT_ENDS}')
    if self.input_feature_norm not in FEATURE_NORMS:
      raise ValueError(f'unknown input_feature_norm {self.input_feature_norm!r}; expected one '
                       f'of {FEATURE_NORMS}')
    _set(self, 'sample_rate', int(self.sample_rate))
    _set(self, 'zero_pad_start', bool(self.zero_pad_start))
    _set(self, 'num_basis', int(self.num_basis))
    _ = (self.window_samples, self.hop_samples)  # refuses frames under one sample now

  @property
  def learned(self) -> bool:
    return self.front_end == 'learned'

  @property
  def window_samples(self) -> int:
    seconds = self.window_seconds
    if seconds is None:
      seconds = (stft_constants.BASIS_WINDOW_SECONDS if self.learned
                 else stft_constants.STFT_WINDOW_SECONDS)
    return _samples(seconds, self.sample_rate, 'window')

  @property
  def hop_samples(self) -> int:
    seconds = self.hop_seconds
    if seconds is None:
      seconds = (stft_constants.BASIS_HOP_SECONDS if self.learned
                 else stft_constants.STFT_HOP_SECONDS)
    return _samples(seconds, self.sample_rate, 'hop')

  @property
  def feature_norm(self) -> str:
    """`input_feature_norm` with 'auto' resolved."""
    if self.input_feature_norm == 'auto':
      return 'none' if self.learned else 'mean_and_variance'
    return self.input_feature_norm

  def build_front_end(self):
    """The encoder/decoder layer (float32 under any policy)."""
    if self.front_end == 'stft':
      return layers.StftFrontEnd(self.window_samples, self.hop_samples, self.fft_length,
                                 self.zero_pad_start, dtype='float32', name='stft')
    return layers.LearnedBasisFrontEnd(self.window_samples, self.hop_samples, self.num_basis,
                                       dtype='float32', name='learned_basis')

  def build_feature_norm(self) -> Optional[layers.ScalarNorm]:
    """Mean and variance over (frame, bin) of each example, scalar gain and bias; None for
    'none'. '_fused' computes it as the official code does (layers.ScalarNorm)."""
    if self.feature_norm == 'none':
      return None
    return layers.ScalarNorm((1, 2), fused=self.feature_norm.endswith('_fused'),
                             dtype='float32', name='feature_norm')


@dataclasses.dataclass(frozen=True)
class TdcnSettings:
  """The TDCN++ core (follows the global Keras dtype policy).

  Attributes:
    bottleneck, conv_channels, kernel_size: TDCN++ sizes.
    num_repeats, num_dilations: dilations 1, 2, ..., 2**(num_dilations-1), repeated;
      `dilations` (a list, one per block) overrides both.
    norm: 'instance_norm', 'global_layer_norm' (bin-wise, the FUSS baseline's; the
      same computation as instance norm), 'global_layer_norm_full' (time and
      channels) or 'layer_norm' (channels).
    block_scale: 'exponential' (block b's output scale starts at 0.9**b) or 'none'.
    skip_from, skip_to: skip-residual links from the input of block skip_from[i]
      to the input of block skip_to[i] (paper: [0,0,0,8,8,16] -> [8,16,24,16,24,24]).
  """
  bottleneck: int = 256
  conv_channels: int = 512
  kernel_size: int = 3
  num_repeats: int = 4
  num_dilations: int = 8
  dilations: Optional[Sequence[int]] = None
  norm: str = 'global_layer_norm'
  block_scale: str = 'exponential'
  skip_from: Sequence[int] = ()
  skip_to: Sequence[int] = ()

  def __post_init__(self):
    if self.dilations is None:
      if self.num_repeats < 1 or self.num_dilations < 1:
        raise ValueError(f'num_repeats ({self.num_repeats}) and num_dilations '
                         f'({self.num_dilations}) must be >= 1')
    else:
      _set(self, 'dilations', tuple(int(d) for d in self.dilations))
    _set(self, 'norm', layers.canonical_norm_type(self.norm))
    if len(self.skip_from) != len(self.skip_to):
      raise ValueError(f'skip_from {list(self.skip_from)} and skip_to {list(self.skip_to)} '
                       'differ in length')
    for name in ('bottleneck', 'conv_channels', 'kernel_size'):
      _set(self, name, int(getattr(self, name)))
    _set(self, 'skip_from', tuple(int(s) for s in self.skip_from))
    _set(self, 'skip_to', tuple(int(s) for s in self.skip_to))

  @property
  def block_dilations(self) -> list:
    """The dilation of each block."""
    if self.dilations is not None:
      return list(self.dilations)
    return layers.default_dilations(self.num_repeats, self.num_dilations)

  def build(self, num_bins: int) -> layers.TdcnCore:
    dilations = self.block_dilations
    return layers.TdcnCore(num_bins, self.bottleneck, self.conv_channels, self.kernel_size,
                           dilations, self.norm, layers.block_scales(len(dilations),
                                                                     self.block_scale),
                           list(zip(self.skip_from, self.skip_to)), name='core')


@dataclasses.dataclass(frozen=True)
class MaskHeadSettings:
  """The M masks and the projection that makes the outputs sum to the input.

  Attributes:
    num_sources: number of outputs M.
    mixture_consistency: 'pred_source', 'uniform', 'power' or 'none'.
  """
  num_sources: int = 8
  mixture_consistency: str = 'pred_source'

  def __post_init__(self):
    if self.num_sources < 1:
      raise ValueError(f'num_sources must be >= 1, got {self.num_sources}')
    _set(self, 'num_sources', int(self.num_sources))

  def build(self, num_bins: int, core_channels: int):
    """(mask head, mixture consistency), both float32 under any policy."""
    return (layers.MaskHead(self.num_sources, num_bins, dtype='float32', name='mask_head'),
            layers.MixtureConsistency(self.mixture_consistency, self.num_sources, core_channels,
                                      dtype='float32', name='consistency'))


@dataclasses.dataclass(frozen=True)
class ClassifierSettings:
  """The per-source classification head.

  Attributes:
    num_classes: number of classes; 0 for no head.
  """
  num_classes: int = 0

  def __post_init__(self):
    if self.num_classes < 0:
      raise ValueError(f'num_classes must be >= 0, got {self.num_classes}')
    _set(self, 'num_classes', int(self.num_classes))

  def build(self, num_bins: int) -> Optional[layers.SourceClassifier]:
    if not self.num_classes:
      return None
    return layers.SourceClassifier(self.num_classes, num_bins, dtype='float32',
                                   name='classifier')


# The parts, by the name `SeparationNetwork` takes each under.
PARTS = {'front_end': FrontEndSettings, 'core': TdcnSettings, 'mask_head': MaskHeadSettings,
         'classifier': ClassifierSettings}


def _fields():
  return [field for part in PARTS.values() for field in dataclasses.fields(part)]


def split_settings(settings: Dict) -> Dict:
  """{part name: its settings dataclass} from flat `network.*` keywords (the defaults for the
  rest)."""
  owner = {field.name: name for name, part in PARTS.items() for field in dataclasses.fields(part)}
  unknown = sorted(set(settings) - set(owner))
  if unknown:
    raise ValueError(f'unknown network setting(s) {unknown}; the settings are the fields of '
                     + ', '.join(f'{part.__name__} {[f.name for f in dataclasses.fields(part)]}'
                                 for part in PARTS.values()))
  return {name: part(**{k: v for k, v in settings.items() if owner[k] == name})
          for name, part in PARTS.items()}


def flat_settings(**parts) -> Dict:
  """The flat `network.*` keywords of part settings (the inverse of `split_settings`)."""
  flat = {}
  for settings in parts.values():
    flat.update(dataclasses.asdict(settings))
  return flat


def takes_part_settings(fn):
  """Declares the keywords of `fn(..., **settings)`: the parts' fields, with their defaults and
  types, so gin checks `network.*` names against them when it parses a config and
  `gin_config.check_binding_types` checks their values."""
  fields = _fields()
  if len({f.name for f in fields}) != len(fields):
    raise AssertionError('a field name is declared by two network parts')
  own = [p for p in inspect.signature(fn).parameters.values() if p.kind != p.VAR_KEYWORD]
  fn.__signature__ = inspect.Signature(
      own + [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                               annotation=f.type) for f in fields])
  fn.__annotations__ = {**fn.__annotations__, **{f.name: f.type for f in fields}}
  return fn
