"""The training loop: strategy-agnostic, with injected pieces so tests can drive it.

`train(model_dir, strategy, num_steps=..., checkpoints=, validation=, logs=, builders=,
...)` builds the network, trainer and optimizer inside `strategy.scope()`, feeds
them batches from `strategy.distribute_datasets_from_function`, and runs a custom
loop around `strategy.run(trainer.train_step)`: checkpoints of
`tf.train.Checkpoint(network=, optimizer=, step=)` through a
`tf.train.CheckpointManager` (the config is rewritten beside each one),
step-exact resume (the learning-rate schedule follows `optimizer.iterations`,
which the checkpoint holds), TensorBoard scalars and audio in `train/` and
`eval/` (`summaries.py`), and a progress line with steps/s and ETA. The model dir
(resume or refusal, `--overwrite`, `--init_from`, the manifest) is `model_dir.py`'s;
the grouped settings are `settings.py`'s. `train_from_gin` (gin `training`) is the
same run configured by gin, as `mixit-train` starts it.

The data iterator is not checkpointed: its shuffle buffers hold hundreds of
10-s clips, and a resumed run simply draws fresh random mixtures of mixtures.
"""
import dataclasses
import math
import os
import re
import shutil
import tempfile
import warnings
from typing import Dict, Optional

from absl import logging
import gin
import keras
import numpy as np
import tensorflow as tf

from mixit import checkpoints as checkpoints_lib
from mixit import gin_config
from mixit import owned_files
from mixit import progress as progress_lib
from mixit.training import model_dir as model_dir_lib
from mixit.training import settings as settings_lib
from mixit.training import stop_signal
from mixit.training import strategy as strategy_lib
from mixit.training import summaries
from mixit.training import trainer as trainer_lib

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


def _backend_name() -> str:
  try:
    from data_pipeline import audio_io
    return audio_io.backend_name()
  except Exception as e:
    return f'unknown ({e})'


def _stop_agreement(strategy: tf.distribute.Strategy, stop: stop_signal.StopSignal):
  """A function telling whether to stop now: this process's signal flag, agreed on by every
  worker (an all-reduce: any flag set) when there are several, so that all save at the same
  step."""
  if strategy.extended._in_multi_worker_mode():  # noqa: SLF001  (no public equivalent)
    @tf.function
    def agree(flag):
      value = strategy.run(lambda: tf.identity(flag))
      # A sum of the 0/1 flags (tf.distribute.ReduceOp has only SUM and MEAN).
      return strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)

    return lambda: bool(agree(tf.constant(1.0 if stop.received else 0.0)) > 0)
  return lambda: stop.received is not None


def _barrier(strategy: tf.distribute.Strategy) -> None:
  """Returns when every worker got here (a collective all-reduce)."""
  @tf.function
  def barrier():
    value = strategy.run(lambda: tf.constant(1.0))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)

  barrier()


# ------------------------------------------------------------------- training

@gin.configurable('training', denylist=['model_dir', 'strategy'])
@settings_lib.takes_old_names
def train_from_gin(model_dir: str,
                   strategy: Optional[tf.distribute.Strategy] = None,
                   num_steps: int = 1_000_000,
                   jit_compile: bool = True,
                   seed: Optional[int] = None,
                   overwrite: bool = False,
                   init_from: Optional[str] = None,
                   **old_names) -> Dict[str, float]:
  """`train` as gin configures it (gin `training`): what `mixit-train` runs.

  The grouped settings are the gin-configured `checkpoints.*`, `validation.*`, `logs.*`
  and `builders.*`. The flat names they replaced (`training.checkpoint_every`,
  `training.eval_steps`, ...; `settings.OLD_NAMES`) are still accepted, by gin and as
  keywords, and win over the group's binding (with a warning naming the new binding).
  """
  return train(model_dir, strategy, num_steps=num_steps, jit_compile=jit_compile, seed=seed,
               overwrite=overwrite, init_from=init_from, **settings_lib.grouped(old_names))


