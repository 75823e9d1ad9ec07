"""Parsing gin configs and writing the operative config of a model dir.

`gin.tf` is broken on TF >= 2.16, so saving the config beside checkpoints is
done here with `tf.io.gfile` (model dirs may live on gs://).
"""
import logging
import os
import pathlib
from typing import Iterable, Optional, Sequence

import gin
import tensorflow as tf

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
    gin.parse_config_files_and_bindings(resolved, list(gin_params), finalize_config=finalize)
  except (ValueError, KeyError, TypeError, IOError) as e:
    raise ValueError(f'bad gin configuration (files {list(gin_files)}, params '
                     f'{list(gin_params)}): {e}') from e
  finally:
    logging.getLogger().removeFilter(probe_filter)


def write_config(model_dir: str) -> None:
  """Writes the full parsed config and the operative config to `model_dir`."""
  tf.io.gfile.makedirs(model_dir)
  with tf.io.gfile.GFile(os.path.join(model_dir, CONFIG_FILENAME), 'w') as f:
    f.write(gin.config_str())
  with tf.io.gfile.GFile(os.path.join(model_dir, OPERATIVE_CONFIG_FILENAME), 'w') as f:
    f.write(gin.operative_config_str())


def read_config(model_dir: str) -> Optional[str]:
  path = os.path.join(model_dir, CONFIG_FILENAME)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return f.read()


def parse_model_dir(model_dir: str, gin_params: Iterable[str] = ()) -> None:
  """Re-parses the config a training run saved in `model_dir`."""
  path = os.path.join(model_dir, CONFIG_FILENAME)
  if not tf.io.gfile.exists(path):
    raise ValueError(f'{model_dir!r} holds no {CONFIG_FILENAME}: not a mixit model dir')
  parse([path], gin_params)
