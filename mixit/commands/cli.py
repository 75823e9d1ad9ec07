"""The plumbing shared by the console scripts (`mixit/commands/*`).

- `run(main, module_name)` is `absl.app.run(main)`, except that `--help` lists the
  flags of `module_name` (help text and defaults) under the module's docstring,
  whether the program was started as a console script (`mixit-train`) or as
  `python -m mixit.commands.train` (absl only lists the flags of the module that
  `sys.argv[0]` names, which for a console script is the script wrapper), and
  that any failure is one line, `mixit-<name>: error: ...`, with exit status 1.
- `start()`, run by `mixit/commands/__init__.py` before any command imports
  TensorFlow: in a command-line process it hides TensorFlow's start-up notices on
  a CPU-only machine (`quiet_start`: the oneDNN and `cudart_stub` lines, `failed
  call to cuInit`, C++ INFO lines such as "Sharding callback duration", and the
  SavedModel warning about the `resource` input name) unless the user set
  `TF_CPP_MIN_LOG_LEVEL` or `--verbosity`. Our own warnings and errors,
  TensorFlow's C++ warnings and errors and every other stderr line are kept.
  `import mixit` itself does none of this.
"""
import logging as _logging
import os as _os
import re as _re
import sys as _sys
import tempfile as _tempfile
from typing import Optional as _Optional

# The modules behind the console scripts ([project.scripts] of pyproject.toml): `mixit-<name>`
# is `mixit.commands.<name>`.
CLI_MODULES = ('mixit.commands.train', 'mixit.commands.export', 'mixit.commands.separate',
               'mixit.commands.separate_beam', 'mixit.commands.evaluate',
               'mixit.commands.make_fuss', 'mixit.commands.import_official',
               'mixit.commands.demo')

# Start-up lines that TensorFlow writes to stderr before its logging is set up
# (TF_CPP_MIN_LOG_LEVEL does not reach them).
_NOISE = _re.compile(
    r'(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR'
    r'|^[IW]\d{4} .*\b(port\.cc|cudart_stub\.cc|cpu_feature_guard\.cc)'
    r'|^E\d{4} .*failed call to cuInit'
    r'|^To enable the following instructions: .* in other operations, rebuild TensorFlow)')


def cli_program() -> _Optional[str]:
  """The console script or `python -m` module this process runs, if it is one of ours."""
  name = _os.path.basename(_sys.argv[0] if _sys.argv else '')
  if name.startswith('mixit-'):
    return name
  # `python -m pkg.mod` imports `pkg` before sys.argv[0] names the module.
  orig = list(getattr(_sys, 'orig_argv', []))
  if '-m' in orig[:-1] and orig[orig.index('-m') + 1] in CLI_MODULES:
    return orig[orig.index('-m') + 1]
  spec = getattr(_sys.modules.get('__main__'), '__spec__', None)
  return spec.name if getattr(spec, 'name', None) in CLI_MODULES else None


def user_chose_log_level(argv=None) -> bool:
  """True when TF_CPP_MIN_LOG_LEVEL is set or --verbosity/-v is on the command line."""
  if 'TF_CPP_MIN_LOG_LEVEL' in _os.environ:
    return True
  for arg in (_sys.argv if argv is None else argv)[1:]:
    if arg == '--':
      break
    name = arg.lstrip('-').split('=', 1)[0]
    if arg.startswith('-') and name in ('verbosity', 'v'):
      return True
  return False


class _DropNotices(_logging.Filter):
  """Drops two TensorFlow notices: the SavedModel input `resource` is renamed (export), and
  "Sharding callback duration" (an INFO line at every checkpoint)."""

  def filter(self, record):
    message = record.getMessage()
    if message.startswith('Sharding callback duration'):
      return False
    return not ('contains input name(s)' in message and 'unsupported characters' in message)


def quiet_start(import_tensorflow: bool = True) -> None:
  """Silences TensorFlow's start-up notices unless the user chose a log level.

  Args:
    import_tensorflow: import TensorFlow now, with its start-up notices filtered
      out of stderr (the programs that do not need TensorFlow pass False).
  """
  if user_chose_log_level():
    return
  _os.environ['TF_CPP_MIN_LOG_LEVEL'] = '1'  # C++ INFO off; warnings and errors stay.
  # TF logs through both. absl's logger is taken from absl: a `getLogger('absl')` made
  # before absl.logging is imported would be a plain logger that names the wrong caller.
  from absl import logging as absl_logging
  for logger in (_logging.getLogger('tensorflow'), absl_logging.get_absl_logger()):
    logger.addFilter(_DropNotices())
  if not import_tensorflow or 'tensorflow' in _sys.modules:
    return
  # The notices are written straight to file descriptor 2 while TensorFlow loads
  # and finds its devices: that output is captured, and all but them written back.
  _sys.stderr.flush()
  saved = _os.dup(2)
  with _tempfile.TemporaryFile() as captured:
    _os.dup2(captured.fileno(), 2)
    try:
      import tensorflow as tf
      tf.config.list_physical_devices()
    finally:
      _sys.stderr.flush()
      _os.dup2(saved, 2)
      _os.close(saved)
      captured.seek(0)
      text = captured.read().decode('utf-8', 'replace')
      kept = [line for line in text.splitlines(keepends=True) if not _NOISE.search(line)]
      _sys.stderr.write(''.join(kept))
      _sys.stderr.flush()


