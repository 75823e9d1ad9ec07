"""Reading, writing and resampling audio files outside the TensorFlow graph.

WAV files on the training path are decoded in-graph by `tf.audio.decode_wav`
(see `fuss.py`); this module serves everything else: other formats (FLAC, OGG,
MP3), other WAV encodings, resampling, evaluation, the synthetic data maker,
the in-the-wild reader and `mixit-separate`. It is the one implementation of
each audio step, and imports nothing of the package (so the SavedModel
separator may use it):

- `AUDIO_EXTENSIONS` and `find_audio_files(folder)`: what counts as an audio
  file in a folder (`mixit-separate --input`, in-the-wild sources);
- `open_audio(path)` -> `AudioReader`: reading in blocks (bounded memory) with
  the truncation checks; `read_audio` reads a whole file;
- `AudioWriter`: writing a WAV in blocks; `write_wav` writes a whole array;
- `Resampler`: streaming soxr resampling; `resample` is a one-shot use of it;
- `downmix`: the channel mean.

Backend: `tensorflow-io` when it is installed and works (it only does with the
TF 2.16 stack), else `soundfile` + `soxr`. The choice is made once per process,
logged, and can be forced with the environment variable
`MIXIT_AUDIO_BACKEND=tfio|soundfile` (`auto`, the default, prefers tfio). Forcing
`tfio` when it does not work raises instead of silently falling back.

Every file goes through `tf.io.gfile`, so paths may be on gs:// (or TF's
in-memory ram://), for reading and writing. Every failure
raises an error naming the file: `FileNotFoundError` when it does not exist,
`AudioDecodeError` (a `ValueError`) when it is empty, corrupt, truncated, in an
unsupported format, or holds NaN/inf samples.

Sample scaling: 16-bit PCM reads as `int16 / 32768` (as `tf.audio.decode_wav`
does), and `write_wav` quantises with `round(x * 32768)`, so a float waveform
written and read back changes by at most half a quantisation step.
"""
import functools
import io
import math
import os
import re
import struct
import tempfile
import threading
from typing import Iterator, List, Optional, Tuple

from absl import logging
import numpy as np
import soundfile
import tensorflow as tf

BACKEND_ENV = 'MIXIT_AUDIO_BACKEND'
BACKENDS = ('tfio', 'soundfile')

# The file names taken as audio when a folder is searched (`find_audio_files`):
# the formats libsndfile reads (WAV, FLAC, OGG Vorbis/Opus, AIFF, AU) and MP3
# (libsndfile >= 1.1). Matched case-insensitively.
AUDIO_EXTENSIONS = ('.wav', '.flac', '.ogg', '.oga', '.opus', '.aif', '.aiff', '.au', '.mp3')

_PCM16_SCALE = 32768.0
_lock = threading.Lock()
_backend: Optional[str] = None


class AudioDecodeError(ValueError):
  """An audio file exists but cannot be turned into a finite waveform."""


# --------------------------------------------------------------------------
# Backend selection.


def _tfio_failure_reason() -> Optional[str]:
  """None when tensorflow-io decodes and resamples here, else why not."""
  try:
    import tensorflow_io as tfio
  except Exception as e:
    # On TF != 2.16 the import itself can fail with NotFoundError / OSError.
    return f'import tensorflow_io failed: {type(e).__name__}: {e}'
  try:
    probe = np.linspace(-0.5, 0.5, 320, dtype=np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, probe, 16000, format='FLAC', subtype='PCM_16')
    decoded = tfio.audio.decode_flac(buffer.getvalue(), dtype=tf.int16)
    if int(decoded.shape[0]) != probe.shape[0]:
      return f'tensorflow_io decoded {decoded.shape[0]} of {probe.shape[0]} FLAC samples'
    resampled = tfio.audio.resample(tf.constant(probe[:, None]), 16000, 8000)
    if int(resampled.shape[0]) != probe.shape[0] // 2:
      return f'tensorflow_io resampled to {resampled.shape[0]} samples, expected 160'
  except Exception as e:
    return f'tensorflow_io ops do not run: {type(e).__name__}: {e}'
  return None


