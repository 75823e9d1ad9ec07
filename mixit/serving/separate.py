"""Separating audio files with an exported SavedModel (`mixit-separate`).

    mixit-separate --saved_model E --input FILE_OR_FOLDER --output_dir O
        [--max_chunk_seconds 20 --overlap 2 --drop_silent --overwrite --skip_bad]

Each input `<name>.<ext>` (in a folder: the extensions of
`data_pipeline.audio_io.AUDIO_EXTENSIONS`, WAV, FLAC, OGG, Opus, AIFF, AU,
MP3; any rate and channel count, channels averaged) gives
`<name>_source{i}.wav`, i = 0..M-1, at the input's rate; inputs found in
subfolders of a folder keep their relative path under the output dir. Files are
read in blocks and the sources written as they are finished (see
`mixit.serving.separator`), so memory stays bounded for recordings of any
length. Outputs are written to hidden `.partial` files and renamed at the end,
so a failure never leaves a half-written source behind. All reading and
writing goes through `data_pipeline.audio_io` and `tf.io.gfile`, so inputs and
the output dir may be on gs:// (or ram://).

The outputs written are listed in `.mixit_separate.json` in their folder (see
`OutputRecord`): only those files are ever replaced or removed (`--overwrite`
also removes an input's earlier outputs that are not written again), and an
existing file that the record does not list is never overwritten.
"""
from __future__ import annotations

import dataclasses
import os
import re
import time
from typing import List, Optional, Sequence, Tuple, Union

from absl import logging
import numpy as np
import tensorflow as tf

from data_pipeline import audio_io
from mixit import owned_files
from mixit import progress as progress_lib
from mixit.serving import separator as separator_lib

OUTPUT_SUBTYPES = ('FLOAT', 'PCM_16')
# Outputs quieter than this, relative to the mixture's power, count as silent
# for --drop_silent: well below the -20 dB at which the FUSS evaluator stops
# scoring an estimate, so nothing it would count is dropped.
DEFAULT_SILENCE_DB = -30.0
# Read half a second at a time: well under a window, and few enough numpy calls.
_BLOCK_SECONDS = 0.5


@dataclasses.dataclass
class FileResult:
  """What separating one file produced."""
  input_path: str
  output_paths: List[str]  # the sources kept, in source order
  dropped: List[int]  # indices of sources dropped as silent
  seconds: float  # audio duration
  num_windows: int
  source_power_db: List[float]  # each source's power relative to the mixture's


@dataclasses.dataclass
class BatchReport:
  succeeded: List[FileResult]
  failed: List[Tuple[str, str]]  # (input path, error message)


# --------------------------------------------------------------------------
# Inputs and outputs.


# An --input with one of these extensions is a list of paths, one a line (no audio format
# uses them).
LIST_EXTENSIONS = ('.txt', '.lst')
_GLOB_CHARACTERS = ('*', '?', '[')


def find_inputs(input_path: str) -> List[Tuple[str, str]]:
  """Audio files to separate: [(path, output stem relative to the output dir)].

  `input_path` is one of:
  - an audio file, taken whatever its extension (stem: its name);
  - a folder, searched recursively by `audio_io.find_audio_files`
    (`audio_io.AUDIO_EXTENSIONS`, hidden files and folders skipped; a folder's
    files, sorted, before its subfolders'; stems: paths relative to the folder);
  - a list file (`LIST_EXTENSIONS`: `.txt`, `.lst`): one path a line, UTF-8,
    blank lines and `#` comments skipped, a relative path relative to the list's
    folder, a repeated path taken once (stems: paths relative to the list's folder
    for those under it, the file name for the others; a listed file that is
    missing or bad fails when it is separated, like any other);
  - a glob (a path that does not exist and holds `*`, `?` or `[`): the audio
    files (`audio_io.AUDIO_EXTENSIONS`, hidden files skipped) that
    `tf.io.gfile.glob` matches (stems: paths relative to the folder before the
    first wildcard).
  Stems are without extension; two inputs with the same stem are refused. Paths go
  through `tf.io.gfile` (local, gs://, ram://).
  """
  input_path = os.fspath(input_path)
  audio_io.check_utf8_name(input_path)
  exists = tf.io.gfile.exists(input_path)
  if not exists and any(c in input_path for c in _GLOB_CHARACTERS):
    found = _glob_inputs(input_path)
  elif not exists:
    raise FileNotFoundError(f'--input {input_path} does not exist')
  elif not tf.io.gfile.isdir(input_path):
    if not input_path.lower().endswith(LIST_EXTENSIONS):
      return [(input_path, os.path.splitext(os.path.basename(input_path))[0])]
    found = _listed_inputs(input_path)
  else:
    found = [(path, os.path.splitext(os.path.relpath(path, input_path))[0])
             for path in audio_io.find_audio_files(input_path)]
    if not found:
      raise ValueError(f'--input folder {input_path} holds no audio files '
                       f'({", ".join(audio_io.AUDIO_EXTENSIONS)})')
  stems = {}
  for path, stem in found:
    stems.setdefault(stem, []).append(path)
  clashes = [paths for paths in stems.values() if len(paths) > 1]
  if clashes:
    raise ValueError(f'files whose outputs would share a name (same name, different '
                     f'extension or folder): {clashes[:5]}')
  return found