def adopt_flags(module_name: str, flag_modules=()) -> None:
  """Makes the flags of `module_name`, and those of `flag_modules` (a command that takes
  another's flags), the ones that `--help` lists first."""
  from absl import flags
  main_key = _sys.argv[0]
  modules = list(flag_modules)
  if module_name not in ('__main__', main_key):
    # (`python -m`: absl already files the module's own flags under _sys.argv[0].)
    modules.insert(0, module_name)
  by_module = flags.FLAGS.flags_by_module_dict()
  for name in modules:
    own = by_module.pop(name, [])
    by_module.setdefault(main_key, []).extend(own)
    for flag in own:
      flags.FLAGS.register_key_flag_for_module(main_key, flag)
  if module_name in ('__main__', main_key):
    return
  main = _sys.modules.get('__main__')
  module = _sys.modules.get(module_name)
  if main is not None and not main.__doc__ and module is not None:
    main.__doc__ = module.__doc__


def parse_known_flags(argv):
  """absl's flag parsing that leaves the flags it does not know in the returned argv (for
  another parser: `mixit-separate-beam` hands them to Beam's PipelineOptions)."""
  from absl import flags
  try:
    return flags.FLAGS(argv, known_only=True)
  except flags.Error as error:
    _sys.stderr.write(f'FATAL Flags parsing error: {error}\n'
                      'Pass --helpshort or --helpfull to see help on flags.\n')
    _sys.exit(1)


def start() -> None:
  """The quiet start of a command-line run (called by `mixit/commands/__init__.py`).

  In a process that runs one of our commands, TensorFlow's CPU-only start-up
  notices are hidden (`quiet_start`); anywhere else nothing happens.
  """
  if cli_program():
    quiet_start()


def error_line(error: BaseException) -> str:
  """One line saying what went wrong: the exception's own message, without TF's op context.

  Errors raised inside the input pipeline reach the training loop as a
  `tf.errors.OpError` whose message holds the original Python exception (which
  names the file) among function-node names and a traceback: that line is kept.
  gin's "In call to configurable ..." context lines are dropped.
  """
  tf = _sys.modules.get('tensorflow')
  if tf is not None and isinstance(error, tf.errors.OpError):
    text = error.message or str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
      match = _re.search(r'((?:[A-Za-z_.]*(?:Error|Exception)): .*)$', line)
      if match and not line.startswith(('Traceback', 'File ')):
        return _re.sub(r'^.*?\}\}\s*', '', match.group(1))
    first = _re.sub(r'\{\{[^}]*\}\}\s*', '', lines[0]) if lines else type(error).__name__
    return f'{type(error).__name__}: {first}'
  text = '\n'.join(line for line in str(error).strip().splitlines()
                   if not _GIN_CONTEXT.match(line.strip())).strip()
  if isinstance(error, (ValueError, FileNotFoundError, FileExistsError, OSError)) and text:
    return ' '.join(text.splitlines()) if len(text) < 300 else text
  return f'{type(error).__name__}: {text}' if text else type(error).__name__


# gin appends "  In call to configurable 'training' (<function train at 0x...>)" to
# errors raised inside a configurable: not the user's concern.
_GIN_CONTEXT = _re.compile(r"^In call to configurable '[^']*' \(<.* at 0x[0-9a-f]+>\)$")


def command_name(module_name: str) -> str:
  """`mixit.commands.make_fuss` (or `__main__` run as it) -> `mixit-make-fuss`."""
  if module_name == '__main__':
    spec = getattr(_sys.modules.get('__main__'), '__spec__', None)
    module_name = getattr(spec, 'name', None) or cli_program() or module_name
  return 'mixit-' + module_name.rsplit('.', 1)[-1].replace('_', '-')


def report_errors(main, name: str, traceback_flag=None, hard_exit: bool = False):
  """`main` with any failure reported as `<name>: error: <one line>` and exit status 1.

  Args:
    main: the command's `main(argv)`; its return value is the exit status.
    name: the command's name in the error line.
    traceback_flag: a flag holder (`--traceback`) that, when true, prints the
      Python traceback before the line; otherwise the traceback is logged at
      debug level (`--verbosity=1` shows it).
    hard_exit: end with `os._exit` after an error, for commands whose
      tf.data threads may still run Python (a normal shutdown can then abort
      or hang).
  """
  import traceback
  from absl import app
  from absl import logging

  def wrapped(argv):
    try:
      return main(argv)
    except (app.UsageError, SystemExit):
      raise
    except (Exception, KeyboardInterrupt) as e:
      show = bool(traceback_flag is not None and traceback_flag.value)
      status = 130 if isinstance(e, KeyboardInterrupt) else 1
      if isinstance(getattr(e, 'exit_status', None), int):
        # A clean stop that says what it did (training stopped by SIGTERM after saving).
        message, status, show = f'{name}: {e}', e.exit_status, False
      else:
        message = f'{name}: error: {error_line(e)}'
        if traceback_flag is not None and not show:
          message += ' (run with --traceback for the full traceback)'
      try:
        if show:
          traceback.print_exc()
        else:
          logging.debug('traceback:\n%s', traceback.format_exc())
        logging.flush()
      finally:
        _sys.stderr.write(message + '\n')
        _sys.stderr.flush()
        _sys.stdout.flush()
        if hard_exit:
          _os._exit(status)
      return status

  return wrapped


def run(main, module_name: str, traceback_flag=None, hard_exit: bool = False,
        flag_modules=(), pass_unknown_flags: bool = False) -> None:
  """`absl.app.run(main)` for a console script.

  `--help` shows `module_name`'s flags (then those of `flag_modules`) and
  docstring, and a failure is one error line (`report_errors`). With
  `pass_unknown_flags`, flags that are not absl's reach `main` in its argv
  (`parse_known_flags`) instead of being refused.
  """
  from absl import app
  adopt_flags(module_name, flag_modules)
  extra = {'flags_parser': parse_known_flags} if pass_unknown_flags else {}
  app.run(report_errors(main, command_name(module_name), traceback_flag, hard_exit), **extra)


