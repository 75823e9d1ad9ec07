"""FUSS example lists, weak-label sidecars and the tf.data FUSS reader.

Example list (`<root>/{train,validation,eval}_example_list.txt`, as FUSS ships
it): one example per line, tab separated, the mixture path first and then the
source paths (background first, then foregrounds; 1..4 sources). Relative paths
are relative to the list's folder; absolute and gs:// paths are kept. Blank
lines are skipped. The dry (`ssdata/`) and reverberant (`ssdata_reverb/`) FUSS
folders have the same layout, so one reader serves both.

Weak labels: a sidecar next to the list, `<list stem>.labels.tsv` (for
`train_example_list.txt`: `train_example_list.labels.tsv`), UTF-8, tab separated:

    #classes<TAB>class_0<TAB>class_1<TAB>...<TAB>class_{C-1}
    <mixture path><TAB><labels of source 1><TAB>...<TAB><labels of source K>

The header fixes the class vocabulary and its order (multi-hot index c is
class_c). Every other line starts with the mixture path exactly as written in
the example list and then holds one field per source, in list order; a field
is one class name or several joined by commas. Every example of the list must
have exactly one labels line with as many fields as it has sources. A mixture's
weak label is the union of its sources' classes.

Reader elements (before mixing, see `mom.py`):
    {'mixture': [T], 'sources': [S, T] (zero-padded to max_sources),
     'num_sources': int32, 'labels': [C] float32 multi-hot (when labels are on)}
`mixture` is the sum of the sources, as the official reader does; the mixture
file is only read to check it when `check_mixture` is on.

16-bit PCM WAV is decoded in-graph with `tf.audio.decode_wav`. Header checks
run as graph assertions whose messages name the file, so a truncated, empty or
wrongly encoded file stops the pipeline with its path instead of a bare op error.
"""
import dataclasses
import os
import posixpath
from typing import Dict, List, Optional, Sequence, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

from data_pipeline import audio_io

MAX_SOURCES = 4
LABELS_SUFFIX = '.labels.tsv'
CLASSES_HEADER = '#classes'


@dataclasses.dataclass(frozen=True)
class FussExample:
  """One line of a FUSS example list, with paths resolved.

  Attributes:
    mixture_path: absolute (or gs://) path of the mixture file.
    source_paths: paths of the sources, background first (1..max_sources).
    line_number: 1-based line in the list file, for error messages.
    labels: per-source class names (a tuple of names per source) when a labels
      sidecar was read, else None.
  """
  mixture_path: str
  source_paths: Tuple[str, ...]
  line_number: int
  labels: Optional[Tuple[Tuple[str, ...], ...]] = None

  @property
  def num_sources(self) -> int:
    return len(self.source_paths)


def _is_absolute(path: str) -> bool:
  return os.path.isabs(path) or '://' in path


def _join(root: str, path: str) -> str:
  return path if _is_absolute(path) else os.path.join(root, path)


def _inside(root: str, path: str) -> bool:
  """Whether `path` (already joined to `root`) is under `root`, once `..` are resolved."""
  def split(p):
    scheme, sep, rest = p.partition('://')
    return (scheme, rest) if sep else ('', os.path.abspath(p))
  root_scheme, root_rest = split(root or '.')
  scheme, rest = split(path)
  if scheme != root_scheme:
    return False
  root_rest = posixpath.normpath(root_rest.replace(os.sep, '/'))
  rest = posixpath.normpath(rest.replace(os.sep, '/'))
  return rest.startswith(root_rest.rstrip('/') + '/')


def _read_lines(path: str) -> List[str]:
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f'example list not found: {path}')
  with tf.io.gfile.GFile(path, 'rb') as f:
    raw = f.read()
  try:
    # utf-8-sig: a byte-order mark (Windows editors write one) is not part of the first path.
    return raw.decode('utf-8-sig').splitlines()
  except UnicodeDecodeError as e:
    raise ValueError(f'{path}: not a UTF-8 text file ({e})') from e


def labels_path_for(list_path: str) -> str:
  """`.../train_example_list.txt` -> `.../train_example_list.labels.tsv`."""
  stem = list_path[:-4] if list_path.endswith('.txt') else list_path
  return stem + LABELS_SUFFIX