def _stem(path: str, root: str) -> str:
  """`path` relative to the folder `root` when it lies under it, else its file name; without
  the extension."""
  root = '' if root in ('', '.') else root.rstrip('/')
  relative = None
  if root and path.startswith(root + '/'):
    relative = path[len(root) + 1:]
  elif not root and '://' not in path and not os.path.isabs(path):
    relative = path
  if relative is not None:
    relative = os.path.normpath(relative)
  if relative is None or relative == '..' or relative.startswith('../'):
    relative = os.path.basename(path)
  return os.path.splitext(relative)[0]


def _listed_inputs(list_path: str) -> List[Tuple[str, str]]:
  """The paths a list file names (see `find_inputs`)."""
  with tf.io.gfile.GFile(list_path, 'rb') as f:
    data = f.read()
  try:
    text = data.decode('utf-8-sig')
  except UnicodeDecodeError as e:
    raise ValueError(f'--input list {list_path} is not UTF-8 text ({e})') from None
  folder = os.path.dirname(list_path)
  paths = []
  for line in text.splitlines():
    line = line.strip()
    if not line or line.startswith('#'):
      continue
    path = line if (os.path.isabs(line) or '://' in line) else os.path.join(folder, line)
    paths.append(path)
  unique = list(dict.fromkeys(paths))
  if len(unique) < len(paths):
    logging.warning('--input list %s names %d path(s) more than once: each is separated once',
                    list_path, len(paths) - len(unique))
  if not unique:
    raise ValueError(f'--input list {list_path} names no files')
  return [(path, _stem(path, folder)) for path in unique]


def _glob_inputs(pattern: str) -> List[Tuple[str, str]]:
  """The audio files a glob matches (see `find_inputs`)."""
  parts = pattern.split('/')
  fixed = next(i for i, part in enumerate(parts) if any(c in part for c in _GLOB_CHARACTERS))
  root = '/'.join(parts[:fixed])
  found = [path.rstrip('/') for path in sorted(tf.io.gfile.glob(pattern))]
  found = [path for path in found if not os.path.basename(path).startswith('.')
           and path.lower().endswith(audio_io.AUDIO_EXTENSIONS)]
  if not found:
    raise ValueError(f'--input {pattern} matches no audio files '
                     f'({", ".join(audio_io.AUDIO_EXTENSIONS)})')
  return [(path, _stem(path, root)) for path in found]


def _resolved(path: str) -> str:
  """A local path with its symbolic links resolved; a URL (gs://, ram://) as it is."""
  return path if '://' in path else os.path.realpath(path)


RECORD_FILENAME = owned_files.SEPARATION.filename
RECORD_FORMAT = owned_files.SEPARATION.format


