"""Audio I/O: decoding against soundfile, resampling, writing, and every bad input.

Runs on each backend available in this environment. `.ci/run` also runs it
with MIXIT_AUDIO_BACKEND=tfio on the TF 2.16 + tensorflow-io stack, where
`test_forced_tfio_backend_is_really_used` proves tfio does the work.
"""
import os

import numpy as np
import pytest
import soundfile

from data_pipeline import audio_io

FORCED = os.environ.get(audio_io.BACKEND_ENV, '').strip().lower()


def _available_backends():
  if FORCED in audio_io.BACKENDS:
    return [FORCED]
  backends = ['soundfile']
  if audio_io._tfio_failure_reason() is None:
    backends.append('tfio')
  return backends


@pytest.fixture(params=_available_backends())
def backend(request):
  audio_io.set_backend(request.param)
  yield request.param
  audio_io.set_backend(None)


def _noise(rng, frames, channels=1, scale=0.3):
  x = rng.uniform(-scale, scale, size=(frames, channels)).astype(np.float32)
  return x[:, 0] if channels == 1 else x


def _sf_reference(path):
  """soundfile's float32 decode, channels averaged: the independent reference."""
  data, rate = soundfile.read(path, dtype='float32', always_2d=True)
  return data.mean(axis=1), rate


# --------------------------------------------------------------------------
# Backend choice.


def test_backend_follows_the_environment():
  audio_io.set_backend(None)
  try:
    name = audio_io.backend_name()
    if FORCED in audio_io.BACKENDS:
      assert name == FORCED
    else:
      expected = 'tfio' if audio_io._tfio_failure_reason() is None else 'soundfile'
      assert name == expected
    assert audio_io.backend_name() == name  # chosen once
  finally:
    audio_io.set_backend(None)


@pytest.mark.skipif(FORCED != 'tfio', reason='only where MIXIT_AUDIO_BACKEND=tfio (second CI env)')
def test_forced_tfio_backend_is_really_used(tmp_path, monkeypatch):
  import sys
  audio_io.set_backend(None)
  assert audio_io.backend_name() == 'tfio'
  assert 'tensorflow_io' in sys.modules
  rng = np.random.default_rng(0)
  x = _noise(rng, 4410, channels=2)
  path = str(tmp_path / 'a.flac')
  soundfile.write(path, x, 44100, subtype='PCM_16')
  expected, _ = _sf_reference(path)

  def no_soundfile(*args, **kwargs):
    raise AssertionError('soundfile decoder used on the tfio backend')

  def no_soxr(*args, **kwargs):
    raise AssertionError('soxr used on the tfio backend')

  import soxr
  monkeypatch.setattr(audio_io, '_decode_soundfile', no_soundfile)
  monkeypatch.setattr(soxr, 'resample', no_soxr)
  y, rate = audio_io.read_audio(path)
  np.testing.assert_array_equal(y, expected)
  assert rate == 44100
  z, rate = audio_io.read_audio(path, sample_rate=16000)
  assert rate == 16000 and abs(z.shape[0] - 1600) <= 1


def test_unknown_backend_request_is_rejected(monkeypatch):
  monkeypatch.setenv(audio_io.BACKEND_ENV, 'ffmpeg')
  audio_io.set_backend(None)
  try:
    with pytest.raises(ValueError, match='ffmpeg'):
      audio_io.backend_name()
  finally:
    monkeypatch.delenv(audio_io.BACKEND_ENV)
    if FORCED:
      monkeypatch.setenv(audio_io.BACKEND_ENV, FORCED)
    audio_io.set_backend(None)
  with pytest.raises(ValueError, match='nope'):
    audio_io.set_backend('nope')


# --------------------------------------------------------------------------
# Decoding equals soundfile.


@pytest.mark.parametrize('fmt,subtype', [('WAV', 'PCM_16'), ('WAV', 'PCM_24'), ('WAV', 'FLOAT'),
                                         ('FLAC', 'PCM_16'), ('FLAC', 'PCM_24')])
