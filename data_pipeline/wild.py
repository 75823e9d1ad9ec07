"""In-the-wild recordings: a folder (recursive) or a file list, any format/rate/channels.

Files are decoded, down-mixed and resampled outside the graph by `audio_io`
(inside `tf.numpy_function`, so several decode in parallel), then cropped to
`clip_seconds`: a random crop (seeded per element) or the start of the file.
Files shorter than the clip are zero-padded at the end.

Source: a folder is searched recursively by `audio_io.find_audio_files` for
`audio_io.AUDIO_EXTENSIONS` (hidden files included; paths sorted); any other
path is a list file with one audio path per line (relative paths are relative
to the list's folder; blank lines and lines starting with '#' are skipped).

Clip labels CSV (optional), UTF-8 with a header row:

    path,labels
    street/rec001.flac,car;speech
    rec002.wav,

`path` is relative to the CSV's folder (or absolute / gs://); `labels` holds
class names separated by ';' (empty: no class active). Every file of the
source needs a row. The class vocabulary is `class_names` when given (names
outside it are an error naming the CSV line), else the sorted union of the
CSV's names.

Undecodable files (corrupt, truncated, unsupported, NaN, empty) raise an
error naming the file, unless `skip_bad=True`: then each is named in one
warning (once, however often the repeated dataset meets it again), counted and
dropped (see `SkipCounter`, and `skipped_files()` for the whole process); when
every file has proven bad the pipeline raises rather than loop forever. Every
file's header is read when the pipeline is built (`check_headers`), so a file
that cannot even be opened is reported before training starts, in one line.

Elements: {'mixture': float32 [T]} plus 'labels' float32 [C] with labels.
"""
import csv
import io
import os
import threading
from typing import Dict, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from data_pipeline import audio_io

def _is_absolute(path: str) -> bool:
  return os.path.isabs(path) or '://' in path


def _read_text(path: str) -> str:
  """A UTF-8 text file, without the byte-order mark some editors put first."""
  with tf.io.gfile.GFile(path, 'rb') as f:
    raw = f.read()
  try:
    return raw.decode('utf-8-sig')
  except UnicodeDecodeError as e:
    raise ValueError(f'{path}: not a UTF-8 text file ({e})') from e


def list_audio_files(source: str) -> List[str]:
  """The audio files of a folder (recursive, sorted) or of a list file."""
  source = os.fspath(source)
  if not tf.io.gfile.exists(source):
    raise FileNotFoundError(f'in-the-wild source not found: {source}')
  if tf.io.gfile.isdir(source):
    files = audio_io.find_audio_files(source, skip_hidden=False)
    if not files:
      raise ValueError(f'{source}: folder holds no audio files '
                       f'({", ".join(audio_io.AUDIO_EXTENSIONS)})')
    return sorted(files)
  root = os.path.dirname(source)
  files = []
  for line_number, line in enumerate(_read_text(source).splitlines(), start=1):
    line = line.strip()
    if not line or line.startswith('#'):
      continue
    path = line if _is_absolute(line) else os.path.join(root, line)
    if not tf.io.gfile.exists(path):
      raise FileNotFoundError(f'{source}:{line_number}: listed file not found: {path}')
    files.append(path)
  if not files:
    raise ValueError(f'{source}: file list is empty')
  return files


