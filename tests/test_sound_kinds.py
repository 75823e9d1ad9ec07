"""The synthetic generator's sound kinds (data_pipeline/sound_kinds.py): the default data
unchanged, per kind determinism and the length, span and level invariants, the varied set
through the FUSS writer and reader, and acoustic checks against references independent of
the synthesisers (autocorrelation pitch, LPC formants, spectral flatness, envelope decay,
the equal-tempered scale, a nearest-centroid classifier)."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from data_pipeline import fuss
from data_pipeline import sound_kinds
from data_pipeline import synthetic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE = 8000
FOREGROUNDS = list(sound_kinds.FOREGROUND_KINDS)
BACKGROUNDS = list(sound_kinds.BACKGROUND_KINDS)
VARIED = sound_kinds.KIND_SETS['varied']


def _tree_hash(root):
  digest = hashlib.sha256()
  for folder, subfolders, files in sorted(os.walk(root)):
    subfolders.sort()
    for name in sorted(files):
      path = os.path.join(folder, name)
      digest.update(os.path.relpath(path, root).encode() + b'\0')
      with open(path, 'rb') as f:
        digest.update(f.read())
  return digest.hexdigest()


# ---------------------------------------------------------------------------------------
# The default data is what it was.


CLASSIC_FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures',
                               'classic_sources.npz')


def test_default_output_is_the_generator_before_the_kinds():
  """8 default examples against their int16 sources and class names as the generator wrote
  them before sound_kinds.py existed (commit dd250bb; the fixture was made where the whole
  default tree also hashed the same as before). Within 2 LSB, not bytes: the harmonic tones
  go through a BLAS product, whose rounding may differ between CPUs (AVX2, AVX-512)."""
  expected = np.load(CLASSIC_FIXTURE)
  for index in range(8):
    sources, kinds = synthetic.make_example(np.random.default_rng([5, index]), 8000, 0.25)
    assert kinds == list(expected[f'k{index}']), index
    want = expected[f's{index}']
    assert sources.dtype == np.int16 and sources.shape == want.shape, index
    np.testing.assert_allclose(sources.astype(np.int32), want.astype(np.int32), atol=2,
                               rtol=0, err_msg=str(index))


def test_default_output_is_deterministic_on_this_machine(tmp_path):
  """The same default root twice, byte for byte (every wav, list, label and record)."""
  first, second = str(tmp_path / 'a'), str(tmp_path / 'b')
  for root in (first, second):
    synthetic.make_dataset(root, 4, 1, 1, seed=7, sample_rate=8000, clip_seconds=0.5,
                           reverb=True)
  assert _tree_hash(first) == _tree_hash(second)


def test_classic_is_the_default_and_draws_nothing_more(tmp_path):
  for index in range(5):
    default = synthetic.make_example(np.random.default_rng([1, index]), RATE, 0.5)
    named = synthetic.make_example(np.random.default_rng([1, index]), RATE, 0.5,
                                   kinds='classic')
    listed = synthetic.make_example(
        np.random.default_rng([1, index]), RATE, 0.5,
        kinds={'foreground': synthetic.FOREGROUND_CLASSES,
               'background': [synthetic.BACKGROUND_CLASS]})
    for other in (named, listed):
      np.testing.assert_array_equal(default[0], other[0])
      assert default[1] == other[1]
  assert sound_kinds.kind_set('classic').class_names == synthetic.CLASS_NAMES


# ---------------------------------------------------------------------------------------
# Per kind: determinism, length, finiteness, non-silence, spans, levels, labels.


def _synth(role, kind):
  return (sound_kinds.FOREGROUND_KINDS if role == 'foreground'
          else sound_kinds.BACKGROUND_KINDS)[kind]


ROLES_AND_KINDS = ([('foreground', k) for k in FOREGROUNDS]
                   + [('background', k) for k in BACKGROUNDS])


@pytest.mark.parametrize('role,kind', ROLES_AND_KINDS)
def test_each_kind_is_deterministic_and_well_formed(role, kind):
  synth = _synth(role, kind)
  for rate, seconds in ((8000, 1.0), (16000, 0.7), (8000, 0.05), (22050, 0.3)):
    n = int(round(rate * seconds))
    for seed in range(3):
      first = synth(n, np.random.default_rng([seed, 1]), rate)
      again = synth(n, np.random.default_rng([seed, 1]), rate)
      assert first.shape == (n,), (rate, seconds, seed)
      assert np.asarray(first).tobytes() == np.asarray(again).tobytes()
      assert np.all(np.isfinite(first)), (rate, seconds, seed)
      assert np.max(np.abs(first)) > 0, f'silent at {rate} Hz, {seconds} s, seed {seed}'
      other = synth(n, np.random.default_rng([seed, 2]), rate)
      assert np.asarray(first).tobytes() != np.asarray(other).tobytes()


@pytest.mark.parametrize('kind', list(sound_kinds.EVENT_KINDS))
def test_event_kinds_are_zero_outside_their_spans_and_sound_in_each(kind):
  for seed in range(6):
    n = 3 * RATE if seed % 2 else RATE // 2
    rng = np.random.default_rng([seed, 3])
    signal, spans = sound_kinds.event_foreground(kind, n, rng, RATE)
    # The registered synthesiser is the same function of the generator's state.
    np.testing.assert_array_equal(
        signal, sound_kinds.FOREGROUND_KINDS[kind](n, np.random.default_rng([seed, 3]), RATE))
    inside = np.zeros(n, bool)
    for start, length in spans:
      assert 0 <= start and start + length <= n and length >= int(0.05 * RATE)
      inside[start:start + length] = True
      assert np.max(np.abs(signal[start:start + length])) > 0, (seed, start, length)
    assert not np.any(signal[~inside]), f'{kind} sounds outside its spans (seed {seed})'


def _active_power(x):
  magnitude = np.abs(x)
  return np.mean(x[magnitude > 1e-3 * magnitude.max()] ** 2)


@pytest.mark.parametrize('kind', FOREGROUNDS)
def test_each_foreground_kind_follows_the_level_rule(kind):
  """Through set_levels: int16, no overflow, the peak rule, SNRs in [-5, 25] dB."""
  snrs = []
  for index in range(6):
    rng = np.random.default_rng([8, index])
    sources, names = synthetic.make_example(
        rng, RATE, 1.0, source_count_probs=(0, 0, 0, 1),
        kinds=((kind,), (sound_kinds.STATIONARY_BACKGROUND,)))
    assert names == [sound_kinds.STATIONARY_BACKGROUND] + [kind] * 3
    assert sources.dtype == np.int16 and sources.shape == (4, RATE)
    assert np.all(np.abs(sources).max(axis=1) > 0)
    mixture = sources.astype(np.int32).sum(0)
    assert np.abs(mixture).max() <= 0.9 * 32768 + 2
    floats = sources.astype(np.float64)
    background = np.mean(floats[0] ** 2)
    snrs.extend(10 * np.log10(_active_power(s) / background) for s in floats[1:])
  assert min(snrs) > -5.5 and max(snrs) < 25.5


@pytest.mark.parametrize('kind', BACKGROUNDS)
def test_each_background_kind_follows_the_level_rule(kind):
  """A lone background is set to -30 dB RMS (or turned down to keep the peak rule)."""
  for index in range(4):
    rng = np.random.default_rng([9, index])
    sources, names = synthetic.make_example(rng, RATE, 1.0, source_count_probs=(1,),
                                            kinds=(('chirp',), (kind,)))
    assert names == [kind] and sources.shape == (1, RATE)
    rms_db = 20 * np.log10(np.sqrt(np.mean((sources[0] / 32768.0) ** 2)))
    peak = np.abs(sources[0]).max() / 32768.0
    assert rms_db == pytest.approx(-30.0, abs=0.1) or (rms_db < -30 and peak > 0.89)


@pytest.mark.parametrize('role,kind', ROLES_AND_KINDS)
def test_each_kind_is_named_in_the_labels_sidecar(tmp_path, role, kind):
  if role == 'foreground':
    kinds, probs = ((kind,), ('rain',)), (0, 1)
  else:
    kinds, probs = (('impact',), (kind,)), (1,)
  synthetic.make_dataset(str(tmp_path), 1, 0, 0, seed=2, sample_rate=RATE, clip_seconds=0.25,
                         source_count_probs=probs, kinds=kinds)
  examples, classes = fuss.load_examples(str(tmp_path / 'train_example_list.txt'), labels=True)
  assert kind in classes
  assert (kind,) in examples[0].labels
  with open(tmp_path / 'synthetic_fuss.json') as f:
    info = json.load(f)
  assert info['kinds'] == {'name': 'custom', 'foreground': list(kinds[0]),
                           'background': list(kinds[1])}
  assert kind in info['class_names']


# ---------------------------------------------------------------------------------------
# The varied set through the writer and the reader.


@pytest.fixture(scope='module', name='varied_root')
def fixture_varied_root(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('varied'))
  synthetic.make_dataset(root, 24, 3, 3, seed=5, sample_rate=RATE, clip_seconds=1.0,
                         kinds='varied')
  return root


def test_varied_mixtures_are_the_exact_sum_of_their_sources(varied_root):
  list_path = os.path.join(varied_root, 'train_example_list.txt')
  examples, classes = fuss.load_examples(list_path, labels=True)
  assert classes == list(VARIED.class_names)
  for example in examples:
    sources = np.stack([soundfile.read(p, dtype='int16')[0] for p in example.source_paths])
    mixture = soundfile.read(example.mixture_path, dtype='int16')[0]
    np.testing.assert_array_equal(mixture.astype(np.int32), sources.astype(np.int32).sum(0))
    assert np.all(np.abs(sources).max(axis=1) > 0)
    assert example.labels[0][0] in VARIED.background
    assert all(names[0] in VARIED.foreground for names in example.labels[1:])
  dataset = fuss.fuss_dataset(examples, sample_rate=RATE, clip_seconds=1.0,
                              class_names=classes, check_mixture=True, mixture_tolerance=0.0)
  assert len(list(dataset.as_numpy_iterator())) == len(examples)


def test_varied_dataset_records_its_kinds_and_is_deterministic(tmp_path, varied_root):
  with open(os.path.join(varied_root, 'synthetic_fuss.json')) as f:
    info = json.load(f)
  assert info['kinds'] == {'name': 'varied', 'foreground': FOREGROUNDS,
                           'background': BACKGROUNDS}
  assert info['class_names'] == list(VARIED.class_names)
  # Example k of a split depends only on (seed, split, k).
  again = str(tmp_path / 'again')
  synthetic.make_dataset(again, 3, 0, 0, seed=5, sample_rate=RATE, clip_seconds=1.0,
                         kinds=(FOREGROUNDS, BACKGROUNDS))
  for index in range(3):
    folder = f'train/example{index:05d}_sources'
    assert sorted(os.listdir(os.path.join(again, folder))) == sorted(
        os.listdir(os.path.join(varied_root, folder)))
    for name in os.listdir(os.path.join(again, folder)) + ['']:
      rel = os.path.join(folder, name) if name else f'train/example{index:05d}.wav'
      with open(os.path.join(again, rel), 'rb') as a, open(os.path.join(varied_root, rel),
                                                           'rb') as b:
        assert a.read() == b.read(), rel


def test_the_varied_set_uses_many_kinds_and_backgrounds(varied_root):
  used = set()
  for split in ('train', 'validation', 'eval'):
    examples, _ = fuss.load_examples(os.path.join(varied_root, f'{split}_example_list.txt'),
                                     labels=True)
    used.update((position == 0, names[0]) for example in examples
                for position, names in enumerate(example.labels))
  assert len({k for is_background, k in used if is_background}) >= 4
  assert len({k for is_background, k in used if not is_background}) >= 12


def test_bad_kinds_are_refused():
  with pytest.raises(ValueError, match='kinds must be one of'):
    sound_kinds.kind_set('everything')
  with pytest.raises(ValueError, match='unknown sound kinds'):
    sound_kinds.kind_set((['speech', 'tuba'], ['rain']))
  with pytest.raises(ValueError, match='unknown sound kinds'):
    sound_kinds.kind_set((['speech'], ['chirp']))  # a foreground-only kind as background
  with pytest.raises(ValueError, match='at least one background'):
    sound_kinds.kind_set({'foreground': ['speech']})
  with pytest.raises(ValueError, match='lists of kind names'):
    sound_kinds.kind_set(('speech', ['rain']))
  assert sound_kinds.kind_set((FOREGROUNDS, BACKGROUNDS)) == VARIED


def test_the_sheet_is_committed_and_small():
  path = os.path.join(REPO, 'docs', 'sound_kinds.png')
  assert os.path.getsize(path) < 500_000
  with open(path, 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'


# ---------------------------------------------------------------------------------------
# Acoustic checks.


def _frames(x, size, hop):
  return np.lib.stride_tricks.sliding_window_view(np.asarray(x, np.float64), size)[::hop]


def _active(frames, below_db):
  energy = np.mean(frames ** 2, 1)
  return frames[energy > energy.max() * 10 ** (-below_db / 10)]


def _pitch(frame, rate, fmin, fmax):
  """(f0, normalised autocorrelation at its lag): the autocorrelation method, window-corrected,
  with parabolic interpolation of the peak."""
  frame = frame - frame.mean()
  n = frame.size
  window = np.hanning(n)
  ac = np.fft.irfft(np.abs(np.fft.rfft(frame * window, 2 * n)) ** 2)[:n]
  ac_window = np.fft.irfft(np.abs(np.fft.rfft(window, 2 * n)) ** 2)[:n]
  ac = ac / ac_window
  ac = ac / (ac[0] + 1e-20)
  low, high = int(rate / fmax), int(rate / fmin)
  lag = low + int(np.argmax(ac[low:high]))
  a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
  curvature = a - 2 * b + c
  shift = 0.5 * (a - c) / curvature if curvature else 0.0
  return rate / (lag + shift), b


def _lpc(x, order):
  """Linear prediction coefficients by Levinson-Durbin."""
  r = np.array([x[:x.size - i] @ x[i:] for i in range(order + 1)])
  a, error = np.array([1.0]), r[0] + 1e-12
  for i in range(1, order + 1):
    k = -(a @ r[i:0:-1]) / error
    a = np.append(a, 0.0)
    a = a + k * a[::-1]
    error *= 1 - k * k
  return a


def _formants(frame, rate, order=18):
  """Resonances (Hz) of an LPC fit: pole angles with bandwidths under 400 Hz."""
  emphasised = np.append(frame[0], frame[1:] - 0.9 * frame[:-1]) * np.hamming(frame.size)
  roots = np.roots(_lpc(emphasised, order))
  roots = roots[np.imag(roots) > 0]
  freqs = np.angle(roots) * rate / (2 * np.pi)
  bandwidths = -np.log(np.abs(roots)) * rate / np.pi
  return np.sort(freqs[(freqs > 150) & (bandwidths < 400) & (freqs < 0.45 * rate)])


def test_speech_has_a_voice_pitch_moving_formants_and_unvoiced_parts():
  """Voiced frames have an autocorrelation pitch in the human range (70-450 Hz); their LPC
  F1 and F2 lie in Peterson & Barney's vowel ranges (F1 200-1100 Hz, F2 600-3300 Hz) and F2
  moves through the utterance (vowel transitions); and aperiodic frames with a high spectral
  centroid (fricatives, bursts) occur."""
  rate = 16000
  size, hop = int(0.04 * rate), int(0.01 * rate)
  fricative_shares = []
  for seed in range(6):
    x = sound_kinds.FOREGROUND_KINDS['speech'](2 * rate, np.random.default_rng([5, seed]),
                                               rate)
    f0s, f1, f2, fricatives = [], [], [], 0
    frames = _active(_frames(x, size, hop), 30)
    freqs = np.fft.rfftfreq(size, 1 / rate)
    for frame in frames:
      f0, strength = _pitch(frame, rate, 60, 600)
      if strength > 0.6:
        f0s.append(f0)
        found = _formants(frame[:int(0.025 * rate)], rate)
        if found.size >= 2:
          f1.append(found[0])
          f2.append(found[1])
      else:
        power = np.abs(np.fft.rfft(frame * np.hanning(size))) ** 2
        fricatives += power @ freqs / power.sum() > 2500
    f0s, f1, f2 = np.array(f0s), np.array(f1), np.array(f2)
    assert f0s.size > 0.5 * len(frames), seed  # mostly voiced
    assert 70 < np.median(f0s) < 450, (seed, np.median(f0s))
    assert np.mean((f1 > 200) & (f1 < 1100)) > 0.9, seed
    assert np.mean((f2 > 600) & (f2 < 3300)) > 0.9, seed
    assert np.percentile(f2, 90) - np.percentile(f2, 10) > 300, seed
    fricative_shares.append(fricatives / len(frames))
  assert sum(share > 0.02 for share in fricative_shares) >= 3, fricative_shares


def _decreasing_share(x, rate):
  """Of consecutive 20 ms frames (10 ms hop) within 40 dB of the loudest, the share whose
  energy falls."""
  energy = np.mean(_frames(x, int(0.02 * rate), int(0.01 * rate)) ** 2, 1)
  loud = energy > energy.max() * 1e-4
  return np.mean(np.diff(energy)[loud[:-1] & loud[1:]] < 0)


def _median_over_seeds(measure, kind, rate, seeds=8, seconds=2.0):
  synth = (sound_kinds.FOREGROUND_KINDS.get(kind) if not kind.startswith('bg:')
           else sound_kinds.BACKGROUND_KINDS[kind[3:]])
  return float(np.median([measure(synth(int(seconds * rate), np.random.default_rng([3, s]),
                                        rate), rate) for s in range(seeds)]))


def test_impacts_resonant_objects_and_drums_decay():
  """Struck things decay after each strike: their energy falls from frame to frame most of
  the time, where sustained sounds and textures fall about as often as they rise."""
  rate = 16000
  for kind in ('impact', 'resonant_object', 'percussion'):
    assert _median_over_seeds(_decreasing_share, kind, rate) > 0.75, kind
  for kind in ('speech', 'rain', 'wind', 'water', 'crowd', 'chords', 'bird_song', 'bg:music_bed'):
    assert 0.4 < _median_over_seeds(_decreasing_share, kind, rate) < 0.62, kind


def _flatness(x, rate):
  """Spectral flatness (geometric over arithmetic mean power) in 500 Hz bands of 32 ms frames,
  averaged weighted by each band's share of its frame's power: about 0.56 for white noise,
  near 0 for lines."""
  size = 512
  frames = _active(_frames(x, size, size // 2), 30) * np.hanning(size)
  power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-20
  freqs = np.fft.rfftfreq(size, 1 / rate)
  values, weights = [], []
  for low in np.arange(0, rate / 2, 500):
    band = power[:, (freqs >= low) & (freqs < low + 500)]
    values.append(np.exp(np.mean(np.log(band), 1)) / np.mean(band, 1))
    weights.append(band.sum(1) / power.sum(1))
  values, weights = np.concatenate(values), np.concatenate(weights)
  return np.sum(values * weights) / np.sum(weights)


def test_textures_are_noise_like_and_instruments_are_not():
  rate = 16000
  for kind in ('rain', 'water', 'crowd', 'bg:rain', 'bg:water', 'bg:crowd'):
    assert _median_over_seeds(_flatness, kind, rate) > 0.4, kind
  assert _median_over_seeds(_flatness, 'wind', rate) > 0.25  # a whistle now and then
  for kind in ('melody', 'chords', 'resonant_object', 'insect', 'harmonic_tone'):
    assert _median_over_seeds(_flatness, kind, rate) < 0.15, kind


def _cents_off_the_scale(kind, rate, seeds):
  """|deviation| (cents) of confident autocorrelation pitches from the nearest equal-tempered
  semitone of A = 440 Hz, pooled over seeds."""
  cents = []
  for seed in range(seeds):
    x = sound_kinds.FOREGROUND_KINDS[kind](2 * rate, np.random.default_rng([9, seed]), rate)
    for frame in _active(_frames(x, int(0.05 * rate), int(0.025 * rate)), 20):
      f0, strength = _pitch(frame, rate, 60, 1000)
      if strength > 0.9:
        midi = 69 + 12 * np.log2(f0 / 440)
        cents.append(abs(100 * (midi - np.round(midi))))
  return np.array(cents)


def test_melodies_are_on_the_equal_tempered_scale():
  rate = 16000
  melody = _cents_off_the_scale('melody', rate, 12)
  assert melody.size > 300 and np.mean(melody < 20) > 0.75
  # Harmonic tones of any pitch (an f0 drawn on a log scale) are not.
  tones = _cents_off_the_scale('harmonic_tone', rate, 12)
  assert np.mean(tones < 20) < 0.65


def _peak_track(x, rate):
  """Per active 16 ms frame: (the strongest bin's frequency, the share of the frame's power
  within +-3 bins, +-190 Hz at 16 kHz, of it)."""
  size = 256
  frames = _active(_frames(x, size, size // 2), 20) * np.hanning(size)
  power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
  peaks = power.argmax(1)
  share = np.array([p[max(0, j - 3):j + 4].sum() / p.sum() for p, j in zip(power, peaks)])
  return np.fft.rfftfreq(size, 1 / rate)[peaks], share


def test_birds_whistle_high_and_sweep_and_animal_calls_are_harmonic_sweeps():
  rate = 16000
  for seed in range(6):
    bird = sound_kinds.FOREGROUND_KINDS['bird_song'](2 * rate, np.random.default_rng([4, seed]),
                                                     rate)
    freqs, share = _peak_track(bird, rate)
    assert np.median(freqs) > 1500 and np.median(share) > 0.7, seed  # a high near-pure tone
    assert np.std(freqs) > 150, seed  # sweeps, trills, several syllables
  sweeps = 0
  for seed in range(8):
    call = sound_kinds.FOREGROUND_KINDS['animal_call'](2 * rate,
                                                       np.random.default_rng([4, seed]), rate)
    pitches = [_pitch(frame, rate, 60, 1500)
               for frame in _active(_frames(call, int(0.04 * rate), int(0.01 * rate)), 20)]
    f0s = np.array([f0 for f0, strength in pitches if strength > 0.5])
    assert f0s.size > 0.3 * len(pitches), seed  # periodic: harmonic
    sweeps += np.percentile(f0s, 90) / np.percentile(f0s, 10) > 1.15
  assert sweeps >= 5  # most calls glide in pitch


def _level_spread_db(x, rate):
  """Standard deviation (dB) of the level of 100 ms frames."""
  hop = int(0.1 * rate)
  energy = np.mean(x[:x.size // hop * hop].reshape(-1, hop) ** 2, 1)
  return np.std(10 * np.log10(energy + 1e-20))


def test_backgrounds_other_than_the_stationary_one_vary_in_level():
  rate = 16000
  assert _median_over_seeds(_level_spread_db, 'bg:stationary_background', rate,
                            seconds=3.0) < 1.0
  for kind in ('music_bed', 'babble', 'rain', 'wind', 'water', 'crowd'):
    assert _median_over_seeds(_level_spread_db, 'bg:' + kind, rate, seconds=3.0) > 1.4, kind


def _features(x, rate):
  size = 256
  frames = x[:x.size // size * size].reshape(-1, size)
  energy = np.mean(frames ** 2, axis=1)
  active = energy > 1e-3 * energy.max()
  power = np.abs(np.fft.rfft(frames[active] * np.hanning(size), axis=1)) ** 2 + 1e-12
  freqs = np.fft.rfftfreq(size, 1 / rate)
  flatness = np.median(np.exp(np.mean(np.log(power), 1)) / np.mean(power, 1))
  peakiness = np.median(np.max(power, 1) / np.mean(power, 1))
  samples = frames[active].ravel() / (np.std(frames[active]) + 1e-12)
  flux = np.median(np.mean(np.abs(np.diff(np.log(power), axis=0)), axis=1))
  centroid = np.median(power @ freqs / power.sum(1))
  falling = np.mean(np.diff(energy)[active[:-1] & active[1:]] < 0)
  centred = frames[active] - frames[active].mean(1, keepdims=True)
  ac = np.fft.irfft(np.abs(np.fft.rfft(centred, 2 * size, axis=1)) ** 2, axis=1)[:, :size]
  periodicity = np.median(ac[:, 20:100].max(1) / (ac[:, 0] + 1e-12))
  return np.array([np.std(np.log(energy[active])), np.log(flatness), np.log(peakiness),
                   np.log(np.mean(samples ** 4)), flux, np.mean(active), np.log(centroid),
                   falling, periodicity])


def test_foreground_kinds_are_acoustically_distinct():
  """A nearest-centroid classifier on nine crude features tells the 19 foreground kinds
  apart far above chance (1/19)."""
  features, labels = [], []
  for k, kind in enumerate(FOREGROUNDS):
    for index in range(18):
      signal = sound_kinds.FOREGROUND_KINDS[kind](2 * RATE, np.random.default_rng([0, k, index]),
                                                  RATE)
      features.append(_features(signal, RATE))
      labels.append(k)
  features, labels = np.array(features), np.array(labels)
  z = (features - features.mean(0)) / features.std(0)
  train = np.arange(len(labels)) % 3 != 0
  centroids = np.stack([z[train & (labels == k)].mean(0) for k in range(len(FOREGROUNDS))])
  predicted = np.argmin(((z[~train, None] - centroids[None]) ** 2).sum(-1), axis=1)
  assert np.mean(predicted == labels[~train]) > 0.55


# ---------------------------------------------------------------------------------------
# Made on several processes, written in order: the same bytes.


def test_examples_made_on_worker_processes_are_the_same_bytes(tmp_path, monkeypatch):
  monkeypatch.setattr(synthetic, 'PARALLEL_MIN_EXAMPLES', 4)
  roots = {}
  for workers in (1, 2):
    roots[workers] = str(tmp_path / f'w{workers}')
    synthetic.make_dataset(roots[workers], 9, 0, 5, seed=7, sample_rate=RATE,
                           clip_seconds=0.5, kinds='varied', workers=workers)
  assert _tree_hash(roots[1]) == _tree_hash(roots[2])
  with pytest.raises(ValueError, match='workers must be at least 1'):
    synthetic.make_dataset(str(tmp_path / 'w0'), 9, 0, 0, sample_rate=RATE, clip_seconds=0.5,
                           workers=0)


def test_a_failing_maker_on_a_worker_process_raises_here(tmp_path, monkeypatch):
  monkeypatch.setattr(synthetic, 'PARALLEL_MIN_EXAMPLES', 4)

  def make(index):
    if index == 6:
      raise ValueError('example 6 cannot be made')
    return synthetic.set_levels([np.ones(100)], []), ['noise'], None

  with pytest.raises(ValueError, match='example 6 cannot be made'):
    synthetic.write_split(str(tmp_path), 'train', 9, make, RATE, ['noise'], workers=2)
  assert synthetic._MAKER is None


# ---------------------------------------------------------------------------------------
# The command and the demo.


def _make_fuss(*args):
  return subprocess.run([sys.executable, '-m', 'mixit.commands.make_fuss', *args],
                        capture_output=True, text=True, timeout=300, check=False,
                        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_make_fuss_kinds_flag(tmp_path):
  counts = ['--num_train', '2', '--num_validation', '0', '--num_eval', '1', '--sample_rate',
            str(RATE), '--clip_seconds', '0.5', '--seed', '4']
  for kinds in ('varied', 'classic', None):
    out = str(tmp_path / str(kinds))
    result = _make_fuss('--output_dir', out, *counts, *(['--kinds', kinds] if kinds else []))
    assert result.returncode == 0, result.stderr[-2000:]
    with open(os.path.join(out, 'synthetic_fuss.json')) as f:
      info = json.load(f)
    name = info.get('kinds', {'name': 'classic'})['name']
    assert name == (kinds or 'varied')  # varied is the default
    assert info['class_names'] == list(sound_kinds.KIND_SETS[name].class_names)
  # The library's default (classic) and the command's classic write the same bytes.
  library = str(tmp_path / 'library')
  synthetic.make_dataset(library, 2, 0, 1, seed=4, sample_rate=RATE, clip_seconds=0.5)
  assert _tree_hash(library) == _tree_hash(str(tmp_path / 'classic'))
  result = _make_fuss('--output_dir', str(tmp_path / 'x'), '--clips_dir', str(tmp_path),
                      '--kinds', 'classic')
  assert result.returncode != 0 and '--kinds is for synthetic data' in result.stderr
  assert not (tmp_path / 'x').exists()
  result = _make_fuss('--output_dir', str(tmp_path / 'y'), '--kinds', 'tubas')
  assert result.returncode != 0 and '--kinds=tubas' in result.stderr
  assert not (tmp_path / 'y').exists()


def test_the_demo_reuses_its_data_only_when_made_with_the_same_kinds(tmp_path):
  from mixit import demo
  root = str(tmp_path / 'data')
  counts = {'train': 2, 'validation': 0, 'eval': 1}
  synthetic.make_dataset(root, 2, 0, 1, seed=3, sample_rate=RATE, clip_seconds=0.5,
                         kinds='classic')
  info = os.path.join(root, 'synthetic_fuss.json')
  classic, varied = sound_kinds.KIND_SETS['classic'], sound_kinds.KIND_SETS['varied']
  assert demo.data_matches(info, counts, 3, 0.5, classic)
  assert not demo.data_matches(info, counts, 3, 0.5, varied)
  assert not demo.data_matches(info, counts, 4, 0.5, classic)
  assert not demo.data_matches(info, dict(counts, train=3), 3, 0.5, classic)
  assert not demo.data_matches(info, counts, 3, 1.0, classic)
  synthetic.make_dataset(root, 2, 0, 1, seed=3, sample_rate=RATE, clip_seconds=0.5,
                         kinds='varied')
  assert demo.data_matches(info, counts, 3, 0.5, varied)
  assert not demo.data_matches(info, counts, 3, 0.5, classic)
  assert not demo.data_matches(str(tmp_path / 'none.json'), counts, 3, 0.5, varied)