def _choose_backend() -> str:
  requested = os.environ.get(BACKEND_ENV, 'auto').strip().lower() or 'auto'
  if requested not in BACKENDS + ('auto',):
    raise ValueError(f'{BACKEND_ENV}={requested!r}: expected one of {BACKENDS + ("auto",)}')
  if requested == 'soundfile':
    logging.info('audio backend: soundfile + soxr (forced by %s)', BACKEND_ENV)
    return 'soundfile'
  reason = _tfio_failure_reason()
  if reason is None:
    logging.info('audio backend: tensorflow-io')
    return 'tfio'
  if requested == 'tfio':
    raise RuntimeError(f'{BACKEND_ENV}=tfio but tensorflow-io is not usable: {reason}')
  logging.info('audio backend: soundfile + soxr (tensorflow-io unavailable: %s)', reason)
  return 'soundfile'


def backend_name() -> str:
  """'tfio' or 'soundfile': the backend this process uses (chosen on first call)."""
  global _backend
  with _lock:
    if _backend is None:
      _backend = _choose_backend()
    return _backend


def set_backend(name: Optional[str]) -> None:
  """Forces a backend ('tfio', 'soundfile'), or None to choose again on next use."""
  global _backend
  if name is not None and name not in BACKENDS:
    raise ValueError(f'unknown audio backend {name!r}; expected one of {BACKENDS}')
  if name == 'tfio':
    reason = _tfio_failure_reason()
    if reason is not None:
      raise RuntimeError(f'tensorflow-io is not usable: {reason}')
  with _lock:
    _backend = name


# --------------------------------------------------------------------------
# Reading.


def _sniff_format(data: bytes) -> str:
  if data[:4] in (b'RIFF', b'RIFX', b'RF64') and data[8:12] == b'WAVE':
    return 'wav'
  if data[:4] == b'fLaC':
    return 'flac'
  if data[:4] == b'OggS':
    return 'ogg'
  if data[:3] == b'ID3' or (len(data) > 1 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0):
    return 'mp3'
  return 'unknown'


def check_wav_complete(f, size: int, path: str) -> Optional[int]:
  """Raises when a RIFF/WAVE file's data chunk is shorter than its header says.

  `f` is a seekable binary file of `size` bytes; only chunk headers are read,
  so a long file is checked without loading it. libsndfile silently returns
  the samples that are present, so a truncated download would otherwise pass
  as a shorter clip.

  Returns:
    The offset of the data chunk when it is streamed (declares 0 or 0xFFFFFFFF
    bytes: the samples run to the end of the file), else None.
  """
  f.seek(0)
  header = f.read(12)
  if header[:4] != b'RIFF' or header[8:12] != b'WAVE':
    return None
  offset = 12
  while offset + 8 <= size:
    f.seek(offset)
    chunk = f.read(8)
    (chunk_size,) = struct.unpack('<I', chunk[4:8])
    if chunk[:4] == b'data':
      # 0 and 0xFFFFFFFF mark streamed files whose writer never filled in the size:
      # the samples run to the end of the file, so there must be some.
      if chunk_size in (0, 0xFFFFFFFF) and offset + 8 >= size:
        raise AudioDecodeError(f'{path}: WAV file holds no samples (its data chunk declares '
                               f'{chunk_size} bytes and none follow)')
      if chunk_size not in (0, 0xFFFFFFFF) and offset + 8 + chunk_size > size:
        raise AudioDecodeError(
            f'{path}: truncated WAV file (data chunk declares {chunk_size} bytes, '
            f'{size - offset - 8} present)')
      return offset if chunk_size in _STREAMED_SIZES else None
    offset += 8 + chunk_size + (chunk_size & 1)
  raise AudioDecodeError(f'{path}: corrupt WAV file (no data chunk)')


# WAVE_FORMAT_PCM, and the PCM sub-format GUID's first two bytes in a
# WAVE_FORMAT_EXTENSIBLE (0xFFFE) fmt chunk.
_WAVE_FORMAT_PCM = 1
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_STREAMED_SIZES = (0, 0xFFFFFFFF)


