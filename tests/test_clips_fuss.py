"""FUSS-format sets from folders of real clips (`data_pipeline/clips.py`, `mixit-make-fuss
--clips_dir`): planted clips, the FUSS recipe, no leakage, determinism, bad clips, end to end."""
import filecmp
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from data_pipeline import clips
from data_pipeline import fuss
from data_pipeline import synthetic

from conftest import TINY_GIN_FILES, tiny_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE = 8000
LABELS = ('birds', 'engine', 'speech')


def _write_clips(folder, seed=0, per_label=5, rates=(8000, 11025, 22050)):
  """Noise-like clips of 0.3-1.6 s in WAV, FLAC and OGG, mono and stereo, at several rates."""
  rng = np.random.default_rng(seed)
  for k, label in enumerate(LABELS):
    os.makedirs(os.path.join(folder, label), exist_ok=True)
    for i in range(per_label):
      rate = rates[(k + i) % len(rates)]
      n = int(rng.uniform(0.3, 1.6) * rate)
      channels = 1 + (i % 2)
      # A decaying tone in noise: non-silent everywhere, and with an envelope.
      t = np.arange(n) / rate
      tone = np.sin(2 * np.pi * rng.uniform(200, 1500) * t) * np.exp(-t / rng.uniform(0.2, 1))
      audio = 0.3 * (tone + 0.1 * rng.standard_normal(n))
      audio = np.stack([audio] * channels, axis=1) if channels > 1 else audio
      extension = ('wav', 'flac', 'ogg')[i % 3]
      soundfile.write(os.path.join(folder, label, f'clip{i}.{extension}'),
                      audio.astype(np.float32), rate)


@pytest.fixture(scope='module', name='clip_folder')
def fixture_clip_folder(tmp_path_factory):
  folder = str(tmp_path_factory.mktemp('clips'))
  _write_clips(folder)
  return folder


def _make(root, clip_folder, **kwargs):
  settings = dict(num_train=12, num_validation=3, num_eval=3, seed=5, sample_rate=RATE,
                  clip_seconds=1.0, split_fractions=(0.6, 0.2, 0.2))
  settings.update(kwargs)
  return clips.make_dataset(str(root), clip_folder, **settings)


@pytest.fixture(scope='module', name='made')
def fixture_made(tmp_path_factory, clip_folder):
  root = tmp_path_factory.mktemp('clip_fuss')
  lists, summary = _make(root, clip_folder)
  with open(os.path.join(root, 'synthetic_fuss.json')) as f:
    info = json.load(f)
  return str(root), lists, summary, info


def _read_int16(path):
  data, rate = soundfile.read(path, dtype='int16')
  assert rate == RATE
  return data.astype(np.int64)


def test_mixture_is_the_exact_sum_of_its_sources(made):
  root, lists, _, _ = made
  for split, list_path in lists.items():
    for example in fuss.read_example_list(list_path):
      sources = np.stack([_read_int16(p) for p in example.source_paths])
      assert sources.shape == (example.num_sources, RATE)  # 1-s examples at the target rate
      np.testing.assert_array_equal(_read_int16(example.mixture_path), sources.sum(0))
      assert np.all(np.abs(sources).max(axis=1) > 0), split


def test_foreground_snrs_are_in_the_fuss_range_over_the_active_span(made):
  root, _, _, info = made
  snrs = []
  for records in info['examples'].values():
    for record in records:
      background = _read_int16(os.path.join(root, record['sources'][0]['file'])) / 32768.0
      background_power = np.mean(background ** 2)
      for source in record['sources'][1:]:
        signal = _read_int16(os.path.join(root, source['file'])) / 32768.0
        onset, length = source['onset'], source['length']
        # Independent of the generator's gate: the event's own span, read from the record.
        event = signal[onset:onset + length]
        assert np.all(signal[:onset] == 0) and np.all(signal[onset + length:] == 0)
        # The gated power over the active span is at least the mean over the whole event.
        magnitude = np.abs(event)
        active = event[magnitude > 1e-3 * magnitude.max()]
        snr = 10 * np.log10(np.mean(active ** 2) / background_power)
        assert -5.05 <= snr <= 25.05, (record['mixture'], snr)
        assert abs(snr - source['snr_db']) < 0.05
        snrs.append(snr)
  assert len(snrs) >= 5 and np.ptp(snrs) > 5  # drawn across the range, not one value