def train(model_dir: str,
          strategy: Optional[tf.distribute.Strategy] = None,
          *,
          num_steps: int,
          checkpoints: Optional[settings_lib.CheckpointSettings] = None,
          validation: Optional[settings_lib.ValidationSettings] = None,
          logs: Optional[settings_lib.LogSettings] = None,
          builders: Optional[settings_lib.Builders] = None,
          jit_compile: bool = True,
          seed: Optional[int] = None,
          overwrite: bool = False,
          init_from: Optional[str] = None) -> Dict[str, float]:
  """Trains until `step == num_steps`, resuming from `model_dir` when it holds a run.

  Args:
    model_dir: checkpoints, `config.gin`, `operative_config.gin`, `train/`, `eval/`.
    strategy: a `tf.distribute.Strategy` (None: the default strategy).
    num_steps: total training steps (batches), counted across restarts.
    checkpoints, validation, logs, builders: the settings groups (`settings.py`);
      None: the gin-configured `CheckpointSettings()` etc. (`checkpoints.*`, ...).
      `builders.eval_input_fn` may be None only when `validation.every` is 0.
    jit_compile: XLA-compile the forward/backward pass of the train step (the default; the
      collectives and the update stay outside XLA, so it works under every strategy). False
      trains the plain graph. A network Keras says XLA cannot compile (a layer with
      `supports_jit = False`, TF op determinism on, TF on an Apple-silicon GPU) trains
      without XLA, with a warning; an op XLA has no kernel for stops the run at its first
      step with a ValueError naming `training.jit_compile = False`.
    seed: seeds Python, numpy and TF (`keras.utils.set_random_seed`) before the
      network is built, so the initial weights are reproducible (None: unseeded).
    overwrite: replace a run of a different config in `model_dir`.
    init_from: model dir or checkpoint to take the initial network weights
      from when `model_dir` holds no run (fine tuning).

  Returns:
    The last training logs and validation metrics (floats).
  """
  strategy = strategy or tf.distribute.get_strategy()
  if num_steps < 1:
    raise ValueError(f'num_steps must be >= 1, got {num_steps}')
  checkpoints = checkpoints if checkpoints is not None else settings_lib.CheckpointSettings()
  validation = validation if validation is not None else settings_lib.ValidationSettings()
  logs = logs if logs is not None else settings_lib.LogSettings()
  builders = (builders if builders is not None else settings_lib.Builders()).resolved(
      validates=bool(validation.every))
  if seed is not None:
    keras.utils.set_random_seed(seed)
  chief = strategy_lib.is_chief(strategy)
  trainer_lib.set_precision_policy()
  logging.info('%s', strategy_lib.describe(strategy))
  logging.info('audio I/O backend: %s; Keras dtype policy: %s', _backend_name(),
               keras.mixed_precision.global_policy().name)

  # One run per model dir: the chief holds the lock until it returns (readers never take it).
  lock = owned_files.FolderLock(model_dir, command='mixit-train') if chief else None
  if lock is not None:
    lock.acquire()
  try:
    with stop_signal.StopSignal() as stop:
      return _train_locked(model_dir, strategy, num_steps, checkpoints, validation, logs,
                           builders, jit_compile, overwrite, init_from, chief, stop)
  finally:
    if lock is not None:
      lock.release()