def wav_layout(data: bytes, path: str) -> dict:
  """The fmt and data chunks of a RIFF/WAVE file, wherever they are.

  Returns:
    {'format': 1 for PCM (also for WAVE_FORMAT_EXTENSIBLE with the PCM
     sub-format) or the format tag, 'channels', 'rate', 'bits', 'data_offset',
     'data_size' (bytes of samples present; for a streamed data chunk, which
     declares size 0 or 0xFFFFFFFF as a writer that never went back to fill
     it in leaves it, the bytes to the end of the file)}.

  Raises:
    AudioDecodeError: not a WAV file, no fmt or data chunk, or a data chunk
      cut short.
  """
  if len(data) < 12 or data[:4] != b'RIFF' or data[8:12] != b'WAVE':
    raise AudioDecodeError(f'{path}: not a RIFF/WAVE file')
  layout = {}
  offset = 12
  while offset + 8 <= len(data):
    chunk_id = data[offset:offset + 4]
    (size,) = struct.unpack('<I', data[offset + 4:offset + 8])
    body = offset + 8
    if chunk_id == b'fmt ':
      if size < 16 or body + 16 > len(data):
        raise AudioDecodeError(f'{path}: corrupt WAV file (fmt chunk of {size} bytes)')
      tag, channels, rate, _, block_align, bits = struct.unpack('<HHIIHH',
                                                                data[body:body + 16])
      if tag == _WAVE_FORMAT_EXTENSIBLE and size >= 40 and body + 26 <= len(data):
        (tag,) = struct.unpack('<H', data[body + 24:body + 26])
      layout.update(format=tag, channels=channels, rate=rate, bits=bits,
                    block_align=block_align)
    elif chunk_id == b'data':
      streamed = size in _STREAMED_SIZES
      present = len(data) - body
      if not streamed and size > present:
        raise AudioDecodeError(f'{path}: truncated WAV file (data chunk declares {size} '
                               f'bytes, {present} present)')
      layout.update(data_offset=body, data_size=present if streamed else size)
      if streamed:
        break  # the samples run to the end of the file
    if 'format' in layout and 'data_offset' in layout:
      break
    offset = body + size + (size & 1)
  if 'format' not in layout:
    raise AudioDecodeError(f'{path}: corrupt WAV file (no fmt chunk before the samples)')
  if 'data_offset' not in layout:
    raise AudioDecodeError(f'{path}: corrupt WAV file (no data chunk)')
  return layout


# The libsndfile subtype of each WAV sample format, by (format tag, bits per sample).
_RAW_SUBTYPES = {(_WAVE_FORMAT_PCM, 8): 'PCM_U8', (_WAVE_FORMAT_PCM, 16): 'PCM_16',
                 (_WAVE_FORMAT_PCM, 24): 'PCM_24', (_WAVE_FORMAT_PCM, 32): 'PCM_32',
                 (3, 32): 'FLOAT', (3, 64): 'DOUBLE'}  # 3: WAVE_FORMAT_IEEE_FLOAT


class _Window:
  """Bytes `[start, end)` of a seekable binary file as a read-only file of their own."""

  def __init__(self, f, start: int, end: int):
    self._f, self._start, self._end = f, start, end
    self._at = 0

  def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
    base = {io.SEEK_SET: 0, io.SEEK_CUR: self._at, io.SEEK_END: self._end - self._start}
    self._at = max(0, base[whence] + offset)
    return self._at

  def tell(self) -> int:
    return self._at

  def read(self, n: int = -1) -> bytes:
    left = max(0, self._end - self._start - self._at)
    n = left if n is None or n < 0 else min(n, left)
    if n == 0:
      return b''
    self._f.seek(self._start + self._at)
    data = self._f.read(n)
    self._at += len(data)
    return data


def _streamed_wav_reader(f, size: int, data_at: int, path: str, owned=None) -> 'AudioReader':
  """An `AudioReader` of a streamed WAV (data chunk at `data_at`, its size never filled in).

  libsndfile reads such a data chunk as empty, so the samples after the chunk
  header are read as headerless audio in the format the fmt chunk gives.
  """
  f.seek(0)
  layout = wav_layout(f.read(data_at + 8), path)
  subtype = _RAW_SUBTYPES.get((layout['format'], layout['bits']))
  if subtype is None:
    raise AudioDecodeError(f'{path}: cannot read a streamed WAV (data chunk size not filled '
                           f'in) of format tag {layout["format"]:#x} with {layout["bits"]} '
                           'bits per sample')
  if layout['channels'] < 1 or layout['rate'] < 1:
    raise AudioDecodeError(f'{path}: corrupt WAV file ({layout["channels"]} channels, '
                           f'{layout["rate"]} Hz)')
  return AudioReader(_Window(f, data_at + 8, size), path, owned=owned,
                     raw=dict(samplerate=layout['rate'], channels=layout['channels'],
                              subtype=subtype))