def read_clip_labels(csv_path: str, files: Sequence[str],
                     class_names: Optional[Sequence[str]] = None
                     ) -> Tuple[List[str], np.ndarray]:
  """Multi-hot labels [num_files, C] of `files` from a clip labels CSV."""
  csv_path = os.fspath(csv_path)
  if not tf.io.gfile.exists(csv_path):
    raise FileNotFoundError(f'clip labels CSV not found: {csv_path}')
  rows = list(csv.reader(io.StringIO(_read_text(csv_path))))
  if not rows or [c.strip() for c in rows[0][:2]] != ['path', 'labels']:
    raise ValueError(f'{csv_path}:1: header must be "path,labels", got {rows[:1]}')
  root = os.path.dirname(csv_path)
  by_path: Dict[str, Tuple[int, List[str]]] = {}
  for line_number, row in enumerate(rows[1:], start=2):
    if not row or not ''.join(row).strip():
      continue
    if len(row) != 2:
      raise ValueError(f'{csv_path}:{line_number}: expected 2 fields (path,labels), got '
                       f'{len(row)}: {row}')
    path = row[0].strip()
    path = path if _is_absolute(path) else os.path.join(root, path)
    names = [name.strip() for name in row[1].split(';') if name.strip()]
    if class_names is not None:
      unknown = [name for name in names if name not in class_names]
      if unknown:
        raise ValueError(f'{csv_path}:{line_number}: unknown class(es) {unknown} '
                         f'(classes: {list(class_names)})')
    by_path[os.path.normpath(path)] = (line_number, names)
  if class_names is None:
    class_names = sorted({name for _, names in by_path.values() for name in names})
  index = {name: i for i, name in enumerate(class_names)}
  labels = np.zeros([len(files), len(class_names)], np.float32)
  for i, path in enumerate(files):
    entry = by_path.get(os.path.normpath(path))
    if entry is None:
      raise ValueError(f'{csv_path}: no labels row for {path}')
    for name in entry[1]:
      labels[i, index[name]] = 1.0
  return list(class_names), labels


_SKIPPED: Dict[str, str] = {}   # every file skipped in this process -> why
_SKIPPED_LOCK = threading.Lock()


def skipped_files() -> Dict[str, str]:
  """The in-the-wild files skipped as bad in this process so far: {path: reason}."""
  with _SKIPPED_LOCK:
    return dict(_SKIPPED)


def _one_line(error: Exception) -> str:
  text = ' '.join(str(error).split())
  return text or type(error).__name__


class SkipCounter:
  """Counts (and remembers) files skipped as undecodable; thread-safe.

  A file is named in a warning the first time it is skipped only: a repeated
  dataset meets the same bad file every epoch.
  """

  def __init__(self, num_files: int):
    self.num_files = num_files
    self.count = 0
    self.bad_files = set()
    self._lock = threading.Lock()

  def skip(self, path: str, error: Exception) -> None:
    with self._lock:
      self.count += 1
      new = path not in self.bad_files
      self.bad_files.add(path)
      all_bad = len(self.bad_files) >= self.num_files
      if new:
        logging.warning('skipping bad audio file %s (%d distinct so far): %s',
                        audio_io.printable_path(path),
                        len(self.bad_files), _one_line(error))
    with _SKIPPED_LOCK:
      _SKIPPED.setdefault(path, _one_line(error))
    if all_bad:
      raise ValueError(f'all {self.num_files} files of the in-the-wild source are undecodable '
                       f'(last: {path}: {error})')


def crop_or_pad(waveform: np.ndarray, clip_length: int, start: Optional[int]) -> np.ndarray:
  """[time] -> [clip_length]: crop at `start` (None: 0) or zero-pad at the end."""
  if waveform.shape[0] >= clip_length:
    start = 0 if start is None else start
    return waveform[start:start + clip_length]
  return np.pad(waveform, (0, clip_length - waveform.shape[0]))


