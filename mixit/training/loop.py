"""The training loop: strategy-agnostic, with injected pieces so tests can drive it.

`train(model_dir, strategy, ...)` (gin name `training`) builds the network,
trainer and optimizer inside `strategy.scope()`, feeds them batches from
`strategy.distribute_datasets_from_function`, and runs a custom loop around
`strategy.run(trainer.train_step)`: checkpoints of
`tf.train.Checkpoint(network=, optimizer=, step=)` through a
`tf.train.CheckpointManager` (the config is rewritten beside each one),
step-exact resume (the learning-rate schedule follows `optimizer.iterations`,
which the checkpoint holds), TensorBoard scalars and audio in `train/` and
`eval/`, and a progress line with steps/s and ETA.

The data iterator is not checkpointed: its shuffle buffers hold hundreds of
10-s clips, and a resumed run simply draws fresh random mixtures of mixtures.
"""
import dataclasses
import difflib
import math
import os
import re
import shutil
import tempfile
from typing import Callable, Dict, List, Optional, Sequence

from absl import logging
import gin
import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from mixit import checkpoints as checkpoints_lib
from mixit import gin_config
from mixit import owned_files
from mixit import progress as progress_lib
from mixit.training import strategy as strategy_lib
from mixit.training import trainer as trainer_lib

# ------------------------------------------------------------------ model dir

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


def _checkpoint_files(model_dir: str, prefix: str) -> List[str]:
  name = os.path.basename(prefix)
  pattern = re.compile(re.escape(name) + r'\.(index|data-\d{5}-of-\d{5})$')
  return [n for n in tf.io.gfile.listdir(model_dir) if pattern.fullmatch(n.rstrip('/'))]


def _event_files(model_dir: str) -> List[str]:
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


# `training.*` settings that change how long and how visibly a run trains, not
# what it computes: a run may be resumed with other values (e.g. more steps).
RESUMABLE_SETTINGS = ('num_steps', 'checkpoint_every', 'max_to_keep', 'log_every',
                      'summary_every', 'eval_every', 'eval_steps', 'audio_summaries')
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
  """The config text without comments and `RESUMABLE_SETTINGS` bindings, paths normalised.

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
    if binding in tuple(f'training.{name}' for name in RESUMABLE_SETTINGS):
      continue
    kept.append(_STRING.sub(_normalise_path, stripped))
  return '\n'.join(kept)


def prepare_model_dir(model_dir: str, overwrite: bool = False) -> bool:
  """Checks that `model_dir` is empty or holds a run of the current gin config.

  A run is resumed only under the config that started it (up to
  `RESUMABLE_SETTINGS` such as `training.num_steps`, and up to the spelling of
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


# ------------------------------------------------------------------- logging

class Progress:
  """The training log line `step N/M (x%) loss=... | r steps/s | ETA ...`: rate and ETA
  (`mixit.progress.Meter`) over the steps this process ran after its first logged one (not
  the resumed ones, nor the first, tracing, step)."""

  def __init__(self, num_steps: int):
    self.num_steps = num_steps
    self._meter = progress_lib.Meter(num_steps)

  def line(self, step: int, logs: Dict[str, float], now: Optional[float] = None) -> str:
    self._meter.update(step, now)
    terms = ' '.join(f'{k}={logs[k]:.3f}' for k in ('loss',) + trainer_lib.LOSS_TERMS
                     if k in logs)
    line = f'step {step}/{self.num_steps} ({100.0 * step / self.num_steps:.1f}%) {terms}'
    return line + self._meter.suffix('steps')  # no rate yet: no `nan steps/s`, no ETA

  def rate(self, step: int, now: Optional[float] = None) -> float:
    """Steps/s up to `step` at `now` (NaN before a timed step), for the summaries."""
    rate = self._meter.rate(step, now)
    return float('nan') if rate is None else rate


def nonfinite_message(step: int, logs: Dict[str, float]) -> str:
  """Names the step and the loss terms that were NaN/Inf."""
  bad = [f'{k}={logs[k]}' for k in trainer_lib.LOSS_TERMS + ('loss',)
         if k in logs and not math.isfinite(logs[k])]
  if not bad:
    bad = [f'gradient norm={logs.get("grad_norm")}']
  return f'non-finite loss at step {step}: ' + ', '.join(bad)


# TensorBoard's plugin metadata, written with core TF ops: TF >= 2.21 no longer
# installs the `tensorboard` package that `tf.summary.scalar/audio` need, and the
# events must be readable by TensorBoard wherever it runs.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name='scalars'))
# AudioPluginData {version: 0, encoding: WAV (11)}: field 2, varint 11.
_AUDIO_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name='audio',
                                                       content=b'\x10\x0b'))