def decode_pcm16_wav(data: bytes, path: str) -> Tuple[np.ndarray, int]:
  """Decodes a 16-bit PCM WAV of any chunk layout to (float32 [time, channels], rate).

  Reads what `tf.audio.decode_wav` refuses: WAVE_FORMAT_EXTENSIBLE headers,
  chunks (LIST, fact, ...) before `fmt `, and streamed files whose data chunk
  size is 0 or 0xFFFFFFFF. Samples scale as `int16 / 32768`, as there.

  Raises:
    AudioDecodeError: naming the file: not 16-bit PCM, no samples, corrupt.
  """
  layout = wav_layout(data, path)
  if layout['format'] != _WAVE_FORMAT_PCM or layout['bits'] != 16:
    raise AudioDecodeError(f'{path}: needs 16-bit PCM WAV, got format tag '
                           f'{layout["format"]:#x} with {layout["bits"]} bits per sample')
  channels = layout['channels']
  if channels < 1:
    raise AudioDecodeError(f'{path}: corrupt WAV file ({channels} channels)')
  frame_bytes = 2 * channels
  frames = layout['data_size'] // frame_bytes
  if frames == 0:
    raise AudioDecodeError(f'{path}: WAV file holds no samples')
  start = layout['data_offset']
  samples = np.frombuffer(data, '<i2', count=frames * channels, offset=start)
  waveform = samples.reshape(frames, channels).astype(np.float32) / _PCM16_SCALE
  return waveform, int(layout['rate'])


def _decode_soundfile(data: bytes, path: str) -> Tuple[np.ndarray, int]:
  with AudioReader(io.BytesIO(data), path) as reader:
    return reader.read(), reader.sample_rate


def _decode_tfio(data: bytes, path: str) -> Tuple[np.ndarray, int]:
  import tensorflow_io as tfio
  kind = _sniff_format(data)
  try:
    if kind == 'wav':
      # Non-16-bit WAV (24-bit, float) is outside tf.audio.decode_wav: libsndfile reads it.
      try:
        decoded = tf.audio.decode_wav(data)
        return decoded.audio.numpy(), int(decoded.sample_rate.numpy())
      except tf.errors.InvalidArgumentError:
        return _decode_soundfile(data, path)
    if kind in ('flac', 'ogg', 'mp3'):
      # AudioIOTensor infers dtype, rate and channels; it needs a path the TF
      # file systems can open, which `path` is (local or gs://).
      audio = tfio.audio.AudioIOTensor(path)
      rate = int(audio.rate.numpy())
      samples = audio.to_tensor().numpy()
      if samples.dtype == np.int16:
        samples = samples.astype(np.float32) / _PCM16_SCALE
      elif samples.dtype == np.int32:
        samples = samples.astype(np.float32) / 2.0**31
      elif samples.dtype == np.uint8:
        samples = (samples.astype(np.float32) - 128.0) / 128.0
      samples = samples.astype(np.float32)
      if samples.ndim == 1:
        samples = samples[:, None]
      return samples, rate
  except (tf.errors.OpError, RuntimeError, ValueError) as e:
    raise AudioDecodeError(f'{path}: cannot decode audio with tensorflow-io ({e})') from e
  # Formats tfio does not sniff (AIFF, AU, ...) still go through libsndfile.
  return _decode_soundfile(data, path)


def decode_audio_bytes(data: bytes, path: str = '<bytes>') -> Tuple[np.ndarray, int]:
  """Decodes an encoded file's bytes to (float32 [time, channels], rate).

  `path` only names the source in errors (and is opened by tfio for non-WAV).
  """
  if not data:
    raise AudioDecodeError(f'{path}: empty file (0 bytes)')
  waveform = None
  if _sniff_format(data) == 'wav':
    data_at = check_wav_complete(io.BytesIO(data), len(data), path)
    if data_at is not None:
      with _streamed_wav_reader(io.BytesIO(data), len(data), data_at, path) as reader:
        waveform, rate = reader.read(), reader.sample_rate
  if waveform is not None:
    pass
  elif backend_name() == 'tfio':
    waveform, rate = _decode_tfio(data, path)
  else:
    waveform, rate = _decode_soundfile(data, path)
  if waveform.shape[0] == 0 or waveform.shape[1] == 0:
    raise AudioDecodeError(f'{path}: audio holds no samples')
  if rate <= 0:
    raise AudioDecodeError(f'{path}: invalid sample rate {rate}')
  if not np.all(np.isfinite(waveform)):
    bad = int(np.sum(~np.isfinite(waveform)))
    raise AudioDecodeError(f'{path}: {bad} NaN or infinite samples')
  return waveform, rate