class OutputRecord:
  """What this tool wrote into one folder: `<folder>/.mixit_separate.json`
  (`mixit.owned_files.SEPARATION`, a record grouped by input).

  `{"format": ..., "inputs": {"<name>": {"input": path, "num_sources": M,
  "outputs": ["<name>_source0.wav", ...], "dropped": [i, ...]}}}`, file names
  in that folder (each folder of outputs, subfolders included, has its own
  record, so a later run on a subfolder finds it). Only files listed here are
  ever replaced or removed, and only they are told apart from inputs when the
  output dir lies in the input folder: a user's own `bird_source1.wav` is an
  input like any other, and never overwritten. `mixit-evaluate
  --separated_dir` reads the record to know how many outputs each example has.

  `shared`: concurrent writers add to this folder (the workers of
  `mixit-separate-beam`). The record is then read once and never rewritten: each
  input's entry is written as its own part (`.mixit_separate.parts/<name>.json`,
  atomically, by the one worker separating that input; `owned_files.Record.write_part`),
  read afresh when that input is separated (`refresh`), and folded into the record
  by `owned_files.Record.merge_parts` at the end of the run. Every reader (this
  class unshared, `mixit-evaluate`) sees the parts merged in.
  """

  def __init__(self, output_dir: str, shared: bool = False):
    self.output_dir = os.fspath(output_dir)
    self.shared = shared
    self._record = owned_files.Record(self.output_dir, owned_files.SEPARATION,
                                      read_parts=not shared)
    self._parts_read = set()
    self.path = self._record.path

  @property
  def inputs(self) -> dict:
    return self._record.groups

  def _relative(self, path: str) -> str:
    return os.path.relpath(_resolved(path), _resolved(self.output_dir))

  def refresh(self, name: str) -> None:
    """Reads input `name`'s part afresh (shared: another attempt may have written it)."""
    self._record.read_part(name)
    self._parts_read.add(name)

  def _load(self, name: str) -> None:
    if self.shared and name not in self._parts_read:
      self.refresh(name)

  def owns(self, path: str) -> bool:
    parsed = parse_output_name(path)
    if parsed:
      self._load(parsed[0])
    return self._record.owns(self._relative(path))

  def outputs_of(self, stem: str) -> List[str]:
    """The outputs recorded for input `stem`: in the record, and in its part (a finished or
    pending separation of a concurrent run)."""
    self._load(stem)
    return [os.path.join(self.output_dir, p) for p in self._record.group_files(stem)]

  def set(self, stem: str, input_path: str, num_sources: int, outputs: Sequence[str],
          dropped: Sequence[int], seconds: Optional[float] = None,
          source_power_db: Optional[Sequence[float]] = None) -> None:
    """Records (and saves) what separating `input_path` wrote (shared: as its part): also,
    when given, the input's duration and each source's level relative to it (dB, to 0.01)."""
    fields = dict(input=os.path.abspath(input_path) if '://' not in input_path else input_path,
                  num_sources=int(num_sources), dropped=[int(i) for i in dropped])
    if seconds is not None:
      fields['seconds'] = round(float(seconds), 6)
    if source_power_db is not None:
      fields['source_power_db'] = [round(float(db), 2) for db in source_power_db]
    files = sorted(set(self._relative(p) for p in outputs))
    if self.shared:
      self._record.write_part(stem, files, **fields)
    else:
      self._record.set_group(stem, files, **fields)

  def claim(self, stem: str, input_path: str, num_sources: int,
            outputs: Sequence[str]) -> None:
    """Records, before they are put in place, the outputs that separating `input_path` may
    write (a pending part): an attempt killed between putting them in place and `set`
    leaves files that the next attempt knows as this tool's."""
    self._record.write_part(
        stem, sorted(set(self._relative(p) for p in outputs)), pending=True,
        input=os.path.abspath(input_path) if '://' not in input_path else input_path,
        num_sources=int(num_sources), dropped=[])

  def unclaim(self, stem: str) -> None:
    """Drops input `stem`'s part (a claim whose outputs were never put in place)."""
    self._record.remove_parts([stem])

  def state(self, stem: str, num_sources: int) -> str:
    """What a rerun finds of input `stem` separated into `num_sources` outputs: 'complete'
    (recorded with that M, every recorded output there), 'incomplete' (recorded with that M
    but an output missing, or claimed by an attempt that did not finish), 'other' (recorded
    with another M) or 'new'."""
    self._load(stem)
    part = self._record.parts.get(stem)
    entry = dict(part['entry']) if part and part['pending'] else self._record.group(stem)
    if entry is None:
      return 'new'
    if entry.get('num_sources') != num_sources:
      return 'other'
    if part and part['pending']:
      return 'incomplete'
    present = all(tf.io.gfile.exists(os.path.join(self.output_dir, name))
                  for name in entry['outputs'])
    return 'complete' if present else 'incomplete'

  def entry(self, name: str) -> Optional[dict]:
    self._load(name)
    return self._record.group(name)

  def save(self) -> None:
    self._record.save()


