"""In-the-wild reader: mixed formats, rates and channels vs soundfile + soxr, crops, labels,
bad files."""
import logging
import os

import numpy as np
import pytest
import soundfile
import soxr
import tensorflow as tf

from data_pipeline import audio_io
from data_pipeline import wild

RATE = 8000
CLIP = 0.25
CLIP_LENGTH = int(CLIP * RATE)


def _reference(path):
  """soundfile decode -> channel mean -> soxr HQ to RATE: independent of audio_io."""
  data, rate = soundfile.read(path, dtype='float32', always_2d=True)
  mono = data.mean(axis=1)
  return soxr.resample(mono, rate, RATE, quality='HQ') if rate != RATE else mono


@pytest.fixture(name='folder')
def fixture_folder(tmp_path):
  rng = np.random.default_rng(0)
  files = {
      'a.wav': (8000, 1, 0.5, 'PCM_16'),
      'sub/b.flac': (44100, 2, 0.4, 'PCM_24'),
      'sub/deeper/c.ogg': (22050, 2, 0.6, 'VORBIS'),
      'short.wav': (16000, 1, 0.1, 'PCM_16'),
  }
  for rel, (rate, channels, seconds, subtype) in files.items():
    path = tmp_path / 'rec' / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    x = rng.uniform(-0.3, 0.3, size=(int(rate * seconds), channels)).astype(np.float32)
    soundfile.write(str(path), x, rate, subtype=subtype)
  (tmp_path / 'rec' / 'notes.txt').write_text('not audio')
  return tmp_path / 'rec'


def _elements(dataset):
  return [{k: v.numpy() for k, v in e.items()} for e in dataset]


def test_folder_is_searched_recursively(folder):
  files = wild.list_audio_files(str(folder))
  names = [os.path.relpath(f, str(folder)) for f in files]
  assert names == ['a.wav', 'short.wav', 'sub/b.flac', 'sub/deeper/c.ogg']


def test_clips_equal_soundfile_resampled_and_padded(folder):
  dataset, classes = wild.wild_dataset(str(folder), sample_rate=RATE, clip_seconds=CLIP,
                                       random_crop=False, shuffle=False, repeat=False)
  assert classes is None
  elements = _elements(dataset)
  files = wild.list_audio_files(str(folder))
  assert len(elements) == len(files)
  for path, element in zip(files, elements):
    reference = _reference(path)
    clip = element['mixture']
    assert clip.shape == (CLIP_LENGTH,) and clip.dtype == np.float32
    used = min(CLIP_LENGTH, reference.shape[0])
    if audio_io.backend_name() == 'soundfile' or path.endswith('a.wav'):
      np.testing.assert_allclose(clip[:used], reference[:used], atol=1e-5)
    else:
      # tfio decodes Vorbis and resamples with its own filter, whose transition
      # band differs from soxr's on this white noise: close, not equal. A shift
      # by one sample would give an error near 1.
      error = np.sum((clip[:used] - reference[:used]) ** 2) / np.sum(reference[:used] ** 2)
      assert error < 0.1, (path, error)
    if path.endswith('short.wav'):
      assert reference.shape[0] == 800 < CLIP_LENGTH
      np.testing.assert_array_equal(clip[used:], 0.0)  # zero-padded at the end


def test_random_crops_are_windows_and_seeded(folder):
  path = str(folder / 'sub' / 'b.flac')
  list_file = folder / 'list.txt'
  list_file.write_text('# one file, listed relative to the list\n\nsub/b.flac\n')

  def crops(seed):
    dataset, _ = wild.wild_dataset(str(list_file), sample_rate=RATE, clip_seconds=CLIP,
                                   random_crop=True, seed=seed, repeat=True)
    return [e['mixture'] for e in _elements(dataset.take(6))]

  full = audio_io.read_audio(path, RATE)[0]
  windows = np.lib.stride_tricks.sliding_window_view(full, CLIP_LENGTH)
  first = crops(7)
  starts = []
  for clip in first:
    matches = np.flatnonzero(np.all(windows == clip, axis=1))
    assert matches.size >= 1
    starts.append(int(matches[0]))
  assert len(set(starts)) > 2
  for a, b in zip(first, crops(7)):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b) for a, b in zip(first, crops(8)))


def test_sharding_splits_files(folder):
  seen = []
  for shard in range(2):
    dataset, _ = wild.wild_dataset(str(folder), sample_rate=RATE, clip_seconds=CLIP,
                                   random_crop=False, shuffle=False, repeat=False,
                                   num_shards=2, shard_index=shard)
    seen.append([e['mixture'][:16].tobytes() for e in _elements(dataset)])
  assert len(seen[0]) == len(seen[1]) == 2
  assert not set(seen[0]) & set(seen[1])
  with pytest.raises(ValueError, match='cannot feed 5 input pipelines'):
    wild.wild_dataset(str(folder), num_shards=5)


def test_clip_labels_csv(folder):
  csv_path = folder / 'labels.csv'
  csv_path.write_text('path,labels\na.wav,dog;speech\nshort.wav,\nsub/b.flac,car\n'
                      f'{folder / "sub" / "deeper" / "c.ogg"},speech\n')
  dataset, classes = wild.wild_dataset(str(folder), sample_rate=RATE, clip_seconds=CLIP,
                                       labels_csv=str(csv_path), shuffle=False, repeat=False)
  assert classes == ['car', 'dog', 'speech']
  labels = [e['labels'].tolist() for e in _elements(dataset)]
  assert labels == [[0, 1, 1], [0, 0, 0], [1, 0, 0], [0, 0, 1]]
  # A given vocabulary fixes the order and rejects unknown names.
  _, classes = wild.wild_dataset(str(folder), labels_csv=str(csv_path),
                                 class_names=['speech', 'dog', 'car', 'bird'])
  assert classes == ['speech', 'dog', 'car', 'bird']
  with pytest.raises(ValueError, match=r"labels.csv:2: unknown class.*'speech'"):
    wild.wild_dataset(str(folder), labels_csv=str(csv_path), class_names=['dog', 'car'])


