r"""Imports the public TF1 TDCN++ checkpoints of google-research/sound-separation.

    mixit-import-official --checkpoint PREFIX --output_dir D \
        [--variant auto|fuss_baseline|train_stft|mixit_neurips2020] [--sample_rate 16000]

Reads the name-based checkpoint with `tf.train.load_checkpoint` only (no TF1 graph
code), recognises the variant from the variable names, infers every size from the
shapes, builds the Keras network with `mixit.model.build_network`, assigns every
official variable exactly once and writes a model dir: `D/config.gin` (the
`network.*` bindings that rebuild it) and `D/ckpt-1` of
`tf.train.Checkpoint(network=..., step=...)`, which export, separation and
fine-tuning restore with `expect_partial()`.

Variants (the public code each comes from):
  fuss_baseline      models/dcase2020_fuss_baseline: STFT, bin-wise global layer
                     norm, skip-residual links (the DCASE 2020 FUSS baselines).
  train_stft         models/train: STFT with window - hop zeros prepended,
                     instance norm (or the norm its names say).
  mixit_neurips2020  models/neurips2020_mixit: learned basis (or STFT without the
                     zero padding), instance norm (the YFCC100M MixIT model).

STFT imports bind `network.input_feature_norm = 'mean_and_variance_fused'`: the
official feature normalisation's mean and variance are sequential float32 sums
(TF's FusedBatchNorm kernel), whose rounding is part of the official outputs.

What the shapes cannot tell is taken from the published code: STFT frames of
32 ms with an 8 ms hop (when the FFT size agrees with 32 ms at --sample_rate;
otherwise a window of the FFT size and a quarter of it as hop), learned-basis
frames of 2.5 ms with a 1.25 ms hop (when the basis length agrees; otherwise half
the basis length as hop), and repeats of 8 dilations 1, 2, ..., 128. Flags
override each of these.
"""
import collections
import dataclasses
import os
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from mixit import checkpoints as checkpoints_lib
from mixit import gin_config
from mixit import layers
from mixit import model
from mixit import stft_constants

VARIANTS = ('fuss_baseline', 'train_stft', 'mixit_neurips2020')
# Every published model runs 4 repeats of these 8 dilations.
OFFICIAL_NUM_DILATIONS = 8
# (window, hop) in seconds of the published hparams, whatever the sample rate.
OFFICIAL_STFT_SECONDS = (stft_constants.STFT_WINDOW_SECONDS, stft_constants.STFT_HOP_SECONDS)
OFFICIAL_BASIS_SECONDS = (stft_constants.BASIS_WINDOW_SECONDS, stft_constants.BASIS_HOP_SECONDS)

# Training state that a TF1 Estimator checkpoint may hold beside the model: not
# part of the network, so it is skipped (and logged), never silently matched.
_TRAINING_STATE = re.compile(r'(^global_step$|^beta[12]_power(_\d+)?$|/Adam(_\d+)?$|'
                             r'/ExponentialMovingAverage$|/Momentum$)')
_BLOCK = 'improved_tdcn/conv_block_{}/tdcn_block/'
_NORM_NAMES = ('global_layer_norm', 'instance_norm', 'layer_norm')
_ENCODER = re.compile(r'^conv_encoder/dense(_\d+)?/kernel$')
_DECODER = re.compile(r'^conv_decoder/dense(_\d+)?/kernel$')


@dataclasses.dataclass
class _Target:
  """Where an official variable goes: a network variable, its official shape,
  and the map from the official array to the Keras one."""
  variable: tf.Variable
  official_shape: Tuple[int, ...]
  transform: Callable[[np.ndarray], np.ndarray] = lambda a: a


def read_checkpoint(prefix: str) -> Dict[str, np.ndarray]:
  """All variables of a name-based checkpoint (a prefix or a folder)."""
  if not tf.io.gfile.isdir(prefix) and not tf.io.gfile.exists(prefix + '.index'):
    raise ValueError(f'cannot read checkpoint {prefix!r}: neither a folder nor a checkpoint '
                     f'prefix (no {prefix}.index)')
  prefix = checkpoints_lib.resolve(prefix, what='--checkpoint')
  try:
    reader = tf.train.load_checkpoint(prefix)
    names = reader.get_variable_to_shape_map()
    return {name: reader.get_tensor(name) for name in sorted(names)}
  except (tf.errors.OpError, ValueError, IndexError) as e:
    raise ValueError(f'cannot read checkpoint {prefix!r}: {e}') from e


