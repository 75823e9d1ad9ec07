"""Exporting a trained separation network as a self-contained SavedModel (`mixit-export`,
`mixit/commands/export.py`).

The network is rebuilt from the model dir's `config.gin`, a checkpoint is
restored into it, and a `tf.Module` is saved whose signatures need nothing of
this package to run:

- `serving_default(mixture_waveform float32 [batch, time])` ->
  `{'separated_waveforms': [batch, M, time]}` (plus `'source_logits'
  [batch, M, C]` when the network has a classification head);
- `get_metadata()` -> `{'sample_rate', 'num_sources', 'num_classes'}` (int32),
  also readable as the variables `loaded.sample_rate`, `loaded.num_sources`.

`mixit_export.json` beside `saved_model.pb` records the same numbers and where
the weights came from. `README.md` is the model card (`mixit.serving.model_card`;
`MODEL_CARD.md` when a user's README.md is there). With `--litert`,
`model.tflite` is a LiteRT model of a fixed `--litert_window_seconds` window
(`mixit.serving.litert`).
"""
from __future__ import annotations

import datetime
import os
import re
from typing import List, Optional, Union

from absl import logging
import numpy as np
import tensorflow as tf

from mixit import checkpoints as checkpoints_lib
from mixit import gin_config
from mixit import model as model_lib  # registers the 'network' configurable
from mixit import owned_files
from mixit.serving import litert as litert_lib
from mixit.serving import model_card
from mixit.serving import separator as separator_lib

EXPORT_FORMAT = owned_files.EXPORT.format
EXPORT_FORMAT_VERSION = 1
# Exported and in-memory outputs are the same graph on the same weights; the
# check after saving allows for nothing but float reassociation.
_VERIFY_ATOL = 1e-4
# Where tf.train.Checkpoint(step=...) stores the training step.
_STEP_KEY = 'step/.ATTRIBUTES/VARIABLE_VALUE'


def checkpoint_path(model_dir: str, checkpoint: Union[None, int, str] = None) -> str:
  """Resolves the checkpoint prefix to restore (see `mixit.checkpoints.resolve`).

  Args:
    model_dir: a training run's model dir (checkpoints `ckpt-<n>` inside).
    checkpoint: None for the newest intact one (a damaged latest checkpoint is
      skipped with a warning), a step number `N` for `ckpt-N`, or a checkpoint
      prefix path (these must be intact: no fallback to another one).

  Raises:
    ValueError: naming the model dir and the checkpoints it holds, or the
      damaged file.
  """
  if checkpoint is None or checkpoint == '':
    return checkpoints_lib.resolve(model_dir, what='--model_dir')
  text = str(checkpoint)
  if re.fullmatch(r'\d+', text):
    path = os.path.join(model_dir, f'ckpt-{int(text)}')
  elif re.fullmatch(r'ckpt-\d+', text):
    path = os.path.join(model_dir, text)
  else:
    path = text
  if not tf.io.gfile.exists(path + '.index'):
    available = sorted(
        os.path.basename(p)[:-len('.index')]
        for p in tf.io.gfile.glob(os.path.join(model_dir, 'ckpt-*.index')))
    raise ValueError(f'checkpoint {checkpoint!r} not found: no {path}.index '
                     f'(checkpoints in {model_dir}: {available or "none"})')
  return checkpoints_lib.resolve(path, what='--checkpoint')


