"""Parsing gin configs and writing the operative config of a model dir.

`gin.tf` is broken on TF >= 2.16, so saving the config beside checkpoints is
done here with `tf.io.gfile` (model dirs may live on gs://).
"""
import logging
import os
import pathlib
import typing
from typing import Iterable, Optional, Sequence

import gin
from gin import config as gin_lib_config
from gin import config_parser
import tensorflow as tf

from mixit import owned_files

CONFIG_FILENAME = 'config.gin'
OPERATIVE_CONFIG_FILENAME = 'operative_config.gin'


def package_gin_dir() -> str:
  """The folder holding the shipped gin files.

  setup.py installs the top-level gin/ folder as `mixit/gin/`; in a source
  checkout gin/ sits beside the mixit/ package.
  """
  here = pathlib.Path(__file__).resolve().parent
  for candidate in (here / 'gin', here.parent / 'gin'):
    if candidate.is_dir() and any(candidate.rglob('*.gin')):
      return str(candidate)
  raise RuntimeError(f'no gin configs found in {here / "gin"} or {here.parent / "gin"}: '
                     'broken install?')


def _resolve(gin_file: str, search_paths: Sequence[str]) -> str:
  candidates = [gin_file]
  if not gin_file.endswith('.gin'):
    candidates.append(gin_file + '.gin')
  for candidate in candidates:
    if tf.io.gfile.exists(candidate):
      return candidate
    for root in search_paths:
      path = os.path.join(root, candidate)
      if tf.io.gfile.exists(path):
        return path
  raise ValueError(f'gin file {gin_file!r} not found (searched the working directory and '
                   f'{list(search_paths)})')