def _train_locked(model_dir, strategy, num_steps, checkpoints, validation, logs, builders,
                  jit_compile, overwrite, init_from, chief, stop) -> Dict[str, float]:
  """`train` once the model dir is held and the stop signals are caught."""
  resumable = model_dir_lib.prepare_model_dir(model_dir, overwrite) if chief else False
  # config.gin is written once the first step has run: a run that fails to
  # start (a bad data path, a bad binding) leaves no config that a corrected
  # command would be refused against.
  state = _build_state(strategy, builders, jit_compile)
  # Workers wait until the chief has checked (and maybe wiped) the model dir.
  _barrier(strategy)
  saver = _Saver(state, model_dir, chief, checkpoints.max_to_keep)
  saver.restore_or_initialize(resumable, init_from)

  train_step, eval_loop = _step_functions(strategy, state)
  train_iterator = iter(strategy.distribute_datasets_from_function(builders.train_input_fn))
  eval_dataset = (strategy.distribute_datasets_from_function(builders.eval_input_fn)
                  if validation.every else None)
  audio_example = None
  if chief and validation.every and logs.audio:
    audio_batch = next(iter(builders.eval_input_fn(tf.distribute.InputContext())))
    audio_example = {k: v[:1].numpy() for k, v in audio_batch.items()}
  if chief:
    train_writer = tf.summary.create_file_writer(os.path.join(model_dir, 'train'))
    eval_writer = tf.summary.create_file_writer(os.path.join(model_dir, 'eval'))
    model_dir_lib.record_files(model_dir, model_dir_lib.event_files(model_dir))
  else:
    train_writer = eval_writer = tf.summary.create_noop_writer()
  validator = (_Validator(state, eval_dataset, eval_loop, validation, eval_writer,
                          audio_example) if validation.every else None)

  step_logs, results, skipped = {}, {}, 0
  progress = Progress(num_steps)
  current = int(state.step.numpy())
  if current >= num_steps:
    logging.info('step %d >= num_steps %d: nothing to train', current, num_steps)
  config_written = current > 0 and gin_config.read_config(model_dir) is not None
  stop_requested = _stop_agreement(strategy, stop)
  xla = state.trainer.jit_compile is True
  while current < num_steps:
    try:
      step_logs = {k: float(v) for k, v in train_step(train_iterator).items()}
    except tf.errors.OpError as error:
      if xla and _is_xla_failure(error):
        raise ValueError(_xla_failure_message(error)) from error
      raise
    current = int(state.step.numpy())
    if chief and not config_written:
      model_dir_lib.write_run_config(model_dir)
      config_written = True
    if step_logs['finite'] < 1.0:
      skipped += 1
      _handle_nonfinite(state.trainer.settings.nonfinite, current, step_logs, skipped,
                        model_dir)
    last = current == num_steps
    if current % logs.every == 0 or last:
      logging.info('%s', progress.line(current, step_logs))
    if current % logs.summary_every == 0 or last:
      summaries.write_train(train_writer, current, step_logs,
                            trainer_lib.current_learning_rate(state.optimizer),
                            progress.rate(current), skipped)
    saved = False
    if current % checkpoints.every == 0 or last:
      saver.save(current)
      saved = True
    if not last and stop_requested():
      if not saved:
        saver.save(current)
      train_writer.flush()
      saver.close()
      name = stop.name or 'a stop signal on another worker'
      message = (f'stopped by {name} at step {current}: saved ckpt-{current} in {model_dir}; '
                 'rerun the same command to resume from it')
      logging.warning('%s', message)
      raise stop_signal.Interrupted(message, stop.received or 15)
    if validator is not None and (current % validation.every == 0 or last):
      results = validator.evaluate(current)
  train_writer.flush()
  saver.close()
  from data_pipeline import audio_io, wild  # noqa: I001  (the skipped files' record)
  bad_files = wild.skipped_files()
  if bad_files:
    shown = ', '.join(audio_io.printable_path(p) for p in sorted(bad_files)[:5])
    logging.warning('%d bad in-the-wild file(s) were skipped in this run: %s%s', len(bad_files),
                    shown, ' ...' if len(bad_files) > 5 else '')
  out = dict(step_logs)
  out.update({f'eval/{k}': v for k, v in results.items()})
  out['step'] = float(int(state.step.numpy()))
  return out


@dataclasses.dataclass
class _TrainState:
  """What a checkpoint holds, and the trainer around it."""
  network: keras.Model
  trainer: trainer_lib.MixITTrainer
  optimizer: keras.optimizers.Optimizer
  step: tf.Variable