def printable_path(path: str) -> str:
  r"""`path` safe to print: bytes that are not UTF-8 (a name Python holds as surrogates)
  are shown as `\xNN` escapes."""
  return os.fsencode(path).decode('utf-8', 'backslashreplace') if _not_utf8(path) else path


def _not_utf8(path: str) -> bool:
  try:
    path.encode('utf-8')
  except UnicodeEncodeError:
    return True
  return False


def check_utf8_name(path: str) -> None:
  """Refuses a path whose name is not valid UTF-8, naming it: TensorFlow's file system
  (`tf.io.gfile`, which every reader and writer here goes through) cannot open it."""
  if _not_utf8(os.fspath(path)):
    raise AudioDecodeError(f'{printable_path(path)}: the file name is not valid UTF-8, which '
                           'TensorFlow\'s file system cannot open; rename the file')


def _check_is_file(path: str) -> None:
  check_utf8_name(path)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f'audio file not found: {path}')
  if tf.io.gfile.isdir(path):
    raise AudioDecodeError(f'{path}: is a directory, not an audio file')


def read_audio(path: str, sample_rate: Optional[int] = None) -> Tuple[np.ndarray, int]:
  """Reads any supported audio file as mono float32.

  Args:
    path: local or gs:// path.
    sample_rate: when given (and different from the file's), the waveform is
      resampled to it.

  Returns:
    (waveform float32 [time], rate): rate is `sample_rate` when given, else the
    file's. Channels are averaged.
  """
  path = os.fspath(path)
  _check_is_file(path)
  with tf.io.gfile.GFile(path, 'rb') as f:
    data = f.read()
  waveform, rate = decode_audio_bytes(data, path)
  mono = downmix(waveform)
  if sample_rate is not None and int(sample_rate) != rate:
    mono = resample(mono, rate, int(sample_rate))
    rate = int(sample_rate)
  return np.ascontiguousarray(mono, dtype=np.float32), rate


def audio_info(path: str) -> Tuple[int, int, int]:
  """(frames, sample_rate, channels) of a file, read from its header by libsndfile."""
  with open_audio(path) as reader:
    return reader.frames, reader.sample_rate, reader.channels


def downmix(waveform: np.ndarray, channel_axis: int = -1) -> np.ndarray:
  """The one down-mix: float32 `[time]`, the mean over `channel_axis`.

  `[time, channels]` (soundfile's layout, the default axis) or `[channels,
  time]` with `channel_axis=0`; a single channel and a `[time]` array are taken
  as they are. The mean is taken in float32 (float64 for float64 input).
  """
  x = np.asarray(waveform)
  if x.ndim == 1:
    return x.astype(np.float32, copy=False)
  if x.shape[channel_axis] == 1:
    return np.take(x, 0, axis=channel_axis).astype(np.float32, copy=False)
  mean = x.mean(axis=channel_axis, dtype=np.result_type(x.dtype, np.float32))
  return mean.astype(np.float32, copy=False)


# --------------------------------------------------------------------------
# Streaming: folders, block reading and writing.


def find_audio_files(folder: str, skip_hidden: bool = True) -> List[str]:
  """The files under `folder` (recursive) whose names end in `AUDIO_EXTENSIONS`.

  Walked top-down through `tf.io.gfile` (local, gs://, ram://): the files of a
  folder, sorted by name, come before those of its subfolders, sorted by name.
  With `skip_hidden`, files and folders whose names start with '.' are left out.
  Returns [] when there are none (the caller says what it looked for).
  """
  folder = os.fspath(folder)
  found = []
  # A local folder is walked by the OS, which keeps names that are not UTF-8 (as
  # surrogates, so that the readers can name and refuse them); tf.io.gfile.walk
  # fails on the whole folder at the first such name.
  walk = os.walk if '://' not in folder and os.path.isdir(folder) else tf.io.gfile.walk
  for root, dirs, names in walk(folder):
    # gfile.walk descends into the listed folders after yielding them: prune in place.
    dirs[:] = sorted(d for d in dirs if not (skip_hidden and d.startswith('.')))
    for name in sorted(n.rstrip('/') for n in names):
      if skip_hidden and name.startswith('.'):
        continue
      if name.lower().endswith(AUDIO_EXTENSIONS):
        found.append(os.path.join(root, name))
  return found


