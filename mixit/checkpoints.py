"""Finding the checkpoint to restore: one resolver for training, export and import.

`resolve(source)` turns "a model dir or a checkpoint prefix" into the prefix of a
checkpoint whose files are all present and readable:

- a prefix (`.../ckpt-300`, `.../model.ckpt`) must have its `.index`, and every
  tensor must read back; otherwise a `CheckpointError` names the damaged file;
- a folder: the checkpoint its `checkpoint` state file names, or, when that file
  is missing or names a checkpoint that is gone or damaged, the newest intact
  `<name>.index` in the folder (newest by the trailing step number, then by
  modification time), with a warning naming what was skipped and why.

TensorFlow's own `tf.train.latest_checkpoint` reads the state file only: without
it a run looks empty and restarts from step 0, and a damaged latest checkpoint
fails with a bare `IndexError` that names no file.
"""
from __future__ import annotations

import gc
import os
import re
from typing import List, Optional, Tuple

from absl import logging
import tensorflow as tf

STATE_FILENAME = 'checkpoint'
_NUMBER = re.compile(r'-(\d+)$')


class CheckpointError(ValueError):
  """No usable checkpoint; the message names the folder or the damaged file."""


def _data_files(prefix: str) -> List[str]:
  return sorted(tf.io.gfile.glob(prefix + '.data-*'))


def damage(prefix: str) -> Optional[str]:
  """None when the checkpoint `prefix` is complete and readable, else why not.

  Reads every tensor: a `.data` file cut short (a disk that filled up, a copy
  that stopped) is only noticed when the missing bytes are read.
  """
  index = prefix + '.index'
  if not tf.io.gfile.exists(index):
    return f'{index} is missing'
  datas = _data_files(prefix)
  if not datas:
    return f'{prefix}.data-* is missing'
  try:
    reader = tf.train.load_checkpoint(prefix)
    for key in reader.get_variable_to_shape_map():
      reader.get_tensor(key)
  except Exception as e:
    # The reader raises IndexError, DataLossError, OutOfRangeError, ... by the kind of damage.
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    names = ', '.join(datas)
    return f'{names} or {index} is damaged ({type(e).__name__}: {text})'
  return None


def step_of(prefix: str) -> Optional[int]:
  match = _NUMBER.search(os.path.basename(prefix))
  return int(match.group(1)) if match else None


def list_checkpoints(folder: str) -> List[str]:
  """Checkpoint prefixes in `folder` (those with an `.index`), newest first."""
  prefixes = [path[:-len('.index')] for path in tf.io.gfile.glob(os.path.join(folder, '*.index'))]

  def key(prefix):
    step = step_of(prefix)
    try:
      mtime = tf.io.gfile.stat(prefix + '.index').mtime_nsec
    except tf.errors.OpError:
      mtime = 0
    return (step if step is not None else -1, mtime)

  return sorted(prefixes, key=key, reverse=True)


def _state_path(folder: str) -> Optional[str]:
  """The prefix the folder's `checkpoint` state file names, or None."""
  if not tf.io.gfile.exists(os.path.join(folder, STATE_FILENAME)):
    return None
  try:
    state = tf.train.get_checkpoint_state(folder)
  except Exception:
    return None  # an unparsable state file is as good as none
  if state is None or not state.model_checkpoint_path:
    return None
  # TensorFlow has already joined a relative entry with `folder` (itself perhaps relative,
  # like `demo_out/model`): joining it again would name a checkpoint that does not exist.
  return state.model_checkpoint_path


def find_in_folder(folder: str) -> Tuple[Optional[str], List[str]]:
  """(newest intact checkpoint or None, [why each newer candidate was skipped]).

  Candidates are the folder's checkpoints newest first (see `list_checkpoints`),
  and the one the state file names if it is not among them. A checkpoint newer
  than the state file records is one whose save was interrupted after its files
  were complete: it is taken when intact.
  """
  skipped = []
  candidates = list_checkpoints(folder)
  named = _state_path(folder)
  if named is not None and named not in candidates:
    candidates.insert(0, named)
  if named is None and candidates:
    logging.warning('%s has no usable %s state file; found the checkpoints by listing the '
                    'folder', folder, STATE_FILENAME)
  for prefix in candidates:
    problem = damage(prefix)
    if problem is None:
      return prefix, skipped
    skipped.append(problem)
  return None, skipped