def _build_state(strategy, builders: settings_lib.Builders, jit_compile: bool) -> _TrainState:
  """Builds network, trainer, optimiser (with its slots) and step counter in the strategy."""
  with strategy.scope():
    network = builders.network_fn()
    trainer = builders.trainer_fn(network)
    optimizer = builders.optimizer_fn()
    with warnings.catch_warnings():
      # Keras' own warning when it refuses XLA: the log line below says it with the remedy.
      warnings.filterwarnings('ignore', message='Model doesn.t support `jit_compile=True`')
      trainer.compile(optimizer=optimizer, jit_compile=jit_compile)
    if jit_compile and trainer.jit_compile is not True:
      logging.warning('training.jit_compile = True, but Keras cannot XLA-compile this network '
                      'here (a layer with supports_jit = False, TF op determinism on, or TF on '
                      'an Apple-silicon GPU): training without XLA. Set training.jit_compile '
                      '= False to silence this')
    logging.info('XLA-compiled forward/backward pass (training.jit_compile): %s',
                 'on' if trainer.jit_compile is True else 'off')
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
    self._latest = model_dir_lib.find_resume_checkpoint(model_dir, repair=chief)
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
                   model_dir_lib.initialize_from(self._state.network, init_from))

  def save(self, current: int) -> None:
    folder = self._worker_dir or self._model_dir
    try:
      path = self._manager.save(checkpoint_number=current)
    except tf.errors.OpError as error:
      # A full disk leaves the sharded save's `ckpt-N_temp/` folder: remove it (it is this
      # save's own), so that nothing blocks the rerun, and say where in one line.
      for leftover in tf.io.gfile.glob(os.path.join(folder, f'ckpt-{current}_temp*')):
        try:
          tf.io.gfile.rmtree(leftover)
        except tf.errors.OpError:
          pass
      reason = ' '.join((error.message or str(error)).split())
      raise OSError(f'cannot save checkpoint ckpt-{current} in {folder}: {reason}') from error
    if self._chief:
      model_dir_lib.record_files(
          self._model_dir, model_dir_lib.checkpoint_files(self._model_dir, path)
          + [checkpoints_lib.STATE_FILENAME])
      model_dir_lib.write_run_config(self._model_dir)
      logging.info('saved %s', path)

  def close(self) -> None:
    if self._chief:
      model_dir_lib.record_files(self._model_dir, model_dir_lib.event_files(self._model_dir))
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
  """Validation runs: scores over `validation.steps` batches, TensorBoard scalars and audio."""

  def __init__(self, state: _TrainState, dataset, eval_loop,
               validation: settings_lib.ValidationSettings, writer,
               audio_example: Optional[Dict[str, np.ndarray]]):
    self._state = state
    self._dataset = dataset
    self._eval_loop = eval_loop
    self._max_steps = validation.max_batches
    self._writer = writer
    self._audio_example = audio_example

  def evaluate(self, at_step: int) -> Dict[str, float]:
    trainer, network = self._state.trainer, self._state.network
    trainer.reset_eval()
    batches = int(self._eval_loop(iter(self._dataset), tf.constant(self._max_steps, tf.int64)))
    results = {k: float(v) for k, v in trainer.eval_results().items()}
    logging.info('validation at step %d over %d batch(es): %s', at_step, batches,
                 ', '.join(f'{k}={v:.3f}' for k, v in results.items()))
    clips = None
    if self._audio_example is not None:
      example = self._audio_example
      separated = network(tf.constant(example['mixture']), training=False)
      clips = {'mixture': example['mixture'], 'references': example['sources'][0],
               'separated': separated['separated_waveforms'].numpy()[0]}
    summaries.write_validation(self._writer, at_step, results, clips,
                               int(getattr(network, 'sample_rate', 16000)))
    return results


# What TF's errors say when XLA failed: an op it has no kernel for (`... on XLA_CPU_JIT: PyFunc`,
# `tf2xla conversion failed`), or compiling.
_XLA_MARKERS = ('XLA_CPU_JIT', 'XLA_GPU_JIT', 'XLA_TPU_JIT', 'tf2xla', '_XlaMustCompile',
                'XLA compilation', 'xla_compiler')


def _is_xla_failure(error: tf.errors.OpError) -> bool:
  """Whether a failed train step failed in XLA."""
  text = error.message or str(error)
  return any(marker in text for marker in _XLA_MARKERS)


def _xla_failure_message(error: tf.errors.OpError) -> str:
  """One line: XLA failed on the train step, TF's reason (without node and graph details),
  and how to train without it."""
  lines = [line.strip() for line in (error.message or str(error)).splitlines() if line.strip()]
  reason = next((line for line in lines if any(m in line for m in _XLA_MARKERS)),
                lines[0] if lines else '')
  reason = re.sub(r'(\{\{[^}]*\}\})+$', '', reason)
  reason = re.sub(r'\{\{node ([^}]*)\}\}', r'\1', reason)
  reason = re.sub(r'\[[^\]]*_XlaMustCompile[^\]]*\]', '', reason).strip()
  if len(reason) > 400:
    reason = reason[:400] + ' ...'
  return (f'the XLA-compiled train step failed (training.jit_compile = True, the default): '
          f'{type(error).__name__}: {reason}. Train without XLA with --gin_param '
          "'training.jit_compile = False'")


def _handle_nonfinite(mode: str, current: int, logs: Dict[str, float], skipped: int,
                      model_dir: str) -> None:
  """Stops the run ('stop') or logs the skipped batch ('skip'); the weights were not touched."""
  message = nonfinite_message(current, logs)
  if mode == 'stop':
    saved = checkpoints_lib.list_checkpoints(model_dir)
    state = (f"the last checkpoint, {os.path.basename(saved[0])}, is intact" if saved
             else 'no checkpoint was written yet')
    raise FloatingPointError(
        f'{message}. The weights were not updated; {state}. '
        'Set trainer.nonfinite = "skip" to skip such batches.')
  logging.warning('%s: batch skipped (%d so far)', message, skipped)