def _soundfile_reason(error: Exception) -> str:
  """libsndfile's reason, without the `<... object at 0x...>` it names instead of the path.

  soundfile reads from a file object here (a GFile or bytes), so its message
  says "Error opening <tensorflow...GFile object at 0x...>: <reason>".
  """
  text = ' '.join(str(error).split())
  return re.sub(r'^Error opening <[^>]*>: ', '', text)


class AudioReader:
  """An open audio file read in blocks (from `open_audio`); a context manager.

  Attributes:
    path: names the file in errors.
    sample_rate, channels: from the header.
    frames: the frame count the header declares (0 when it declares none).
    format: libsndfile's container name ('WAV', 'FLAC', 'OGG', ...).
    frames_read: frames decoded so far.

  Reading to the end checks that every declared frame was decoded (libsndfile
  returns what is there of a cut-short file): OGG headers only estimate it.
  Decoding failures raise `AudioDecodeError` naming the file.
  """

  def __init__(self, source, path: str, owned=None, raw: Optional[dict] = None):
    self.path = path
    self._owned = owned  # a file object to close with the reader
    try:
      # `raw`: the samples of a streamed WAV, headerless (`_streamed_wav_reader`).
      self._file = (soundfile.SoundFile(source, format='RAW', **raw) if raw else
                    soundfile.SoundFile(source))
    except (RuntimeError, TypeError, ValueError, soundfile.SoundFileError) as e:
      self.close()
      raise AudioDecodeError(f'{path}: cannot decode audio ({_soundfile_reason(e)})') from e
    self.sample_rate = int(self._file.samplerate)
    self.frames = int(self._file.frames)
    self.channels = int(self._file.channels)
    self.format = 'WAV' if raw else self._file.format
    self.frames_read = 0

  def _check_complete(self) -> None:
    if 0 < self.frames != self.frames_read and self.format != 'OGG':
      raise AudioDecodeError(f'{self.path}: truncated audio ({self.frames_read} of '
                             f'{self.frames} frames decoded)')

  def blocks(self, block_frames: int, mono: bool = False) -> Iterator[np.ndarray]:
    """Yields float32 blocks `[time, channels]` (`[time]` down-mixed with `mono`) of at
    most `block_frames` frames to the end of the file, then checks it was complete."""
    try:
      for block in self._file.blocks(blocksize=block_frames, dtype='float32', always_2d=True):
        self.frames_read += block.shape[0]
        yield downmix(block) if mono else block
    except (RuntimeError, soundfile.SoundFileError) as e:
      raise AudioDecodeError(f'{self.path}: cannot decode audio ({e})') from e
    self._check_complete()

  def read(self) -> np.ndarray:
    """The rest of the file, float32 `[time, channels]`, checked complete."""
    try:
      waveform = self._file.read(dtype='float32', always_2d=True)
    except (RuntimeError, TypeError, ValueError, soundfile.SoundFileError) as e:
      raise AudioDecodeError(f'{self.path}: cannot decode audio ({e})') from e
    self.frames_read += waveform.shape[0]
    self._check_complete()
    return waveform

  def close(self) -> None:
    if getattr(self, '_file', None) is not None:
      self._file.close()
      self._file = None
    if self._owned is not None:
      self._owned.close()
      self._owned = None

  def __enter__(self) -> 'AudioReader':
    return self

  def __exit__(self, *unused) -> None:
    self.close()


def open_audio(path: str) -> AudioReader:
  """Opens a file (local, gs://, ram://) for reading in blocks; only the header is read.

  Raises:
    FileNotFoundError: no such file.
    AudioDecodeError: a folder, an empty file, a WAV whose data chunk is cut short
      or empty, or a file libsndfile cannot open; each naming the file.
  """
  path = os.fspath(path)
  _check_is_file(path)
  size = int(tf.io.gfile.stat(path).length)
  if size == 0:
    raise AudioDecodeError(f'{path}: empty file (0 bytes)')
  f = tf.io.gfile.GFile(path, 'rb')
  try:
    data_at = check_wav_complete(f, size, path)
    if data_at is not None:
      return _streamed_wav_reader(f, size, data_at, path, owned=f)
    f.seek(0)
  except BaseException:
    f.close()
    raise
  return AudioReader(f, path, owned=f)