def read_example_list(path: str,
                      max_sources: int = MAX_SOURCES,
                      check_files: bool = True,
                      labels_path: Optional[str] = None,
                      duplicates: str = 'warn',
                      allow_outside_root: bool = False) -> List[FussExample]:
  """Parses a FUSS example list.

  Args:
    path: the list file (local or gs://).
    max_sources: lines with more sources are rejected.
    check_files: check that every listed file exists (one stat per file).
    labels_path: a labels sidecar to attach (see the module docstring); None
      reads none.
    duplicates: what a line repeating an earlier line's mixture does: 'warn'
      (logged, naming both lines; the example is kept twice) or 'error'
      (a ValueError: the evaluator would score it twice).
    allow_outside_root: accept listed paths that resolve outside the list's
      folder (`../other/x.wav`, or an absolute path elsewhere). By default
      such a line is refused, naming the list, the line and the path: a list
      is data, and data must not make the reader open files elsewhere.

  Returns:
    The examples in list order.

  Raises:
    FileNotFoundError: the list, or (with check_files) a listed file, is
      missing; the message names the list line.
    ValueError: empty list, or a line with fewer than 2 or more than
      1 + max_sources fields, or an empty field; the message names file:line.
  """
  path = os.fspath(path)
  if duplicates not in ('warn', 'error'):
    raise ValueError(f"duplicates must be 'warn' or 'error', got {duplicates!r}")
  root = os.path.dirname(path)
  examples = []
  seen = {}
  for line_number, line in enumerate(_read_lines(path), start=1):
    if not line.strip():
      continue
    fields = line.rstrip('\r').split('\t')
    if len(fields) < 2 or len(fields) > 1 + max_sources:
      raise ValueError(
          f'{path}:{line_number}: expected a mixture path and 1..{max_sources} source paths '
          f'separated by tabs, got {len(fields)} field(s): {line[:200]!r}')
    if any(not field.strip() for field in fields):
      raise ValueError(f'{path}:{line_number}: empty field in {line[:200]!r}')
    resolved = [_join(root, field.strip()) for field in fields]
    if not allow_outside_root:
      for field, file_path in zip(fields, resolved):
        if not _inside(root, file_path):
          raise ValueError(f'{path}:{line_number}: path leaves the dataset root '
                           f'{root or "."}: {field.strip()!r} (pass allow_outside_root to '
                           'accept such lists)')
    if check_files:
      for file_path in resolved:
        if not tf.io.gfile.exists(file_path):
          raise FileNotFoundError(f'{path}:{line_number}: listed file not found: {file_path}')
    first = seen.setdefault(os.path.normpath(resolved[0]), line_number)
    if first != line_number:
      message = (f'{path}:{line_number}: duplicate of line {first} (mixture '
                 f'{fields[0].strip()})')
      if duplicates == 'error':
        raise ValueError(f'{message}: each example may be listed once')
      logging.warning('%s: the example is used twice', message)
    examples.append(FussExample(mixture_path=resolved[0], source_paths=tuple(resolved[1:]),
                                line_number=line_number))
  if not examples:
    raise ValueError(f'{path}: example list is empty')
  if labels_path is not None:
    examples = attach_labels(examples, path, labels_path)
  return examples


def read_labels(labels_path: str, root: Optional[str] = None
                ) -> Tuple[List[str], Dict[str, Tuple[int, Tuple[Tuple[str, ...], ...]]]]:
  """Reads a labels sidecar.

  Args:
    labels_path: the `.labels.tsv` file.
    root: folder that relative mixture paths are joined to (default: the
      sidecar's folder).

  Returns:
    (class_names, {resolved mixture path: (line number, per-source names)}).
  """
  labels_path = os.fspath(labels_path)
  root = os.path.dirname(labels_path) if root is None else root
  lines = _read_lines(labels_path)
  header_index = next((i for i, line in enumerate(lines) if line.strip()), None)
  if header_index is None:
    raise ValueError(f'{labels_path}: labels file is empty')
  header = lines[header_index].rstrip('\r').split('\t')
  if header[0] != CLASSES_HEADER or len(header) < 2:
    raise ValueError(f'{labels_path}:{header_index + 1}: first line must be '
                     f'"{CLASSES_HEADER}<TAB>class<TAB>...", got {lines[header_index][:200]!r}')
  class_names = [name.strip() for name in header[1:]]
  if any(not name for name in class_names) or len(set(class_names)) != len(class_names):
    raise ValueError(f'{labels_path}:{header_index + 1}: class names must be non-empty and '
                     f'distinct, got {class_names}')
  known = set(class_names)
  entries = {}
  for line_number, line in enumerate(lines[header_index + 1:], start=header_index + 2):
    if not line.strip():
      continue
    fields = line.rstrip('\r').split('\t')
    if len(fields) < 2:
      raise ValueError(f'{labels_path}:{line_number}: expected a mixture path and one label '
                       f'field per source, got {len(fields)} field(s)')
    per_source = []
    for field in fields[1:]:
      names = tuple(name.strip() for name in field.split(','))
      unknown = [name for name in names if name not in known]
      if unknown or not names:
        raise ValueError(f'{labels_path}:{line_number}: unknown class(es) {unknown} '
                         f'(classes: {class_names})')
      per_source.append(names)
    mixture = _join(root, fields[0].strip())
    if mixture in entries:
      raise ValueError(f'{labels_path}:{line_number}: duplicate labels for {fields[0]!r} '
                       f'(first on line {entries[mixture][0]})')
    entries[mixture] = (line_number, tuple(per_source))
  return class_names, entries


