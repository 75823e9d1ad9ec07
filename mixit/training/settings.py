"""The settings of a training run, in groups: checkpoints, validation, logs, builders.

Each group is a frozen dataclass, gin-configurable under the name of the `loop.train`
parameter that takes it (`checkpoints.every`, `validation.steps`, `logs.summary_every`,
`builders.network_fn`, ...); `CheckpointSettings()` etc. read those bindings, and arguments
given explicitly win over them.

Before the groups, `training` (`loop.train_from_gin`) held these settings itself as flat
names (`training.checkpoint_every`, `training.eval_steps`, ...). Model dirs' `config.gin`
(which resuming a run compares and `mixit-export` re-parses), gin files and scripts still use
them: `OLD_NAMES` says which field each became, `takes_old_names` keeps gin accepting them,
and `grouped` sets the ones given on the groups.
"""
import dataclasses
import inspect
import typing
from typing import Callable, Dict, Optional

from absl import logging
import gin

from mixit.training import trainer as trainer_lib


@gin.configurable('checkpoints')
@dataclasses.dataclass(frozen=True)
class CheckpointSettings:
  """Checkpoints of the run.

  Attributes:
    every: steps between checkpoints (one is also saved at the end).
    max_to_keep: checkpoints kept by the `tf.train.CheckpointManager`.
  """
  every: int = 1000
  max_to_keep: int = 5

  def __post_init__(self):
    if self.every < 1:
      raise ValueError(f'checkpoints.every must be >= 1, got {self.every}')


@gin.configurable('validation')
@dataclasses.dataclass(frozen=True)
class ValidationSettings:
  """Validation runs during training.

  Attributes:
    every: steps between validation runs (0: never; else also run at the end).
    steps: validation batches per run (None or negative: the whole eval dataset).
  """
  every: int = 5000
  steps: Optional[int] = 20

  @property
  def max_batches(self) -> int:
    """The batch limit of one validation run (`steps`, or no limit)."""
    return 2**62 if self.steps is None or self.steps < 0 else self.steps


@gin.configurable('logs')
@dataclasses.dataclass(frozen=True)
class LogSettings:
  """The progress line and the TensorBoard summaries.

  Attributes:
    every: steps between progress lines (one is also logged at the end).
    summary_every: steps between TensorBoard scalars of the training step.
    audio: write the first validation example's mixture, references and separated
      sources to TensorBoard at every validation.
  """
  every: int = 100
  summary_every: int = 100
  audio: bool = True

  def __post_init__(self):
    if self.every < 1 or self.summary_every < 1:
      raise ValueError(f'logs.every ({self.every}) and logs.summary_every '
                       f'({self.summary_every}) must be >= 1')


@gin.configurable('builders')
@dataclasses.dataclass(frozen=True)
class Builders:
  """The factories of what a run trains and reads (tests inject their own).

  Attributes:
    network_fn: `() -> SeparationNetwork` (None: gin-configured `mixit.model.build_network`).
    trainer_fn: `(network) -> MixITTrainer`.
    optimizer_fn: `() -> keras optimizer`.
    train_input_fn, eval_input_fn: `fn(input_context) -> per-replica batched
      tf.data.Dataset` (None: `data_pipeline.inputs`'); `eval_input_fn` is only used when
      validation runs.
  """
  network_fn: Optional[Callable] = None
  trainer_fn: Callable = trainer_lib.build_trainer
  optimizer_fn: Callable = trainer_lib.build_optimizer
  train_input_fn: Optional[Callable] = None
  eval_input_fn: Optional[Callable] = None

  def resolved(self, validates: bool) -> 'Builders':
    """These builders with the package's defaults for the network and input functions not
    given (the eval input only when the run `validates`)."""
    network_fn = self.network_fn
    if network_fn is None:
      from mixit import model as model_lib
      network_fn = model_lib.build_network
    train_input_fn, eval_input_fn = self.train_input_fn, self.eval_input_fn
    if train_input_fn is None or (eval_input_fn is None and validates):
      from data_pipeline import inputs
      train_input_fn = train_input_fn or inputs.train_input_fn
      eval_input_fn = eval_input_fn or inputs.eval_input_fn
    return dataclasses.replace(self, network_fn=network_fn, train_input_fn=train_input_fn,
                               eval_input_fn=eval_input_fn)