def test_no_clip_appears_in_two_splits(made, clip_folder):
  _, _, _, info = made
  used = {}
  for split, records in info['examples'].items():
    for record in records:
      for source in record['sources']:
        assert source['split'] == split
        used.setdefault(source['clip'], set()).add(split)
  assert all(len(splits) == 1 for splits in used.values())
  # Every file's split is the documented hash of its path and the seed.
  assignment = info['clip_splits']['clips']
  assert len(assignment) == len(LABELS) * 5
  for relative, split in assignment.items():
    assert clips.split_of(relative, 5, (0.6, 0.2, 0.2)) == split
    assert os.path.exists(os.path.join(clip_folder, relative))
  for clip, splits in used.items():
    assert splits == {assignment[clip]}


def test_split_assignment_follows_the_path_and_seed_only():
  paths = [f'label{k % 3}/clip{k}.wav' for k in range(3000)]
  first = [clips.split_of(p, 1) for p in paths]
  assert first == [clips.split_of(p, 1) for p in reversed(paths)][::-1]
  shares = [first.count(s) / len(first) for s in clips.SPLITS]
  np.testing.assert_allclose(shares, clips.DEFAULT_SPLIT_FRACTIONS, atol=0.03)
  other_seed = [clips.split_of(p, 2) for p in paths]
  assert 0.2 < np.mean([a != b for a, b in zip(first, other_seed)]) < 0.5
  assert {clips.split_of(p, 1, (0, 0, 1)) for p in paths} == {'eval'}


def test_labels_are_the_first_level_subfolders(made):
  root, lists, _, info = made
  assert info['class_names'] == list(LABELS)
  examples, class_names = fuss.load_examples(lists['train'], labels=True)
  assert class_names == list(LABELS)
  by_mixture = {r['mixture']: r for r in info['examples']['train']}
  for example in examples:
    record = by_mixture[os.path.relpath(example.mixture_path, root)]
    for names, source in zip(example.labels, record['sources']):
      assert names == (source['clip'].split('/')[0],) == (source['class'],)


def test_same_seed_same_bytes_and_another_seed_differs(tmp_path, made, clip_folder):
  root = made[0]
  _make(tmp_path / 'again', clip_folder)
  comparison = filecmp.dircmp(root, str(tmp_path / 'again'))
  files = []
  for folder, _, names in os.walk(root):
    files += [os.path.relpath(os.path.join(folder, n), root) for n in names]
  assert len(files) > 50
  match, mismatch, errors = filecmp.cmpfiles(root, str(tmp_path / 'again'), files, shallow=False)
  assert not mismatch and not errors and len(match) == len(files), comparison
  _make(tmp_path / 'other', clip_folder, seed=6)
  assert not filecmp.cmp(os.path.join(root, 'train/example00000.wav'),
                         str(tmp_path / 'other/train/example00000.wav'), shallow=False)