class _DropResourceProbes(logging.Filter):
  """Hides gin's "Path not found" errors for include paths it then finds elsewhere."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not record.pathname.endswith(os.path.join('gin', 'resource_reader.py'))


def is_model_dir_config(path: str) -> bool:
  """Whether `path` is a config a training run saved (and so may come from anyone).

  Such files are `config.gin` / `operative_config.gin`, or any gin file in a
  folder that holds checkpoints.
  """
  if os.path.basename(path) in (CONFIG_FILENAME, OPERATIVE_CONFIG_FILENAME):
    return True
  folder = os.path.dirname(path) or '.'
  return bool(tf.io.gfile.glob(os.path.join(folder, 'ckpt-*.index')))


def read_model_dir_config(path: str) -> str:
  """The text of a model dir's config with its `import` lines left out.

  A model dir may be downloaded from anywhere; gin would execute every
  `import` (and `from ... import`) statement of the file, i.e. run code from
  the download. The configurables this package needs are imported by its own
  commands, so such lines are dropped with a warning naming them; an `include`
  (which could pull in a file with imports) is refused.

  Raises:
    ValueError: naming the file and line of an `include` or a syntax error.
  """
  with tf.io.gfile.GFile(path) as f:
    text = f.read()
  lines = text.splitlines(keepends=True)
  dropped = []
  try:
    for statement in config_parser.ConfigParser(text, gin_lib_config.ParserDelegate(
        skip_unknown=True)):
      if isinstance(statement, config_parser.IncludeStatement):
        raise ValueError(f'{path}:{statement.location.line_num}: a model dir\'s config may not '
                         f'include other files ({statement.location.line_content.strip()!r}); '
                         'refusing to read it')
      if isinstance(statement, config_parser.ImportStatement):
        dropped.append(statement.location.line_num)
  except SyntaxError as e:
    raise ValueError(f'bad gin configuration in {path}: {e}') from e
  for line_num in dropped:
    logging.warning('%s:%d: ignoring %r: a model dir\'s config never runs imports', path,
                    line_num, lines[line_num - 1].strip())
    lines[line_num - 1] = '# (import ignored) ' + lines[line_num - 1].lstrip()
    if not lines[line_num - 1].endswith('\n'):
      lines[line_num - 1] += '\n'
  return ''.join(lines)


def parse(gin_files: Iterable[str] = (),
          gin_params: Iterable[str] = (),
          search_paths: Iterable[str] = (),
          finalize: bool = True) -> None:
  """Clears gin and parses `gin_files` then `gin_params`.

  Files are looked up as given, then in each of `search_paths`, then in the
  package's gin folder. A missing file or a binding of an unknown configurable
  or parameter raises a ValueError naming it.
  """
  search_paths = list(search_paths) + [package_gin_dir()]
  for path in search_paths:
    gin.add_config_file_search_path(path)
  gin.clear_config()
  resolved = [_resolve(f, search_paths) for f in gin_files]
  probe_filter = _DropResourceProbes()
  logging.getLogger().addFilter(probe_filter)
  try:
    for path in resolved:
      if is_model_dir_config(path):
        text = read_model_dir_config(path)
        try:
          gin.parse_config(text)
        except (ValueError, KeyError, TypeError) as e:
          raise ValueError(f'in {path}: {e}') from e
      else:
        gin.parse_config_file(path)
    gin.parse_config(list(gin_params))
    if finalize:
      gin.finalize()
  except (ValueError, KeyError, TypeError, IOError) as e:
    raise ValueError(f'bad gin configuration (files {list(gin_files)}, params '
                     f'{list(gin_params)}): {e}') from e
  finally:
    logging.getLogger().removeFilter(probe_filter)


def write_config(model_dir: str) -> None:
  """Writes the full parsed config and the operative config to `model_dir`."""
  tf.io.gfile.makedirs(model_dir)
  # Through a temporary file and a rename: a run killed while rewriting its config
  # at a checkpoint keeps the old one, never an empty or half-written file.
  for name, text in ((CONFIG_FILENAME, gin.config_str()),
                     (OPERATIVE_CONFIG_FILENAME, gin.operative_config_str())):
    owned_files.write_atomically(os.path.join(model_dir, name), text)


def read_config(model_dir: str) -> Optional[str]:
  path = os.path.join(model_dir, CONFIG_FILENAME)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return f.read()


def parse_model_dir(model_dir: str, gin_params: Iterable[str] = (),
                    network_only: bool = False) -> None:
  """Re-parses the config a training run saved in `model_dir` (its imports ignored).

  The one re-parser of model-dir configs. With `network_only` (export, inference),
  bindings of configurables the process never imports (trainer, datasets, optimizer)
  are skipped, while a bad binding of `network` itself still raises.
  """
  path = os.path.join(model_dir, CONFIG_FILENAME)
  if not tf.io.gfile.exists(path):
    raise ValueError(f'{model_dir!r} holds no {CONFIG_FILENAME}: not a mixit model dir')
  if not network_only:
    parse([path], gin_params)
    return
  gin.add_config_file_search_path(package_gin_dir())
  gin.clear_config()
  text = read_model_dir_config(path)  # never runs the file's imports
  try:
    gin.parse_config(text, skip_unknown=True)
    gin.parse_config(list(gin_params))
  except (ValueError, KeyError, TypeError, IOError) as e:
    raise ValueError(f'bad gin configuration in {path}: {e}') from e


def _resolve_macro(value, chain=()):
  """(value, [macro names it went through]) for `%macro` references."""
  while (isinstance(value, gin_lib_config.ConfigurableReference)
         and value.configurable.name == 'macro'):
    name = value.scoped_selector.rsplit('/', 1)[0]
    chain = chain + (name,)
    try:
      value = gin.query_parameter(f'%{name}')
    except ValueError:
      return value, chain
  return value, chain


def _type_problem(value, annotation) -> Optional[str]:
  """Why `value` cannot be a `annotation` (int, float, bool, str or Optional of them)."""
  origin = typing.get_origin(annotation)
  if origin is typing.Union:
    options = typing.get_args(annotation)
    if type(None) in options and value is None:
      return None
    problems = [_type_problem(value, option) for option in options if option is not type(None)]
    if any(problem is None for problem in problems):
      return None
    names = ' or '.join(getattr(o, '__name__', str(o)) for o in options)
    return f'expected {names}, got {type(value).__name__}'
  if annotation is bool:
    ok = isinstance(value, bool)
  elif annotation is int:
    ok = isinstance(value, int) and not isinstance(value, bool)
  elif annotation is float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
  elif annotation is str:
    ok = isinstance(value, str)
  else:
    return None  # containers, callables, models: left to the code that uses them
  return None if ok else f'expected {annotation.__name__}, got {type(value).__name__}'


def check_binding_types(module_prefixes: Sequence[str] = ('mixit.', 'data_pipeline.')) -> None:
  """Raises a ValueError naming every binding whose value has the wrong type.

  Checked against the type annotations of this package's configurables (int,
  float, bool, str and their Optional forms), so `batch_size = 'x'` is
  reported as `train_data.batch_size = 'x' (macro batch_size): expected int,
  got str` before anything runs, instead of a TypeError deep in the pipeline.
  """
  problems = []
  for (scope, selector), values in list(gin_lib_config._CONFIG.items()):
    if selector == 'gin.macro' or not selector.startswith(tuple(module_prefixes)):
      continue
    configurable = gin_lib_config._REGISTRY.get_match(selector)
    if configurable is None:
      continue
    try:
      hints = typing.get_type_hints(configurable.wrapped)
    except Exception:
      continue
    for parameter, raw in values.items():
      if parameter not in hints:
        continue
      value, chain = _resolve_macro(raw)
      if isinstance(value, gin_lib_config.ConfigurableReference):
        continue
      problem = _type_problem(value, hints[parameter])
      if problem:
        name = f'{scope + "/" if scope else ""}{configurable.name}.{parameter}'
        via = f' (macro {" -> ".join(chain)})' if chain else ''
        problems.append(f'{name} = {value!r}{via}: {problem}')
  if problems:
    raise ValueError('bad gin binding(s): ' + '; '.join(problems))
