"""gin-configurable input functions for training and evaluation.

`train_input_fn` / `eval_input_fn` take an optional `tf.distribute.InputContext`
and return per-replica batched datasets (`drop_remainder=True`, prefetched)
for `strategy.distribute_datasets_from_function`. Each input pipeline reads
its own shard of the files (`input_context.input_pipeline_id`).

Training batch (one structure for every source):
    {'mom': [B, T], 'mixtures': [B, N, T], 'sources': [B, S, T],
     'num_sources': [B] int32, 'supervised': [B] bool}
    + 'labels': [B, N, C] float32 multi-hot when `labels` is on.
  Unsupervised examples: MoMs of N reference mixtures; sources all zero,
  num_sources 0, supervised False. Supervised (FUSS) examples: mom = sum of
  sources, mixtures[:, 0] = mom and the other N - 1 mixtures zero, supervised
  True, labels[:, 0] = the mixture's labels.

The examples come from `train_data.source`, a data source object chosen in gin
(`sources.py`: `@fuss_mixtures()`, the default, `@wild_mixtures()`,
`@fuss_sources()` or `@semi_supervised()`). The flat names of the string-mode API
(`train_data.mode`, `train_data.data_root`, ...) still work (`old_train_data.py`).

Eval batch: {'mixture': [B, T], 'sources': [B, S, T], 'num_sources': [B] int32},
from a FUSS-format list (`data_root` + `subfolder` holding `<split>_example_list.txt`).
"""
from typing import Optional, Tuple

import gin
import tensorflow as tf

from data_pipeline import fuss
from data_pipeline import old_train_data
from data_pipeline import sources

# Offsets the seed per input pipeline so replicas draw different crops and gains.
_PIPELINE_SEED_STRIDE = 1000003


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


@gin.configurable('train_data', denylist=['input_context'])
@old_train_data.takes_old_names
def train_input_fn(input_context: Optional[tf.distribute.InputContext] = None,
                   source: Optional[sources.Source] = None,
                   batch_size: int = 8,
                   num_mixtures: int = 2,
                   max_sources: int = fuss.MAX_SOURCES,
                   sample_rate: int = 16000,
                   clip_seconds: float = 10.0,
                   random_crop: bool = True,
                   shuffle_buffer: int = 256,
                   gain_db: Optional[Tuple[float, float]] = None,
                   labels: bool = False,
                   seed: Optional[int] = None,
                   **old_names) -> tf.data.Dataset:
  """The training dataset (structure in the module docstring).

  Args:
    input_context: from `distribute_datasets_from_function`, or None.
    source: where the examples come from, a `sources.py` object (gin:
      `train_data.source = @fuss_sources()`); None for `sources.FussMixtures()`.
    batch_size: global batch size; each replica gets its share.
    num_mixtures: N reference mixtures per MoM.
    max_sources: S, sources padded to this count.
    sample_rate, clip_seconds, random_crop: audio rate, crop length, crop kind.
    shuffle_buffer: MoM pairing buffer.
    gain_db: (low, high) random gain per reference mixture, or None.
    labels: add 'labels' [B, N, C] (FUSS: the `.labels.tsv` sidecar; wild data:
      `wild_mixtures.labels_csv`).
    seed: makes crops, pairing, gains and shuffling deterministic.
    **old_names: the string-mode API's `mode`, `data_root`, ... (`old_train_data.py`),
      set on `source`.
  """
  source = chosen_source(source, **old_names)
  clips = sources.Clips(
      batch_size=_per_replica_batch(batch_size, input_context), num_mixtures=num_mixtures,
      max_sources=max_sources, sample_rate=sample_rate, clip_seconds=clip_seconds,
      random_crop=random_crop, shuffle_buffer=shuffle_buffer, gain_db=gain_db, labels=labels,
      seed=_pipeline_seed(seed, input_context), input_context=input_context)
  dataset, _ = source.batches(clips)
  return dataset.prefetch(tf.data.AUTOTUNE)


def chosen_source(source: Optional[sources.Source] = None, **old_names) -> sources.Source:
  """The source `train_input_fn` reads: `source` (None: `sources.FussMixtures()`, which takes
  the `fuss_mixtures.*` bindings) with the old names given set on it (`old_train_data`)."""
  if source is None:
    source = sources.FussMixtures()
  return old_train_data.apply(source, old_names)


@gin.configurable('eval_data', denylist=['input_context'])
def eval_input_fn(input_context: Optional[tf.distribute.InputContext] = None,
                  batch_size: int = 8,
                  data_root: Optional[str] = None,
                  subfolder: str = '',
                  split: str = 'validation',
                  max_sources: int = fuss.MAX_SOURCES,
                  sample_rate: int = 16000,
                  clip_seconds: Optional[float] = 10.0,
                  repeat: bool = False,
                  allow_outside_root: bool = False) -> tf.data.Dataset:
  """The evaluation dataset: fixed crops from the start of FUSS examples, in list order.

  `allow_outside_root`: accept listed paths outside the list's folder (refused by default).

  Returns:
    Batches {'mixture': [B, T], 'sources': [B, S, T], 'num_sources': [B] int32}.
  """
  per_replica = _per_replica_batch(batch_size, input_context)
  list_path = sources.list_path(data_root, subfolder, split, 'eval_data')
  examples = sources.shard(fuss.read_example_list(list_path, max_sources=max_sources,
                                                  allow_outside_root=allow_outside_root),
                           input_context, list_path)
  if len(examples) < per_replica:
    raise ValueError(f'{list_path}: {len(examples)} example(s) per input pipeline make no '
                     f'full batch of {per_replica} (batches drop the remainder)')
  dataset = fuss.fuss_dataset(examples, max_sources=max_sources, sample_rate=sample_rate,
                              clip_seconds=clip_seconds, random_crop=False, repeat=repeat)
  dataset = dataset.map(lambda e: {'mixture': e['mixture'], 'sources': e['sources'],
                                   'num_sources': tf.cast(e['num_sources'], tf.int32)})
  return dataset.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
