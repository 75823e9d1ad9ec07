"""Where training examples come from: the data sources `train_data.source` chooses in gin.

Each source is a frozen settings dataclass, gin-configurable under its own name, whose
`batches(clips)` gives this input pipeline's batches in the training structure (see
`inputs.py`):
- `FussMixtures` (`fuss_mixtures`): unsupervised, mixtures of mixtures (MoMs) of the mixtures
  of a FUSS-format list (the sums of its sources); the default.
- `WildMixtures` (`wild_mixtures`): unsupervised, MoMs of in-the-wild recordings (a folder or
  a file list, `wild.py`).
- `FussSources` (`fuss_sources`): supervised, a FUSS-format list's examples with their
  reference sources (the train step applies the permutation-invariant loss to them).
- `SemiSupervised` (`semi_supervised`): whole supervised and unsupervised batches interleaved;
  `supervised_fraction` of the batches are supervised, spread evenly (deterministic pattern).
Synthetic sets (`mixit-make-fuss`) are FUSS-format lists. `Clips` carries what every source
shares: the other `train_data.*` settings, resolved for one input pipeline.
"""
import dataclasses
import os
from typing import ClassVar, Optional, Sequence, Tuple, Union

import gin
import tensorflow as tf

from data_pipeline import fuss
from data_pipeline import mom
from data_pipeline import wild


@dataclasses.dataclass(frozen=True)
class Clips:
  """How every source reads, crops, mixes and batches its examples (the `train_data.*`
  settings other than `source`), for one input pipeline.

  Attributes:
    batch_size: this replica's batch size.
    num_mixtures: N reference mixtures per MoM (and mixtures per supervised example).
    max_sources: S, sources padded to this count.
    sample_rate, clip_seconds, random_crop: audio rate, crop length, crop kind.
    shuffle_buffer: MoM pairing buffer.
    gain_db: (low, high) random gain per reference mixture, or None.
    labels: add 'labels' [B, N, C].
    seed: this input pipeline's seed (None: not deterministic).
    input_context: from `distribute_datasets_from_function`, or None.
  """
  batch_size: int
  num_mixtures: int
  max_sources: int
  sample_rate: int
  clip_seconds: float
  random_crop: bool
  shuffle_buffer: int
  gain_db: Optional[Tuple[float, float]]
  labels: bool
  seed: Optional[int]
  input_context: Optional[tf.distribute.InputContext] = None

  @property
  def mom_seed(self) -> Optional[int]:
    """The seed of the unsupervised streams (the supervised ones take `seed`)."""
    return None if self.seed is None else self.seed + 1

  def batched(self, stream: tf.data.Dataset, to_train_element) -> tf.data.Dataset:
    """`stream` in the training structure, in per-replica batches (remainder dropped)."""
    return stream.map(to_train_element, num_parallel_calls=tf.data.AUTOTUNE).batch(
        self.batch_size, drop_remainder=True)

  def mixtures_of_mixtures(self, stream: tf.data.Dataset) -> tf.data.Dataset:
    """Batches of MoMs of the mixtures of `stream` (unsupervised examples)."""
    moms = mom.mixtures_of_mixtures(stream, num_mixtures=self.num_mixtures,
                                    shuffle_buffer=self.shuffle_buffer, gain_db=self.gain_db,
                                    seed=self.mom_seed)
    return self.batched(moms, lambda e: unsupervised_to_train_element(e, self.max_sources))


def list_path(data_root, subfolder: str, split: str, what: str) -> str:
  """`<data_root>/<subfolder>/<split>_example_list.txt`; `what` names the binding."""
  if not isinstance(data_root, str) or not data_root:
    raise ValueError(f'{what}.data_root is not set (got {data_root!r}): bind the DATA_ROOT '
                     "macro, e.g. --gin_param \"DATA_ROOT='/path/to/fuss'\"")
  return os.path.join(data_root, subfolder, f'{split}_example_list.txt') if subfolder else \
      os.path.join(data_root, f'{split}_example_list.txt')


def shard(items: list, input_context: Optional[tf.distribute.InputContext], what: str) -> list:
  """This input pipeline's share of `items`."""
  if input_context is None or input_context.num_input_pipelines == 1:
    return items
  if len(items) < input_context.num_input_pipelines:
    raise ValueError(f'{what}: {len(items)} example(s) cannot feed '
                     f'{input_context.num_input_pipelines} input pipelines')
  return items[input_context.input_pipeline_id::input_context.num_input_pipelines]


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


@dataclasses.dataclass(frozen=True)
class FussList:
  """A FUSS-format example list, `<data_root>/<subfolder>/<split>_example_list.txt` (`fuss.py`);
  the settings `FussMixtures` and `FussSources` share.

  Attributes:
    data_root, subfolder, split: where the list is.
    check_mixture: assert the mixture files equal the sum of their sources.
    class_names: with labels, the classes the list's `.labels.tsv` sidecar must hold, in order.
    allow_outside_root: accept listed paths outside the list's folder (refused by default:
      `fuss.read_example_list`).
  """
  GIN_NAME: ClassVar[str] = 'fuss_list'
  data_root: Optional[str] = None
  subfolder: str = ''
  split: str = 'train'
  check_mixture: bool = False
  class_names: Optional[Sequence[str]] = None
  allow_outside_root: bool = False

  def stream(self, clips: Clips, seed: Optional[int]):
    """(this pipeline's shuffled, repeated FUSS elements, the class names of the labels)."""
    path = list_path(self.data_root, self.subfolder, self.split, self.GIN_NAME)
    examples, file_classes = fuss.load_examples(path, max_sources=clips.max_sources,
                                                labels=clips.labels,
                                                allow_outside_root=self.allow_outside_root)
    if (clips.labels and self.class_names is not None
        and list(self.class_names) != list(file_classes)):
      raise ValueError(f'{fuss.labels_path_for(path)}: classes {file_classes} differ from '
                       f'the configured class_names {list(self.class_names)}')
    examples = shard(examples, clips.input_context, path)
    dataset = fuss.fuss_dataset(examples, max_sources=clips.max_sources,
                                sample_rate=clips.sample_rate, clip_seconds=clips.clip_seconds,
                                random_crop=clips.random_crop, class_names=file_classes,
                                check_mixture=self.check_mixture, shuffle=True, repeat=True,
                                seed=seed)
    return dataset, file_classes