def _model_variables(values: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  skipped = [n for n in values if _TRAINING_STATE.search(n)]
  if skipped:
    logging.info('Skipping %d training-state variables (global step, optimizer slots): %s',
                 len(skipped), ', '.join(skipped[:5]) + (' ...' if len(skipped) > 5 else ''))
  return {n: v for n, v in values.items() if n not in skipped}


def _consensus(candidates: Sequence[Tuple[str, int]], what: str) -> int:
  """The size most variables agree on, so one altered shape cannot mislead."""
  if not candidates:
    raise ValueError(f'cannot infer {what}: no variable carries it')
  counts = collections.Counter(size for _, size in candidates)
  return counts.most_common(1)[0][0]


def _block_indices(names: Sequence[str]) -> List[int]:
  indices = sorted({int(m.group(1)) for n in names
                    for m in [re.match(r'^improved_tdcn/conv_block_(\d+)/', n)] if m})
  if not indices:
    raise ValueError('no TDCN++ blocks (improved_tdcn/conv_block_N/...) in the checkpoint')
  missing = sorted(set(range(indices[-1] + 1)) - set(indices))
  if missing:
    raise ValueError(f'checkpoint lacks every variable of block(s) {missing}: expected '
                     f'{_BLOCK.format(missing[0])}...')
  return indices


def _block_norm(values: Dict[str, np.ndarray]) -> Tuple[str, Tuple[int, ...]]:
  """(official norm name, gamma shape) of the first block."""
  for norm_name in _NORM_NAMES:
    name = _BLOCK.format(0) + f'normact1/{norm_name}/gamma'
    if name in values:
      return norm_name, tuple(values[name].shape)
  raise ValueError(f'no norm gamma found for block 0 (looked for {_BLOCK.format(0)}'
                   f'normact1/{{{",".join(_NORM_NAMES)}}}/gamma)')


def detect_variant(values: Dict[str, np.ndarray]) -> str:
  """Recognises the public code that wrote a checkpoint from its names and shapes."""
  names = list(values)
  if any(_ENCODER.match(n) for n in names):
    return 'mixit_neurips2020'
  if 'layer_norm_on_mag/gamma' not in values:
    raise ValueError('cannot recognise the variant: neither a learned basis '
                     '(conv_encoder/dense/kernel) nor STFT feature normalisation '
                     '(layer_norm_on_mag/gamma) in the checkpoint')
  norm_name, gamma_shape = _block_norm(values)
  # The FUSS baseline's global layer norm is bin-wise (reduced over time only):
  # its scalar params have shape [1]; models/train's full one has shape [1, 1].
  if norm_name == 'global_layer_norm' and gamma_shape == (1,):
    return 'fuss_baseline'
  return 'train_stft'


def _norm_type(variant: str, norm_name: str, gamma_shape: Tuple[int, ...]) -> str:
  if variant == 'fuss_baseline':
    if norm_name != 'global_layer_norm' or gamma_shape != (1,):
      raise ValueError(f'variant fuss_baseline uses a bin-wise global_layer_norm with '
                       f'params of shape [1]; block 0 has {norm_name} of shape '
                       f'{list(gamma_shape)} ({_BLOCK.format(0)}normact1/{norm_name}/gamma)')
    return 'global_layer_norm'
  if norm_name == 'global_layer_norm':
    return 'global_layer_norm_full'
  return norm_name


def infer_settings(values: Dict[str, np.ndarray],
                   variant: str = 'auto',
                   sample_rate: int = 16000,
                   window_seconds: Optional[float] = None,
                   hop_seconds: Optional[float] = None,
                   num_dilations: Optional[int] = None,
                   mixture_consistency: str = 'pred_source') -> Tuple[str, Dict]:
  """(variant, `build_network` keyword arguments) for the official variables."""
  detected = detect_variant(values)
  if variant == 'auto':
    variant = detected
  elif variant not in VARIANTS:
    raise ValueError(f'unknown variant {variant!r}; expected auto or one of {VARIANTS}')
  learned = any(_ENCODER.match(n) for n in values)
  if learned and variant != 'mixit_neurips2020':
    raise ValueError(f'variant {variant} has an STFT front end, but the checkpoint holds a '
                     'learned basis (conv_encoder/dense/kernel)')
  if variant == 'fuss_baseline' and detected != 'fuss_baseline':
    _norm_type(variant, *_block_norm(values))  # Raises with the offending name.

  shapes = {n: tuple(v.shape) for n, v in values.items()}
  blocks = _block_indices(list(values))
  num_blocks = len(blocks)
  b = _BLOCK.format
  bottleneck = _consensus(
      [(n, s[-1]) for n, s in shapes.items()
       if n == 'initial_dense/dense/kernel' or re.search(r'/dense2/dense/kernel$', n)]
      + [(n, s[0]) for n, s in shapes.items() if re.search(r'/dense1/dense/kernel$', n)
         or n == 'mix_weights/dense/kernel' or n == 'dense/kernel'], 'the bottleneck')
  conv_channels = _consensus(
      [(n, s[-1]) for n, s in shapes.items() if re.search(r'/dense1/dense/kernel$', n)]
      + [(n, s[0]) for n, s in shapes.items() if re.search(r'/dense2/dense/kernel$', n)],
      'the conv channels')
  kernel_size = _consensus(
      [(n, s[0]) for n, s in shapes.items() if n.endswith('/separable_conv/depthwise_kernel')],
      'the kernel size')
  norm = _norm_type(variant, *_block_norm(values))
  block_scale = ('exponential' if b(0) + 'dense2/dense_scale/scale_layer' in values
                 else 'none')

  links = sorted(((int(m.group(1)), int(m.group(2))) for n in values
                  for m in [re.match(r'^improved_tdcn/res_dense_(\d+)_to_(\d+)/', n)] if m),
                 key=lambda link: (link[1], link[0]))
  links = list(dict.fromkeys(links))

  if num_dilations is None:
    if num_blocks % OFFICIAL_NUM_DILATIONS:
      raise ValueError(f'{num_blocks} blocks is not a multiple of the official '
                       f'{OFFICIAL_NUM_DILATIONS} dilations per repeat: pass --num_dilations')
    num_dilations = OFFICIAL_NUM_DILATIONS
  if num_dilations < 1 or num_blocks % num_dilations:
    raise ValueError(f'{num_blocks} blocks cannot be split into repeats of '
                     f'{num_dilations} dilations')

  settings = dict(
      sample_rate=int(sample_rate), bottleneck=bottleneck, conv_channels=conv_channels,
      kernel_size=kernel_size, num_repeats=num_blocks // num_dilations,
      num_dilations=num_dilations, norm=norm, block_scale=block_scale,
      skip_from=[s for s, _ in links], skip_to=[d for _, d in links],
      mixture_consistency=mixture_consistency, num_classes=0)

  if 'dense/kernel' not in values:
    raise ValueError('the checkpoint lacks the mask head dense/kernel')
  if learned:
    encoder = [n for n in values if _ENCODER.match(n)][0]
    window, num_basis = shapes[encoder]
    settings.update(front_end='learned', num_basis=num_basis, input_feature_norm='none')
    if int(round(OFFICIAL_BASIS_SECONDS[0] * sample_rate)) == window:
      frames = OFFICIAL_BASIS_SECONDS
    else:
      frames = (window / sample_rate, (window // 2) / sample_rate)
      logging.warning('a %d-sample basis is not %g s at %d Hz: assuming a %d-sample hop',
                      window, OFFICIAL_BASIS_SECONDS[0], sample_rate, window // 2)
  else:
    num_bins = shapes['initial_dense/dense/kernel'][0]
    fft_length = 2 * (num_bins - 1)
    # The official layer_norm_on_mag sums in float32 in TF's FusedBatchNorm kernel:
    # only the same kernel reproduces its outputs (DESIGN.md, "Official imports").
    settings.update(front_end='stft', fft_length=fft_length,
                    zero_pad_start=variant == 'train_stft',
                    input_feature_norm='mean_and_variance_fused')
    official_window = int(round(OFFICIAL_STFT_SECONDS[0] * sample_rate))
    if layers.enclosing_power_of_two(official_window) == fft_length:
      frames = OFFICIAL_STFT_SECONDS
    else:
      frames = (fft_length / sample_rate, (fft_length // 4) / sample_rate)
      logging.warning('FFT size %d does not fit a %g s window at %d Hz: assuming a %d-sample '
                      'window and a %d-sample hop', fft_length, OFFICIAL_STFT_SECONDS[0],
                      sample_rate, fft_length, fft_length // 4)
    num_basis = num_bins
  settings['window_seconds'], settings['hop_seconds'] = frames
  if window_seconds is not None:
    settings['window_seconds'] = float(window_seconds)
  if hop_seconds is not None:
    settings['hop_seconds'] = float(hop_seconds)
  mask_outputs = shapes['dense/kernel'][-1]
  if mask_outputs % num_basis:
    raise ValueError(f'dense/kernel has {mask_outputs} outputs, not a multiple of the '
                     f'{num_basis} coefficients per frame')
  settings['num_sources'] = mask_outputs // num_basis
  return variant, settings


def official_targets(network: model.SeparationNetwork, variant: str,
                     values: Dict[str, np.ndarray]) -> Dict[str, _Target]:
  """Official variable name -> `_Target` for every variable the network needs."""
  targets = {}

  def dense(scope, layer, scaled=True):
    targets[f'{scope}/dense/kernel'] = _Target(layer.kernel, tuple(layer.kernel.shape))
    if layer.bias is not None:
      targets[f'{scope}/dense/bias'] = _Target(layer.bias, tuple(layer.bias.shape))
    if scaled and layer.scale is not None:
      targets[f'{scope}/dense_scale/scale_layer'] = _Target(layer.scale, ())

  def norm(name, layer, shape):
    targets[f'{name}/gamma'] = _Target(layer.gamma, shape, lambda a: a.reshape(()))
    targets[f'{name}/beta'] = _Target(layer.beta, shape, lambda a: a.reshape(()))

  front = network.front_end
  if isinstance(front, layers.LearnedBasisFrontEnd):
    # Keras numbered the auto-named TF1 layers (dense, dense_1, ...) in graph order.
    for pattern, default, layer in ((_ENCODER, 'conv_encoder/dense/kernel', front.encoder),
                                    (_DECODER, 'conv_decoder/dense_1/kernel', front.decoder)):
      matches = sorted(n for n in values if pattern.match(n))
      targets[matches[0] if matches else default] = _Target(layer.kernel,
                                                            tuple(layer.kernel.shape))
  if network.feature_norm is not None:
    norm('layer_norm_on_mag', network.feature_norm, (1, 1, 1))

  core = network.core
  dense('initial_dense', core.initial_dense)
  norm_type = core.blocks[0].norm_type
  official_norm = {'global_layer_norm': 'global_layer_norm',
                   'global_layer_norm_full': 'global_layer_norm',
                   'instance_norm': 'instance_norm', 'layer_norm': 'layer_norm'}[norm_type]
  norm_shape = (1, 1) if norm_type == 'global_layer_norm_full' else (1,)
  for index, block in enumerate(core.blocks):
    scope = _BLOCK.format(index)
    dense(scope + 'dense1', block.dense1)
    dense(scope + 'dense2', block.dense2)
    for number, (prelu, block_norm) in enumerate(
        ((block.prelu1, block.norm1), (block.prelu2, block.norm2)), start=1):
      targets[f'{scope}normact{number}/prelu/prelu'] = _Target(prelu.alpha, ())
      norm(f'{scope}normact{number}/{official_norm}', block_norm, norm_shape)
    kernel_size, channels = block.conv.kernel.shape
    targets[scope + 'timeconv/separable_conv/depthwise_kernel'] = _Target(
        block.conv.kernel, (kernel_size, 1, channels, 1),
        lambda a: a.reshape(a.shape[0], a.shape[2]))
    targets[scope + 'timeconv/separable_conv/bias'] = _Target(block.conv.bias, (channels,))
  for (src, dst), layer in zip(core.skip_links, core.skip_denses):
    dense(f'improved_tdcn/res_dense_{src}_to_{dst}', layer)
  targets['dense/kernel'] = _Target(network.mask_head.dense.kernel,
                                    tuple(network.mask_head.dense.kernel.shape))
  if network.consistency.weight_dense is not None:
    kernel = network.consistency.weight_dense.kernel
    targets['mix_weights/dense/kernel'] = _Target(kernel, tuple(kernel.shape))
  return targets


def assign_official(network: model.SeparationNetwork, variant: str,
                    values: Dict[str, np.ndarray]) -> List[str]:
  """Assigns every official variable to the network; returns the assigned names.

  Raises a ValueError naming each variable that is missing from the checkpoint,
  left unused by the network, or has a shape the network does not expect.
  """
  values = _model_variables(values)
  targets = official_targets(network, variant, values)
  missing = sorted(set(targets) - set(values))
  unused = sorted(set(values) - set(targets))
  wrong = sorted(f'{n} {list(values[n].shape)} (expected {list(t.official_shape)})'
                 for n, t in targets.items()
                 if n in values and tuple(values[n].shape) != t.official_shape)
  problems = []
  if missing:
    problems.append(f'missing from the checkpoint: {", ".join(missing)}')
  if unused:
    problems.append(f'not used by the {variant} network: {", ".join(unused)}')
  if wrong:
    problems.append(f'unexpected shape: {", ".join(wrong)}')
  if problems:
    raise ValueError(f'checkpoint does not match the inferred {variant} TDCN++; '
                     + '; '.join(problems))
  seen = set()
  for name, target in targets.items():
    if id(target.variable) in seen:
      raise AssertionError(f'two official variables map onto {target.variable.path}')
    seen.add(id(target.variable))
    target.variable.assign(target.transform(np.asarray(values[name], np.float32)))
  network_variables = {id(v) for v in network.weights}
  left = [v.path for v in network.weights if id(v) not in seen]
  if left or not seen <= network_variables:
    raise AssertionError(f'network variables left unassigned: {left}')
  return sorted(targets)


def gin_bindings(settings: Dict) -> List[str]:
  """`network.*` gin bindings for `build_network` keyword arguments."""
  def literal(value):
    if isinstance(value, str):
      return repr(value)
    if isinstance(value, (list, tuple)):
      return '[' + ', '.join(literal(v) for v in value) + ']'
    if isinstance(value, (bool, np.bool_)):
      return 'True' if value else 'False'
    if isinstance(value, (int, np.integer)):
      return str(int(value))
    if isinstance(value, (float, np.floating)):
      return repr(float(value))
    if value is None:
      return 'None'
    raise TypeError(f'cannot write {value!r} as gin')
  return [f'network.{key} = {literal(value)}' for key, value in sorted(settings.items())]


def import_checkpoint(checkpoint: str,
                      output_dir: str,
                      variant: str = 'auto',
                      sample_rate: int = 16000,
                      window_seconds: Optional[float] = None,
                      hop_seconds: Optional[float] = None,
                      num_dilations: Optional[int] = None,
                      mixture_consistency: str = 'pred_source',
                      overwrite: bool = False) -> Tuple[str, model.SeparationNetwork]:
  """Imports an official checkpoint into the model dir `output_dir`.

  Returns (path of the written checkpoint, the imported network). Leaves gin
  holding the written config.
  """
  if not overwrite and tf.io.gfile.exists(output_dir) and (
      tf.io.gfile.exists(os.path.join(output_dir, gin_config.CONFIG_FILENAME))
      or checkpoints_lib.list_checkpoints(output_dir)):
    raise ValueError(f'{output_dir!r} already holds a model; pass overwrite=True '
                     '(--overwrite) to replace it')
  values = read_checkpoint(checkpoint)
  model_values = _model_variables(values)
  variant, settings = infer_settings(model_values, variant, sample_rate, window_seconds,
                                     hop_seconds, num_dilations, mixture_consistency)
  logging.info('Importing %s as %s: %s', checkpoint, variant, settings)
  bindings = gin_bindings(settings)
  # Build through gin so the config written below is the one that rebuilt it.
  gin_config.parse([], bindings)
  network = model.build_network()
  assigned = assign_official(network, variant, model_values)
  logging.info('Assigned %d official variables (%d network parameters).', len(assigned),
               network.count_params())

  tf.io.gfile.makedirs(output_dir)
  if overwrite:
    for name in tf.io.gfile.listdir(output_dir):
      # Only the names a checkpoint manager writes: never a user's `ckpt-notes.txt`.
      if re.fullmatch(r'checkpoint|ckpt-\d+\.(index|data-\d{5}-of-\d{5})', name):
        tf.io.gfile.remove(os.path.join(output_dir, name))
  gin_config.write_config(output_dir)
  manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(network=network, step=tf.Variable(0, dtype=tf.int64)),
      output_dir, max_to_keep=1)
  path = manager.save()
  logging.info('Wrote %s and %s', os.path.join(output_dir, gin_config.CONFIG_FILENAME), path)
  return path, network