class AudioWriter:
  """A WAV file written in blocks (`write`) and put at `path` by `close`; a context manager.

  libsndfile rewrites the header when it closes a file, which a `tf.io.gfile`
  file open for writing cannot do (it cannot seek), so the file is made in a
  local temporary file (or in memory with `in_memory=True`, for arrays held
  whole anyway) and copied to `path` through `tf.io.gfile` (local, gs://,
  ram://; parent folders are created) on `close`. `discard` drops it: nothing
  is written to `path` until `close`.
  """

  _COPY_BYTES = 1 << 20

  def __init__(self, path: str, sample_rate: int, channels: int = 1, subtype: str = 'PCM_16',
               in_memory: bool = False):
    self.path = os.fspath(path)
    self.subtype = subtype.upper()
    self.frames = 0
    self._buffer = io.BytesIO() if in_memory else tempfile.TemporaryFile()
    self._file = soundfile.SoundFile(self._buffer, 'w', samplerate=int(sample_rate),
                                     channels=int(channels), format='WAV', subtype=self.subtype)

  def write(self, samples: np.ndarray) -> None:
    """`[time]` or `[time, channels]`: int16 is written verbatim, float samples are
    quantised with `quantize_pcm16` for PCM_16."""
    samples = np.asarray(samples)
    if self.subtype == 'PCM_16' and samples.dtype != np.int16:
      samples = quantize_pcm16(samples)
    self._file.write(samples)
    self.frames += samples.shape[0]

  def close(self) -> None:
    if self._file is None:
      return
    self._file.close()
    self._file = None
    parent = os.path.dirname(self.path)
    if parent:
      tf.io.gfile.makedirs(parent)
    self._buffer.seek(0)
    with tf.io.gfile.GFile(self.path, 'wb') as f:
      for chunk in iter(lambda: self._buffer.read(self._COPY_BYTES), b''):
        f.write(chunk)
    self._buffer.close()

  def discard(self) -> None:
    if self._file is not None:
      self._file.close()
      self._file = None
    self._buffer.close()

  def __enter__(self) -> 'AudioWriter':
    return self

  def __exit__(self, kind, unused_value, unused_traceback) -> None:
    if kind is None:
      self.close()
    else:
      self.discard()


# --------------------------------------------------------------------------
# Resampling.