@gin.configurable('fuss_mixtures')
@dataclasses.dataclass(frozen=True)
class FussMixtures(FussList):
  """Unsupervised: MoMs of the mixtures of a FUSS-format list (the sums of its sources)."""
  GIN_NAME: ClassVar[str] = 'fuss_mixtures'

  def batches(self, clips: Clips, class_names: Optional[Sequence[str]] = None):
    """(batches, class names of the labels); `class_names` is unused (FUSS lists name theirs)."""
    del class_names
    stream, file_classes = self.stream(clips, clips.mom_seed)
    return clips.mixtures_of_mixtures(stream), file_classes


@gin.configurable('fuss_sources')
@dataclasses.dataclass(frozen=True)
class FussSources(FussList):
  """Supervised: a FUSS-format list's examples with their reference sources."""
  GIN_NAME: ClassVar[str] = 'fuss_sources'

  def batches(self, clips: Clips, class_names: Optional[Sequence[str]] = None):
    del class_names
    stream, file_classes = self.stream(clips, clips.seed)
    return clips.batched(stream, lambda e: supervised_to_train_element(e, clips.num_mixtures)), \
        file_classes


@gin.configurable('wild_mixtures')
@dataclasses.dataclass(frozen=True)
class WildMixtures:
  """Unsupervised: MoMs of in-the-wild recordings (`wild.py`).

  Attributes:
    path: a folder (searched recursively) or a text file listing audio files.
    labels_csv: clip labels "path,labels", read when `train_data.labels` is on.
    class_names: the class vocabulary of the labels (None: the CSV's names, or in
      `SemiSupervised` those of the supervised FUSS list).
    skip_bad: skip undecodable files (counted and logged) instead of stopping.
  """
  path: Optional[str] = None
  labels_csv: Optional[str] = None
  class_names: Optional[Sequence[str]] = None
  skip_bad: bool = False

  def batches(self, clips: Clips, class_names: Optional[Sequence[str]] = None):
    """(batches, None); `class_names` is the vocabulary when `self.class_names` is None."""
    if self.path is None:
      raise ValueError('wild_mixtures.path is not set: bind the WILD_SOURCE macro, e.g. '
                       "--gin_param \"WILD_SOURCE='/data/recordings'\"")
    if clips.labels and self.labels_csv is None:
      raise ValueError('train_data.labels is on but wild_mixtures.labels_csv is not set (the '
                       'WILD_LABELS_CSV macro)')
    context = clips.input_context
    stream, _ = wild.wild_dataset(
        self.path, sample_rate=clips.sample_rate, clip_seconds=clips.clip_seconds,
        random_crop=clips.random_crop, labels_csv=self.labels_csv if clips.labels else None,
        class_names=self.class_names if self.class_names is not None else class_names,
        skip_bad=self.skip_bad, shuffle=True, repeat=True, seed=clips.mom_seed,
        min_files=clips.num_mixtures,
        num_shards=1 if context is None else context.num_input_pipelines,
        shard_index=0 if context is None else context.input_pipeline_id)
    return clips.mixtures_of_mixtures(stream), None


@gin.configurable('semi_supervised')
@dataclasses.dataclass(frozen=True)
class SemiSupervised:
  """Whole supervised and unsupervised batches, interleaved.

  Attributes:
    supervised: the supervised examples (default `FussSources()`, i.e. `fuss_sources.*`).
    unsupervised: the unsupervised mixtures (default `FussMixtures()`).
    supervised_fraction: share of supervised batches, in (0, 1): batch i is supervised
      when floor((i + 1) f) > floor(i f), an even spread of exactly the fraction f,
      identical on every input pipeline.
  """
  supervised: FussSources = dataclasses.field(default_factory=FussSources)
  unsupervised: Union[FussMixtures, WildMixtures] = dataclasses.field(
      default_factory=FussMixtures)
  supervised_fraction: float = 0.5

  def __post_init__(self):
    if not 0.0 < self.supervised_fraction < 1.0:
      raise ValueError(f'semi_supervised.supervised_fraction must be in (0, 1), got '
                       f'{self.supervised_fraction}')

  def batches(self, clips: Clips, class_names: Optional[Sequence[str]] = None):
    supervised, file_classes = self.supervised.batches(clips, class_names)
    # Wild labels take the supervised list's classes unless told otherwise.
    unsupervised, _ = self.unsupervised.batches(
        clips, file_classes if file_classes is not None else class_names)
    fraction = tf.constant(self.supervised_fraction, tf.float64)

    def choose(i):
      i = tf.cast(i, tf.float64)
      return tf.cast(tf.floor((i + 1) * fraction) - tf.floor(i * fraction), tf.int64)

    choices = tf.data.Dataset.range(2**62).map(choose)
    return tf.data.Dataset.choose_from_datasets([unsupervised, supervised], choices), \
        file_classes


SOURCES = (FussMixtures, WildMixtures, FussSources, SemiSupervised)
Source = Union[FussMixtures, WildMixtures, FussSources, SemiSupervised]