def restore_network(model_dir: str, checkpoint: Union[None, int, str] = None):
  """Rebuilds the network from `model_dir/config.gin` and restores a checkpoint.

  Returns:
    (network, checkpoint path, training step or None).

  Raises:
    ValueError: no config, no such checkpoint, or a checkpoint whose weights do
      not match the network the config builds.
  """
  gin_config.parse_model_dir(model_dir, network_only=True)
  network = model_lib.build_network()
  # Keras creates variables on the first call; restoring into a built network
  # lets the match assertion below see every variable.
  network(tf.zeros([1, int(network.sample_rate) // 4], tf.float32), training=False)
  # A run may still be training in `model_dir` (it holds the folder lock; readers never
  # wait for it) and delete the newest checkpoint's predecessors as it saves: when the
  # latest checkpoint vanishes between finding and reading it, take the new latest.
  for attempt in range(3):
    path = checkpoint_path(model_dir, checkpoint)
    try:
      checkpoints_lib.restore(
          tf.train.Checkpoint(network=network), path, partial=True,
          mismatch=f'checkpoint {path} does not match the network built from '
          f'{os.path.join(model_dir, gin_config.CONFIG_FILENAME)}')
      reader = tf.train.load_checkpoint(path)
      break
    except (tf.errors.NotFoundError, ValueError):
      if checkpoint is not None or attempt == 2 or tf.io.gfile.exists(path + '.index'):
        raise
      logging.info('%s was removed while being read (a run is training here): taking the '
                   'newest checkpoint again', path)
  step_value = -1
  if reader.has_tensor(_STEP_KEY):
    step_value = int(reader.get_tensor(_STEP_KEY))
  return network, path, (step_value if step_value >= 0 else None)


def _tf_variable(variable) -> tf.Variable:
  value = getattr(variable, 'value', variable)
  if not isinstance(value, tf.Variable):
    raise TypeError(f'network variable {variable.name} is backed by {type(value).__name__}, '
                    f'not a tf.Variable: the network must run on the TensorFlow backend')
  return value


class SeparationModule(tf.Module):
  """The exported object: the network's variables, its serving function and constants."""

  def __init__(self, network):
    super().__init__(name='mixit_separation')
    num_classes = int(getattr(network, 'num_classes', 0) or 0)
    self.sample_rate = tf.Variable(int(network.sample_rate), dtype=tf.int32, trainable=False,
                                   name='sample_rate')
    self.num_sources = tf.Variable(int(network.num_sources), dtype=tf.int32, trainable=False,
                                   name='num_sources')
    self.num_classes = tf.Variable(num_classes, dtype=tf.int32, trainable=False,
                                   name='num_classes')
    # The Keras object itself is kept out of the SavedModel, so loading needs no
    # Keras class nor any of this package. The tf.Variables under the Keras
    # variables are tracked, not the Keras wrappers: with the wrappers, the
    # graph-mode loader (TF1 sessions, TF Serving's C++ loader) cannot find the
    # variables the serving function reads.
    self.network_variables = [_tf_variable(v) for v in network.variables]

    @tf.function(input_signature=[
        tf.TensorSpec([None, None], tf.float32, name=separator_lib.INPUT_KEY)
    ])
    def serving_default(mixture_waveform):
      outputs = network(mixture_waveform, training=False)
      result = {separator_lib.OUTPUT_KEY: outputs['separated_waveforms']}
      if num_classes and 'source_logits' in outputs:
        result['source_logits'] = outputs['source_logits']
      return result

    @tf.function(input_signature=[])
    def get_metadata():
      return {
          'sample_rate': tf.identity(self.sample_rate),
          'num_sources': tf.identity(self.num_sources),
          'num_classes': tf.identity(self.num_classes),
      }

    self.serving_default = serving_default
    self.get_metadata = get_metadata


# What a SavedModel export writes, for exports whose mixit_export.json predates
# the list of files in it.
_EXPORT_FILES = re.compile(r'(saved_model\.pb(txt)?|fingerprint\.pb|variables/variables\.index'
                           r'|variables/variables\.data-\d{5}-of-\d{5}|'
                           + re.escape(separator_lib.EXPORT_JSON) + ')$')


def _own_files(output_dir: str) -> List[str]:
  """The files an earlier export wrote into `output_dir` (from its mixit_export.json; an
  export older than its list of files: the names an export writes)."""
  listed = owned_files.Record(output_dir, owned_files.EXPORT).files
  if listed is None:
    listed = [name for name in owned_files.list_files(output_dir)
              if _EXPORT_FILES.fullmatch(name)]
  return listed


def _prepare_output_dir(output_dir: str, overwrite: bool) -> None:
  """Checks `output_dir`; with `overwrite`, deletes an earlier export's own files from it.

  Files the earlier export did not write (notes, other models) are kept.
  """
  if tf.io.gfile.exists(output_dir):
    if not tf.io.gfile.isdir(output_dir):
      raise ValueError(f'--output_dir {output_dir} exists and is not a directory')
    if tf.io.gfile.listdir(output_dir):
      if not overwrite:
        raise FileExistsError(f'{output_dir} is not empty; pass overwrite=True (--overwrite) '
                              f'to replace it')
      if not (tf.saved_model.contains_saved_model(output_dir) or
              tf.io.gfile.exists(os.path.join(output_dir, separator_lib.EXPORT_JSON))):
        # Never touch a folder that is not an earlier export (a typo could name $HOME).
        raise ValueError(f'refusing to overwrite {output_dir}: it holds files but no '
                         f'SavedModel')
      # A card name holding a user's own file (they replaced the card) is kept.
      deleted = owned_files.remove_files(
          output_dir, _own_files(output_dir),
          keep=lambda name, path: name in model_card.CARD_NAMES and not model_card.is_card(path),
          empty_folders=('variables', 'assets'))
      kept = owned_files.list_files(output_dir)
      logging.info('--overwrite: deleted the earlier export\'s %d file(s) in %s%s', len(deleted),
                   output_dir, f'; kept {kept}' if kept else '')
      if tf.saved_model.contains_saved_model(output_dir):
        raise ValueError(f'refusing to overwrite {output_dir}: it holds a SavedModel that '
                         f'its {separator_lib.EXPORT_JSON} does not list')
  tf.io.gfile.makedirs(output_dir)


def _verify(network, output_dir: str) -> float:
  """Largest difference between the exported and in-memory outputs on noise."""
  rng = np.random.default_rng(0)
  mixture = (0.1 * rng.standard_normal([2, int(network.sample_rate) // 2 + 7])).astype(
      np.float32)
  expected = network(tf.constant(mixture), training=False)['separated_waveforms'].numpy()
  # Through the one loader, so the export also passes the checks every reader makes.
  _, signature, _, _ = separator_lib.load_saved_model(output_dir)
  served = separator_lib.serve(signature, mixture)
  return float(np.max(np.abs(served - expected)))


def export_saved_model(model_dir: str, output_dir: str,
                       checkpoint: Union[None, int, str] = None, *,
                       overwrite: bool = False, verify: bool = True,
                       litert: bool = False,
                       litert_window_seconds: float = litert_lib.DEFAULT_WINDOW_SECONDS,
                       litert_quantize: str = 'none',
                       eval_summary: Optional[str] = None) -> dict:
  """Exports the network of `model_dir` (checkpoint `ckpt-N`, default latest).

  Args:
    model_dir: training run folder with `config.gin` and checkpoints.
    output_dir: where the SavedModel and `mixit_export.json` go.
    checkpoint: None (latest), a step number N (`ckpt-N`) or a prefix path.
    overwrite: replace an earlier export in `output_dir`.
    verify: reload the export and compare it with the in-memory network.
    litert: also write `model.tflite`, a LiteRT model of a fixed window
      (`mixit.serving.litert`), builtin operators only.
    litert_window_seconds: the `.tflite` window length in seconds.
    litert_quantize: also write a quantised `.tflite` ('dynamic_int8': int8 weights,
      `model_int8.tflite`; 'float16': float16 weights, `model_float16.tflite`; 'none').
    eval_summary: a FUSS `summary.json` for the model card (default: the
      model dir's `summary.json`, if there is one).

  Returns:
    the metadata written to `mixit_export.json`.
  """
  model_dir = os.fspath(model_dir)
  network, path, step = restore_network(model_dir, checkpoint)
  litert_lib.check_quantize(litert_quantize)  # fails before any write
  if litert_quantize != 'none' and not litert:
    raise ValueError('--litert_quantize needs --litert (the quantised model is written beside '
                     'the float one)')
  if litert:
    litert_lib.window_samples(network, litert_window_seconds)  # fails before any write
  _prepare_output_dir(output_dir, overwrite)
  # The card's name and summary are checked before anything is written.
  model_card.card_path(output_dir)
  model_card.find_summary(model_dir, eval_summary)
  present = set(owned_files.list_files(output_dir))
  try:
    return _write_export(network, model_dir, output_dir, path, step, present, verify, litert,
                         litert_window_seconds, litert_quantize, eval_summary)
  except BaseException as error:
    # Leave nothing that blocks a retry (a full disk leaves variables/variables_temp/):
    # remove what this export wrote, never what was there before it.
    written = sorted(set(owned_files.list_files(output_dir)) - present)
    try:
      owned_files.remove_files(output_dir, written,
                               empty_folders=_EXPORT_FOLDERS)
    except (OSError, tf.errors.OpError) as cleanup_error:
      logging.warning('could not remove the partial export in %s: %s', output_dir,
                      cleanup_error)
    if isinstance(error, tf.errors.OpError):
      raise OSError(f'cannot write the export to {output_dir}: '
                    f'{" ".join((error.message or str(error)).split())}') from error
    raise


# Folders a SavedModel export creates, deepest first: removed when empty after a failure.
_EXPORT_FOLDERS = ('variables/variables_temp', 'variables', 'assets')


def _write_export(network, model_dir: str, output_dir: str, path: str, step, present: set,
                  verify: bool, litert: bool, litert_window_seconds: float,
                  litert_quantize: str, eval_summary: Optional[str]) -> dict:
  """The writing part of `export_saved_model`; `present`: the files there before it."""
  module = SeparationModule(network)
  tf.saved_model.save(module, output_dir, signatures={
      separator_lib.SIGNATURE_KEY: module.serving_default,
      separator_lib.METADATA_SIGNATURE_KEY: module.get_metadata,
  })
  metadata = {
      'format': EXPORT_FORMAT,
      'format_version': EXPORT_FORMAT_VERSION,
      'sample_rate': int(network.sample_rate),
      'num_sources': int(network.num_sources),
      'num_classes': int(getattr(network, 'num_classes', 0) or 0),
      'signature': separator_lib.SIGNATURE_KEY,
      'input': separator_lib.INPUT_KEY,
      'output': separator_lib.OUTPUT_KEY,
      'model_dir': model_dir if '://' in model_dir else os.path.abspath(model_dir),
      'checkpoint': path,
      'step': step,
      'num_parameters': int(sum(np.prod(v.shape) for v in network.trainable_variables)),
      'tensorflow_version': tf.__version__,
      'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
  }
  if verify:
    error = _verify(network, output_dir)
    metadata['verified_max_abs_difference'] = error
    if not error <= _VERIFY_ATOL:
      raise RuntimeError(f'the SavedModel in {output_dir} differs from the in-memory network by '
                         f'{error:g} (tolerance {_VERIFY_ATOL:g})')
  if litert:
    metadata['litert'] = litert_lib.write(network, output_dir, litert_window_seconds,
                                          quantize=litert_quantize)
  card = model_card.write(output_dir, metadata, model_dir, eval_summary)
  metadata['model_card'] = card
  # The files this export wrote: a later --overwrite deletes these and nothing else.
  metadata['files'] = sorted(set(owned_files.list_files(output_dir)) - present
                             | {separator_lib.EXPORT_JSON, card})
  owned_files.Record(output_dir, owned_files.EXPORT).write(metadata['files'], metadata)
  logging.info('exported %s (step %s, M=%d, %d Hz) to %s', path, step, metadata['num_sources'],
               metadata['sample_rate'], output_dir)
  return metadata
