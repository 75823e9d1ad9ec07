"""Separation of waveforms and files: windowing and stitching, permutation
alignment, bounded memory, resampling, file I/O, bad inputs, the SavedModel
loader and the mixit-separate command line.

Most tests use numpy stand-ins for the model with known outputs (a
complementary FIR band split whose output order is shuffled on every call), so
that stitched results can be compared sample by sample with a separation of the
whole signal; the last ones run the exported small TDCN++.
"""
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import scipy.signal
import soundfile

from data_pipeline import audio_io
from mixit.serving import separate
from mixit.serving import separator as separator_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE = 8000
_HALF_TAPS = 31


class BandSplit:
  """Stand-in model: [low band, high band, silence], shuffled on every call.

  The two bands come from a complementary FIR pair, so the outputs sum to the
  input exactly and every output sample depends only on inputs within
  `_HALF_TAPS` samples: away from window edges a window's output equals the
  whole signal's.
  """

  def __init__(self, shuffle=True, seed=0):
    self.taps = scipy.signal.firwin(2 * _HALF_TAPS + 1, 1000, fs=RATE)
    self.rng = np.random.default_rng(seed)
    self.shuffle = shuffle
    self.call_lengths = []
    self.inputs = []

  def reference(self, x):
    low = np.convolve(x, self.taps, mode='same')
    return np.stack([low, x - low, np.zeros_like(x)]).astype(np.float32)

  def __call__(self, mixture):
    assert mixture.ndim == 2 and mixture.shape[0] == 1 and mixture.dtype == np.float32
    self.call_lengths.append(mixture.shape[1])
    if len(self.inputs) < 4:
      self.inputs.append(mixture[0].copy())
    outputs = self.reference(mixture[0])
    order = self.rng.permutation(3) if self.shuffle else np.arange(3)
    return outputs[order][None]


def _two_tones(seconds, rate=RATE, seed=0):
  """A 200 Hz tone plus a slowly modulated 2.5 kHz tone: one per band."""
  t = np.arange(int(seconds * rate)) / rate
  phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, 2)
  low = 0.3 * np.sin(2 * np.pi * 200 * t + phase[0])
  high = 0.2 * np.sin(2 * np.pi * 2500 * t + phase[1]) * (1.2 + np.sin(2 * np.pi * 0.3 * t))
  return (low + high).astype(np.float32)


def _window_starts(length, window, overlap):
  """Where the windows must start: every window - overlap samples, the last one
  ending at the end of the input."""
  starts = [0]
  while starts[-1] + window < length:
    starts.append(min(starts[-1] + window - overlap, length - window))
  return starts


def _best_order(estimates, references):
  scores = np.abs(estimates @ references.T)
  return [int(np.argmax(scores[:, j])) for j in range(references.shape[0])]


@pytest.mark.parametrize('seconds', [0.5, 4.0, 4.0 + 1 / RATE, 7.0, 7.0 + 5 / RATE, 23.3])
def test_stitched_equals_whole_away_from_seams(seconds):
  model = BandSplit()
  separator = separator_lib.Separator(model, RATE, 3, max_chunk_seconds=4.0, overlap_seconds=1.0)
  mixture = _two_tones(seconds)
  stitched = separator(mixture, RATE)
  window, overlap = 4 * RATE, RATE
  starts = _window_starts(len(mixture), window, overlap)
  assert model.call_lengths == [min(window, len(mixture))] * len(starts)

  whole = model.reference(mixture)
  # Outputs follow the first window's order throughout; find it from the data.
  order = _best_order(stitched, whole[:2])
  assert len(set(order)) == 2
  assert stitched.shape == (3, len(mixture))
  near_edge = np.zeros(len(mixture), bool)
  for start in starts:
    for edge in (start, start + window):
      near_edge[max(edge - 2 * _HALF_TAPS, 0):edge + 2 * _HALF_TAPS] = True
  near_edge[:2 * _HALF_TAPS] = near_edge[-2 * _HALF_TAPS:] = False  # the whole signal's edges too
  far = ~near_edge
  np.testing.assert_allclose(stitched[order[0]][far], whole[0][far], atol=1e-6)
  np.testing.assert_allclose(stitched[order[1]][far], whole[1][far], atol=1e-6)
  third = 3 - order[0] - order[1]
  np.testing.assert_allclose(stitched[third], 0.0, atol=1e-7)
  # Near the seams the cross-fade still keeps the sum: the mixture, everywhere.
  np.testing.assert_allclose(stitched.sum(axis=0), mixture, atol=1e-6)


