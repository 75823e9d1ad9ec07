"""gin-configurable input functions for training and evaluation.

`train_input_fn` / `eval_input_fn` take an optional `tf.distribute.InputContext`
and return per-replica batched datasets (`drop_remainder=True`, prefetched)
for `strategy.distribute_datasets_from_function`. Each input pipeline reads
its own shard of the files (`input_context.input_pipeline_id`).

Training batch (one structure for every mode):
    {'mom': [B, T], 'mixtures': [B, N, T], 'sources': [B, S, T],
     'num_sources': [B] int32, 'supervised': [B] bool}
    + 'labels': [B, N, C] float32 multi-hot when `labels` is on.
  Unsupervised examples: MoMs of N reference mixtures; sources all zero,
  num_sources 0, supervised False. Supervised (FUSS) examples: mom = sum of
  sources, mixtures[:, 0] = mom and the other N - 1 mixtures zero, supervised
  True, labels[:, 0] = the mixture's labels. Semi-supervised mode interleaves
  whole supervised and unsupervised batches; `supervised_fraction` of the
  batches are supervised, spread evenly (deterministic pattern).

Eval batch: {'mixture': [B, T], 'sources': [B, S, T], 'num_sources': [B] int32}.

Data sources: FUSS-format roots (`data_root` + `subfolder` holding
`<split>_example_list.txt`; see `fuss.py`), or for unsupervised data an
in-the-wild folder / file list (`unsupervised_source='wild'`, `wild.py`).
"""
import os
from typing import Optional, Sequence, Tuple

import gin
import tensorflow as tf

from data_pipeline import fuss
from data_pipeline import mom
from data_pipeline import wild

MODES = ('unsupervised', 'supervised', 'semi_supervised')
# Offsets the seed per input pipeline so replicas draw different crops and gains.
_PIPELINE_SEED_STRIDE = 1000003


def _list_path(data_root, subfolder: str, split: str, what: str) -> str:
  if not isinstance(data_root, str) or not data_root:
    raise ValueError(f'{what}.data_root is not set (got {data_root!r}): bind the DATA_ROOT '
                     "macro, e.g. --gin_param \"DATA_ROOT='/path/to/fuss'\"")
  return os.path.join(data_root, subfolder, f'{split}_example_list.txt') if subfolder else \
      os.path.join(data_root, f'{split}_example_list.txt')


def _shard(items: list, input_context: Optional[tf.distribute.InputContext],
           what: str) -> list:
  if input_context is None or input_context.num_input_pipelines == 1:
    return items
  if len(items) < input_context.num_input_pipelines:
    raise ValueError(f'{what}: {len(items)} example(s) cannot feed '
                     f'{input_context.num_input_pipelines} input pipelines')
  return items[input_context.input_pipeline_id::input_context.num_input_pipelines]


def _per_replica_batch(batch_size: int,
                       input_context: Optional[tf.distribute.InputContext]) -> int:
  if batch_size < 1:
    raise ValueError(f'batch_size must be >= 1, got {batch_size}')
  if input_context is None:
    return batch_size
  return input_context.get_per_replica_batch_size(batch_size)


def _pipeline_seed(seed: Optional[int],
                   input_context: Optional[tf.distribute.InputContext]) -> Optional[int]:
  if seed is None or input_context is None:
    return seed
  return seed + _PIPELINE_SEED_STRIDE * input_context.input_pipeline_id


def unsupervised_to_train_element(element, max_sources: int):
  """MoM element -> the training structure (sources zero, not supervised)."""
  mixtures = element['mixtures']
  # A static length keeps batch shapes static (XLA, TPU).
  length = mixtures.shape[-1] if mixtures.shape[-1] is not None else tf.shape(mixtures)[-1]
  out = {
      'mom': element['mom'],
      'mixtures': mixtures,
      'sources': tf.zeros([max_sources, length], tf.float32),
      'num_sources': tf.constant(0, tf.int32),
      'supervised': tf.constant(False),
  }
  if 'labels' in element:
    out['labels'] = element['labels']
  return out


def supervised_to_train_element(element, num_mixtures: int):
  """FUSS element -> the training structure (mixtures[0] = mom = sum of sources)."""
  mixture = element['mixture']
  length = mixture.shape[0] if mixture.shape[0] is not None else tf.shape(mixture)[0]
  padding = tf.zeros([num_mixtures - 1, length], tf.float32)
  out = {
      'mom': mixture,
      'mixtures': tf.concat([mixture[tf.newaxis], padding], axis=0),
      'sources': element['sources'],
      'num_sources': tf.cast(element['num_sources'], tf.int32),
      'supervised': tf.constant(True),
  }
  if 'labels' in element:
    labels = element['labels']
    out['labels'] = tf.concat(
        [labels[tf.newaxis], tf.zeros([num_mixtures - 1, labels.shape[0]], tf.float32)], axis=0)
  return out