def test_short_background_is_looped_and_long_foreground_excerpted(tmp_path):
  backgrounds, foregrounds = tmp_path / 'beds', tmp_path / 'fg'
  os.makedirs(backgrounds / 'hum')
  os.makedirs(foregrounds / 'long')
  rng = np.random.default_rng(0)
  period = int(0.3 * RATE)
  soundfile.write(str(backgrounds / 'hum' / 'bed.wav'), 0.2 * rng.standard_normal(period), RATE)
  soundfile.write(str(foregrounds / 'long' / 'talk.wav'), 0.2 * rng.standard_normal(5 * RATE),
                  RATE)
  clips.make_dataset(str(tmp_path / 'out'), str(foregrounds), num_train=6, num_validation=0,
                     num_eval=0, seed=0, sample_rate=RATE, clip_seconds=1.0,
                     backgrounds_dir=str(backgrounds), split_fractions=(1, 0, 0),
                     source_count_probs=(0, 1))
  with open(tmp_path / 'out' / 'synthetic_fuss.json') as f:
    records = json.load(f)['examples']['train']
  starts = set()
  for example, record in zip(
      fuss.read_example_list(str(tmp_path / 'out/train_example_list.txt')), records):
    background, foreground = (_read_int16(p) for p in example.source_paths)
    np.testing.assert_array_equal(background[period:], background[:-period])
    # The 5-s clip fills the 1-s example, from a random start inside it.
    event = record['sources'][1]
    assert (event['onset'], event['length']) == (0, RATE)
    assert np.count_nonzero(foreground) > 0.99 * RATE
    starts.add(event['clip_start'])
  assert len(starts) == len(records)


BAD_CLIPS = {
    'corrupt.wav': b'RIFF\x10\x00\x00\x00WAVEnot audio at all',
    'truncated.flac': b'fLaC\x00\x00\x00\x22',
    'empty.ogg': b'',
}


def _write_bad_clips(folder):
  os.makedirs(os.path.join(folder, 'bad'), exist_ok=True)
  for name, data in BAD_CLIPS.items():
    with open(os.path.join(folder, 'bad', name), 'wb') as f:
      f.write(data)
  soundfile.write(os.path.join(folder, 'bad', 'silent.wav'), np.zeros(RATE), RATE)
  soundfile.write(os.path.join(folder, 'bad', 'short.wav'), 0.5 * np.ones(int(0.1 * RATE)), RATE)
  nan = np.full(RATE, 0.1, np.float32)
  nan[100] = np.nan
  soundfile.write(os.path.join(folder, 'bad', 'nan.wav'), nan, RATE, subtype='FLOAT')
  no_frames = os.path.join(folder, 'bad', 'zero_frames.wav')
  soundfile.write(no_frames, np.zeros(0), RATE)
  return sorted(list(BAD_CLIPS) + ['silent.wav', 'short.wav', 'nan.wav', 'zero_frames.wav'])


