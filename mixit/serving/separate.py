"""Separating audio files with an exported SavedModel (`mixit-separate`).

    mixit-separate --saved_model E --input FILE_OR_FOLDER --output_dir O
        [--max_chunk_seconds 20 --overlap 2 --drop_silent --overwrite --skip_bad]

Each input `<name>.<ext>` (WAV, FLAC, OGG, AIFF, MP3; any rate and channel
count, channels averaged) gives `<name>_source{i}.wav`, i = 0..M-1, at the
input's rate; inputs found in subfolders of a folder keep their relative path
under the output dir. Files are read in blocks and the sources written as they
are finished (see `mixit.serving.separator`), so memory stays bounded for recordings of
any length. Outputs are written to hidden `.partial` files and renamed at the
end, so a failure never leaves a half-written source behind.

The outputs written are listed in `.mixit_separate.json` in their folder (see
`OutputRecord`): only those files are ever replaced or removed (`--overwrite`
also removes an input's earlier outputs that are not written again), and an
existing file that the record does not list is never overwritten.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import time
from typing import List, Optional, Sequence, Tuple, Union

from absl import logging
import numpy as np
import soundfile

from data_pipeline import audio_io
from mixit import progress as progress_lib
from mixit.serving import separator as separator_lib

AUDIO_EXTENSIONS = ('.wav', '.flac', '.ogg', '.oga', '.opus', '.aif', '.aiff', '.mp3')
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


def find_inputs(input_path: str) -> List[Tuple[str, str]]:
  """Audio files to separate: [(path, output stem relative to the output dir)].

  A file is taken whatever its extension; a folder is searched recursively for
  the extensions in `AUDIO_EXTENSIONS` (hidden files skipped), sorted.
  """
  input_path = os.fspath(input_path)
  if not os.path.exists(input_path):
    raise FileNotFoundError(f'--input {input_path} does not exist')
  if not os.path.isdir(input_path):
    return [(input_path, os.path.splitext(os.path.basename(input_path))[0])]
  found = []
  for root, dirs, files in os.walk(input_path):
    dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
    for name in sorted(files):
      if name.startswith('.') or not name.lower().endswith(AUDIO_EXTENSIONS):
        continue
      path = os.path.join(root, name)
      stem = os.path.splitext(os.path.relpath(path, input_path))[0]
      found.append((path, stem))
  if not found:
    raise ValueError(f'--input folder {input_path} holds no audio files '
                     f'({", ".join(AUDIO_EXTENSIONS)})')
  stems = {}
  for path, stem in found:
    stems.setdefault(stem, []).append(path)
  clashes = [paths for paths in stems.values() if len(paths) > 1]
  if clashes:
    raise ValueError(f'files whose outputs would share a name (same name, different '
                     f'extension): {clashes[:5]}')
  return found


RECORD_FILENAME = '.mixit_separate.json'
RECORD_FORMAT = 'mixit-separate-record'


class OutputRecord:
  """What this tool wrote into one folder: `<folder>/.mixit_separate.json`.

  `{"format": ..., "inputs": {"<name>": {"input": path, "num_sources": M,
  "outputs": ["<name>_source0.wav", ...], "dropped": [i, ...]}}}`, file names
  in that folder (each folder of outputs, subfolders included, has its own
  record, so a later run on a subfolder finds it). Only files listed here are
  ever replaced or removed, and only they are told apart from inputs when the
  output dir lies in the input folder: a user's own `bird_source1.wav` is an
  input like any other, and never overwritten. `mixit-evaluate
  --separated_dir` reads the record to know how many outputs each example has.
  """

  def __init__(self, output_dir: str):
    self.output_dir = os.fspath(output_dir)
    self.path = os.path.join(self.output_dir, RECORD_FILENAME)
    self.inputs = {}
    if os.path.exists(self.path):
      try:
        with open(self.path) as f:
          data = json.load(f)
        if data.get('format') != RECORD_FORMAT:
          raise ValueError(f'format {data.get("format")!r}')
        self.inputs = dict(data['inputs'])
      except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f'{self.path}: not a mixit-separate record ({e}); move it away') from e

  def _relative(self, path: str) -> str:
    return os.path.relpath(os.path.realpath(path), os.path.realpath(self.output_dir))

  def owns(self, path: str) -> bool:
    relative = self._relative(path)
    return any(relative in entry['outputs'] for entry in self.inputs.values())

  def outputs_of(self, stem: str) -> List[str]:
    entry = self.inputs.get(stem)
    return [os.path.join(self.output_dir, p) for p in entry['outputs']] if entry else []

  def set(self, stem: str, input_path: str, num_sources: int, outputs: Sequence[str],
          dropped: Sequence[int]) -> None:
    self.inputs[stem] = {
        'input': os.path.abspath(input_path) if '://' not in input_path else input_path,
        'num_sources': int(num_sources),
        'outputs': sorted(set(self._relative(p) for p in outputs)),
        'dropped': [int(i) for i in dropped],
    }
    self.save()

  def entry(self, name: str) -> Optional[dict]:
    return self.inputs.get(name)

  def save(self) -> None:
    os.makedirs(self.output_dir, exist_ok=True)
    temporary = f'{self.path}.tmp-{os.getpid()}'
    with open(temporary, 'w') as f:
      json.dump({'format': RECORD_FORMAT, 'inputs': self.inputs}, f, indent=1, sort_keys=True)
    os.replace(temporary, self.path)


class Records:
  """The `OutputRecord` of each output folder, read once."""

  def __init__(self):
    self._by_folder = {}

  def folder(self, folder: str) -> OutputRecord:
    key = os.path.realpath(folder)
    if key not in self._by_folder:
      self._by_folder[key] = OutputRecord(folder)
    return self._by_folder[key]

  def owns(self, path: str) -> bool:
    return self.folder(os.path.dirname(path) or '.').owns(path)


def _exclude_own_outputs(inputs: List[Tuple[str, str]], output_dir: str,
                         record: Records) -> List[Tuple[str, str]]:
  """Drops this tool's earlier outputs (as recorded) from the inputs when the output dir
  lies in the input folder, so that a rerun does not separate its own sources; every
  other file, whatever its name, stays an input."""
  kept = [(path, stem) for path, stem in inputs if not record.owns(path)]
  if inputs and not kept:
    raise ValueError(f'all inputs are outputs of an earlier separation in {output_dir}')
  return kept


def _collisions(paths: Sequence[str], records: Records, input_path: str,
                overwrite: bool) -> None:
  """Raises FileExistsError for an output path that exists: always for a file this tool
  did not write, and without `overwrite` for its own."""
  existing = [p for p in paths if os.path.exists(p)]
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


def _open_input(path: str):
  """soundfile.SoundFile for reading, with errors naming the file."""
  if '://' in path:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if not tf.io.gfile.exists(path):
      raise FileNotFoundError(f'audio file not found: {path}')
    with tf.io.gfile.GFile(path, 'rb') as f:
      source = io.BytesIO(f.read())
  else:
    if not os.path.exists(path):
      raise FileNotFoundError(f'audio file not found: {path}')
    if os.path.isdir(path):
      raise audio_io.AudioDecodeError(f'{path}: is a directory, not an audio file')
    if os.path.getsize(path) == 0:
      raise audio_io.AudioDecodeError(f'{path}: empty file (0 bytes)')
    with open(path, 'rb') as f:
      audio_io.check_wav_complete(f, os.path.getsize(path), path)
    source = path
  try:
    return soundfile.SoundFile(source)
  except (RuntimeError, TypeError, ValueError, soundfile.SoundFileError) as e:
    raise audio_io.AudioDecodeError(f'{path}: cannot decode audio ({e})') from e


def _mono_blocks(reader, path: str, block_frames: int):
  """Yields float32 `[time]` channel means of successive blocks of `reader`."""
  try:
    for block in reader.blocks(blocksize=block_frames, dtype='float32', always_2d=True):
      yield block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
  except (RuntimeError, soundfile.SoundFileError) as e:
    raise audio_io.AudioDecodeError(f'{path}: cannot decode audio ({e})') from e


class _SourceWriters:
  """One mono WAV per source, written incrementally to `.partial` files."""

  def __init__(self, paths: Sequence[str], sample_rate: int, subtype: str):
    self.paths = list(paths)
    self.partial = [_partial_path(p) for p in self.paths]
    self._subtype = subtype
    self._files = []
    self.energy = np.zeros(len(paths), np.float64)
    self.peak = 0.0
    self.frames = 0
    for path in self.partial:
      folder = os.path.dirname(path)
      if folder:
        os.makedirs(folder, exist_ok=True)
      self._files.append(soundfile.SoundFile(path, 'w', samplerate=sample_rate, channels=1,
                                             format='WAV', subtype=subtype))

  def write(self, sources: np.ndarray) -> None:
    """sources: `[M, time]` float32."""
    self.energy += np.sum(np.square(sources, dtype=np.float64), axis=1)
    self.peak = max(self.peak, float(np.max(np.abs(sources))))
    self.frames += sources.shape[1]
    for f, source in zip(self._files, sources):
      f.write(audio_io.quantize_pcm16(source) if self._subtype == 'PCM_16' else source)

  def close(self) -> None:
    for f in self._files:
      f.close()
    self._files = []

  def discard(self) -> None:
    self.close()
    for path in self.partial:
      if os.path.exists(path):
        os.remove(path)


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
  _collisions(paths, records, input_path, overwrite)
  with _open_input(input_path) as reader:
    rate, declared = int(reader.samplerate), int(reader.frames)
    if declared == 0:
      raise audio_io.AudioDecodeError(f'{input_path}: audio holds no samples')
    try:
      stream = separator.stream(rate, output_rate=output_sample_rate,
                                max_chunk_seconds=max_chunk_seconds,
                                overlap_seconds=overlap_seconds)
    except ValueError as e:
      raise ValueError(f'{input_path}: {e}') from e
    seconds = declared / rate if declared > 0 else 0.0
    if progress is not None:
      progress.update(0.0, force=True)
    writers = _SourceWriters(paths, stream.output_rate, subtype)
    mixture_energy = 0.0
    try:
      try:
        for mono in _mono_blocks(reader, input_path, max(int(block_seconds * rate), 1)):
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
        raise ValueError(f'{input_path}: {e}') from e
      if declared > 0 and stream.input_samples != declared and reader.format != 'OGG':
        raise audio_io.AudioDecodeError(f'{input_path}: truncated audio '
                                        f'({stream.input_samples} of {declared} frames decoded)')
      writers.close()
    except BaseException:
      writers.discard()
      raise
  if subtype == 'PCM_16' and writers.peak > 32767 / 32768:
    logging.warning('%s: a source peaks at %.3f; clipped in the 16-bit output', input_path,
                    writers.peak)
  frames = max(writers.frames, 1)
  mixture_power = mixture_energy / max(stream.input_samples, 1)
  source_power = writers.energy / frames
  relative_db = [
      float(10 * np.log10(max(p, 1e-30) / max(mixture_power, 1e-30))) for p in source_power
  ]
  kept, dropped = [], []
  for i, (path, partial) in enumerate(zip(writers.paths, writers.partial)):
    silent = drop_silent and (mixture_power == 0 or relative_db[i] <= silence_db)
    if silent:
      dropped.append(i)
      os.remove(partial)
    else:
      os.replace(partial, path)
      kept.append(path)
  # Earlier outputs of this input that this run did not write again (another model's
  # extra sources, sources now dropped as silent) would be read as this run's: remove
  # them, they are this tool's own files.
  record = records.folder(os.path.dirname(paths[0]) or '.')
  name = os.path.basename(stem)
  stale = [p for p in record.outputs_of(name) if p not in kept and os.path.exists(p)]
  for path in stale:
    os.remove(path)
  if stale:
    logging.info('%s: removed %d stale output(s) of an earlier separation: %s', input_path,
                 len(stale), ', '.join(stale))
  record.set(name, input_path, separator.num_sources, kept, dropped)
  return FileResult(input_path=input_path, output_paths=kept, dropped=dropped, seconds=seconds,
                    num_windows=stream.num_windows, source_power_db=relative_db)


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
  inputs = _exclude_own_outputs(find_inputs(input_path), output_dir, records)
  failed = []
  todo = []
  for path, stem in inputs:
    try:
      _collisions(output_paths(output_dir, stem, separator.num_sources), records, path,
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
      info = soundfile.info(path)
      seconds = info.frames / info.samplerate if info.samplerate else 0.0
    except (RuntimeError, TypeError, ValueError, OSError, soundfile.SoundFileError):
      pass  # separate_file reports the problem with the file
    display.start_file(index, len(todo), path, seconds)
    started = time.monotonic()
    try:
      result = separate_file(separator, path, output_dir, stem, overwrite=overwrite,
                             progress=display, records=records, **kwargs)
    except Exception as e:  # pylint: disable=broad-except
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
