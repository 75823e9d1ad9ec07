r"""Trains a MixIT separation model: `mixit-train` / `python -m mixit.commands.train`.

  mixit-train --model_dir=runs/mixit_small \
    --gin_file=papers/waspaa2021/<experiment>.gin \
    --gin_param='training.num_steps = 1000'

Gin files are looked up as given, in each --gin_search_path, then in the
package's gin/ folder. Everything but the run's placement is configured by gin:
`network.*` (the model), `trainer.*` (losses and their weights, MixIT method,
clipping, NaN handling), `optimizer.*`, `precision.policy`, `training.*` (steps,
checkpoint/eval/summary periods, jit_compile) and the data pipeline.
Re-running the same command resumes from the last checkpoint; a --model_dir
holding a run of another config is refused unless --overwrite.
"""
import os
import re
import sys
import traceback

from absl import app
from absl import flags
from absl import logging

import mixit  # first: sets KERAS_BACKEND, quiets TF's start-up notices in a CLI run
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
  # pylint: disable=g-import-not-at-top,unused-import
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
  from mixit.training import loop as train_loop  # pylint: disable=g-import-not-at-top
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
  train_loop.train(os.fspath(_MODEL_DIR.value), strategy, **overrides)


def gin_config_text() -> str:
  import gin  # pylint: disable=g-import-not-at-top
  return gin.config_str()


def error_line(error: BaseException) -> str:
  """One line saying what went wrong: the exception's own message, without TF's op context.

  Errors raised inside the input pipeline reach the training loop as a
  `tf.errors.OpError` whose message holds the original Python exception (which
  names the file) among function-node names and a traceback: that line is kept.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if isinstance(error, tf.errors.OpError):
    text = error.message or str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
      match = re.search(r'((?:[A-Za-z_.]*(?:Error|Exception)): .*)$', line)
      if match and not line.startswith(('Traceback', 'File ')):
        return re.sub(r'^.*?\}\}\s*', '', match.group(1))
    first = re.sub(r'\{\{[^}]*\}\}\s*', '', lines[0]) if lines else type(error).__name__
    return f'{type(error).__name__}: {first}'
  text = str(error).strip()
  if isinstance(error, (ValueError, FileNotFoundError, FileExistsError)) and text:
    return ' '.join(text.splitlines()) if len(text) < 300 else text
  return f'{type(error).__name__}: {text}' if text else type(error).__name__


def _main_reporting_errors(argv) -> None:
  """`main`, with a failure reported as one line on stderr and exit status 1.

  The process then ends with `os._exit`: after an error in the input
  pipeline, tf.data's threads may still be running Python (`tf.numpy_function`),
  and a normal interpreter shutdown can then abort ("terminate called without
  an active exception") or hang.
  """
  try:
    main(argv)
  except app.UsageError:
    raise
  except (Exception, KeyboardInterrupt) as e:  # pylint: disable=broad-except
    message = f'mixit-train: error: {error_line(e)}'
    try:
      if _TRACEBACK.value:
        traceback.print_exc()
      else:
        logging.debug('traceback:\n%s', traceback.format_exc())
      logging.flush()
    finally:
      sys.stderr.write(message + ('' if _TRACEBACK.value else
                                  ' (run with --traceback for the full traceback)') + '\n')
      sys.stderr.flush()
      sys.stdout.flush()
      os._exit(130 if isinstance(e, KeyboardInterrupt) else 1)  # pylint: disable=protected-access


def run() -> None:
  """Console-script entry point (`mixit-train`)."""
  mixit.run_cli(_main_reporting_errors, __name__)


if __name__ == '__main__':
  run()