@pytest.mark.parametrize('channels', [1, 2])
def test_lossless_formats_equal_soundfile(backend, tmp_path, fmt, subtype, channels):
  rng = np.random.default_rng(1)
  path = str(tmp_path / f'x.{fmt.lower()}')
  soundfile.write(path, _noise(rng, 3000, channels), 22050, format=fmt, subtype=subtype)
  expected, rate = _sf_reference(path)
  y, got_rate = audio_io.read_audio(path)
  assert y.dtype == np.float32 and y.ndim == 1 and got_rate == rate == 22050
  np.testing.assert_allclose(y, expected, atol=1e-7, rtol=0)


def test_pcm16_scaling_is_int_over_32768(backend, tmp_path):
  ints = np.array([-32768, -1, 0, 1, 12345, 32767], np.int16)
  path = str(tmp_path / 'ints.wav')
  soundfile.write(path, ints, 16000, subtype='PCM_16')
  y, _ = audio_io.read_audio(path)
  np.testing.assert_array_equal(y, ints.astype(np.float32) / 32768.0)


def test_ogg_vorbis_close_to_soundfile(backend, tmp_path):
  t = np.arange(22050) / 22050.0
  x = (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
  path = str(tmp_path / 'tone.ogg')
  soundfile.write(path, np.stack([x, x], axis=1), 22050, format='OGG', subtype='VORBIS')
  expected, _ = _sf_reference(path)
  y, rate = audio_io.read_audio(path)
  assert rate == 22050 and y.shape == expected.shape
  error = np.sum((y - expected) ** 2) / np.sum(expected ** 2)
  assert error < 1e-3  # two Vorbis decoders agree to better than 30 dB


# --------------------------------------------------------------------------
# Resampling.


@pytest.mark.parametrize('rate_in,rate_out', [(44100, 16000), (8000, 16000), (48000, 16000)])
def test_resample_reproduces_a_sine(backend, rate_in, rate_out):
  seconds = 0.5
  t_in = np.arange(int(rate_in * seconds)) / rate_in
  y = audio_io.resample(np.sin(2 * np.pi * 1000 * t_in).astype(np.float32), rate_in, rate_out)
  assert abs(y.shape[0] - int(rate_out * seconds)) <= 1
  t_out = np.arange(y.shape[0]) / rate_out
  margin = rate_out // 20  # filter edge effects
  # Least-squares fit of a 1 kHz sinusoid: resamplers may delay by a fraction
  # of a sample, which shows as a small phase, not as distortion.
  basis = np.stack([np.sin(2 * np.pi * 1000 * t_out), np.cos(2 * np.pi * 1000 * t_out)], 1)
  basis, target = basis[margin:-margin], y[margin:-margin].astype(np.float64)
  coefficients, _, _, _ = np.linalg.lstsq(basis, target, rcond=None)
  residual = target - basis @ coefficients
  assert abs(np.hypot(*coefficients) - 1.0) < 0.02
  assert abs(np.arctan2(coefficients[1], coefficients[0])) < 0.2  # < half a sample at 16 kHz
  assert np.sqrt(np.mean(residual ** 2)) < 1e-2


@pytest.mark.parametrize('rate_in,rate_out', [(44100, 16000), (16000, 8000), (11025, 16000)])
def test_resample_is_aligned_with_polyphase_reference(backend, rate_in, rate_out):
  """No latency, no lost tail: a delay would hide from the sine test (whole periods)."""
  import math
  import scipy.signal
  rng = np.random.default_rng(6)
  n = rate_in // 2
  # Noise band-limited well inside both Nyquist bands, so all resamplers agree.
  spectrum = np.fft.rfft(rng.standard_normal(n))
  spectrum[np.fft.rfftfreq(n, 1 / rate_in) > 0.35 * min(rate_in, rate_out)] = 0
  x = (0.3 * np.fft.irfft(spectrum, n) / np.std(np.fft.irfft(spectrum, n))).astype(np.float32)
  common = math.gcd(rate_in, rate_out)
  reference = scipy.signal.resample_poly(x.astype(np.float64), rate_out // common,
                                         rate_in // common)
  y = audio_io.resample(x, rate_in, rate_out)
  assert abs(y.shape[0] - reference.shape[0]) <= 1
  m = min(y.shape[0], reference.shape[0])
  edge = rate_out // 50
  a, b = y[edge:m - edge].astype(np.float64), reference[edge:m - edge]
  # Fit the delay of `y` against the reference on a grid of fractional output
  # samples (band-limited shift in the frequency domain, edges ignored).
  spectrum, freqs = np.fft.rfft(b), np.fft.rfftfreq(b.shape[0])
  errors = {}
  for delay in np.linspace(-4, 4, 161):
    shifted = np.fft.irfft(spectrum * np.exp(-2j * np.pi * freqs * delay), b.shape[0])
    inner = slice(2 * edge, -2 * edge)
    errors[delay] = np.sum((a - shifted)[inner] ** 2) / np.sum(shifted[inner] ** 2)
  delay = min(errors, key=errors.get)
  assert errors[delay] < 1e-3
  # soxr is exact to the grid; tfio's grid for non-integer ratios sits up to
  # half an output sample off (documented in audio_io.resample).
  assert abs(delay) <= (0.05 if backend == 'soundfile' else 0.5)


def test_resample_multichannel_and_identity(backend):
  rng = np.random.default_rng(2)
  x = _noise(rng, 4800, channels=2)
  y = audio_io.resample(x, 48000, 16000)
  assert y.shape[1] == 2 and abs(y.shape[0] - 1600) <= 1
  np.testing.assert_array_equal(audio_io.resample(x, 16000, 16000), x)
  with pytest.raises(ValueError, match='positive'):
    audio_io.resample(x, 0, 16000)
  with pytest.raises(ValueError, match='shape'):
    audio_io.resample(np.zeros([2, 3, 4]), 16000, 8000)


def test_read_audio_resamples_and_downmixes(backend, tmp_path):
  rng = np.random.default_rng(3)
  x = _noise(rng, 44100, channels=2)
  path = str(tmp_path / 'stereo.flac')
  soundfile.write(path, x, 44100, subtype='PCM_24')
  y, rate = audio_io.read_audio(path, sample_rate=16000)
  assert rate == 16000
  expected = audio_io.resample(_sf_reference(path)[0], 44100, 16000)
  np.testing.assert_allclose(y, expected, atol=1e-5)


# --------------------------------------------------------------------------
# Writing.


def test_write_wav_round_trips(backend, tmp_path):
  rng = np.random.default_rng(4)
  x = _noise(rng, 1000, scale=0.9)
  audio_io.write_wav(str(tmp_path / 'sub' / 'pcm.wav'), x, 16000)
  y, rate = audio_io.read_audio(str(tmp_path / 'sub' / 'pcm.wav'))
  assert rate == 16000
  assert np.max(np.abs(y - x)) <= 0.5 / 32768 + 1e-9
  info = soundfile.info(str(tmp_path / 'sub' / 'pcm.wav'))
  assert info.subtype == 'PCM_16'
  audio_io.write_wav(str(tmp_path / 'float.wav'), 3.0 * x, 16000, subtype='FLOAT')
  np.testing.assert_array_equal(audio_io.read_audio(str(tmp_path / 'float.wav'))[0], 3.0 * x)
  ints = np.array([-32768, 5, 32767], np.int16)
  audio_io.write_wav(str(tmp_path / 'ints.wav'), ints, 8000)
  data, _ = soundfile.read(str(tmp_path / 'ints.wav'), dtype='int16')
  np.testing.assert_array_equal(data, ints)


def test_write_wav_clips_loudly_and_rejects_bad_input(tmp_path, caplog):
  path = str(tmp_path / 'loud.wav')
  audio_io.write_wav(path, np.array([0.0, 1.5, -2.0], np.float32), 16000)
  data, _ = soundfile.read(path, dtype='int16')
  np.testing.assert_array_equal(data, [0, 32767, -32768])
  assert any('loud.wav' in r.getMessage() and 'clipping' in r.getMessage()
             for r in caplog.records)
  with pytest.raises(ValueError, match='nan.wav.*NaN'):
    audio_io.write_wav(str(tmp_path / 'nan.wav'), np.array([0.0, np.nan]), 16000)
  with pytest.raises(ValueError, match='shape'):
    audio_io.write_wav(str(tmp_path / 'e.wav'), np.zeros([0]), 16000)
  with pytest.raises(ValueError, match='subtype'):
    audio_io.write_wav(str(tmp_path / 'e.wav'), np.zeros([4]), 16000, subtype='PCM_8')
  with pytest.raises(ValueError, match='sample rate'):
    audio_io.write_wav(str(tmp_path / 'e.wav'), np.zeros([4]), 0)


# --------------------------------------------------------------------------
# Bad input: every error names the file.


def _good_bytes(tmp_path, fmt):
  path = str(tmp_path / f'good.{fmt.lower()}')
  soundfile.write(path, _noise(np.random.default_rng(5), 8000), 16000, format=fmt,
                  subtype='PCM_16')
  with open(path, 'rb') as f:
    return f.read()


def _write_bytes(path, data):
  with open(path, 'wb') as f:
    f.write(data)
  return str(path)


def test_missing_file(backend, tmp_path):
  path = str(tmp_path / 'nothere.wav')
  with pytest.raises(FileNotFoundError, match='nothere.wav'):
    audio_io.read_audio(path)


@pytest.mark.parametrize('case', ['empty', 'garbage', 'truncated_wav', 'truncated_flac',
                                  'header_only_wav', 'text_as_mp3', 'nan_wav', 'directory'])
def test_bad_files_raise_naming_the_file(backend, tmp_path, case):
  name = f'bad_{case}'
  if case == 'empty':
    path = _write_bytes(tmp_path / f'{name}.wav', b'')
  elif case == 'garbage':
    path = _write_bytes(tmp_path / f'{name}.wav', bytes(range(256)) * 20)
  elif case == 'truncated_wav':
    data = _good_bytes(tmp_path, 'WAV')
    path = _write_bytes(tmp_path / f'{name}.wav', data[:len(data) // 2])
  elif case == 'truncated_flac':
    data = _good_bytes(tmp_path, 'FLAC')
    path = _write_bytes(tmp_path / f'{name}.flac', data[:len(data) // 2])
  elif case == 'header_only_wav':
    data = _good_bytes(tmp_path, 'WAV')
    path = _write_bytes(tmp_path / f'{name}.wav', data[:44])
  elif case == 'text_as_mp3':
    path = _write_bytes(tmp_path / f'{name}.mp3', b'this is not audio at all\n' * 40)
  elif case == 'nan_wav':
    path = str(tmp_path / f'{name}.wav')
    soundfile.write(path, np.array([0.1, np.nan, 0.2] * 100, np.float32), 16000,
                    subtype='FLOAT')
  else:
    os.makedirs(tmp_path / f'{name}.wav')
    path = str(tmp_path / f'{name}.wav')
  with pytest.raises(audio_io.AudioDecodeError, match=name):
    audio_io.read_audio(path)


def test_audio_info(tmp_path):
  path = str(tmp_path / 'i.flac')
  soundfile.write(path, np.zeros([300, 3], np.float32), 11025)
  assert audio_io.audio_info(path) == (300, 11025, 3)
  with pytest.raises(FileNotFoundError, match='nope.flac'):
    audio_io.audio_info(str(tmp_path / 'nope.flac'))


# --------------------------------------------------------------------------
# The one streaming stack: resampler, block reading and writing, gfile paths.


@pytest.mark.parametrize('rate_in,rate_out', [(44100, 16000), (8000, 16000), (11025, 16000),
                                              (48000, 44100)])
@pytest.mark.parametrize('channels', [1, 2])
def test_streaming_resampler_equals_one_shot(rate_in, rate_out, channels):
  audio_io.set_backend('soundfile')  # resample's soxr path is a one-shot Resampler
  try:
    x = _noise(np.random.default_rng(7), 3 * rate_in + 123, channels)
    whole = audio_io.resample(x, rate_in, rate_out)
  finally:
    audio_io.set_backend(None)
  resampler = audio_io.Resampler(rate_in, rate_out, channels)
  # Uneven chunks, one of them empty, then the flush.
  edges = [0, 1, 700, 700, 5000, 5001, 12345, x.shape[0]]
  parts = [resampler(x[a:b]) for a, b in zip(edges[:-1], edges[1:])]
  parts.append(resampler(x[:0], last=True))
  streamed = np.concatenate(parts)
  assert streamed.shape == whole.shape and streamed.dtype == np.float32
  np.testing.assert_allclose(streamed, whole, atol=1e-6)
  # Equal rates: the identity.
  assert audio_io.Resampler(rate_in, rate_in, channels)(x) is x


def test_downmix_layouts():
  stereo = np.array([[0.5, -0.5], [0.25, 0.75], [1.0, 0.0]], np.float32)
  np.testing.assert_array_equal(audio_io.downmix(stereo), [0.0, 0.5, 0.5])
  np.testing.assert_array_equal(audio_io.downmix(stereo.T, channel_axis=0), [0.0, 0.5, 0.5])
  np.testing.assert_array_equal(audio_io.downmix(stereo[:, :1]), stereo[:, 0])
  assert audio_io.downmix(np.zeros(4, np.float64)).dtype == np.float32


def test_blocks_read_and_write_through_ram(ram_dir, backend):
  rng = np.random.default_rng(3)
  x = _noise(rng, 5000, 2)
  path = f'{ram_dir}/in/x.wav'
  audio_io.write_wav(path, x, 16000, subtype='FLOAT')
  whole, rate = audio_io.read_audio(path)
  assert rate == 16000
  np.testing.assert_allclose(whole, x.mean(axis=1), atol=1e-7)
  assert audio_io.audio_info(path) == (5000, 16000, 2)
  with audio_io.open_audio(path) as reader:
    assert (reader.frames, reader.sample_rate, reader.channels) == (5000, 16000, 2)
    blocks = list(reader.blocks(1024, mono=True))
  assert [b.shape[0] for b in blocks] == [1024] * 4 + [904]
  np.testing.assert_array_equal(np.concatenate(blocks), whole)
  # Written in blocks (PCM_16: quantised like write_wav) to ram://, nothing before close.
  out = f'{ram_dir}/out/sub/y.wav'
  with audio_io.AudioWriter(out, 16000, channels=2, subtype='PCM_16') as writer:
    for start in range(0, 5000, 1500):
      writer.write(x[start:start + 1500])
    assert not audio_io.tf.io.gfile.exists(out)
  audio_io.write_wav(f'{ram_dir}/out/z.wav', x, 16000)
  with audio_io.tf.io.gfile.GFile(out, 'rb') as f, \
      audio_io.tf.io.gfile.GFile(f'{ram_dir}/out/z.wav', 'rb') as g:
    assert f.read() == g.read()


def test_discarded_writer_writes_nothing(ram_dir):
  writer = audio_io.AudioWriter(f'{ram_dir}/gone.wav', 8000)
  writer.write(np.zeros(100, np.float32))
  writer.discard()
  assert audio_io.tf.io.gfile.listdir(ram_dir) == []


def _wav_with_empty_data_chunk(path):
  """A 16-bit WAV whose data chunk declares 0 bytes and ends the file."""
  import io
  buffer = io.BytesIO()
  soundfile.write(buffer, np.zeros(100, np.float32), 8000, format='WAV', subtype='PCM_16')
  data = buffer.getvalue()
  at = data.index(b'data')
  with audio_io.tf.io.gfile.GFile(path, 'wb') as f:
    f.write(data[:at + 4] + b'\0\0\0\0')
  return path


@pytest.mark.parametrize('where', ['local', 'ram'])
def test_empty_data_chunk_is_one_line_naming_the_file(tmp_path, ram_dir, backend, where):
  path = _wav_with_empty_data_chunk(
      str(tmp_path / 'empty_data.wav') if where == 'local' else f'{ram_dir}/empty_data.wav')
  for read in (audio_io.read_audio, audio_io.open_audio):
    with pytest.raises(audio_io.AudioDecodeError, match='data chunk declares 0 bytes') as info:
      read(path)
    message = str(info.value)
    assert message.startswith(path) and '\n' not in message


def _streamed_wav(samples, rate, subtype, declared):
  """`samples` as a WAV whose data chunk size is `declared` (0 or 0xFFFFFFFF), the way a
  writer that streams and never goes back to fill in the size leaves it."""
  import io
  import struct
  buffer = io.BytesIO()
  soundfile.write(buffer, samples, rate, format='WAV', subtype=subtype)
  data = buffer.getvalue()
  at = data.index(b'data')
  return data[:at + 4] + struct.pack('<I', declared) + data[at + 8:]


@pytest.mark.parametrize('declared', [0, 0xFFFFFFFF])
@pytest.mark.parametrize('subtype,channels', [('PCM_16', 1), ('PCM_16', 2), ('FLOAT', 2),
                                              ('PCM_24', 1)])
@pytest.mark.parametrize('where', ['local', 'ram'])
def test_streamed_wav_reads_in_blocks_to_the_end(tmp_path, ram_dir, declared, subtype,
                                                 channels, where):
  rng = np.random.default_rng(11)
  x = _noise(rng, 3001, channels)
  path = str(tmp_path / 'streamed.wav') if where == 'local' else f'{ram_dir}/streamed.wav'
  with audio_io.tf.io.gfile.GFile(path, 'wb') as f:
    f.write(_streamed_wav(x, 8000, subtype, declared))
  # The reference: the same samples written with the size filled in, read by libsndfile.
  plain = str(tmp_path / 'plain.wav')
  soundfile.write(plain, x, 8000, subtype=subtype)
  expected, _ = soundfile.read(plain, dtype='float32', always_2d=True)
  assert audio_io.audio_info(path) == (3001, 8000, channels)
  with audio_io.open_audio(path) as reader:
    assert (reader.frames, reader.sample_rate, reader.channels) == (3001, 8000, channels)
    blocks = list(reader.blocks(1000))
  assert [b.shape[0] for b in blocks] == [1000, 1000, 1000, 1]
  np.testing.assert_array_equal(np.concatenate(blocks), expected)
  with audio_io.open_audio(path) as reader:
    np.testing.assert_array_equal(reader.read(), expected)
  whole, rate = audio_io.read_audio(path)
  assert rate == 8000
  np.testing.assert_allclose(whole, expected.mean(axis=1), atol=1e-7)


def test_streamed_wav_of_a_format_it_cannot_read_is_one_line_naming_the_file(tmp_path):
  import struct
  data = bytearray(_streamed_wav(np.zeros(400, np.float32), 8000, 'PCM_16', 0))
  fmt_at = bytes(data).index(b'fmt ')
  data[fmt_at + 8:fmt_at + 10] = struct.pack('<H', 0x11)  # IMA ADPCM: not a raw format
  path = str(tmp_path / 'adpcm.wav')
  with open(path, 'wb') as f:
    f.write(bytes(data))
  for read in (audio_io.read_audio, audio_io.open_audio):
    with pytest.raises(audio_io.AudioDecodeError, match='format tag 0x11') as info:
      read(path)
    message = str(info.value)
    assert message.startswith(path) and '\n' not in message


def test_find_audio_files_walks_gfile_with_the_one_extension_list(ram_dir):
  assert set(audio_io.AUDIO_EXTENSIONS) >= {'.wav', '.flac', '.ogg', '.oga', '.opus', '.aif',
                                            '.aiff', '.au', '.mp3'}
  for name in ['b.WAV', 'a.opus', 'n.au', 'notes.txt', '.hidden.wav', 'sub/c.flac',
               '.git/d.wav']:
    # ram:// lists only folders made with makedirs (as every writer of the package does).
    audio_io.tf.io.gfile.makedirs(os.path.dirname(f'{ram_dir}/{name}'))
    with audio_io.tf.io.gfile.GFile(f'{ram_dir}/{name}', 'wb') as f:
      f.write(b'x')
  assert audio_io.find_audio_files(ram_dir) == [
      f'{ram_dir}/a.opus', f'{ram_dir}/b.WAV', f'{ram_dir}/n.au', f'{ram_dir}/sub/c.flac']
  assert sorted(audio_io.find_audio_files(ram_dir, skip_hidden=False)) == sorted(
      [f'{ram_dir}/.git/d.wav', f'{ram_dir}/.hidden.wav', f'{ram_dir}/a.opus',
       f'{ram_dir}/b.WAV', f'{ram_dir}/n.au', f'{ram_dir}/sub/c.flac'])


@pytest.mark.parametrize('name, data', [
    ('bad_fmt.wav', b'RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00' + b'\x07' * 16
     + b'data\x00\x10\x00\x00' + b'\x00' * 4096),
    ('bad.flac', b'fLaC' + b'\x00' * 100),
])
def test_corrupt_header_error_names_the_path_not_a_file_object(tmp_path, name, data):
  path = tmp_path / name
  path.write_bytes(data)
  for call in (audio_io.read_audio, audio_io.audio_info):
    with pytest.raises(audio_io.AudioDecodeError) as raised:
      call(str(path))
    message = str(raised.value)
    assert message.startswith(f'{path}: ')
    assert ' object at 0x' not in message and '\n' not in message