# `<stem>_source<i>.wav`, the name of an output (`output_paths` writes them).
_OUTPUT_NAME = re.compile(r'(.*)_source(\d+)\.wav')


def parse_output_name(path: str) -> Optional[Tuple[str, int]]:
  """`(stem, i)` of an output `.../<stem>_source<i>.wav`; None for any other name."""
  match = _OUTPUT_NAME.fullmatch(os.path.basename(path))
  return (match.group(1), int(match.group(2))) if match else None


class Records:
  """The `OutputRecord` of each output folder, read once (`shared`: see `OutputRecord`)."""

  def __init__(self, shared: bool = False):
    self.shared = shared
    self._by_folder = {}

  def folder(self, folder: str) -> OutputRecord:
    key = _resolved(folder)
    if key not in self._by_folder:
      self._by_folder[key] = OutputRecord(folder, shared=self.shared)
    return self._by_folder[key]

  def owns(self, path: str) -> bool:
    return self.folder(os.path.dirname(path) or '.').owns(path)


def exclude_own_outputs(inputs: List[Tuple[str, str]], output_dir: str,
                         record: Records) -> List[Tuple[str, str]]:
  """Drops this tool's earlier outputs (as recorded) from the inputs when the output dir
  lies in the input folder, so that a rerun does not separate its own sources; every
  other file, whatever its name, stays an input."""
  kept = [(path, stem) for path, stem in inputs if not record.owns(path)]
  if inputs and not kept:
    raise ValueError(f'all inputs are outputs of an earlier separation in {output_dir}')
  return kept


def check_outputs(paths: Sequence[str], records: Records, input_path: str,
                overwrite: bool) -> None:
  """Raises FileExistsError for an output path that exists: always for a file this tool
  did not write, and without `overwrite` for its own."""
  existing = [p for p in paths if tf.io.gfile.exists(p)]
  foreign = [p for p in existing if not records.owns(p)]
  if foreign:
    raise FileExistsError(
        f'{input_path}: output {foreign[0]} exists and was not written by mixit-separate '
        f'(its folder\'s {RECORD_FILENAME} does not list it); it is never overwritten: '
        'separate into another --output_dir, or move that file')
  if existing and not overwrite:
    raise FileExistsError(f'{input_path}: outputs exist ({existing[0]}' +
                          (f' and {len(existing) - 1} more' if len(existing) > 1 else '') +
                          '); pass --overwrite to replace them')


def output_paths(output_dir: str, stem: str, num_sources: int) -> List[str]:
  return [os.path.join(output_dir, f'{stem}_source{i}.wav') for i in range(num_sources)]


def _partial_path(path: str) -> str:
  folder, name = os.path.split(path)
  return os.path.join(folder, f'.{name}.partial')


class _SourceWriters:
  """One mono WAV per source (`audio_io.AudioWriter`), put at hidden `.partial` paths on
  `close`, with the running energy and peak of each source."""

  def __init__(self, paths: Sequence[str], sample_rate: int, subtype: str):
    self.paths = list(paths)
    self.partial = [_partial_path(p) for p in self.paths]
    self.energy = np.zeros(len(paths), np.float64)
    self.peak = 0.0
    self.frames = 0
    self._files = [audio_io.AudioWriter(path, sample_rate, channels=1, subtype=subtype)
                   for path in self.partial]

  def write(self, sources: np.ndarray) -> None:
    """sources: `[M, time]` float32 (quantised by the writers for PCM_16)."""
    self.energy += np.sum(np.square(sources, dtype=np.float64), axis=1)
    self.peak = max(self.peak, float(np.max(np.abs(sources))))
    self.frames += sources.shape[1]
    for f, source in zip(self._files, sources):
      f.write(source)

  def close(self) -> None:
    for f in self._files:
      f.close()
    self._files = []

  def discard(self) -> None:
    for f in self._files:
      f.discard()
    self._files = []
    for path in self.partial:
      if tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)


