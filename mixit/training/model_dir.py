"""The model dir of a training run: its manifest, `--overwrite`, the config check, the start.

A model dir holds one run: checkpoints, `config.gin` / `operative_config.gin`, the
TensorBoard logs in `train/` and `eval/`, and the run's manifest `mixit_run.json`
(`mixit.owned_files.RUN`) listing every file the run wrote. `prepare_model_dir` decides
whether the current gin config resumes the run there (`RESUMABLE_BINDINGS` may differ), is
refused, or (`--overwrite`) replaces it, deleting only what the run recorded;
`find_resume_checkpoint` finds the newest intact checkpoint to resume from and
`initialize_from` the weights a new run starts from (`--init_from`).
"""
import difflib
import os
import re
from typing import List, Optional, Sequence

from absl import logging
import gin
import keras
import tensorflow as tf

from mixit import checkpoints as checkpoints_lib
from mixit import gin_config
from mixit import owned_files
from mixit.training import settings as settings_lib

# The files a run wrote, relative to the model dir, are listed in its record
# (`mixit.owned_files.RUN`): `--overwrite` deletes these and nothing else.
RUN_MANIFEST = owned_files.RUN.filename
_LOG_DIRS = ('train', 'eval')
_EVENTS_PREFIX = 'events.out.tfevents.'
# The names a run writes. With a manifest, `--overwrite` also deletes files of
# these names that the manifest missed (a run killed between writing a
# checkpoint and recording it, a temporary config left by a kill), but only
# those modified after the manifest's `started` time: a user's file that merely
# has such a name, older than the run, is never deleted. A model dir without a
# manifest (a run of an older version) loses exactly these names.
_RUN_FILES = re.compile(
    r'(checkpoint|config\.gin|operative_config\.gin|ckpt-\d+\.index'
    r'|ckpt-\d+\.data-\d{5}-of-\d{5}|(train|eval)/events\.out\.tfevents\.[^/]+'
    r'|(config\.gin|operative_config\.gin|mixit_run\.json)' + owned_files.TEMPORARY_SUFFIX
    + ')$')


def read_manifest(model_dir: str) -> Optional[List[str]]:
  """The files (relative paths) the runs in `model_dir` recorded, or None without a manifest."""
  return owned_files.Record(model_dir, owned_files.RUN).files


def record_files(model_dir: str, names: Sequence[str]) -> None:
  """Adds `names` (relative to `model_dir`) to the run's manifest.

  The manifest created first also records `started` (Unix time), before the run
  has written anything it could miss recording.
  """
  owned_files.Record(model_dir, owned_files.RUN).add(names)


def checkpoint_files(model_dir: str, prefix: str) -> List[str]:
  """The files of the checkpoint `prefix` in `model_dir` (names relative to it)."""
  name = os.path.basename(prefix)
  pattern = re.compile(re.escape(name) + r'\.(index|data-\d{5}-of-\d{5})$')
  return [n for n in tf.io.gfile.listdir(model_dir) if pattern.fullmatch(n.rstrip('/'))]


def event_files(model_dir: str) -> List[str]:
  """The TensorBoard event files in `train/` and `eval/` (names relative to `model_dir`)."""
  found = []
  for folder in _LOG_DIRS:
    path = os.path.join(model_dir, folder)
    if tf.io.gfile.isdir(path):
      found.extend(f'{folder}/{name}' for name in sorted(tf.io.gfile.listdir(path))
                   if name.startswith(_EVENTS_PREFIX))
  return found


def check_log_dirs(model_dir: str) -> None:
  """Refuses a model dir whose `train/` or `eval/` holds anything but TensorBoard logs.

  Such a folder is not a model dir (a dataset's `train/` split, say): training
  would write its logs among the user's files.
  """
  listed = set(read_manifest(model_dir) or [])
  for folder in _LOG_DIRS:
    path = os.path.join(model_dir, folder)
    if not tf.io.gfile.exists(path):
      continue
    if not tf.io.gfile.isdir(path):
      raise ValueError(f'--model_dir {model_dir}: {path} is a file, not a log folder: '
                       'is this a model dir? Use a new, empty folder')
    foreign = sorted(name.rstrip('/') for name in tf.io.gfile.listdir(path)
                     if not name.startswith(_EVENTS_PREFIX)
                     and f'{folder}/{name.rstrip("/")}' not in listed)
    if foreign:
      shown = ', '.join(foreign[:3]) + (f' and {len(foreign) - 3} more' if len(foreign) > 3
                                        else '')
      raise ValueError(f'--model_dir {model_dir}: {path} holds files that are not training '
                       f'logs ({shown}): is --model_dir a data folder? Use a new, empty '
                       'folder')