def write_scalar(name: str, value: float, step: int) -> None:
  """A TensorBoard scalar in the default summary writer."""
  tf.summary.write(name, tf.constant(value, tf.float32), step=step, metadata=_SCALAR_METADATA)


def write_audio(name: str, waveforms: np.ndarray, sample_rate: int, step: int) -> None:
  """Writes `waveforms` [k, time] as k WAV clips, each peak-normalised for listening."""
  waveforms = np.asarray(waveforms, np.float32)
  peak = np.max(np.abs(waveforms), axis=-1, keepdims=True)
  waveforms = np.clip(waveforms / np.maximum(peak, 1e-8), -1.0, 1.0)
  encoded = [tf.audio.encode_wav(w[:, None], sample_rate) for w in waveforms]
  labels = [tf.constant(f'{name} {i}') for i in range(len(encoded))]
  tensor = tf.stack([tf.stack([e, l]) for e, l in zip(encoded, labels)])
  tf.summary.write(name, tensor, step=step, metadata=_AUDIO_METADATA)


def _default_input_fns():
  from data_pipeline import inputs  # pylint: disable=g-import-not-at-top
  return inputs.train_input_fn, inputs.eval_input_fn


def _backend_name() -> str:
  try:
    from data_pipeline import audio_io  # pylint: disable=g-import-not-at-top
    return audio_io.backend_name()
  except Exception as e:  # pylint: disable=broad-except
    return f'unknown ({e})'


def _barrier(strategy: tf.distribute.Strategy) -> None:
  """Returns when every worker got here (a collective all-reduce)."""
  @tf.function
  def barrier():
    value = strategy.run(lambda: tf.constant(1.0))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)

  barrier()


def _write_run_config(model_dir: str) -> None:
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


# ------------------------------------------------------------------- training