def test_alignment_follows_sources_whose_level_changes():
  """Each window's outputs arrive in a new random order; alignment must track them
  even when a source fades in or out across windows."""
  mixture = _two_tones(30.0)
  t = np.arange(len(mixture)) / RATE
  mixture *= (0.2 + (t / 30.0)).astype(np.float32)
  model = BandSplit(seed=3)
  separator = separator_lib.Separator(model, RATE, 3, max_chunk_seconds=3.0, overlap_seconds=0.5)
  stitched = separator(mixture, RATE)
  whole = model.reference(mixture)
  order = _best_order(stitched, whole[:2])
  for i in range(2):
    error = stitched[order[i]] - whole[i]
    assert np.sqrt(np.mean(error**2)) < 1e-3 * np.sqrt(np.mean(whole[i]**2))


def test_align_to_previous_against_brute_force():
  import itertools
  rng = np.random.default_rng(5)
  for _ in range(20):
    previous = rng.standard_normal([5, 40])
    current = rng.standard_normal([5, 40])
    best = max(itertools.permutations(range(5)),
               key=lambda p: sum(previous[i] @ current[p[i]] for i in range(5)))
    assert list(separator_lib.align_to_previous(previous, current)) == list(best)


def test_memory_is_bounded_by_the_window():
  model = BandSplit(shuffle=False)
  separator = separator_lib.Separator(model, RATE, 3, max_chunk_seconds=2.0, overlap_seconds=0.5)
  peaks = []
  for minutes in (1, 5):
    stream = separator.stream(RATE)
    block = np.zeros(RATE // 2, np.float32)
    emitted = 0
    for _ in range(minutes * 120):
      emitted += sum(o.shape[1] for o in stream.push(block))
      # Output is not held back beyond the pending cross-fade and the window in work.
      assert stream.input_samples - emitted <= 2 * 2 * RATE + len(block)
    emitted += sum(o.shape[1] for o in stream.finish())
    assert emitted == minutes * 60 * RATE
    peaks.append(stream.peak_held_samples)
    assert stream.longest_model_input == 2 * RATE
  assert peaks[0] == peaks[1]
  assert peaks[1] <= 2 * RATE + (2 * RATE - RATE // 2) + RATE // 2


def _write(path, waveform, rate, subtype='PCM_16', **kwargs):
  soundfile.write(str(path), waveform, rate, subtype=subtype, **kwargs)
  return str(path)


def test_file_separation_memory_is_flat_in_file_length(tmp_path):
  """Peak Python-heap use while separating a 6-minute file is that of a 1-minute file,
  and far below the size of the decoded recording."""
  separator = separator_lib.Separator(BandSplit(shuffle=False), RATE, 3, max_chunk_seconds=4.0,
                                      overlap_seconds=1.0)
  peaks = {}
  for minutes in (1, 6):
    path = tmp_path / f'long{minutes}.wav'
    with soundfile.SoundFile(str(path), 'w', RATE, 1, subtype='PCM_16') as f:
      for _ in range(minutes * 6):
        f.write(_two_tones(10.0))
    tracemalloc.start()
    result = separate.separate_file(separator, str(path), str(tmp_path / 'out'))
    peaks[minutes] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.seconds == minutes * 60
    assert soundfile.info(result.output_paths[0]).frames == minutes * 60 * RATE
  decoded_6min = 6 * 60 * RATE * 4
  assert peaks[6] < 1.25 * peaks[1] + 200_000, peaks
  assert peaks[6] < decoded_6min / 2, peaks


class Scale:
  """Stand-in model: [0.25 x, 0.75 x]; records what it is given."""

  def __init__(self):
    self.inputs = []

  def __call__(self, mixture):
    self.inputs.append(mixture[0].copy())
    return np.stack([0.25 * mixture, 0.75 * mixture], axis=1)


@pytest.mark.parametrize('rate', [44100, 22050, 48000, 11025])
def test_resampling_in_and_out(rate):
  model_rate = 16000
  model = Scale()
  separator = separator_lib.Separator(model, model_rate, 2, max_chunk_seconds=3.0,
                                      overlap_seconds=1.0)
  t = np.arange(int(8.3 * rate)) / rate
  mixture = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
  sources = separator(mixture, rate)
  assert sources.shape == (2, len(mixture))
  # The model saw the tone at its own rate: 1 kHz at 16 kHz.
  first = model.inputs[0]
  spectrum = np.abs(np.fft.rfft(first * np.hanning(len(first))))
  assert abs(np.argmax(spectrum) * model_rate / len(first) - 1000) < 1
  # Sources sum to the input resampled down and back up, as one-shot resampling gives it.
  down = audio_io.resample(mixture, rate, model_rate)
  round_trip = audio_io.resample(down, model_rate, rate)[:len(mixture)]
  round_trip = np.pad(round_trip, (0, len(mixture) - len(round_trip)))
  np.testing.assert_allclose(sources.sum(axis=0), round_trip, atol=1e-5)
  np.testing.assert_allclose(sources[0], 0.25 * round_trip, atol=1e-5)
  # A tone well inside both bands comes back unchanged away from the edges.
  interior = slice(rate // 10, -rate // 10)
  np.testing.assert_allclose(sources.sum(axis=0)[interior], mixture[interior], atol=2e-3)


def test_output_rate_option():
  separator = separator_lib.Separator(Scale(), 16000, 2)
  mixture = np.random.default_rng(0).uniform(-0.1, 0.1, 44100 * 3 + 11).astype(np.float32)
  sources = separator(mixture, 44100, output_rate=8000)
  assert sources.shape == (2, round(len(mixture) * 8000 / 44100))
  reference = audio_io.resample(audio_io.resample(mixture, 44100, 16000), 16000, 8000)
  n = min(len(reference), sources.shape[1])
  np.testing.assert_allclose(sources.sum(axis=0)[:n], reference[:n], atol=1e-5)


def test_waveform_layouts():
  model = Scale()
  separator = separator_lib.Separator(model, RATE, 2)
  stereo = np.stack([np.full(1000, 0.4, np.float32), np.full(1000, -0.2, np.float32)])
  sources = separator(stereo, RATE)
  np.testing.assert_allclose(sources.sum(axis=0), 0.1, atol=1e-6)
  with pytest.raises(ValueError, match=r'looks like \[time, channels\]'):
    separator(stereo.T, RATE)
  with pytest.raises(ValueError, match='integer dtype'):
    separator((stereo * 1000).astype(np.int16), RATE)
  with pytest.raises(ValueError, match='no samples'):
    separator(np.zeros(0, np.float32), RATE)
  with pytest.raises(ValueError, match=r'\[time\] or \[channels, time\]'):
    separator(np.zeros([2, 2, 5], np.float32), RATE)
  with pytest.raises(ValueError, match='NaN'):
    separator(np.array([0.1, np.nan, 0.2], np.float32), RATE)


@pytest.mark.parametrize('rate,match', [(0, 'positive integer'), (-8000, 'positive integer'),
                                        (44100.5, 'positive integer'), ('fast', 'not a number'),
                                        (100, 'cannot be resampled'),
                                        (2_000_000, 'cannot be resampled')])
def test_unusable_sample_rates(rate, match):
  separator = separator_lib.Separator(Scale(), 16000, 2)
  with pytest.raises(ValueError, match=match):
    separator(np.zeros(1000, np.float32), rate)


@pytest.mark.parametrize('chunk,overlap', [(4.0, 2.5), (4.0, 0.0), (-1.0, 1.0), (4.0, -1.0)])
def test_bad_windows(chunk, overlap):
  with pytest.raises(ValueError, match='overlap|max_chunk_seconds'):
    separator_lib.Separator(Scale(), RATE, 2, max_chunk_seconds=chunk, overlap_seconds=overlap)


# --------------------------------------------------------------------------
# Files.


def _band_separator(shuffle=True):
  return separator_lib.Separator(BandSplit(shuffle=shuffle), RATE, 3, max_chunk_seconds=4.0,
                                 overlap_seconds=1.0)


def test_formats_rates_and_channels(tmp_path):
  # Unshuffled, so that two separations of a file come out in the same order.
  separator = _band_separator(shuffle=False)
  tone = _two_tones(9.0, rate=22050)
  (tmp_path / 'in').mkdir()
  inputs = {
      'stereo_flac': _write(tmp_path / 'in' / 'stereo_flac.flac', np.stack([tone, 0.5 * tone], 1),
                            22050),
      'mono_ogg': _write(tmp_path / 'in' / 'mono_ogg.ogg', _two_tones(6.0, rate=48000), 48000,
                         subtype='VORBIS'),
      'float_wav': _write(tmp_path / 'in' / 'float_wav.wav', _two_tones(5.0), RATE, 'FLOAT'),
  }
  for name, path in inputs.items():
    result = separate.separate_file(separator, path, str(tmp_path / 'out'))
    expected = [str(tmp_path / 'out' / f'{name}_source{i}.wav') for i in range(3)]
    assert result.output_paths == expected and result.dropped == []
    mixture, rate = audio_io.read_audio(path)
    outputs = np.stack([soundfile.read(p, dtype='float32')[0] for p in expected])
    assert soundfile.info(expected[0]).samplerate == rate
    assert outputs.shape == (3, len(mixture))
    reference = mixture
    if rate != RATE:
      reference = audio_io.resample(audio_io.resample(mixture, rate, RATE), RATE, rate)
      reference = np.pad(reference, (0, max(len(mixture) - len(reference), 0)))[:len(mixture)]
    np.testing.assert_allclose(outputs.sum(axis=0), reference, atol=1e-5)
    # And the same numbers as the in-memory API.
    np.testing.assert_allclose(outputs, separator(mixture, rate), atol=1e-6)


def test_pcm16_outputs_quantise_like_write_wav(tmp_path):
  separator = _band_separator(shuffle=False)
  path = _write(tmp_path / 'a.wav', _two_tones(3.0), RATE)
  result = separate.separate_file(separator, path, str(tmp_path / 'out'), subtype='PCM_16')
  assert soundfile.info(result.output_paths[0]).subtype == 'PCM_16'
  written = np.stack([soundfile.read(p, dtype='int16')[0] for p in result.output_paths])
  mixture, _ = audio_io.read_audio(path)
  expected = separator(mixture, RATE)
  np.testing.assert_array_equal(written, audio_io.quantize_pcm16(expected))


def test_drop_silent_and_overwrite(tmp_path):
  separator = _band_separator(shuffle=False)  # the silent output is the third
  path = _write(tmp_path / 'mix.wav', _two_tones(6.0), RATE)
  out = tmp_path / 'out'
  first = separate.separate_file(separator, path, str(out))
  assert len(first.output_paths) == 3
  assert first.source_power_db[2] < -100 and max(first.source_power_db[:2]) > -10
  # Existing outputs are kept unless asked, and the error names them.
  before = (out / 'mix_source0.wav').read_bytes()
  with pytest.raises(FileExistsError, match='mix_source0.wav.*--overwrite'):
    separate.separate_file(separator, path, str(out))
  assert (out / 'mix_source0.wav').read_bytes() == before
  # With --overwrite --drop_silent the silent source goes, its stale file too.
  second = separate.separate_file(separator, path, str(out), overwrite=True, drop_silent=True)
  assert second.dropped == [2]
  assert sorted(os.listdir(out)) == ['.mixit_separate.json', 'mix_source0.wav',
                                     'mix_source1.wav']


def _corrupt_inputs(folder):
  folder.mkdir(parents=True, exist_ok=True)
  cases = {}
  (folder / 'empty.wav').write_bytes(b'')
  cases['empty.wav'] = 'empty file'
  (folder / 'garbage.flac').write_bytes(b'this is not audio at all' * 10)
  cases['garbage.flac'] = 'cannot decode'
  _write(folder / 'no_samples.wav', np.zeros(0, np.float32), RATE)
  cases['no_samples.wav'] = 'no samples'
  _write(folder / 'truncated.wav', _two_tones(2.0), RATE)
  data = (folder / 'truncated.wav').read_bytes()
  (folder / 'truncated.wav').write_bytes(data[:len(data) // 2])
  cases['truncated.wav'] = 'truncated'
  bad = _two_tones(9.0)
  bad[-100] = np.nan  # late, after outputs have been written
  _write(folder / 'nan.wav', bad, RATE, 'FLOAT')
  cases['nan.wav'] = 'NaN'
  _write(folder / 'slow.wav', np.zeros(500, np.float32), 100)
  cases['slow.wav'] = 'cannot be resampled'
  return cases


def test_bad_files_raise_errors_naming_them(tmp_path):
  separator = _band_separator()
  cases = _corrupt_inputs(tmp_path / 'in')
  for name, match in cases.items():
    path = str(tmp_path / 'in' / name)
    with pytest.raises(ValueError, match=match) as info:
      separate.separate_file(separator, path, str(tmp_path / 'out'))
    assert path in str(info.value)
  # No output, not even a hidden partial one, is left behind.
  assert not (tmp_path / 'out').exists() or os.listdir(tmp_path / 'out') == []
  with pytest.raises(FileNotFoundError, match='missing.wav'):
    separate.separate_file(separator, str(tmp_path / 'missing.wav'), str(tmp_path / 'out'))


def test_folder_batch_skips_bad_files_and_reports_them(tmp_path):
  separator = _band_separator()
  folder = tmp_path / 'in'
  cases = _corrupt_inputs(folder)
  (folder / 'sub').mkdir()
  _write(folder / 'a_good.wav', _two_tones(5.0), RATE)
  _write(folder / 'sub' / 'z_good.flac', _two_tones(3.0), RATE)
  (folder / 'notes.txt').write_text('ignored')
  out = tmp_path / 'out'
  with pytest.raises(ValueError):
    separate.separate_files(separator, str(folder), str(out))
  report = separate.separate_files(separator, str(folder), str(out), skip_bad=True,
                                   overwrite=True)
  assert sorted(os.path.basename(p) for p, _ in report.failed) == sorted(cases)
  for path, message in report.failed:
    assert path in message and cases[os.path.basename(path)] in message
  assert [r.input_path for r in report.succeeded] == [str(folder / 'a_good.wav'),
                                                      str(folder / 'sub' / 'z_good.flac')]
  assert (out / 'sub' / 'z_good_source2.wav').exists()
  # A rerun without --overwrite skips the finished files (reported) when asked to.
  rerun = separate.separate_files(separator, str(folder / 'sub'), str(out / 'sub'), skip_bad=True)
  assert rerun.succeeded == [] and 'outputs exist' in rerun.failed[0][1]
  with pytest.raises(FileExistsError, match='z_good_source0.wav'):
    separate.separate_files(separator, str(folder / 'sub'), str(out / 'sub'))


def test_outputs_inside_the_input_folder_are_not_separated_again(tmp_path):
  separator = _band_separator()
  _write(tmp_path / 'mix.wav', _two_tones(2.0), RATE)
  first = separate.separate_files(separator, str(tmp_path), str(tmp_path))
  assert [r.input_path for r in first.succeeded] == [str(tmp_path / 'mix.wav')]
  second = separate.separate_files(separator, str(tmp_path), str(tmp_path), overwrite=True)
  assert [r.input_path for r in second.succeeded] == [str(tmp_path / 'mix.wav')]
  assert sorted(os.listdir(tmp_path)) == ['.mixit_separate.json', 'mix.wav'] + [
      f'mix_source{i}.wav' for i in range(3)]


def test_input_listing_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match='nowhere'):
    separate.find_inputs(str(tmp_path / 'nowhere'))
  (tmp_path / 'empty').mkdir()
  (tmp_path / 'empty' / 'readme.txt').write_text('x')
  with pytest.raises(ValueError, match='holds no audio files'):
    separate.find_inputs(str(tmp_path / 'empty'))
  (tmp_path / 'clash').mkdir()
  _write(tmp_path / 'clash' / 'a.wav', np.zeros(10, np.float32), RATE)
  _write(tmp_path / 'clash' / 'a.flac', np.zeros(10, np.float32), RATE)
  with pytest.raises(ValueError, match='share a name'):
    separate.find_inputs(str(tmp_path / 'clash'))


def test_list_files_and_globs_as_input(tmp_path, ram_dir):
  """--input may be a list file (.txt, .lst) or a glob: mixit-separate and
  mixit-separate-beam share `find_inputs`."""
  (tmp_path / 'rec' / 'sub').mkdir(parents=True)
  for name in ('a.wav', 'b.flac', 'sub/c.wav', 'sub/.hidden.wav'):
    _write(tmp_path / 'rec' / name, np.zeros(10, np.float32), RATE)
  (tmp_path / 'rec' / 'sub' / 'notes.txt').write_text('x')
  listing = tmp_path / 'rec' / 'picks.lst'
  listing.write_text('\ufeff# mine\na.wav\n\n  sub/c.wav  \na.wav\n'
                     f'{tmp_path / "elsewhere" / "d.ogg"}\n../rec/b.flac\n')
  assert separate.find_inputs(str(listing)) == [
      (str(tmp_path / 'rec' / 'a.wav'), 'a'), (str(tmp_path / 'rec' / 'sub/c.wav'), 'sub/c'),
      (str(tmp_path / 'elsewhere' / 'd.ogg'), 'd'),  # outside the list's folder: its name
      (str(tmp_path / 'rec' / '../rec/b.flac'), 'b')]
  assert separate.find_inputs(str(tmp_path / 'rec' / '*' / '*.wav')) == [
      (str(tmp_path / 'rec' / 'sub' / 'c.wav'), 'sub/c')]  # hidden files and .txt left out
  assert [stem for _, stem in separate.find_inputs(str(tmp_path / 'rec' / '[ab].*'))] == [
      'a', 'b']
  listing.write_text('a.wav\na.flac\n')
  with pytest.raises(ValueError, match='share a name'):
    separate.find_inputs(str(listing))
  listing.write_text('# nothing\n')
  with pytest.raises(ValueError, match='names no files'):
    separate.find_inputs(str(listing))
  with pytest.raises(ValueError, match='matches no audio files'):
    separate.find_inputs(str(tmp_path / 'rec' / '*.mp3'))
  # On ram:// (as on gs://), a list there names files there.
  import tensorflow as tf
  with tf.io.gfile.GFile(f'{ram_dir}/list.txt', 'w') as f:
    f.write('x.wav\n')
  assert separate.find_inputs(f'{ram_dir}/list.txt') == [(f'{ram_dir}/x.wav', 'x')]


def _ram_write(path, waveform, rate, fmt='WAV', subtype='PCM_16'):
  """Writes a file of any libsndfile format to a gfile path (ram://)."""
  import io
  import tensorflow as tf
  buffer = io.BytesIO()
  soundfile.write(buffer, waveform, rate, format=fmt, subtype=subtype)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, 'wb') as f:
    f.write(buffer.getvalue())
  return path


def _ram_read(path):
  import io
  import tensorflow as tf
  with tf.io.gfile.GFile(path, 'rb') as f:
    return soundfile.read(io.BytesIO(f.read()), dtype='float32')[0]


def test_file_and_folder_separate_to_and_from_ram(tmp_path, ram_dir):
  import tensorflow as tf
  separator = _band_separator(shuffle=False)
  # A local file into a ram:// output dir.
  local = _write(tmp_path / 'mix.wav', _two_tones(5.0), RATE)
  out = f'{ram_dir}/out'
  result = separate.separate_file(separator, local, out)
  assert result.output_paths == [f'{out}/mix_source{i}.wav' for i in range(3)]
  mixture, _ = audio_io.read_audio(local)
  np.testing.assert_allclose(np.stack([_ram_read(p) for p in result.output_paths]),
                             separator(mixture, RATE), atol=1e-6)
  assert sorted(tf.io.gfile.listdir(out)) == ['.mixit_separate.json'] + [
      f'mix_source{i}.wav' for i in range(3)]
  with pytest.raises(FileExistsError, match='--overwrite'):
    separate.separate_file(separator, local, out)  # the record is read back from ram://
  # A ram:// folder (a subfolder, another format and rate) into a ram:// output dir.
  folder = f'{ram_dir}/in'
  _ram_write(f'{folder}/a.wav', _two_tones(3.0), RATE)
  stereo = np.stack([_two_tones(2.0, rate=22050), _two_tones(2.0, rate=22050, seed=1)], 1)
  _ram_write(f'{folder}/sub/b.flac', stereo, 22050, fmt='FLAC')
  _ram_write(f'{folder}/notes.txt.wav.txt', np.zeros(10, np.float32), RATE)
  report = separate.separate_files(separator, folder, f'{ram_dir}/sep', subtype='PCM_16')
  assert report.failed == []
  assert [r.input_path for r in report.succeeded] == [f'{folder}/a.wav', f'{folder}/sub/b.flac']
  assert report.succeeded[1].output_paths == [f'{ram_dir}/sep/sub/b_source{i}.wav'
                                              for i in range(3)]
  flac, rate = audio_io.read_audio(f'{folder}/sub/b.flac')
  written = np.stack([_ram_read(p) for p in report.succeeded[1].output_paths])
  np.testing.assert_allclose(written, audio_io.quantize_pcm16(separator(flac, rate)) / 32768.0,
                             atol=1e-7)
  assert tf.io.gfile.exists(f'{ram_dir}/sep/sub/.mixit_separate.json')
  assert not [n for n in tf.io.gfile.listdir(f'{ram_dir}/sep') if n.endswith('.partial')]


def test_empty_data_chunk_is_one_line_naming_the_file(tmp_path):
  import io
  buffer = io.BytesIO()
  soundfile.write(buffer, np.zeros(100, np.float32), RATE, format='WAV', subtype='PCM_16')
  data = buffer.getvalue()
  path = tmp_path / 'empty_data.wav'
  path.write_bytes(data[:data.index(b'data') + 4] + b'\0\0\0\0')
  with pytest.raises(ValueError, match='data chunk declares 0 bytes') as info:
    separate.separate_file(_band_separator(), str(path), str(tmp_path / 'out'))
  assert str(info.value).startswith(str(path)) and '\n' not in str(info.value)


def test_separate_and_wild_list_folders_with_the_one_extension_list(tmp_path):
  from data_pipeline import wild
  folder = tmp_path / 'in'
  folder.mkdir()
  names = [f'x{i}{ext}' for i, ext in enumerate(audio_io.AUDIO_EXTENSIONS)]
  for name in names + ['notes.txt']:
    (folder / name).write_bytes(b'x')  # listing does not decode
  expected = [str(folder / name) for name in sorted(names)]
  assert [path for path, _ in separate.find_inputs(str(folder))] == expected
  assert wild.list_audio_files(str(folder)) == expected
  assert {'.opus', '.au'} <= set(audio_io.AUDIO_EXTENSIONS)
  assert not hasattr(separate, 'AUDIO_EXTENSIONS') and not hasattr(wild, 'AUDIO_EXTENSIONS')


# --------------------------------------------------------------------------
# The exported small model and the command line.


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  import keras
  import tensorflow as tf
  from mixit.serving import export
  from mixit import gin_config
  from mixit import model as model_lib
  model_dir = str(tmp_path_factory.mktemp('model_dir'))
  gin_config.parse(['models/tdcnpp_small.gin'], ['NUM_SOURCES = 4'])
  network = model_lib.build_network()
  network(tf.zeros([1, 4000]))
  checkpoint = tf.train.Checkpoint(network=network, optimizer=keras.optimizers.Adam(),
                                   step=tf.Variable(1, dtype=tf.int64))
  tf.train.CheckpointManager(checkpoint, model_dir, max_to_keep=1).save()
  gin_config.write_config(model_dir)
  export_dir = str(tmp_path_factory.mktemp('export') / 'model')
  export.export_saved_model(model_dir, export_dir)
  return export_dir


def test_saved_model_separator_windows_and_sums(exported):
  separator = separator_lib.load_separator(exported, max_chunk_seconds=3.0, overlap_seconds=1.0)
  assert (separator.sample_rate, separator.num_sources) == (16000, 4)
  rng = np.random.default_rng(0)
  mixture = (0.1 * rng.standard_normal(int(7.5 * 22050))).astype(np.float32)
  sources = separator(mixture, 22050)
  assert sources.shape == (4, len(mixture)) and sources.dtype == np.float32
  round_trip = audio_io.resample(audio_io.resample(mixture, 22050, 16000), 16000, 22050)
  round_trip = np.pad(round_trip, (0, max(len(mixture) - len(round_trip), 0)))[:len(mixture)]
  np.testing.assert_allclose(sources.sum(axis=0), round_trip, atol=2e-4)
  # A signal shorter than a window is one call of the signature.
  import tensorflow as tf
  short = mixture[:16000 * 2]
  direct = separator.saved_model.signatures['serving_default'](
      mixture_waveform=tf.constant(short[None]))['separated_waveforms'].numpy()[0]
  np.testing.assert_allclose(separator(short, 16000), direct, atol=1e-6)


def test_other_saved_models_are_refused(tmp_path):
  import tensorflow as tf

  class Doubler(tf.Module):

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name='x')])
    def double(self, x):
      return {'y': 2 * x}

  module = Doubler()
  tf.saved_model.save(module, str(tmp_path / 'wrong_input'),
                      signatures={'serving_default': module.double})
  tf.saved_model.save(module, str(tmp_path / 'no_signature'), signatures={})
  cases = {
      'wrong_input': "not a mixit separation SavedModel: serving_default takes",
      'no_signature': "no 'serving_default' signature",
  }
  for name, match in cases.items():
    with pytest.raises(ValueError, match=match):
      separator_lib.load_separator(str(tmp_path / name))
  (tmp_path / 'plain').mkdir()
  with pytest.raises(ValueError, match='not a SavedModel directory'):
    separator_lib.load_separator(str(tmp_path / 'plain'))
  with pytest.raises(FileNotFoundError):
    separator_lib.load_separator(str(tmp_path / 'missing'))