# The group of each `loop.train` parameter that takes one (also its gin name).
GROUPS = {'checkpoints': CheckpointSettings, 'validation': ValidationSettings,
          'logs': LogSettings, 'builders': Builders}

# Old flat `training.*` name -> (group, field) it became.
OLD_NAMES = {
    'checkpoint_every': ('checkpoints', 'every'),
    'max_to_keep': ('checkpoints', 'max_to_keep'),
    'eval_every': ('validation', 'every'),
    'eval_steps': ('validation', 'steps'),
    'log_every': ('logs', 'every'),
    'summary_every': ('logs', 'summary_every'),
    'audio_summaries': ('logs', 'audio'),
    'network_fn': ('builders', 'network_fn'),
    'trainer_fn': ('builders', 'trainer_fn'),
    'optimizer_fn': ('builders', 'optimizer_fn'),
    'train_input_fn': ('builders', 'train_input_fn'),
    'eval_input_fn': ('builders', 'eval_input_fn'),
}

# Bindings that change how long, how visibly or how fast a run trains, not what it computes:
# a run may be resumed with other values (e.g. more steps). The old names of these fields too.
# `training.jit_compile` only chooses whether XLA compiles the same forward/backward pass (the
# losses agree to float rounding: tests/test_distributed.py), so a run may be resumed with XLA
# turned off or on; a run of a version where False was the default resumes under XLA whether
# or not its config.gin names the binding.
RESUMABLE_BINDINGS = tuple(
    ['training.num_steps', 'training.jit_compile']
    + [f'{group}.{field.name}' for group in ('checkpoints', 'validation', 'logs')
       for field in dataclasses.fields(GROUPS[group])]
    + [f'training.{old}' for old, (group, _) in OLD_NAMES.items() if group != 'builders'])


def new_binding(old: str) -> str:
  """The binding that holds the old `training.<old>` setting now."""
  return '.'.join(OLD_NAMES[old])


def _field_types() -> Dict[str, type]:
  return {old: typing.get_type_hints(GROUPS[group])[field]
          for old, (group, field) in OLD_NAMES.items()}


def grouped(old: Dict, **groups) -> Dict:
  """The four groups of `loop.train` (`checkpoints`, `validation`, `logs`, `builders`),
  with the old names of `old` set on them.

  A group not given in `groups` is built from its gin bindings (`CheckpointSettings()`).
  An old name given (even as None: `training.eval_steps = None`) replaces its field.

  Raises:
    TypeError: naming a keyword that is no old name.
  """
  unknown = sorted(set(old) - set(OLD_NAMES))
  if unknown:
    raise TypeError(f'training has no setting(s) {unknown}')
  if old:
    logging.warning('old training binding(s), still read: %s',
                    '; '.join(f'training.{name} is now {new_binding(name)}'
                              for name in sorted(old)))
  result = {}
  for group, settings_class in GROUPS.items():
    changes = {field: old[name] for name, (where, field) in OLD_NAMES.items()
               if where == group and name in old}
    settings = groups.get(group)
    if settings is None:
      # The old values as arguments: gin's operative config lists only the fields it set.
      result[group] = settings_class(**changes)
    else:
      result[group] = dataclasses.replace(settings, **changes) if changes else settings
  return result


def takes_old_names(fn):
  """Declares the old names as keyword-only parameters of `fn(..., **old)`, typed as their
  fields, so gin still accepts (and type-checks) them and refuses names that never existed
  when it parses a config. They have no default: only the names given reach `**old`, and
  gin's operative config lists them only when they are bound."""
  own = [p for p in inspect.signature(fn).parameters.values() if p.kind != p.VAR_KEYWORD]
  types = _field_types()
  fn.__signature__ = inspect.Signature(
      own + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=types[name])
             for name in OLD_NAMES], return_annotation=inspect.signature(fn).return_annotation)
  fn.__annotations__ = {**fn.__annotations__, **types}
  return fn