def _wipe_run(model_dir: str) -> List[str]:
  """Deletes what earlier runs recorded in the manifest (nothing else); returns the names."""
  run_named = [name for name in owned_files.list_files(model_dir, subfolders=_LOG_DIRS)
               if _RUN_FILES.fullmatch(name)]
  record = owned_files.Record(model_dir, owned_files.RUN)
  if record.files is None:
    listed = run_named
    logging.warning('%s has no %s (a run of an older version): deleting only the files such '
                    'a run writes: %s', model_dir, RUN_MANIFEST, listed)
  else:
    claimed, kept = record.unrecorded(run_named)
    if kept:
      logging.warning('--overwrite: keeping %s: named like run files, but not recorded in %s '
                      'and older than the run', ', '.join(kept), RUN_MANIFEST)
    listed = record.files + claimed + [RUN_MANIFEST]
  return owned_files.remove_files(model_dir, listed, empty_folders=_LOG_DIRS)


# Bindings that change how long, how visibly or how fast a run trains, not what it computes
# (`training.num_steps`, `training.jit_compile`, `checkpoints.*`, `validation.*`, `logs.*` and
# the old `training.*` names of those): a run may be resumed with other values (more steps).
RESUMABLE_BINDINGS = settings_lib.RESUMABLE_BINDINGS
_STRING = re.compile(r"""(?P<quote>['"])(?P<text>(?:\\.|(?!(?P=quote)).)*)(?P=quote)""")


def _normalise_path(match: 're.Match') -> str:
  """A quoted string that names an existing local path -> its resolved absolute form."""
  text = match.group('text')
  if not text or '://' in text or '\\' in text:
    return match.group(0)
  expanded = os.path.expanduser(text)
  if os.path.exists(expanded):
    return repr(os.path.realpath(expanded))
  if os.sep in text:
    return repr(os.path.normpath(expanded))
  return match.group(0)


def _comparable(config: str) -> str:
  """The config text without comments and `RESUMABLE_BINDINGS`, paths normalised.

  A path is compared by the folder it names, so `DATA_ROOT = 'data/fuss'` and
  the same folder spelt absolute (or with a trailing slash, or through a
  symlink) are the same config.
  """
  kept = []
  for line in config.splitlines():
    stripped = line.strip()
    if not stripped or stripped.startswith('#'):
      continue
    binding = stripped.split('=', 1)[0].strip()
    if binding in RESUMABLE_BINDINGS:
      continue
    kept.append(_STRING.sub(_normalise_path, stripped))
  return '\n'.join(kept)


