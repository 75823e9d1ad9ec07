"""The synthetic FUSS maker: layout, exact mixtures, reader round trip, determinism, statistics."""
import filecmp
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from data_pipeline import fuss
from data_pipeline import synthetic

RATE = 8000


@pytest.fixture(scope='module', name='root')
def fixture_root(make_synthetic_fuss):
  return make_synthetic_fuss(num_train=10, num_validation=3, num_eval=2, seed=11,
                             sample_rate=RATE, clip_seconds=1.0)


def test_layout_and_lists(root):
  for split, count in (('train', 10), ('validation', 3), ('eval', 2)):
    list_path = os.path.join(root, f'{split}_example_list.txt')
    with open(list_path) as f:
      lines = f.read().splitlines()
    assert len(lines) == count
    for index, line in enumerate(lines):
      fields = line.split('\t')
      name = f'{split}/example{index:05d}'
      assert fields[0] == f'{name}.wav'
      expected = [f'{name}_sources/background0_sound.wav'] + [
          f'{name}_sources/foreground{k}_sound.wav' for k in range(len(fields) - 2)]
      assert fields[1:] == expected and 1 <= len(fields) - 1 <= 4
      for rel in fields:
        info = soundfile.info(os.path.join(root, rel))
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (RATE, 1, 'PCM_16',
                                                                                RATE)


def test_mixture_files_are_the_exact_sum_of_sources(root):
  for example in fuss.read_example_list(os.path.join(root, 'train_example_list.txt')):
    sources = np.stack([soundfile.read(p, dtype='int16')[0] for p in example.source_paths])
    mixture = soundfile.read(example.mixture_path, dtype='int16')[0]
    np.testing.assert_array_equal(mixture.astype(np.int32), sources.astype(np.int32).sum(0))
    assert np.abs(mixture).max() <= 0.9 * 32768 + 1
    assert np.all(np.abs(sources).max(axis=1) > 0)  # no silent source


def test_output_passes_the_reader_with_labels(root):
  list_path = os.path.join(root, 'train_example_list.txt')
  examples, classes = fuss.load_examples(list_path, labels=True)
  assert classes == list(synthetic.CLASS_NAMES)
  dataset = fuss.fuss_dataset(examples, sample_rate=RATE, clip_seconds=1.0,
                              class_names=classes, check_mixture=True, mixture_tolerance=0.0)
  elements = list(dataset.as_numpy_iterator())
  assert len(elements) == 10
  for example, element in zip(examples, elements):
    assert element['num_sources'] == example.num_sources
    assert example.labels[0] == (synthetic.BACKGROUND_CLASS,)
    assert all(names[0] in synthetic.FOREGROUND_CLASSES for names in example.labels[1:])
    expected = np.zeros([len(classes)], np.float32)
    for names in example.labels:
      expected[classes.index(names[0])] = 1
    np.testing.assert_array_equal(element['labels'], expected)


def test_deterministic_and_independent_of_count(tmp_path, root):
  again = str(tmp_path / 'again')
  synthetic.make_dataset(again, num_train=4, num_validation=0, num_eval=0, seed=11,
                         sample_rate=RATE, clip_seconds=1.0)
  for index in range(4):
    name = f'train/example{index:05d}.wav'
    assert filecmp.cmp(os.path.join(root, name), os.path.join(again, name), shallow=False)
  other = str(tmp_path / 'other')
  synthetic.make_dataset(other, num_train=1, num_validation=0, num_eval=0, seed=12,
                         sample_rate=RATE, clip_seconds=1.0)
  assert not filecmp.cmp(os.path.join(root, 'train/example00000.wav'),
                         os.path.join(other, 'train/example00000.wav'), shallow=False)
  assert not os.path.exists(os.path.join(other, 'eval_example_list.txt'))


def _active_power(x):
  magnitude = np.abs(x)
  return np.mean(x[magnitude > 1e-3 * magnitude.max()] ** 2)


@pytest.mark.parametrize('reverb', [False, True])
def test_counts_and_snrs_follow_fuss(reverb):
  counts, snrs = [], []
  for index in range(120):
    rng = np.random.default_rng([4, int(reverb), index])
    sources, kinds = synthetic.make_example(rng, sample_rate=RATE, clip_seconds=0.5,
                                            reverb=reverb)
    assert kinds[0] == synthetic.BACKGROUND_CLASS and sources.dtype == np.int16
    counts.append(len(kinds))
    floats = sources.astype(np.float64)
    background = np.mean(floats[0] ** 2)
    snrs.extend(10 * np.log10(_active_power(s) / background) for s in floats[1:])
  frequencies = np.bincount(counts, minlength=5)[1:] / len(counts)
  assert np.all(frequencies > 0.15) and np.all(frequencies < 0.35)
  snrs = np.array(snrs)
  # Quantisation of very quiet events moves their SNR by a fraction of a dB.
  assert snrs.min() > -5.5 and snrs.max() < 25.5
  assert snrs.min() < 5 and snrs.max() > 15  # the range is used