# --------------------------------------------------------------------------
# Progress display.


class Progress:
  """Each file's progress on stderr: a `mixit.progress.Bar` over its seconds of audio (rate
  and ETA, redrawn on a terminal), then one line per file, which is all a log gets."""

  def __init__(self, enabled: bool = True, stream=None, interval: float = 0.5):
    self._enabled, self._stream, self._interval = enabled, stream, interval
    self._bar = None

  def start_file(self, index: int, count: int, name: str, seconds: float) -> None:
    width = len(str(count))
    self._bar = progress_lib.Bar(seconds, 's', prefix=f'[{index + 1:{width}d}/{count}] {name}',
                                 enabled=self._enabled, stream=self._stream,
                                 interval=self._interval, log_lines=0)
    self._bar.update(0.0, force=True)

  def update(self, seconds_done: float, force: bool = False) -> None:
    if self._bar is not None:
      self._bar.update(seconds_done, force=force)

  def end_file(self, message: str) -> None:
    if self._bar is not None:
      self._bar.finish(f'{self._bar.prefix}: {message}')


# --------------------------------------------------------------------------
# Separation.


def separate_file(separator: separator_lib.Separator, input_path: str, output_dir: str,
                  stem: Optional[str] = None, *, output_sample_rate: Optional[int] = None,
                  max_chunk_seconds: Optional[float] = None,
                  overlap_seconds: Optional[float] = None, drop_silent: bool = False,
                  silence_db: float = DEFAULT_SILENCE_DB, overwrite: bool = False,
                  subtype: str = 'FLOAT', progress: Optional[Progress] = None,
                  block_seconds: float = _BLOCK_SECONDS,
                  records: Optional[Records] = None) -> FileResult:
  """Separates one file into `output_dir/<stem>_source{i}.wav`.

  The steps: check the outputs may be written (`check_outputs`), open the input
  (`audio_io.open_audio`) and a stream resampling to the model rate and back
  (`_open_stream`), separate it block by block into `.partial` files
  (`_separate_blocks`), measure the sources (`_relative_power_db`), put them in
  place or drop the silent ones (`_put_in_place`), then update the folder's
  record (`_record`). Paths go through `tf.io.gfile` (local, gs://, ram://).

  Args:
    separator: from `mixit.serving.separator.load_separator`.
    input_path: an audio file (any rate and channel count).
    output_dir: output folder (created).
    stem: output name prefix; default the input's name without extension.
    output_sample_rate: rate of the outputs; default the input's.
    max_chunk_seconds, overlap_seconds: windowing (defaults from `separator`).
    drop_silent: do not keep sources whose power is `silence_db` below the mixture's.
    overwrite: replace this tool's earlier outputs of the input, and remove
      those it does not write again (another M, dropped sources); else
      FileExistsError. A file the record (`OutputRecord`) does not list is
      never replaced: FileExistsError either way.
    subtype: 'FLOAT' (32-bit float WAV) or 'PCM_16'.
    progress: where to show progress.
    records: the output folders' records (`Records`; read from disk by default).

  Raises:
    FileNotFoundError, FileExistsError, ValueError (naming the file): missing,
    unreadable, empty, silent-length or non-finite input, unusable sample rate.
  """
  input_path = os.fspath(input_path)
  subtype = subtype.upper()
  if subtype not in OUTPUT_SUBTYPES:
    raise ValueError(f'output subtype must be one of {OUTPUT_SUBTYPES}, got {subtype!r}')
  if stem is None:
    stem = os.path.splitext(os.path.basename(input_path))[0]
  records = records if records is not None else Records()
  paths = output_paths(output_dir, stem, separator.num_sources)
  check_outputs(paths, records, input_path, overwrite)
  with audio_io.open_audio(input_path) as reader:
    stream = _open_stream(separator, reader, output_sample_rate, max_chunk_seconds,
                          overlap_seconds)
    if progress is not None:
      progress.update(0.0, force=True)
    writers = _SourceWriters(paths, stream.output_rate, subtype)
    try:
      mixture_energy = _separate_blocks(reader, stream, writers, block_seconds, progress)
      writers.close()
    except BaseException:
      writers.discard()
      raise
  if subtype == 'PCM_16' and writers.peak > 32767 / 32768:
    logging.warning('%s: a source peaks at %.3f; clipped in the 16-bit output', input_path,
                    writers.peak)
  mixture_power = mixture_energy / max(stream.input_samples, 1)
  relative_db = _relative_power_db(writers, mixture_power)
  kept, dropped = _put_in_place(writers, relative_db, mixture_power, drop_silent, silence_db)
  seconds = reader.frames / reader.sample_rate
  _record(records, input_path, paths, stem, separator.num_sources, kept, dropped, seconds,
          relative_db)
  return FileResult(input_path=input_path, output_paths=kept, dropped=dropped, seconds=seconds,
                    num_windows=stream.num_windows, source_power_db=relative_db)