def prepare_model_dir(model_dir: str, overwrite: bool = False) -> bool:
  """Checks that `model_dir` is empty or holds a run of the current gin config.

  A run is resumed only under the config that started it (up to
  `RESUMABLE_BINDINGS` such as `training.num_steps`, and up to the spelling of
  paths): a `config.gin` that differs from the current `gin.config_str()` (or
  checkpoints without any config) raises a ValueError showing the difference,
  unless `overwrite`, in which case the files the old run recorded in its
  manifest (checkpoints, configs, logs) are deleted, and nothing else.
  A model dir whose `train/` or `eval/` holds anything but training logs is
  refused either way (see `check_log_dirs`).

  Returns:
    True when an earlier run of the same config is there to resume.
  """
  tf.io.gfile.makedirs(model_dir)
  check_log_dirs(model_dir)
  current = gin.config_str()
  saved = gin_config.read_config(model_dir)
  has_checkpoint = bool(checkpoints_lib.list_checkpoints(model_dir)) or tf.io.gfile.exists(
      os.path.join(model_dir, checkpoints_lib.STATE_FILENAME))
  if saved is None and not has_checkpoint:
    return False
  if saved is not None and _comparable(saved) == _comparable(current):
    return has_checkpoint
  if saved is None:
    problem = f'{model_dir!r} holds checkpoints but no {gin_config.CONFIG_FILENAME}'
    remedies = 'use another --model_dir'
  else:
    diff = list(difflib.unified_diff(_comparable(saved).splitlines(),
                                     _comparable(current).splitlines(),
                                     f'{model_dir}/{gin_config.CONFIG_FILENAME}',
                                     'this run', lineterm='', n=0))
    shown = '\n'.join(diff[:40]) + ('\n...' if len(diff) > 40 else '')
    problem = f'{model_dir!r} holds a run with a different gin config:\n{shown}'
    remedies = (f'to resume that run, pass its own config (--gin_file '
                f'{os.path.join(model_dir, gin_config.CONFIG_FILENAME)}, plus a '
                f"--gin_param 'training.num_steps = ...' if you want more steps); to start "
                'another run, use another --model_dir')
  if not overwrite:
    raise ValueError(f'{problem}\nRefusing to mix runs: {remedies}; or pass --overwrite to '
                     'delete that run (its checkpoints, configs and logs) and start over.')
  logging.warning('%s\n--overwrite: deleting the old run in %s', problem, model_dir)
  deleted = _wipe_run(model_dir)
  logging.info('deleted %d file(s) of the old run: %s', len(deleted), ', '.join(deleted))
  left = checkpoints_lib.list_checkpoints(model_dir)
  if left:
    raise ValueError(f'--overwrite: {model_dir} still holds checkpoints that no run recorded '
                     f'({", ".join(os.path.basename(p) for p in left[:3])}): not deleting '
                     'files this tool did not write; use another --model_dir')
  return False


def initialize_from(network: keras.Model, source: str) -> str:
  """Loads network weights from the latest intact checkpoint of `source` (a model dir or a
  checkpoint prefix).

  Only the network is restored (the optimizer and step start fresh: fine
  tuning). Raises ValueError when nothing is found or the architectures differ.
  """
  path = checkpoints_lib.resolve(source, what='--init_from')
  # The optimizer and step in the checkpoint are deliberately left out.
  checkpoints_lib.restore(tf.train.Checkpoint(network=network), path, partial=True,
                          mismatch=f'--init_from {path} does not match this network (was it '
                          'trained with another model config?)')
  return path

def write_run_config(model_dir: str) -> None:
  """Writes `config.gin` and `operative_config.gin`, recorded in the manifest first."""
  record_files(model_dir, [gin_config.CONFIG_FILENAME, gin_config.OPERATIVE_CONFIG_FILENAME])
  gin_config.write_config(model_dir)


def find_resume_checkpoint(model_dir: str, repair: bool = True) -> Optional[str]:
  """The newest intact checkpoint of `model_dir`, or None when it holds none.

  A missing `checkpoint` state file, or a latest checkpoint that is damaged,
  does not restart the run: the `ckpt-*` files are listed and the newest one
  that reads back completely is taken (with a warning naming what was
  skipped), and with `repair` the state file is rewritten to list it. When
  checkpoints exist but none is intact, a ValueError names them rather than
  training from step 0 over them.
  """
  if not checkpoints_lib.list_checkpoints(model_dir) and tf.train.latest_checkpoint(
      model_dir) is None:
    return None
  found, skipped = checkpoints_lib.find_in_folder(model_dir)
  if found is None:
    raise checkpoints_lib.CheckpointError(
        f'--model_dir {model_dir} holds checkpoints but none is intact: ' + '; '.join(skipped)
        + '. Refusing to train over them from step 0: move them away, or use another '
        '--model_dir')
  if skipped:
    logging.warning('%s; resuming from %s, the newest intact checkpoint', '; '.join(skipped),
                    found)
  if repair and (skipped or tf.train.latest_checkpoint(model_dir) != found):
    checkpoints_lib.repair_state(model_dir, found)
  return found