def test_reverb_adds_decaying_tails():
  n = RATE
  dry = np.zeros(n)
  dry[RATE // 10] = 1.0
  rir = synthetic._room_impulse_response(np.random.default_rng(0), RATE, rt60=0.5)
  wet = synthetic._fft_convolve(dry, rir)
  energy_db = 10 * np.log10(np.convolve(wet ** 2, np.ones(80) / 80, 'same') + 1e-20)
  start = RATE // 10 + 80
  after_quarter = start + int(0.25 * RATE)
  # 60 dB per RT60 = 0.5 s, so about 30 dB a quarter second later.
  drop = energy_db[start] - energy_db[after_quarter]
  assert 15 < drop < 45
  assert np.all(wet[:RATE // 10] == pytest.approx(0.0, abs=1e-9))  # causal


def _features(x, n):
  frames = x[:n // 256 * 256].reshape(-1, 256)
  energy = np.mean(frames ** 2, axis=1)
  active = energy > 1e-3 * energy.max()
  spectra = np.abs(np.fft.rfft(frames[active] * np.hanning(256), axis=1)) ** 2 + 1e-12
  flatness = np.median(np.exp(np.mean(np.log(spectra), 1)) / np.mean(spectra, 1))
  peakiness = np.median(np.max(spectra, 1) / np.mean(spectra, 1))
  samples = frames[active].ravel() / (np.std(frames[active]) + 1e-12)
  flux = np.median(np.mean(np.abs(np.diff(np.log(spectra), axis=0)), axis=1))
  return np.array([np.std(np.log(energy[active])), np.log(flatness), np.log(peakiness),
                   np.log(np.mean(samples ** 4)), flux, np.mean(active)])


def test_source_kinds_are_acoustically_distinct():
  """A nearest-centroid classifier on six crude features tells the kinds apart."""
  n = 2 * RATE
  features, kinds = [], []
  for k, kind in enumerate(synthetic.CLASS_NAMES):
    for index in range(24):
      signal = synthetic._GENERATORS[kind](n, np.random.default_rng([0, k, index]), RATE)
      features.append(_features(signal, n))
      kinds.append(k)
  features, kinds = np.array(features), np.array(kinds)
  z = (features - features.mean(0)) / features.std(0)
  train = np.arange(len(kinds)) % 3 != 0
  centroids = np.stack([z[train & (kinds == k)].mean(0) for k in range(len(synthetic.CLASS_NAMES))])
  predicted = np.argmin(((z[~train, None] - centroids[None]) ** 2).sum(-1), axis=1)
  assert np.mean(predicted == kinds[~train]) > 0.6  # chance: 1/6


def test_bad_arguments(tmp_path):
  with pytest.raises(ValueError, match='num_train'):
    synthetic.make_dataset(str(tmp_path), -1, 0, 0)
  with pytest.raises(ValueError, match='positive'):
    synthetic.make_dataset(str(tmp_path), 1, 0, 0, clip_seconds=0)
  with pytest.raises(ValueError, match='split'):
    synthetic.make_split(str(tmp_path), 'test', 1)


def test_cli_writes_reverberant_data(tmp_path):
  out = str(tmp_path / 'cli')
  result = subprocess.run(
      [sys.executable, '-m', 'mixit.commands.make_fuss', '--output_dir', out,
       '--num_train', '2', '--num_validation', '1', '--num_eval', '1', '--sample_rate',
       str(RATE), '--clip_seconds', '0.5', '--reverb', '--seed', '3'],
      capture_output=True, text=True, timeout=120, check=False,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert result.returncode == 0, result.stderr[-2000:]
  assert 'train: ' in result.stdout
  examples = fuss.read_example_list(os.path.join(out, 'eval_example_list.txt'))
  assert len(examples) == 1
  import json
  with open(os.path.join(out, 'synthetic_fuss.json')) as f:
    info = json.load(f)
  assert info['reverb'] is True and info['seed'] == 3 and info['sample_rate'] == RATE