def _open_stream(separator: separator_lib.Separator, reader: audio_io.AudioReader,
                 output_sample_rate: Optional[int], max_chunk_seconds: Optional[float],
                 overlap_seconds: Optional[float]) -> separator_lib.SeparationStream:
  """The separation stream for the open input, errors naming the file."""
  if reader.frames == 0:
    raise audio_io.AudioDecodeError(f'{reader.path}: audio holds no samples')
  try:
    return separator.stream(reader.sample_rate, output_rate=output_sample_rate,
                            max_chunk_seconds=max_chunk_seconds,
                            overlap_seconds=overlap_seconds)
  except ValueError as e:
    raise ValueError(f'{reader.path}: {e}') from e


def _separate_blocks(reader: audio_io.AudioReader, stream: separator_lib.SeparationStream,
                     writers: _SourceWriters, block_seconds: float,
                     progress: Optional[Progress]) -> float:
  """Feeds the input's down-mixed blocks through the stream into the writers (the
  reader checks the input was complete); returns the mixture's energy."""
  rate = reader.sample_rate
  mixture_energy = 0.0
  try:
    for mono in reader.blocks(max(int(block_seconds * rate), 1), mono=True):
      mixture_energy += float(np.sum(np.square(mono, dtype=np.float64)))
      for sources in stream.push(mono):
        writers.write(sources)
      if progress is not None:
        progress.update(stream.input_samples / rate)
    for sources in stream.finish():
      writers.write(sources)
  except audio_io.AudioDecodeError:
    raise
  except ValueError as e:
    raise ValueError(f'{reader.path}: {e}') from e
  return mixture_energy


def _relative_power_db(writers: _SourceWriters, mixture_power: float) -> List[float]:
  """Each source's power relative to the mixture's, in dB."""
  source_power = writers.energy / max(writers.frames, 1)
  return [float(10 * np.log10(max(p, 1e-30) / max(mixture_power, 1e-30)))
          for p in source_power]


def _put_in_place(writers: _SourceWriters, relative_db: Sequence[float], mixture_power: float,
                  drop_silent: bool, silence_db: float) -> Tuple[List[str], List[int]]:
  """Renames the `.partial` files to the outputs, or removes the silent ones with
  `drop_silent`; returns (kept paths, dropped source indices)."""
  kept, dropped = [], []
  for i, (path, partial) in enumerate(zip(writers.paths, writers.partial)):
    silent = drop_silent and (mixture_power == 0 or relative_db[i] <= silence_db)
    if silent:
      dropped.append(i)
      tf.io.gfile.remove(partial)
    else:
      tf.io.gfile.rename(partial, path, overwrite=True)
      kept.append(path)
  return kept, dropped


def _record(records: Records, input_path: str, paths: Sequence[str], stem: str,
            num_sources: int, kept: Sequence[str], dropped: Sequence[int], seconds: float,
            source_power_db: Sequence[float]) -> None:
  """Lists this run's outputs in the folder's record, after removing the earlier
  outputs of this input that it did not write again."""
  # Earlier outputs of this input that this run did not write again (another model's
  # extra sources, sources now dropped as silent) would be read as this run's: remove
  # them, they are this tool's own files.
  record = records.folder(os.path.dirname(paths[0]) or '.')
  name = os.path.basename(stem)
  stale = [p for p in record.outputs_of(name) if p not in kept and tf.io.gfile.exists(p)]
  for path in stale:
    tf.io.gfile.remove(path)
  if stale:
    logging.info('%s: removed %d stale output(s) of an earlier separation: %s', input_path,
                 len(stale), ', '.join(stale))
  record.set(name, input_path, num_sources, kept, dropped, seconds, source_power_db)