def _fuss_stream(list_path: str, input_context, max_sources: int, sample_rate: int,
                 clip_seconds: float, random_crop: bool, labels: bool,
                 check_mixture: bool, seed: Optional[int],
                 class_names: Optional[Sequence[str]] = None):
  examples, file_classes = fuss.load_examples(list_path, max_sources=max_sources,
                                              labels=labels)
  if labels and class_names is not None and list(class_names) != list(file_classes):
    raise ValueError(f'{fuss.labels_path_for(list_path)}: classes {file_classes} differ from '
                     f'the configured class_names {list(class_names)}')
  examples = _shard(examples, input_context, list_path)
  dataset = fuss.fuss_dataset(examples, max_sources=max_sources, sample_rate=sample_rate,
                              clip_seconds=clip_seconds, random_crop=random_crop,
                              class_names=file_classes, check_mixture=check_mixture,
                              shuffle=True, repeat=True, seed=seed)
  return dataset, file_classes


@gin.configurable('train_data', denylist=['input_context'])
def train_input_fn(input_context: Optional[tf.distribute.InputContext] = None,
                   mode: str = 'unsupervised',
                   batch_size: int = 8,
                   data_root: Optional[str] = None,
                   subfolder: str = '',
                   split: str = 'train',
                   unsupervised_source: str = 'fuss',
                   wild_source: Optional[str] = None,
                   wild_labels_csv: Optional[str] = None,
                   class_names: Optional[Sequence[str]] = None,
                   supervised_fraction: float = 0.5,
                   num_mixtures: int = 2,
                   max_sources: int = fuss.MAX_SOURCES,
                   sample_rate: int = 16000,
                   clip_seconds: float = 10.0,
                   random_crop: bool = True,
                   shuffle_buffer: int = 256,
                   gain_db: Optional[Tuple[float, float]] = None,
                   labels: bool = False,
                   check_mixture: bool = False,
                   skip_bad: bool = False,
                   seed: Optional[int] = None) -> tf.data.Dataset:
  """The training dataset (structure in the module docstring).

  Args:
    input_context: from `distribute_datasets_from_function`, or None.
    mode: 'unsupervised' (MoMs), 'supervised' (FUSS sources) or
      'semi_supervised' (both, interleaved by batch).
    batch_size: global batch size; each replica gets its share.
    data_root, subfolder, split: the FUSS-format list is
      `<data_root>/<subfolder>/<split>_example_list.txt`; the supervised data
      and, with unsupervised_source='fuss', the unsupervised mixtures.
    unsupervised_source: 'fuss' (mixtures of the FUSS list, i.e. sums of its
      sources) or 'wild' (`wild_source`, a folder or file list).
    wild_labels_csv, class_names: clip labels for wild data (`wild.py`).
    supervised_fraction: share of supervised batches in semi-supervised mode.
    num_mixtures: N reference mixtures per MoM.
    max_sources: S, sources padded to this count.
    sample_rate, clip_seconds, random_crop: audio rate, crop length, crop kind.
    shuffle_buffer: MoM pairing buffer.
    gain_db: (low, high) random gain per reference mixture, or None.
    labels: add 'labels' [B, N, C] (FUSS: the `.labels.tsv` sidecar).
    check_mixture: assert FUSS mixture files equal the sum of their sources.
    skip_bad: skip undecodable wild files (counted and logged).
    seed: makes crops, pairing, gains and shuffling deterministic.
  """
  _check_train_settings(mode, unsupervised_source, supervised_fraction)
  per_replica = _per_replica_batch(batch_size, input_context)
  seed = _pipeline_seed(seed, input_context)
  needs_fuss = mode != 'unsupervised' or unsupervised_source == 'fuss'
  list_path = _list_path(data_root, subfolder, split, 'train_data') if needs_fuss else None

  def fuss_stream(stream_seed):
    return _fuss_stream(list_path, input_context, max_sources, sample_rate, clip_seconds,
                        random_crop, labels, check_mixture, stream_seed, class_names)

  supervised_batches = unsupervised_batches = None
  fuss_classes = None
  if mode != 'unsupervised':
    stream, fuss_classes = fuss_stream(seed)
    supervised_batches = _batched(stream, lambda e: supervised_to_train_element(e, num_mixtures),
                                  per_replica)
  if mode != 'supervised':
    mom_seed = None if seed is None else seed + 1
    if unsupervised_source == 'fuss':
      stream, _ = fuss_stream(mom_seed)
    else:
      stream = _wild_stream(input_context, wild_source, wild_labels_csv if labels else None,
                            class_names if class_names is not None else fuss_classes,
                            labels, num_mixtures, sample_rate, clip_seconds, random_crop,
                            skip_bad, mom_seed)
    moms = mom.mixtures_of_mixtures(stream, num_mixtures=num_mixtures,
                                    shuffle_buffer=shuffle_buffer, gain_db=gain_db,
                                    seed=mom_seed)
    unsupervised_batches = _batched(moms, lambda e: unsupervised_to_train_element(e, max_sources),
                                    per_replica)

  if mode == 'unsupervised':
    dataset = unsupervised_batches
  elif mode == 'supervised':
    dataset = supervised_batches
  else:
    dataset = _interleave_batches(unsupervised_batches, supervised_batches, supervised_fraction)
  return dataset.prefetch(tf.data.AUTOTUNE)