@gin.configurable('training', denylist=['model_dir', 'strategy'])
def train(model_dir: str,
          strategy: Optional[tf.distribute.Strategy] = None,
          num_steps: int = 1_000_000,
          checkpoint_every: int = 1000,
          max_to_keep: int = 5,
          log_every: int = 100,
          summary_every: int = 100,
          eval_every: int = 5000,
          eval_steps: Optional[int] = 20,
          audio_summaries: bool = True,
          jit_compile: bool = False,
          seed: Optional[int] = None,
          overwrite: bool = False,
          init_from: Optional[str] = None,
          network_fn: Optional[Callable[[], keras.Model]] = None,
          trainer_fn: Callable = trainer_lib.build_trainer,
          optimizer_fn: Callable = trainer_lib.build_optimizer,
          train_input_fn: Optional[Callable] = None,
          eval_input_fn: Optional[Callable] = None) -> Dict[str, float]:
  """Trains until `step == num_steps`, resuming from `model_dir` when it holds a run.

  Args:
    model_dir: checkpoints, `config.gin`, `operative_config.gin`, `train/`, `eval/`.
    strategy: a `tf.distribute.Strategy` (None: the default strategy).
    num_steps: total training steps (batches), counted across restarts.
    checkpoint_every: steps between checkpoints (also saved at the end).
    max_to_keep: checkpoints kept by the CheckpointManager.
    log_every: steps between progress lines.
    summary_every: steps between TensorBoard scalars.
    eval_every: steps between validation runs (0: never; also run at the end).
    eval_steps: validation batches per run (None: the whole eval dataset).
    audio_summaries: write the first validation example's mixture, references
      and separated sources to TensorBoard at every validation.
    jit_compile: XLA-compile the forward/backward pass of the train step.
    seed: seeds Python, numpy and TF (`keras.utils.set_random_seed`) before the
      network is built, so the initial weights are reproducible (None: unseeded).
    overwrite: replace a run of a different config in `model_dir`.
    init_from: model dir or checkpoint to take the initial network weights
      from when `model_dir` holds no run (fine tuning).
    network_fn, trainer_fn, optimizer_fn: factories (default: gin-configured
      `mixit.model.build_network`, `trainer.build_trainer`, `trainer.build_optimizer`).
    train_input_fn, eval_input_fn: `fn(input_context) -> per-replica batched
      tf.data.Dataset` (default: `data_pipeline.inputs`); `eval_input_fn` may be
      None only when `eval_every` is 0.

  Returns:
    The last training logs and validation metrics (floats).
  """
  strategy = strategy or tf.distribute.get_strategy()
  if num_steps < 1 or checkpoint_every < 1 or log_every < 1 or summary_every < 1:
    raise ValueError(f'num_steps ({num_steps}), checkpoint_every ({checkpoint_every}), '
                     f'log_every ({log_every}) and summary_every ({summary_every}) must be >= 1')
  network_fn, train_input_fn, eval_input_fn = _resolve_factories(
      network_fn, train_input_fn, eval_input_fn, eval_every)
  if seed is not None:
    keras.utils.set_random_seed(seed)
  chief = strategy_lib.is_chief(strategy)
  trainer_lib.set_precision_policy()
  logging.info('%s', strategy_lib.describe(strategy))
  logging.info('audio I/O backend: %s; Keras dtype policy: %s', _backend_name(),
               keras.mixed_precision.global_policy().name)

  resumable = prepare_model_dir(model_dir, overwrite) if chief else False
  # config.gin is written once the first step has run: a run that fails to
  # start (a bad data path, a bad binding) leaves no config that a corrected
  # command would be refused against.
  state = _build_state(strategy, network_fn, trainer_fn, optimizer_fn, jit_compile)
  # Workers wait until the chief has checked (and maybe wiped) the model dir.
  _barrier(strategy)
  saver = _Saver(state, model_dir, chief, max_to_keep)
  saver.restore_or_initialize(resumable, init_from)

  train_step, eval_loop = _step_functions(strategy, state)
  train_iterator = iter(strategy.distribute_datasets_from_function(train_input_fn))
  eval_dataset = (strategy.distribute_datasets_from_function(eval_input_fn)
                  if eval_every else None)
  audio_example = None
  if chief and eval_every and audio_summaries:
    audio_batch = next(iter(eval_input_fn(tf.distribute.InputContext())))
    audio_example = {k: v[:1].numpy() for k, v in audio_batch.items()}
  if chief:
    train_writer = tf.summary.create_file_writer(os.path.join(model_dir, 'train'))
    eval_writer = tf.summary.create_file_writer(os.path.join(model_dir, 'eval'))
    record_files(model_dir, _event_files(model_dir))
  else:
    train_writer = eval_writer = tf.summary.create_noop_writer()
  validator = (_Validator(state, eval_dataset, eval_loop, eval_steps, eval_writer, audio_example)
               if eval_every else None)

  logs, results, skipped = {}, {}, 0
  progress = Progress(num_steps)
  current = int(state.step.numpy())
  if current >= num_steps:
    logging.info('step %d >= num_steps %d: nothing to train', current, num_steps)
  config_written = current > 0 and gin_config.read_config(model_dir) is not None
  while current < num_steps:
    logs = {k: float(v) for k, v in train_step(train_iterator).items()}
    current = int(state.step.numpy())
    if chief and not config_written:
      _write_run_config(model_dir)
      config_written = True
    if logs['finite'] < 1.0:
      skipped += 1
      _handle_nonfinite(state.trainer.settings.nonfinite, current, logs, skipped)
    last = current == num_steps
    if current % log_every == 0 or last:
      logging.info('%s', progress.line(current, logs))
    if current % summary_every == 0 or last:
      _write_train_summaries(train_writer, state, logs, progress.rate(current), skipped,
                             current)
    if current % checkpoint_every == 0 or last:
      saver.save(current)
    if validator is not None and (current % eval_every == 0 or last):
      results = validator.evaluate(current)
  train_writer.flush()
  saver.close()
  out = dict(logs)
  out.update({f'eval/{k}': v for k, v in results.items()})
  out['step'] = float(int(state.step.numpy()))
  return out