def attach_labels(examples: Sequence[FussExample], list_path: str,
                  labels_path: str) -> List[FussExample]:
  """Returns `examples` with their per-source labels from a sidecar."""
  _, entries = read_labels(labels_path, root=os.path.dirname(os.fspath(list_path)))
  out = []
  for example in examples:
    if example.mixture_path not in entries:
      raise ValueError(f'{labels_path}: no labels line for {example.mixture_path} '
                       f'({list_path}:{example.line_number})')
    line_number, per_source = entries[example.mixture_path]
    if len(per_source) != example.num_sources:
      raise ValueError(f'{labels_path}:{line_number}: {len(per_source)} label field(s) but '
                       f'{list_path}:{example.line_number} lists {example.num_sources} sources')
    out.append(dataclasses.replace(example, labels=per_source))
  return out


def multi_hot(names: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
  """Class names -> float32 multi-hot vector [C]."""
  index = {name: i for i, name in enumerate(class_names)}
  vector = np.zeros([len(class_names)], np.float32)
  for name in names:
    vector[index[name]] = 1.0
  return vector


# --------------------------------------------------------------------------
# In-graph WAV decoding.


def _le_uint(contents: tf.Tensor, offset: int, num_bytes: int) -> tf.Tensor:
  """Little-endian unsigned integer (2 or 4 bytes) at `offset`, as int64."""
  halves = tf.cast(tf.io.decode_raw(tf.strings.substr(contents, offset, num_bytes), tf.uint16),
                   tf.int64)
  if num_bytes == 2:
    return halves[0]
  return halves[0] + halves[1] * 65536


def _decode_wav_fallback(contents: bytes, path: bytes) -> Tuple[np.ndarray, np.int32]:
  waveform, rate = audio_io.decode_pcm16_wav(contents, path.decode('utf-8', 'replace'))
  return waveform, np.int32(rate)


def decode_wav_checked(path: tf.Tensor, sample_rate: int) -> tf.Tensor:
  """Reads and decodes a 16-bit PCM WAV file in-graph to mono float32 [time].

  The file's header is checked first by assertions whose messages carry the
  path: RIFF/WAVE magic, a RIFF size that fits the bytes present (truncation),
  PCM 16-bit when the fmt chunk sits at its usual offset, the sample rate, and
  a non-empty data chunk. A missing file fails in `tf.io.read_file`, whose
  error names the path.

  The canonical layout (`fmt ` of 16 or 18 bytes, format 1, then `data` of a
  known size) is decoded by `tf.audio.decode_wav`. Valid 16-bit files it
  rejects (WAVE_FORMAT_EXTENSIBLE, a LIST or other chunk before `fmt `, a
  streamed data chunk of size 0) are decoded by `audio_io.decode_pcm16_wav`
  instead, whose errors name the file too.
  """
  contents = tf.io.read_file(path)
  size = tf.strings.length(contents, unit='BYTE')
  # Padding keeps the fixed-offset header reads in range for tiny files.
  padded = tf.strings.join([contents, tf.constant(b'\0' * 64)])
  is_wav = tf.logical_and(
      size >= 44,
      tf.logical_and(tf.equal(tf.strings.substr(padded, 0, 4), b'RIFF'),
                     tf.equal(tf.strings.substr(padded, 8, 4), b'WAVE')))
  checks = [tf.debugging.Assert(is_wav, ['not a RIFF/WAVE file:', path])]
  riff_size = _le_uint(padded, 4, 4)
  streamed_riff = tf.logical_or(tf.equal(riff_size, 0), tf.equal(riff_size, 0xFFFFFFFF))
  checks.append(tf.debugging.Assert(
      tf.logical_or(tf.logical_or(tf.logical_not(is_wav), streamed_riff),
                    riff_size + 8 <= tf.cast(size, tf.int64)),
      ['truncated WAV file (RIFF header declares', riff_size + 8, 'bytes, file has', size,
       'bytes):', path]))
  has_fmt = tf.logical_and(is_wav, tf.equal(tf.strings.substr(padded, 12, 4), b'fmt '))
  format_tag = _le_uint(padded, 20, 2)
  bits = _le_uint(padded, 34, 2)
  checks.append(tf.debugging.Assert(
      tf.logical_or(tf.logical_not(has_fmt),
                    tf.logical_and(tf.equal(bits, 16),
                                   tf.logical_or(tf.equal(format_tag, 1),
                                                 tf.equal(format_tag, 0xFFFE)))),
      ['the in-graph WAV reader needs 16-bit PCM; format tag', format_tag, 'bits', bits,
       'in', path]))
  fmt_size = _le_uint(padded, 16, 4)
  data_at = tf.cast(tf.minimum(20 + fmt_size, tf.cast(size, tf.int64)), tf.int32)
  data_size = _le_uint(tf.strings.substr(padded, data_at + 4, 4), 0, 4)
  canonical = tf.logical_and(
      tf.logical_and(has_fmt, tf.equal(format_tag, 1)),
      tf.logical_and(tf.logical_or(tf.equal(fmt_size, 16), tf.equal(fmt_size, 18)),
                     tf.logical_and(tf.equal(tf.strings.substr(padded, data_at, 4), b'data'),
                                    tf.logical_and(data_size > 0,
                                                   data_size < 0xFFFFFFFF))))

  def in_graph():
    decoded = tf.audio.decode_wav(contents)
    return decoded.audio, decoded.sample_rate

  def fallback():
    audio, rate = tf.numpy_function(_decode_wav_fallback, [contents, path],
                                    [tf.float32, tf.int32], stateful=False)
    audio.set_shape([None, None])
    rate.set_shape([])
    return audio, rate

  with tf.control_dependencies(checks):
    audio, rate = tf.cond(canonical, in_graph, fallback)
  checks = [
      tf.debugging.Assert(tf.equal(rate, sample_rate),
                          ['expected sample rate', sample_rate, 'got', rate, 'in', path]),
      tf.debugging.Assert(tf.shape(audio)[0] > 0, ['WAV file holds no samples:', path]),
  ]
  with tf.control_dependencies(checks):
    return tf.reduce_mean(audio, axis=1)


def _crop_start(length: tf.Tensor, clip_length: int, random_crop: bool, seed: Optional[int],
                index: tf.Tensor) -> tf.Tensor:
  if not random_crop:
    return tf.constant(0, tf.int32)
  span = tf.maximum(length - clip_length + 1, 1)
  if seed is None:
    return tf.random.uniform([], 0, span, dtype=tf.int32)
  return tf.random.stateless_uniform([], seed=tf.stack([tf.cast(seed, tf.int64), index]),
                                     minval=0, maxval=span, dtype=tf.int32)


# --------------------------------------------------------------------------
# The FUSS dataset.


def load_examples(list_path: str, max_sources: int = MAX_SOURCES, labels: bool = False,
                  check_files: bool = True, allow_outside_root: bool = False
                  ) -> Tuple[List[FussExample], Optional[List[str]]]:
  """The examples of a list and, when `labels`, the class names of its sidecar."""
  examples = read_example_list(list_path, max_sources=max_sources, check_files=check_files,
                               allow_outside_root=allow_outside_root)
  if not labels:
    return examples, None
  sidecar = labels_path_for(list_path)
  if not tf.io.gfile.exists(sidecar):
    raise FileNotFoundError(f'labels requested but the sidecar {sidecar} of {list_path} '
                            'does not exist')
  class_names, _ = read_labels(sidecar, root=os.path.dirname(list_path))
  return attach_labels(examples, list_path, sidecar), class_names


def fuss_dataset(examples: Sequence[FussExample],
                 max_sources: int = MAX_SOURCES,
                 sample_rate: int = 16000,
                 clip_seconds: Optional[float] = 10.0,
                 random_crop: bool = False,
                 class_names: Optional[Sequence[str]] = None,
                 check_mixture: bool = False,
                 mixture_tolerance: float = 1e-3,
                 shuffle: bool = False,
                 repeat: bool = False,
                 seed: Optional[int] = None,
                 num_parallel_calls: int = tf.data.AUTOTUNE) -> tf.data.Dataset:
  """A tf.data pipeline of FUSS examples.

  Args:
    examples: from `read_example_list` / `load_examples` (already sharded).
    max_sources: S, the padded source count.
    sample_rate: every file must have this rate.
    clip_seconds: crop length; None keeps whole files (all of one length).
    random_crop: uniform crop start (seeded); else crops start at 0.
    class_names: when given, examples must carry labels and elements get
      'labels' [C] (mixture: union of its sources) and 'source_labels' [S, C].
    check_mixture: also read the mixture file and assert it equals the sum of
      the sources within `mixture_tolerance` (max abs difference).
    shuffle, repeat, seed: file-order shuffling (reshuffled each epoch),
      infinite repetition, and the seed of shuffling and crops.

  Returns:
    Dataset of {'mixture': [T], 'sources': [S, T], 'num_sources': int32} (+ labels).
  """
  examples = list(examples)
  if not examples:
    raise ValueError('fuss_dataset: no examples')
  clip_length = None if clip_seconds is None else int(round(clip_seconds * sample_rate))
  if clip_length is not None and clip_length <= 0:
    raise ValueError(f'clip_seconds must be positive, got {clip_seconds}')
  for example in examples:
    if example.num_sources > max_sources:
      raise ValueError(f'{example.mixture_path} (list line {example.line_number}) has '
                       f'{example.num_sources} sources > max_sources={max_sources}')
  tensors = {
      'mixture_path': [e.mixture_path for e in examples],
      'source_paths': [list(e.source_paths) + [''] * (max_sources - e.num_sources)
                       for e in examples],
      'num_sources': np.array([e.num_sources for e in examples], np.int32),
  }
  if class_names is not None:
    source_labels = np.zeros([len(examples), max_sources, len(class_names)], np.float32)
    for i, example in enumerate(examples):
      if example.labels is None:
        raise ValueError(f'{example.mixture_path}: labels requested but the example has none')
      for j, names in enumerate(example.labels):
        source_labels[i, j] = multi_hot(names, class_names)
    tensors['source_labels'] = source_labels
  dataset = tf.data.Dataset.from_tensor_slices(tensors)
  if shuffle:
    dataset = dataset.shuffle(len(examples), seed=seed, reshuffle_each_iteration=True)
  if repeat:
    dataset = dataset.repeat()
  dataset = dataset.enumerate()

  def load(index, element):
    num_sources = element['num_sources']
    paths = element['source_paths']
    first = decode_wav_checked(paths[0], sample_rate)
    length = tf.shape(first)[0]
    if clip_length is None:
      out_length = length
      start = tf.constant(0, tf.int32)
    else:
      out_length = clip_length
      with tf.control_dependencies([tf.debugging.Assert(
          length >= clip_length, ['clip shorter than requested:', length, 'samples <',
                                  clip_length, 'in', paths[0]])]):
        start = _crop_start(length, clip_length, random_crop, seed, index)

    def crop(waveform, path):
      with tf.control_dependencies([tf.debugging.Assert(
          tf.equal(tf.shape(waveform)[0], length),
          ['source length', tf.shape(waveform)[0], 'differs from the first source', length,
           'in', path])]):
        return waveform[start:start + out_length]

    sources = [crop(first, paths[0])]
    for j in range(1, max_sources):
      sources.append(tf.cond(
          j < num_sources,
          lambda j=j: crop(decode_wav_checked(paths[j], sample_rate), paths[j]),
          lambda: tf.zeros([out_length], tf.float32)))
    sources = tf.stack(sources)
    if clip_length is not None:
      sources = tf.ensure_shape(sources, [max_sources, clip_length])
    mixture = tf.reduce_sum(sources, axis=0)
    if check_mixture:
      file_mixture = crop(decode_wav_checked(element['mixture_path'], sample_rate),
                          element['mixture_path'])
      error = tf.reduce_max(tf.abs(file_mixture - mixture))
      with tf.control_dependencies([tf.debugging.Assert(
          error <= mixture_tolerance,
          ['mixture file differs from the sum of its sources by', error, '>',
           mixture_tolerance, ':', element['mixture_path']])]):
        mixture = tf.identity(mixture)
    out = {'mixture': mixture, 'sources': sources, 'num_sources': num_sources}
    if class_names is not None:
      out['source_labels'] = element['source_labels']
      out['labels'] = tf.reduce_max(element['source_labels'], axis=0)
    return out

  return dataset.map(load, num_parallel_calls=num_parallel_calls,
                     deterministic=True)