@functools.lru_cache(maxsize=None)
def _tfio_latency(rate_in: int, rate_out: int) -> int:
  """Output samples by which `tfio.audio.resample` delays its input.

  Measured with an impulse at an input sample that maps to a whole output
  sample: the filter's peak lands `latency` samples after that position.
  """
  import tensorflow_io as tfio
  common = math.gcd(rate_in, rate_out)
  step_in, step_out = rate_in // common, rate_out // common
  multiple = max(1, math.ceil(256 / step_out))
  position = step_in * multiple
  impulse = np.zeros([2 * position + rate_in // 25 + 1024, 1], np.float32)
  impulse[position] = 1.0
  response = tfio.audio.resample(tf.constant(impulse), rate_in, rate_out).numpy()[:, 0]
  return max(0, int(np.argmax(np.abs(response))) - step_out * multiple)


class Resampler:
  """The one resampler: soxr 'HQ' run as a stream (identity when the rates are equal).

  `resampler(block, last=False)` takes successive blocks, `[time]` (one
  channel) or `[time, channels]`, and returns what is ready, in the same
  layout; `last=True` flushes the filter's tail. The concatenated outputs
  equal one call on the whole signal (`resample`, on the soundfile backend).
  """

  def __init__(self, rate_in: int, rate_out: int, channels: int = 1):
    self._channels = int(channels)
    self._stream = None
    if int(rate_in) != int(rate_out):
      import soxr
      self._stream = soxr.ResampleStream(int(rate_in), int(rate_out), self._channels,
                                         dtype='float32', quality='HQ')

  def __call__(self, x: np.ndarray, last: bool = False) -> np.ndarray:
    if self._stream is None:
      return x
    x = np.asarray(x, dtype=np.float32)
    flat = np.ascontiguousarray(x.reshape(-1) if self._channels == 1 else x, dtype=np.float32)
    y = self._stream.resample_chunk(flat, last=last)
    return y.reshape(-1, self._channels) if x.ndim == 2 else y


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
  """Band-limited resampling of float audio `[time]` or `[time, channels]`.

  soxr (high quality) on the soundfile backend, `tfio.audio.resample` on tfio.
  Output length is about `len(x) * rate_out / rate_in` and output sample k
  stands for input time k / rate_out. tfio's whole-sample latency is removed
  here; for non-integer rate ratios its output grid still sits a fraction of a
  sample off (measured: -0.05 samples for 44.1 -> 16 kHz, 0.45 for 11.025 -> 16 kHz).
  """
  rate_in, rate_out = int(rate_in), int(rate_out)
  if rate_in <= 0 or rate_out <= 0:
    raise ValueError(f'resample: sample rates must be positive, got {rate_in} -> {rate_out}')
  x = np.asarray(x, dtype=np.float32)
  if x.ndim not in (1, 2):
    raise ValueError(f'resample: expected [time] or [time, channels], got shape {x.shape}')
  if rate_in == rate_out or x.shape[0] == 0:
    return x.copy()
  if backend_name() == 'tfio':
    import tensorflow_io as tfio
    columns = x if x.ndim == 2 else x[:, None]
    # tfio's output lags its input by a few samples and loses the tail: pad the
    # input, then cut the latency so both backends return aligned signals.
    lag = _tfio_latency(rate_in, rate_out)
    pad = int(np.ceil((lag + 2) * rate_in / rate_out)) + 1
    padded = np.concatenate([columns, np.zeros([pad, columns.shape[1]], np.float32)])
    y = tfio.audio.resample(tf.constant(padded), rate_in, rate_out).numpy()
    y = y[lag:lag + int(round(x.shape[0] * rate_out / rate_in))]
    return (y if x.ndim == 2 else y[:, 0]).astype(np.float32)
  channels = 1 if x.ndim == 1 else x.shape[1]
  return Resampler(rate_in, rate_out, channels)(x, last=True).astype(np.float32)


# --------------------------------------------------------------------------
# Writing.


def quantize_pcm16(waveform: np.ndarray) -> np.ndarray:
  """float [-1, 1) -> int16 with `round(x * 32768)`, clipped to the int16 range."""
  scaled = np.round(np.asarray(waveform, dtype=np.float64) * _PCM16_SCALE)
  return np.clip(scaled, -32768, 32767).astype(np.int16)


def write_wav(path: str, waveform: np.ndarray, sample_rate: int,
              subtype: str = 'PCM_16') -> None:
  """Writes `[time]` or `[time, channels]` audio as WAV (parent dirs are created).

  Args:
    path: local or gs:// path.
    waveform: float (values in [-1, 1] for PCM) or int16 (written verbatim).
    sample_rate: Hz.
    subtype: 'PCM_16' (default) or 'FLOAT' (32-bit float, no clipping).

  Float samples outside [-1, 1) are clipped for PCM_16 and a warning names the
  file and the peak, so an overloaded output is never silently mangled.
  """
  path = os.fspath(path)
  waveform = np.asarray(waveform)
  if waveform.ndim not in (1, 2) or waveform.shape[0] == 0:
    raise ValueError(f'write_wav({path}): expected non-empty [time] or [time, channels], '
                     f'got shape {waveform.shape}')
  if int(sample_rate) <= 0:
    raise ValueError(f'write_wav({path}): sample rate must be positive, got {sample_rate}')
  subtype = subtype.upper()
  if subtype not in ('PCM_16', 'FLOAT'):
    raise ValueError(f'write_wav({path}): subtype must be PCM_16 or FLOAT, got {subtype!r}')
  if waveform.dtype == np.int16:
    if subtype != 'PCM_16':
      raise ValueError(f'write_wav({path}): int16 samples can only be written as PCM_16')
    samples = waveform
  else:
    floats = waveform.astype(np.float32)
    if not np.all(np.isfinite(floats)):
      raise ValueError(f'write_wav({path}): waveform holds NaN or infinite samples')
    if subtype == 'PCM_16':
      peak = float(np.max(np.abs(floats)))
      if peak > 32767.0 / _PCM16_SCALE:
        logging.warning('write_wav(%s): peak %.3f exceeds 16-bit full scale; clipping', path,
                        peak)
      samples = quantize_pcm16(floats)
    else:
      samples = floats
  channels = 1 if samples.ndim == 1 else samples.shape[1]
  with AudioWriter(path, int(sample_rate), channels, subtype, in_memory=True) as writer:
    writer.write(samples)
