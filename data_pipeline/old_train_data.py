"""The flat `train_data.*` names of the string-mode input API, kept working.

Before the data sources were objects (`sources.py`), `train_data` chose them with strings
(`mode`, `unsupervised_source`) and held their settings itself (`data_root`, `wild_source`,
...). Model dirs written then hold those bindings in their `config.gin` (which resuming a run
re-reads), and scripts pass them as keywords. Each old name is one field of a source
(`NEW_BINDINGS` says which); `apply` sets them on the chosen source: the source is seen as the
old flat settings (`flat_view`), the old names given replace theirs, and the source is built
again from the result (`source_of`), exactly as the old code chose it.
"""
import dataclasses
import inspect
from typing import Dict, Optional, Sequence

from absl import logging

from data_pipeline import sources

MODES = ('unsupervised', 'supervised', 'semi_supervised')
UNSUPERVISED_SOURCES = ('fuss', 'wild')

# Old name -> (its type, the binding that holds it now).
NEW_BINDINGS = {
    'mode': (str, 'train_data.source = @fuss_mixtures() | @wild_mixtures() | @fuss_sources() '
                  '| @semi_supervised()'),
    'unsupervised_source': (str, 'train_data.source = @wild_mixtures() (in semi-supervised '
                                 'training semi_supervised.unsupervised = @wild_mixtures())'),
    'data_root': (Optional[str], 'fuss_mixtures.data_root and fuss_sources.data_root'),
    'subfolder': (str, 'fuss_mixtures.subfolder and fuss_sources.subfolder'),
    'split': (str, 'fuss_mixtures.split and fuss_sources.split'),
    'check_mixture': (bool, 'fuss_mixtures.check_mixture and fuss_sources.check_mixture'),
    'class_names': (Optional[Sequence[str]], 'fuss_mixtures.class_names, '
                                             'fuss_sources.class_names, wild_mixtures.class_names'),
    'wild_source': (Optional[str], 'wild_mixtures.path'),
    'wild_labels_csv': (Optional[str], 'wild_mixtures.labels_csv'),
    'skip_bad': (bool, 'wild_mixtures.skip_bad'),
    'supervised_fraction': (float, 'semi_supervised.supervised_fraction'),
}
# The FUSS list settings kept their names.
_FUSS_FIELDS = tuple(field.name for field in dataclasses.fields(sources.FussList))


def _fuss_view(fuss_list: sources.FussList) -> Dict:
  return {name: getattr(fuss_list, name) for name in _FUSS_FIELDS}


def flat_view(source) -> Dict:
  """`source` as the old flat `train_data.*` settings."""
  if isinstance(source, sources.FussMixtures):
    return dict(mode='unsupervised', unsupervised_source='fuss', **_fuss_view(source))
  if isinstance(source, sources.WildMixtures):
    return dict(mode='unsupervised', unsupervised_source='wild', wild_source=source.path,
                wild_labels_csv=source.labels_csv, class_names=source.class_names,
                skip_bad=source.skip_bad)
  if isinstance(source, sources.FussSources):
    return dict(mode='supervised', **_fuss_view(source))
  if isinstance(source, sources.SemiSupervised):
    return {**flat_view(source.unsupervised), **_fuss_view(source.supervised),
            'mode': 'semi_supervised', 'supervised_fraction': source.supervised_fraction}
  raise ValueError(f'the old train_data.* names apply to the sources '
                   f'{[s.__name__ for s in sources.SOURCES]} only, not to {source!r}')


def source_of(flat: Dict):
  """The source the old flat settings chose (their defaults for the names not given)."""
  mode = flat.get('mode', 'unsupervised')
  if mode not in MODES:
    raise ValueError(f'train_data.mode must be one of {MODES}, got {mode!r} (or bind '
                     f'{NEW_BINDINGS["mode"][1]})')
  kind = flat.get('unsupervised_source', 'fuss')
  if kind not in UNSUPERVISED_SOURCES:
    raise ValueError(f"train_data.unsupervised_source must be 'fuss' or 'wild', got {kind!r}")
  fuss = {name: flat[name] for name in _FUSS_FIELDS if name in flat}
  if mode == 'supervised':
    return sources.FussSources(**fuss)
  if kind == 'fuss':
    unsupervised = sources.FussMixtures(**fuss)
  else:
    wild = {'path': flat.get('wild_source'), 'labels_csv': flat.get('wild_labels_csv'),
            'class_names': flat.get('class_names'), 'skip_bad': flat.get('skip_bad', False)}
    unsupervised = sources.WildMixtures(**wild)
  if mode == 'unsupervised':
    return unsupervised
  return sources.SemiSupervised(supervised=sources.FussSources(**fuss), unsupervised=unsupervised,
                                supervised_fraction=flat.get('supervised_fraction', 0.5))


def apply(source, old: Dict):
  """`source` with the old names of `old` (those not None) set on it.

  Raises:
    TypeError: naming a keyword that is no old name.
  """
  unknown = sorted(set(old) - set(NEW_BINDINGS))
  if unknown:
    raise TypeError(f'train_data has no setting(s) {unknown}')
  old = {name: value for name, value in old.items() if value is not None}
  if not old:
    return source
  logging.warning('old train_data binding(s), still read: %s',
                  '; '.join(f'train_data.{name} is now {NEW_BINDINGS[name][1]}'
                            for name in sorted(old)))
  return source_of({**flat_view(source), **old})


def takes_old_names(fn):
  """Declares the old names as keyword-only parameters of `fn(..., **old)`, so gin still
  accepts them, and refuses names that never existed, when it parses a config. They have no
  default: only the names given reach `**old`, and gin's operative config lists them only
  when they are bound."""
  own = [p for p in inspect.signature(fn).parameters.values() if p.kind != p.VAR_KEYWORD]
  fn.__signature__ = inspect.Signature(
      own + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[kind])
             for name, (kind, _) in NEW_BINDINGS.items()])
  fn.__annotations__ = {**fn.__annotations__,
                        **{name: Optional[kind] for name, (kind, _) in NEW_BINDINGS.items()}}
  return fn