def _check_train_settings(mode: str, unsupervised_source: str,
                          supervised_fraction: float) -> None:
  if mode not in MODES:
    raise ValueError(f'train_data.mode must be one of {MODES}, got {mode!r}')
  if unsupervised_source not in ('fuss', 'wild'):
    raise ValueError(f"train_data.unsupervised_source must be 'fuss' or 'wild', got "
                     f'{unsupervised_source!r}')
  if mode == 'semi_supervised' and not 0.0 < supervised_fraction < 1.0:
    raise ValueError(f'train_data.supervised_fraction must be in (0, 1), got '
                     f'{supervised_fraction}')


def _batched(stream: tf.data.Dataset, to_train_element, per_replica: int) -> tf.data.Dataset:
  """`stream` in the training structure, in per-replica batches (remainder dropped)."""
  return stream.map(to_train_element, num_parallel_calls=tf.data.AUTOTUNE).batch(
      per_replica, drop_remainder=True)


def _wild_stream(input_context, wild_source: Optional[str], labels_csv: Optional[str],
                 class_names: Optional[Sequence[str]], labels: bool, num_mixtures: int,
                 sample_rate: int, clip_seconds: float, random_crop: bool, skip_bad: bool,
                 seed: Optional[int]) -> tf.data.Dataset:
  """The in-the-wild mixtures of this input pipeline's shard (`wild.wild_dataset`)."""
  if wild_source is None:
    raise ValueError("train_data.unsupervised_source='wild' needs train_data.wild_source")
  if labels and labels_csv is None:
    raise ValueError('train_data.labels is on but train_data.wild_labels_csv is not set')
  stream, _ = wild.wild_dataset(
      wild_source, sample_rate=sample_rate, clip_seconds=clip_seconds,
      random_crop=random_crop, labels_csv=labels_csv, class_names=class_names,
      skip_bad=skip_bad, shuffle=True, repeat=True, seed=seed, min_files=num_mixtures,
      num_shards=1 if input_context is None else input_context.num_input_pipelines,
      shard_index=0 if input_context is None else input_context.input_pipeline_id)
  return stream


def _interleave_batches(unsupervised_batches: tf.data.Dataset,
                        supervised_batches: tf.data.Dataset,
                        supervised_fraction: float) -> tf.data.Dataset:
  """Whole batches of both: batch i is supervised when floor((i + 1) f) > floor(i f), an even
  spread of exactly the fraction f, identical on every input pipeline."""
  fraction = tf.constant(supervised_fraction, tf.float64)

  def choose(i):
    i = tf.cast(i, tf.float64)
    return tf.cast(tf.floor((i + 1) * fraction) - tf.floor(i * fraction), tf.int64)

  choices = tf.data.Dataset.range(2**62).map(choose)
  return tf.data.Dataset.choose_from_datasets([unsupervised_batches, supervised_batches],
                                              choices)


@gin.configurable('eval_data', denylist=['input_context'])
def eval_input_fn(input_context: Optional[tf.distribute.InputContext] = None,
                  batch_size: int = 8,
                  data_root: Optional[str] = None,
                  subfolder: str = '',
                  split: str = 'validation',
                  max_sources: int = fuss.MAX_SOURCES,
                  sample_rate: int = 16000,
                  clip_seconds: Optional[float] = 10.0,
                  repeat: bool = False) -> tf.data.Dataset:
  """The evaluation dataset: fixed crops from the start of FUSS examples, in list order.

  Returns:
    Batches {'mixture': [B, T], 'sources': [B, S, T], 'num_sources': [B] int32}.
  """
  per_replica = _per_replica_batch(batch_size, input_context)
  list_path = _list_path(data_root, subfolder, split, 'eval_data')
  examples = _shard(fuss.read_example_list(list_path, max_sources=max_sources),
                    input_context, list_path)
  if len(examples) < per_replica:
    raise ValueError(f'{list_path}: {len(examples)} example(s) per input pipeline make no '
                     f'full batch of {per_replica} (batches drop the remainder)')
  dataset = fuss.fuss_dataset(examples, max_sources=max_sources, sample_rate=sample_rate,
                              clip_seconds=clip_seconds, random_crop=False, repeat=repeat)
  dataset = dataset.map(lambda e: {'mixture': e['mixture'], 'sources': e['sources'],
                                   'num_sources': tf.cast(e['num_sources'], tf.int32)})
  return dataset.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