def separate_if_needed(separator: separator_lib.Separator, input_path: str, output_dir: str,
                       stem: Optional[str] = None, *, overwrite: bool = False,
                       records: Records, **kwargs) -> Optional[FileResult]:
  """`separate_file` for a run that is retried, killed and rerun (the workers of
  `mixit-separate-beam`, with `Records(shared=True)`); None: skipped as complete.

  The input's outputs are skipped when its record says they are complete
  (`OutputRecord.state`), unless `overwrite`. A separation of this tool's that is
  incomplete (a recorded output missing, or an attempt killed between putting
  its outputs in place and recording them) is done again, replacing those files
  of its own without `overwrite`; outputs recorded with another number of sources
  need `overwrite`, as in `separate_file`, and a file the record does not list is
  never replaced. Before the outputs are put in place they are claimed
  (`OutputRecord.claim`); a failure that leaves none of them drops the claim.
  """
  input_path = os.fspath(input_path)
  if stem is None:
    stem = os.path.splitext(os.path.basename(input_path))[0]
  paths = output_paths(output_dir, stem, separator.num_sources)
  record = records.folder(os.path.dirname(paths[0]) or '.')
  name = os.path.basename(stem)
  record.refresh(name)
  state = record.state(name, separator.num_sources)
  if state == 'complete' and not overwrite:
    return None
  replace = overwrite or state == 'incomplete'
  check_outputs(paths, records, input_path, replace)
  record.claim(name, input_path, separator.num_sources, paths)
  try:
    return separate_file(separator, input_path, output_dir, stem, overwrite=replace,
                         records=records, **kwargs)
  except BaseException:
    if not any(tf.io.gfile.exists(p) for p in paths):
      record.unclaim(name)
    raise


def separate_files(separator: Union[str, separator_lib.Separator], input_path: str,
                   output_dir: str, *, skip_bad: bool = False, overwrite: bool = False,
                   progress: bool = False, **kwargs) -> BatchReport:
  """Separates a file or every audio file in a folder (see `separate_file`).

  Existing outputs are checked for every file before any work starts. With
  `skip_bad`, a file that fails (or whose outputs exist, without `overwrite`)
  is reported in `BatchReport.failed` and the batch goes on; otherwise the
  first failure raises.
  """
  if isinstance(separator, (str, os.PathLike)):
    separator = separator_lib.load_separator(separator)
  records = Records()
  inputs = exclude_own_outputs(find_inputs(input_path), output_dir, records)
  failed = []
  todo = []
  for path, stem in inputs:
    try:
      audio_io.check_utf8_name(path)
    except audio_io.AudioDecodeError as e:
      if not skip_bad:
        raise
      failed.append((audio_io.printable_path(path), str(e)))
      continue
    try:
      check_outputs(output_paths(output_dir, stem, separator.num_sources), records, path,
                  overwrite)
    except FileExistsError as e:
      if not skip_bad:
        raise
      failed.append((path, str(e)))
    else:
      todo.append((path, stem))
  display = Progress(enabled=progress)
  succeeded = []
  for index, (path, stem) in enumerate(todo):
    seconds = 0.0
    try:
      frames, rate, _ = audio_io.audio_info(path)
      seconds = frames / rate if rate else 0.0
    except (ValueError, OSError, tf.errors.OpError):
      pass  # separate_file reports the problem with the file
    display.start_file(index, len(todo), path, seconds)
    started = time.monotonic()
    try:
      result = separate_file(separator, path, output_dir, stem, overwrite=overwrite,
                             progress=display, records=records, **kwargs)
    except Exception as e:
      message = str(e) if path in str(e) else f'{path}: {e}'
      display.end_file(f'FAILED: {message}')
      if not skip_bad:
        raise
      failed.append((path, message))
      continue
    elapsed = time.monotonic() - started
    dropped = f', dropped silent sources {result.dropped}' if result.dropped else ''
    display.end_file(f'{len(result.output_paths)} sources, {result.seconds:.1f} s of audio in '
                     f'{elapsed:.1f} s{dropped}')
    succeeded.append(result)
  return BatchReport(succeeded=succeeded, failed=failed)