@pytest.mark.parametrize('content,pattern', [
    ('file,classes\na.wav,dog\n', r'labels.csv:1: header'),
    ('path,labels\na.wav,dog,extra\n', r'labels.csv:2: expected 2 fields'),
    ('path,labels\na.wav,dog\n', r'no labels row for .*short.wav'),
])
def test_bad_labels_csv(folder, content, pattern):
  csv_path = folder / 'labels.csv'
  csv_path.write_text(content)
  with pytest.raises(ValueError, match=pattern):
    wild.wild_dataset(str(folder), labels_csv=str(csv_path))
  with pytest.raises(FileNotFoundError, match='nolabels.csv'):
    wild.wild_dataset(str(folder), labels_csv=str(folder / 'nolabels.csv'))


def test_empty_and_missing_sources(tmp_path):
  (tmp_path / 'empty').mkdir()
  (tmp_path / 'empty' / 'readme.txt').write_text('x')
  with pytest.raises(ValueError, match='empty: folder holds no audio'):
    wild.list_audio_files(str(tmp_path / 'empty'))
  (tmp_path / 'list.txt').write_text('\n# nothing\n')
  with pytest.raises(ValueError, match='list.txt: file list is empty'):
    wild.list_audio_files(str(tmp_path / 'list.txt'))
  (tmp_path / 'list2.txt').write_text('gone.wav\n')
  with pytest.raises(FileNotFoundError, match=r'list2.txt:1: .*gone.wav'):
    wild.list_audio_files(str(tmp_path / 'list2.txt'))
  with pytest.raises(FileNotFoundError, match='nowhere'):
    wild.list_audio_files(str(tmp_path / 'nowhere'))


def _add_corrupt(folder):
  data = (folder / 'a.wav').read_bytes()
  (folder / 'zz_corrupt.wav').write_bytes(data[:len(data) // 2])


def test_bad_file_is_one_line_before_any_step(folder):
  _add_corrupt(folder)
  with pytest.raises(ValueError) as raised:
    wild.wild_dataset(str(folder), sample_rate=RATE, clip_seconds=CLIP, shuffle=False,
                      repeat=False)
  message = str(raised.value)
  assert 'zz_corrupt.wav' in message and '\n' not in message and 'skip_bad' in message


def _add_nan(folder):
  """A file whose header is fine and whose samples are not: found only when decoded."""
  samples = np.full(RATE // 2, 0.1, np.float32)
  samples[10] = np.nan
  soundfile.write(str(folder / 'zz_nan.wav'), samples, RATE, subtype='FLOAT')


def test_bad_samples_still_raise_when_decoded(folder):
  _add_nan(folder)
  dataset, _ = wild.wild_dataset(str(folder), sample_rate=RATE, clip_seconds=CLIP,
                                 shuffle=False, repeat=False)
  with pytest.raises(tf.errors.OpError, match='zz_nan.wav'):
    _elements(dataset)


def test_skip_bad_counts_and_logs(folder, caplog):
  _add_corrupt(folder)
  (folder / 'zz_empty.wav').write_bytes(b'')
  _add_nan(folder)
  counter = wild.SkipCounter(0)
  with caplog.at_level(logging.WARNING):
    dataset, _ = wild.wild_dataset(str(folder), sample_rate=RATE, clip_seconds=CLIP,
                                   shuffle=False, repeat=False, skip_bad=True,
                                   skip_counter=counter)
    elements = _elements(dataset)
  assert len(elements) == 4
  assert counter.count == 3
  assert {os.path.basename(p) for p in counter.bad_files} == {'zz_corrupt.wav', 'zz_empty.wav',
                                                              'zz_nan.wav'}
  for name in ('zz_corrupt.wav', 'zz_empty.wav', 'zz_nan.wav'):
    assert sum(name in r.getMessage() for r in caplog.records) == 1, name
    assert any(os.path.basename(p) == name for p in wild.skipped_files())


def test_a_bad_file_met_every_epoch_is_named_once(folder, caplog):
  _add_nan(folder)
  dataset, _ = wild.wild_dataset(str(folder), sample_rate=RATE, clip_seconds=CLIP,
                                 shuffle=False, repeat=True, skip_bad=True)
  with caplog.at_level(logging.WARNING):
    for _ in dataset.take(4 * 6):  # six epochs of the 4 good files
      pass
  assert sum('zz_nan.wav' in r.getMessage() for r in caplog.records) == 1


@pytest.mark.timeout(60)
def test_all_bad_files_raise_instead_of_hanging(tmp_path):
  for name in ('x.wav', 'y.flac'):
    (tmp_path / name).write_bytes(b'garbage' * 10)
  with pytest.raises(ValueError, match='all 2 files .* undecodable'):
    wild.wild_dataset(str(tmp_path), sample_rate=RATE, clip_seconds=CLIP, skip_bad=True,
                      repeat=True)


@pytest.mark.timeout(60)
def test_all_bad_samples_raise_instead_of_hanging(tmp_path):
  for name in ('x.wav', 'y.wav'):
    soundfile.write(str(tmp_path / name), np.full(100, np.nan, np.float32), RATE,
                    subtype='FLOAT')
  dataset, _ = wild.wild_dataset(str(tmp_path), sample_rate=RATE, clip_seconds=CLIP,
                                 skip_bad=True, repeat=True)
  with pytest.raises(tf.errors.OpError, match='all 2 files .* undecodable'):
    next(iter(dataset))