def resolve(source: str, *, what: str = 'checkpoint', fallback: bool = True) -> str:
  """The checkpoint prefix to restore from `source` (a folder or a checkpoint prefix).

  Args:
    source: a model dir (or any folder of checkpoints) or a checkpoint prefix.
    what: how the caller calls `source` in messages (e.g. '--init_from').
    fallback: for a folder, fall back to the newest intact checkpoint (with a
      warning) when the latest one is damaged; else raise.

  Raises:
    CheckpointError: nothing usable; the message names the folder or the file.
  """
  source = os.fspath(source)
  if tf.io.gfile.isdir(source):
    found, skipped = find_in_folder(source)
    if found is None:
      if skipped:
        raise CheckpointError(f'{what} {source} holds no intact checkpoint: '
                              + '; '.join(skipped))
      raise CheckpointError(f'{what} {source} holds no checkpoint (no <name>.index)')
    if skipped:
      problems = '; '.join(skipped)
      if not fallback:
        raise CheckpointError(f'{what} {source}: {problems}')
      logging.warning('%s %s: %s; using %s, the newest intact checkpoint', what, source,
                      problems, found)
    return found
  if not tf.io.gfile.exists(source + '.index'):
    raise CheckpointError(f'{what} {source!r} is neither a folder nor a checkpoint prefix '
                          f'(no {source}.index)')
  problem = damage(source)
  if problem is not None:
    raise CheckpointError(f'{what} {source}: {problem}')
  return source


def repair_state(folder: str, latest: str) -> None:
  """Rewrites `folder/checkpoint` so that it lists the intact checkpoints up to `latest`.

  Called when the state file is missing or names a damaged checkpoint, so that
  a `tf.train.CheckpointManager` opened on the folder sees the old checkpoints
  (and keeps `max_to_keep` of them) instead of an empty folder.
  """
  latest_step = step_of(latest)
  kept = [p for p in reversed(list_checkpoints(folder))
          if p == latest or (latest_step is not None and step_of(p) is not None
                             and step_of(p) < latest_step and damage(p) is None)]
  if latest not in kept:
    kept.append(latest)

  def mtime(prefix):
    try:
      return tf.io.gfile.stat(prefix + '.index').mtime_nsec / 1e9
    except tf.errors.OpError:
      return 1.0

  # A CheckpointManager only manages (and so keeps `max_to_keep` of) the listed checkpoints
  # whose timestamps are newer than the last preserved one.
  tf.compat.v1.train.update_checkpoint_state(
      folder, os.path.basename(latest), [os.path.basename(p) for p in kept],
      all_model_checkpoint_timestamps=[max(mtime(p), 1.0) for p in kept],
      last_preserved_timestamp=0.0)


def restore(checkpoint: tf.train.Checkpoint, path: str, *, partial: bool, mismatch: str) -> None:
  """Restores `path` into `checkpoint`; a mismatch raises one ValueError line.

  A checkpoint of another architecture makes TensorFlow log a warning for every
  value it could not place (hundreds, when the failed restore is collected):
  those are silenced here, and the error is `mismatch` plus the first
  difference TensorFlow found.
  """
  problem = None
  logger = tf.get_logger()
  level = logger.level
  logger.setLevel('ERROR')
  try:
    try:
      status = checkpoint.restore(path)
      if partial:
        status.expect_partial()
      status.assert_existing_objects_matched()
      del status
    except (AssertionError, ValueError, tf.errors.OpError) as e:
      text = str(e).strip()
      problem = text.splitlines()[0] if text else type(e).__name__
    # The failed restore's bookkeeping logs its warnings when it is collected.
    gc.collect()
  finally:
    logger.setLevel(level)
  if problem is not None:
    raise ValueError(f'{mismatch}: {problem}')