def wild_dataset(source: str,
                 sample_rate: int = 16000,
                 clip_seconds: float = 10.0,
                 random_crop: bool = True,
                 labels_csv: Optional[str] = None,
                 class_names: Optional[Sequence[str]] = None,
                 skip_bad: bool = False,
                 shuffle: bool = True,
                 repeat: bool = True,
                 seed: Optional[int] = None,
                 num_shards: int = 1,
                 shard_index: int = 0,
                 num_parallel_calls: int = tf.data.AUTOTUNE,
                 skip_counter: Optional[SkipCounter] = None,
                 min_files: int = 1,
                 check_headers: bool = True
                 ) -> Tuple[tf.data.Dataset, Optional[List[str]]]:
  """A tf.data pipeline of in-the-wild clips.

  Args:
    source: folder or list file (see module docstring).
    sample_rate, clip_seconds: output rate and clip length T.
    random_crop: random crop start (deterministic under `seed`); else start 0.
    labels_csv, class_names: clip labels (see module docstring).
    skip_bad: drop undecodable files (logged and counted) instead of raising.
    shuffle, repeat, seed: file-order shuffling, infinite repetition, seed.
    num_shards, shard_index: keep every num_shards-th file (input pipelines).
    skip_counter: where skips are counted (a new one by default).
    min_files: fewest files (per input pipeline) to accept: a MoM of N
      mixtures needs N distinct files, or it mixes a file with itself.
    check_headers: open every file (header only) now, so that one that cannot
      be opened is an error naming it before any step runs (with `skip_bad`:
      named in one warning and left out).

  Returns:
    (dataset of {'mixture': [T]} (+ 'labels': [C]), class names or None).
  """
  files = list_audio_files(source)
  if labels_csv is not None:
    class_names, labels = read_clip_labels(labels_csv, files, class_names)
  else:
    class_names, labels = None, None
  if num_shards > 1:
    if len(files) < num_shards:
      raise ValueError(f'{source}: {len(files)} file(s) cannot feed {num_shards} input '
                       'pipelines')
    files = files[shard_index::num_shards]
    labels = None if labels is None else labels[shard_index::num_shards]
  if len(files) < min_files:
    per = f' per input pipeline ({num_shards} pipelines)' if num_shards > 1 else ''
    raise ValueError(f'{source}: {len(files)} audio file(s){per}, but each mixture of '
                     f'mixtures needs {min_files} distinct files (train_data.num_mixtures = '
                     f'{min_files}): with fewer, a file would be mixed with itself')
  clip_length = int(round(clip_seconds * sample_rate))
  if clip_length <= 0:
    raise ValueError(f'clip_seconds must be positive, got {clip_seconds}')
  counter = skip_counter if skip_counter is not None else SkipCounter(len(files))
  counter.num_files = len(files)
  if check_headers:
    keep = []
    for index, path in enumerate(files):
      try:
        audio_io.audio_info(path)
      except (audio_io.AudioDecodeError, FileNotFoundError, ValueError) as e:
        if not skip_bad:
          raise ValueError(f'bad audio file in {source}: {_one_line(e)} (set '
                           'wild_mixtures.skip_bad = True to skip such files)') from None
        counter.skip(path, e)
        continue
      keep.append(index)
    if len(keep) < len(files):
      files = [files[i] for i in keep]
      labels = None if labels is None else labels[keep]
      if len(files) < min_files:
        raise ValueError(f'{source}: {len(files)} readable audio file(s) left after skipping '
                         f'bad ones, but each mixture of mixtures needs {min_files}')
  base_seed = seed

  def load(path: bytes, index: np.int64) -> Tuple[np.ndarray, np.bool_]:
    path = path.decode('utf-8')
    try:
      waveform, _ = audio_io.read_audio(path, sample_rate)
    except (audio_io.AudioDecodeError, FileNotFoundError) as e:
      if not skip_bad:
        raise
      counter.skip(path, e)
      return np.zeros([clip_length], np.float32), np.bool_(False)
    start = None
    if random_crop and waveform.shape[0] > clip_length:
      rng = np.random.default_rng(None if base_seed is None else [base_seed, int(index)])
      start = int(rng.integers(0, waveform.shape[0] - clip_length + 1))
    return crop_or_pad(waveform, clip_length, start).astype(np.float32), np.bool_(True)

  tensors = {'path': files}
  if labels is not None:
    tensors['labels'] = labels
  dataset = tf.data.Dataset.from_tensor_slices(tensors)
  if shuffle:
    dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
  if repeat:
    dataset = dataset.repeat()
  dataset = dataset.enumerate()

  def decode(index, element):
    waveform, ok = tf.numpy_function(load, [element['path'], index], [tf.float32, tf.bool],
                                     stateful=seed is None)
    waveform.set_shape([clip_length])
    ok.set_shape([])
    out = {'mixture': waveform, 'ok': ok}
    if labels is not None:
      out['labels'] = element['labels']
    return out

  dataset = dataset.map(decode, num_parallel_calls=num_parallel_calls, deterministic=True)
  dataset = dataset.filter(lambda element: element['ok'])
  dataset = dataset.map(lambda element: {k: v for k, v in element.items() if k != 'ok'})
  return dataset, class_names