def _cli(*args):
  return subprocess.run([sys.executable, '-m', 'mixit.commands.make_fuss', *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)


def test_every_kind_of_bad_clip_is_named_skipped_and_counted(tmp_path):
  folder = str(tmp_path / 'clips')
  _write_clips(folder, per_label=2)
  bad = _write_bad_clips(folder)
  result = _cli(f'--clips_dir={folder}', f'--output_dir={tmp_path / "out"}', '--num_train=4',
                '--num_validation=0', '--num_eval=0', '--split_fractions=1,0,0',
                f'--sample_rate={RATE}', '--clip_seconds=1')
  assert result.returncode == 0, result.stderr
  skip_lines = [line for line in result.stderr.splitlines() if 'skipping' in line]
  assert len(skip_lines) == len(bad)
  for name in bad:
    assert sum(name in line for line in skip_lines) == 1, name
  reasons = ' '.join(skip_lines)
  assert 'silent' in reasons and 'too short' in reasons and 'unreadable' in reasons
  assert f'skipped as bad: {len(bad)}' in result.stdout
  with open(tmp_path / 'out' / 'synthetic_fuss.json') as f:
    info = json.load(f)
  assert sorted(os.path.basename(rel) for rel, _ in info['skipped']['clips']) == bad
  used = {s['clip'] for r in info['examples']['train'] for s in r['sources']}
  assert not any(clip.startswith('bad/') for clip in used)


def test_a_folder_of_only_bad_clips_is_refused_in_one_line(tmp_path):
  folder = str(tmp_path / 'clips')
  _write_bad_clips(folder)
  out = tmp_path / 'out'
  result = _cli(f'--clips_dir={folder}', f'--output_dir={out}', '--num_train=2',
                '--num_validation=0', '--num_eval=0', '--split_fractions=1,0,0',
                f'--sample_rate={RATE}', '--clip_seconds=1')
  assert result.returncode == 1
  errors = [line for line in result.stderr.splitlines()
            if line.startswith('mixit-make-fuss: error:')]
  assert len(errors) == 1 and folder in errors[0] and 'train split has no usable clip' in errors[0]
  assert 'Traceback' not in result.stderr
  assert not os.path.exists(out / 'train_example_list.txt')


@pytest.mark.parametrize('args, message', [
    (['--clips_dir=/nonexistent/clips'], 'no such folder'),
    (['--split_fractions=1,x,0'], '--split_fractions must be three numbers'),
    (['--split_fractions=1,0'], 'three non-negative numbers'),
    (['--split_fractions=0.5,0.5,0', '--num_eval=2'], 'give eval no clips'),
])
def test_bad_arguments_are_refused_in_one_line(tmp_path, clip_folder, args, message):
  base = [f'--clips_dir={clip_folder}', f'--output_dir={tmp_path / "out"}', '--num_train=1',
          '--num_validation=0', '--num_eval=0', f'--sample_rate={RATE}']
  result = _cli(*base, *args)
  assert result.returncode != 0
  assert message in result.stderr and 'Traceback' not in result.stderr


def test_clip_settings_without_clips_dir_are_refused(tmp_path):
  result = _cli(f'--output_dir={tmp_path}', '--backgrounds_dir=/x', '--num_train=1')
  assert result.returncode != 0 and '--backgrounds_dir needs --clips_dir' in result.stderr


def test_the_synthetic_generator_writes_what_it_wrote_before(tmp_path):
  """The shared writer keeps the synthetic sets byte-identical to one example made by hand."""
  synthetic.make_dataset(str(tmp_path), 2, 0, 0, seed=3, sample_rate=RATE, clip_seconds=0.5)
  for index in range(2):
    rng = np.random.default_rng([3, 0, index])
    sources, _ = synthetic.make_example(rng, RATE, 0.5)
    mixture = _read_int16(str(tmp_path / f'train/example{index:05d}.wav'))
    np.testing.assert_array_equal(mixture, sources.astype(np.int64).sum(0))


def test_tiny_end_to_end_make_train_export_evaluate(tmp_path, clip_folder):
  """Make a set from clips, train a few steps on it, export, and score with the evaluator."""
  import gin
  from data_pipeline import inputs  # noqa: F401
  from eval import fuss as fuss_eval
  from mixit import gin_config
  from mixit import model  # noqa: F401
  from mixit.serving import export as export_lib
  from mixit.training import loop as train_loop
  from mixit.training import trainer  # noqa: F401
  data = str(tmp_path / 'data')
  clips.make_dataset(data, clip_folder, num_train=8, num_validation=2, num_eval=3, seed=5,
                     sample_rate=RATE, clip_seconds=0.5, split_fractions=(0.6, 0.2, 0.2))
  params = tiny_params(data, 'batch_size = 2', 'CLIP_SECONDS = 0.5', 'LABELS = False',
                       'training.num_steps = 3', 'training.log_every = 1',
                       'training.eval_every = 3', 'training.eval_steps = 1')
  try:
    gin_config.parse(list(TINY_GIN_FILES), params)
    train_loop.train_from_gin(str(tmp_path / 'model'))
  finally:
    gin.clear_config()
  export_lib.export_saved_model(str(tmp_path / 'model'), str(tmp_path / 'export'))
  summary = fuss_eval.evaluate_and_report(os.path.join(data, 'eval_example_list.txt'),
                                          str(tmp_path / 'report'),
                                          saved_model=str(tmp_path / 'export'), label='tiny',
                                          batch_size=2, progress=False)
  assert summary['num_examples'] == 3
  assert np.isfinite(summary['sisnr_separated']) if 'sisnr_separated' in summary else True
  assert os.path.exists(tmp_path / 'report' / 'summary.json')
