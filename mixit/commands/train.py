r"""Trains a MixIT separation model: `mixit-train` / `python -m mixit.commands.train`.

  mixit-train --model_dir=runs/mixit_small \
    --gin_file=papers/waspaa2021/<experiment>.gin \
    --gin_param='training.num_steps = 1000'

Gin files are looked up as given, in each --gin_search_path, then in the
package's gin/ folder. Everything but the run's placement is configured by gin:
`network.*` (the model), `trainer.*` (losses and their weights, MixIT method,
clipping, NaN handling), `optimizer.*`, `precision.policy`, `training.*` (steps,
checkpoint/eval/summary periods, jit_compile) and the data pipeline. The forward/backward
pass of the train step is XLA-compiled unless `--gin_param 'training.jit_compile = False'`.
Re-running the same command resumes from the last checkpoint; a --model_dir
holding a run of another config is refused unless --overwrite.
"""
import os

from absl import app
from absl import flags
from absl import logging

from mixit.commands import cli  # first: the quiet start of a CLI run (commands/__init__.py)
from mixit import gin_config
from mixit.training import strategy as strategy_lib

_MODEL_DIR = flags.DEFINE_string('model_dir', None, 'Folder of checkpoints, configs and logs.',
                                 required=True)
_GIN_FILE = flags.DEFINE_multi_string('gin_file', [], 'Gin config file(s), parsed in order.')
_GIN_PARAM = flags.DEFINE_multi_string('gin_param', [],
                                       "Gin binding(s), e.g. 'training.num_steps = 100'.")
_GIN_SEARCH_PATH = flags.DEFINE_multi_string('gin_search_path', [],
                                             'Extra folders searched for --gin_file.')
_STRATEGY = flags.DEFINE_enum('strategy', 'default', list(strategy_lib.STRATEGIES),
                              'tf.distribute strategy.')
_TPU = flags.DEFINE_string('tpu', None, 'TPU name or grpc:// address (--strategy=tpu); '
                           'untested here.')
_CLUSTER_CONFIG = flags.DEFINE_string(
    'cluster_config', None, 'TF_CONFIG JSON (or a path to it) for --strategy=multi_worker; '
    'default: the TF_CONFIG environment variable.')
_OVERWRITE = flags.DEFINE_bool(
    'overwrite', False, 'If --model_dir holds a run of a different config, delete its '
    'checkpoints, configs and logs and start over (a run of the same config is always resumed).')
_INIT_FROM = flags.DEFINE_string(
    'init_from', None, 'Model dir or checkpoint whose network weights initialise a new run '
    '(fine tuning, e.g. from an imported official model); ignored when resuming.')
_TRACEBACK = flags.DEFINE_bool(
    'traceback', False, 'On failure, print the full Python traceback after the one-line error.')
_VIRTUAL_CPUS = flags.DEFINE_integer(
    'virtual_cpus', 0, 'Split the CPU into this many logical devices (to try --strategy=mirrored '
    'on a machine without GPUs); 0 leaves it whole.')


def _import_configurables() -> None:
  """Imports every module that registers gin configurables used by training."""
  from mixit import model  # noqa: F401
  from mixit.training import loop as train_loop  # noqa: F401
  from mixit.training import trainer  # noqa: F401
  from data_pipeline import inputs  # noqa: F401


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if _VIRTUAL_CPUS.value:
    strategy_lib.split_cpu(_VIRTUAL_CPUS.value)
  _import_configurables()
  from mixit.training import loop as train_loop
  gin_config.parse(_GIN_FILE.value, _GIN_PARAM.value, _GIN_SEARCH_PATH.value)
  gin_config.check_binding_types()
  strategy = strategy_lib.get_strategy(_STRATEGY.value, tpu=_TPU.value,
                                       cluster_config=_CLUSTER_CONFIG.value)
  logging.info('gin config:\n%s', gin_config_text())
  # Flags override gin only when given, so `training.init_from` in a gin file works.
  overrides = {}
  if _OVERWRITE.value:
    overrides['overwrite'] = True
  if _INIT_FROM.value:
    overrides['init_from'] = _INIT_FROM.value
  train_loop.train_from_gin(os.fspath(_MODEL_DIR.value), strategy, **overrides)


def gin_config_text() -> str:
  import gin
  return gin.config_str()


def run() -> None:
  """Console-script entry point (`mixit-train`)."""
  cli.run(main, __name__, traceback_flag=_TRACEBACK, hard_exit=True)


if __name__ == '__main__':
  run()