def test_cli_end_to_end(exported, tmp_path):
  folder = tmp_path / 'in'
  folder.mkdir()
  t = np.arange(int(12.4 * 44100)) / 44100
  stereo = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 3000 * t)], 1)
  _write(folder / 'long.wav', stereo.astype(np.float32), 44100)
  (folder / 'broken.wav').write_bytes(b'RIFF....WAVEnonsense')
  command = [sys.executable, '-m', 'mixit.commands.separate', '--saved_model', exported,
             '--input', str(folder), '--output_dir', str(tmp_path / 'out'),
             '--max_chunk_seconds', '5', '--overlap', '1', '--skip_bad']
  result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
  assert result.returncode == 1, result.stderr[-3000:]
  assert '1 file(s) failed' in result.stderr and str(folder / 'broken.wav') in result.stderr
  outputs = [tmp_path / 'out' / f'long_source{i}.wav' for i in range(4)]
  sources = np.stack([soundfile.read(str(p), dtype='float32')[0] for p in outputs])
  assert soundfile.info(str(outputs[0])).samplerate == 44100
  mixture, _ = audio_io.read_audio(str(folder / 'long.wav'))
  separator = separator_lib.load_separator(exported, max_chunk_seconds=5, overlap_seconds=1)
  np.testing.assert_allclose(sources, separator(mixture, 44100), atol=1e-5)
  assert np.max(np.abs(sources.sum(axis=0) - mixture)[4410:-4410]) < 1e-3

  # A SavedModel of another kind: exit status 1 and a message naming it.
  result = subprocess.run(command[:4] + [str(folder)] + command[5:], capture_output=True,
                          text=True, timeout=300, cwd=REPO)
  assert result.returncode == 1
  assert f'{folder} is not a SavedModel directory' in result.stderr


def test_output_names_round_trip():
  paths = separate.output_paths('out/sub', 'take_source3_final', 12)
  assert [separate.parse_output_name(p) for p in paths] == [
      ('take_source3_final', i) for i in range(12)]
  for other in ('out/x_source.wav', 'out/x_source1.flac', 'out/x_sourceA.wav', 'out/x.wav'):
    assert separate.parse_output_name(other) is None