def _resolve_factories(network_fn, train_input_fn, eval_input_fn, eval_every):
  """The network and input factories, with the package defaults for those not given."""
  if network_fn is None:
    from mixit import model as model_lib  # pylint: disable=g-import-not-at-top
    network_fn = model_lib.build_network
  if train_input_fn is None or (eval_input_fn is None and eval_every):
    default_train, default_eval = _default_input_fns()
    train_input_fn = train_input_fn or default_train
    eval_input_fn = eval_input_fn or default_eval
  return network_fn, train_input_fn, eval_input_fn


@dataclasses.dataclass
class _TrainState:
  """What a checkpoint holds, and the trainer around it."""
  network: keras.Model
  trainer: trainer_lib.MixITTrainer
  optimizer: keras.optimizers.Optimizer
  step: tf.Variable


def _build_state(strategy, network_fn, trainer_fn, optimizer_fn, jit_compile) -> _TrainState:
  """Builds network, trainer, optimiser (with its slots) and step counter in the strategy."""
  with strategy.scope():
    network = network_fn()
    trainer = trainer_fn(network)
    optimizer = optimizer_fn()
    trainer.compile(optimizer=optimizer, jit_compile=jit_compile)
    if not network.trainable_variables:
      network(tf.zeros([1, 4096]))
    optimizer.build(network.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step',
                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
  num_params = int(sum(np.prod(v.shape) for v in network.trainable_variables))
  logging.info('network %s: %d outputs, %d trainable parameters', network.name,
               network.num_sources, num_params)
  return _TrainState(network, trainer, optimizer, step)


class _Saver:
  """Checkpoints of the run: resume, fine-tuning start, saving and the run manifest.

  Non-chief workers must save too (the save may involve collectives), but into
  a scratch folder that `close` deletes.
  """

  def __init__(self, state: _TrainState, model_dir: str, chief: bool, max_to_keep: int):
    self._state = state
    self._model_dir = model_dir
    self._chief = chief
    self._worker_dir = None if chief else tempfile.mkdtemp(prefix='mixit_worker_')
    self._checkpoint = tf.train.Checkpoint(network=state.network, optimizer=state.optimizer,
                                           step=state.step)
    self._latest = find_resume_checkpoint(model_dir, repair=chief)
    self._manager = tf.train.CheckpointManager(self._checkpoint, self._worker_dir or model_dir,
                                               max_to_keep=max_to_keep)

  def restore_or_initialize(self, resumable: bool, init_from: Optional[str]) -> None:
    """Resumes from the newest intact checkpoint, else starts from `init_from` or scratch."""
    if self._latest:
      checkpoints_lib.restore(self._checkpoint, self._latest, partial=False,
                              mismatch=f'checkpoint {self._latest} does not match this network')
      logging.info('resumed from %s at step %d (learning rate %.3g)', self._latest,
                   int(self._state.step.numpy()),
                   trainer_lib.current_learning_rate(self._state.optimizer))
    elif resumable:
      raise RuntimeError(f'{self._model_dir} was expected to hold a checkpoint')
    elif init_from:
      logging.info('initialised the network from %s',
                   initialize_from(self._state.network, init_from))

  def save(self, current: int) -> None:
    path = self._manager.save(checkpoint_number=current)
    if self._chief:
      record_files(self._model_dir, _checkpoint_files(self._model_dir, path)
                   + [checkpoints_lib.STATE_FILENAME])
      _write_run_config(self._model_dir)
      logging.info('saved %s', path)

  def close(self) -> None:
    if self._chief:
      record_files(self._model_dir, _event_files(self._model_dir))
    if self._worker_dir is not None:
      shutil.rmtree(self._worker_dir, ignore_errors=True)


def _step_functions(strategy: tf.distribute.Strategy, state: _TrainState):
  """The distributed train step (one batch, all replicas) and the validation loop."""
  trainer = state.trainer

  def replica_train_step(batch):
    return trainer.train_step(batch)

  @tf.function
  def train_step(iterator):
    logs = strategy.run(replica_train_step, args=(next(iterator),))
    state.step.assign_add(1)
    # train_step all-reduces its logs: every replica holds the global values.
    return {k: strategy.experimental_local_results(v)[0] for k, v in logs.items()}

  @tf.function
  def eval_loop(iterator, max_steps):
    count = tf.constant(0, tf.int64)
    while count < max_steps:
      # Synchronised across workers: all stop together on uneven data.
      optional = iterator.get_next_as_optional()
      if not optional.has_value():
        break
      strategy.run(trainer.test_step, args=(optional.get_value(),))
      count += 1
    return count

  return train_step, eval_loop


class _Validator:
  """Validation runs: scores over `eval_steps` batches, TensorBoard scalars and audio."""

  def __init__(self, state: _TrainState, dataset, eval_loop, eval_steps: Optional[int],
               writer, audio_example: Optional[Dict[str, np.ndarray]]):
    self._state = state
    self._dataset = dataset
    self._eval_loop = eval_loop
    self._max_steps = 2**62 if eval_steps is None or eval_steps < 0 else eval_steps
    self._writer = writer
    self._audio_example = audio_example

  def evaluate(self, at_step: int) -> Dict[str, float]:
    trainer, network = self._state.trainer, self._state.network
    trainer.reset_eval()
    batches = int(self._eval_loop(iter(self._dataset), tf.constant(self._max_steps, tf.int64)))
    results = {k: float(v) for k, v in trainer.eval_results().items()}
    logging.info('validation at step %d over %d batch(es): %s', at_step, batches,
                 ', '.join(f'{k}={v:.3f}' for k, v in results.items()))
    with self._writer.as_default():
      for name, value in results.items():
        write_scalar(name, value, at_step)
      if self._audio_example is not None:
        example = self._audio_example
        separated = network(tf.constant(example['mixture']), training=False)
        rate = int(getattr(network, 'sample_rate', 16000))
        write_audio('mixture', example['mixture'], rate, at_step)
        write_audio('references', example['sources'][0], rate, at_step)
        write_audio('separated', separated['separated_waveforms'].numpy()[0], rate, at_step)
    self._writer.flush()
    return results


def _handle_nonfinite(mode: str, current: int, logs: Dict[str, float], skipped: int) -> None:
  """Stops the run ('stop') or logs the skipped batch ('skip'); the weights were not touched."""
  message = nonfinite_message(current, logs)
  if mode == 'stop':
    raise FloatingPointError(
        f'{message}. The weights were not updated; the last checkpoint is intact. '
        'Set trainer.nonfinite = "skip" to skip such batches.')
  logging.warning('%s: batch skipped (%d so far)', message, skipped)


def _write_train_summaries(writer, state: _TrainState, logs: Dict[str, float], rate: float,
                           skipped: int, current: int) -> None:
  with writer.as_default():
    for name, value in logs.items():
      write_scalar(name, value, current)
    write_scalar('learning_rate', trainer_lib.current_learning_rate(state.optimizer), current)
    write_scalar('steps_per_sec', rate, current)
    write_scalar('skipped_batches', skipped, current)
