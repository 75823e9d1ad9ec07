"""FUSS lists, label sidecars and the in-graph reader against soundfile-read numpy."""
import os

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from data_pipeline import fuss

RATE = 8000


def _write(path, ints, rate=RATE, subtype='PCM_16'):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  soundfile.write(path, ints, rate, subtype=subtype)


def make_fuss_root(root, counts, seconds=0.5, split='train', labels=None):
  """Writes a hand-made FUSS root; returns (list path, [int16 sources [k, T]])."""
  rng = np.random.default_rng(len(counts))
  length = int(seconds * RATE)
  lines, all_sources = [], []
  for index, count in enumerate(counts):
    sources = rng.integers(-6000, 6000, size=(count, length)).astype(np.int16)
    name = f'{split}/example{index:05d}'
    rels = [f'{name}_sources/background0_sound.wav'] + [
        f'{name}_sources/foreground{k}_sound.wav' for k in range(count - 1)]
    for rel, source in zip(rels, sources):
      _write(os.path.join(root, rel), source)
    _write(os.path.join(root, f'{name}.wav'), sources.astype(np.int32).sum(0).astype(np.int16))
    lines.append('\t'.join([f'{name}.wav'] + rels))
    all_sources.append(sources)
  list_path = os.path.join(root, f'{split}_example_list.txt')
  with open(list_path, 'w') as f:
    f.write('\n'.join(lines) + '\n')
  if labels is not None:
    classes, per_example = labels
    with open(fuss.labels_path_for(list_path), 'w') as f:
      f.write('\t'.join(['#classes'] + classes) + '\n')
      for line, example_labels in zip(lines, per_example):
        f.write('\t'.join([line.split('\t')[0]] + example_labels) + '\n')
  return list_path, all_sources


def _as_float(ints):
  return ints.astype(np.float32) / 32768.0


def _elements(dataset):
  return [{k: v.numpy() for k, v in e.items()} for e in dataset]


# --------------------------------------------------------------------------
# Lists.


def test_read_example_list_resolves_paths(tmp_path):
  list_path, _ = make_fuss_root(str(tmp_path), [1, 3])
  examples = fuss.read_example_list(list_path)
  assert [e.num_sources for e in examples] == [1, 3]
  assert examples[1].line_number == 2
  assert examples[1].mixture_path == os.path.join(str(tmp_path), 'train/example00001.wav')
  assert examples[1].source_paths[2].endswith('example00001_sources/foreground1_sound.wav')
  assert examples[0].labels is None
  # Absolute paths are kept as they are; blank lines are skipped.
  absolute = tmp_path / 'abs_list.txt'
  absolute.write_text('\n' + '\t'.join([examples[1].mixture_path] +
                                       list(examples[1].source_paths)) + '\n\n')
  again = fuss.read_example_list(str(absolute))
  assert again[0].source_paths == examples[1].source_paths and again[0].line_number == 2


@pytest.mark.parametrize('content,error,pattern', [
    ('', ValueError, 'empty'),
    ('\n\n', ValueError, 'empty'),
    ('a.wav\n', ValueError, r'bad.txt:1: .*1 field'),
    ('m.wav\ts1\ts2\ts3\ts4\ts5\n', ValueError, r'bad.txt:1: .*6 field'),
    ('m.wav\t\ts.wav\n', ValueError, r'bad.txt:1: empty field'),
    ('{ok}\nm.wav\tnothere.wav\n', FileNotFoundError, r'bad.txt:2: .*not found'),
])
def test_bad_lists_name_file_and_line(tmp_path, content, error, pattern):
  list_path, _ = make_fuss_root(str(tmp_path), [2])
  with open(list_path) as f:
    ok_line = f.read().strip()
  (tmp_path / 'm.wav').write_bytes(open(os.path.join(str(tmp_path), ok_line.split('\t')[0]),
                                        'rb').read())
  bad = tmp_path / 'bad.txt'
  bad.write_text(content.replace('{ok}', ok_line))
  with pytest.raises(error, match=pattern):
    fuss.read_example_list(str(bad))


def test_missing_list(tmp_path):
  with pytest.raises(FileNotFoundError, match='nolist.txt'):
    fuss.read_example_list(str(tmp_path / 'nolist.txt'))


def test_labels_sidecar(tmp_path):
  classes = ['bird', 'car', 'speech']
  list_path, _ = make_fuss_root(str(tmp_path), [2, 1],
                                labels=(classes, [['car', 'bird,speech'], ['speech']]))
  examples, names = fuss.load_examples(list_path, labels=True)
  assert names == classes
  assert examples[0].labels == (('car',), ('bird', 'speech'))
  dataset = fuss.fuss_dataset(examples, sample_rate=RATE, clip_seconds=None,
                              class_names=names)
  first, second = _elements(dataset)
  np.testing.assert_array_equal(first['labels'], [1, 1, 1])
  np.testing.assert_array_equal(first['source_labels'],
                                [[0, 1, 0], [1, 0, 1], [0, 0, 0], [0, 0, 0]])
  np.testing.assert_array_equal(second['labels'], [0, 0, 1])


@pytest.mark.parametrize('labels_text,pattern', [
    ('', 'labels file is empty'),
    ('bird\tcar\n', r'labels.tsv:1: first line'),
    ('#classes\tbird\tbird\n', 'distinct'),
    # One label field for a two-source example.
    ('#classes\tbird\ntrain/example00000.wav\tbird\n', r'labels.tsv:2: 1 label field.*2 sources'),
    ('#classes\tbird\ntrain/example00000.wav\tbird\tbird\ntrain/example00000.wav\tbird\tbird\n',
     r'labels.tsv:3: duplicate'),
])
def test_bad_labels_sidecars(tmp_path, labels_text, pattern):
  list_path, _ = make_fuss_root(str(tmp_path), [2])
  sidecar = fuss.labels_path_for(list_path)
  with open(sidecar, 'w') as f:
    f.write(labels_text)
  with pytest.raises(ValueError, match=pattern):
    fuss.load_examples(list_path, labels=True)


def test_labels_unknown_class_and_missing_line(tmp_path):
  list_path, _ = make_fuss_root(str(tmp_path), [1, 1])
  sidecar = fuss.labels_path_for(list_path)
  with open(sidecar, 'w') as f:
    f.write('#classes\tbird\ntrain/example00000.wav\tdog\n')
  with pytest.raises(ValueError, match=r"labels.tsv:2: unknown class.*'dog'"):
    fuss.load_examples(list_path, labels=True)
  with open(sidecar, 'w') as f:
    f.write('#classes\tbird\ntrain/example00000.wav\tbird\n')
  with pytest.raises(ValueError, match=r'no labels line for .*example00001.wav.*list.txt:2'):
    fuss.load_examples(list_path, labels=True)
  os.remove(sidecar)
  with pytest.raises(FileNotFoundError, match='labels.tsv'):
    fuss.load_examples(list_path, labels=True)


# --------------------------------------------------------------------------
# The dataset equals soundfile-read numpy.


def test_reader_equals_soundfile_with_padding_and_counts(tmp_path):
  counts = [1, 2, 3, 4]
  list_path, _ = make_fuss_root(str(tmp_path), counts)
  examples = fuss.read_example_list(list_path)
  elements = _elements(fuss.fuss_dataset(examples, sample_rate=RATE, clip_seconds=None,
                                         check_mixture=True, mixture_tolerance=0.0))
  assert len(elements) == len(counts)
  for example, element in zip(examples, elements):
    reference = np.stack([soundfile.read(p, dtype='float32')[0] for p in example.source_paths])
    k = example.num_sources
    assert element['num_sources'] == k
    assert element['sources'].shape == (4, reference.shape[1])
    np.testing.assert_array_equal(element['sources'][:k], reference)
    np.testing.assert_array_equal(element['sources'][k:], 0.0)
    np.testing.assert_allclose(element['mixture'], reference.sum(0), atol=1e-7)
    np.testing.assert_array_equal(element['mixture'],
                                  soundfile.read(example.mixture_path, dtype='float32')[0])


def test_fixed_and_random_crops(tmp_path):
  list_path, sources = make_fuss_root(str(tmp_path), [3, 2, 4], seconds=0.5)
  examples = fuss.read_example_list(list_path)
  clip = 0.125
  length = int(clip * RATE)
  fixed = _elements(fuss.fuss_dataset(examples, sample_rate=RATE, clip_seconds=clip))
  for element, ints in zip(fixed, sources):
    np.testing.assert_array_equal(element['sources'][:len(ints)], _as_float(ints[:, :length]))

  def crops(seed):
    dataset = fuss.fuss_dataset(examples, sample_rate=RATE, clip_seconds=clip, random_crop=True,
                                seed=seed, repeat=True)
    return _elements(dataset.take(6))

  first, again, other = crops(3), crops(3), crops(4)
  starts = []
  for element, ints in zip(first, sources * 2):
    full = _as_float(ints)
    # The crop is the same window of every source of the example.
    windows = np.lib.stride_tricks.sliding_window_view(full[0], length)
    matches = np.flatnonzero(np.all(windows == element['sources'][0], axis=1))
    assert len(matches) == 1
    start = int(matches[0])
    np.testing.assert_array_equal(element['sources'][:len(ints)], full[:, start:start + length])
    starts.append(start)
  assert len(set(starts)) > 2  # random, not always the same offset
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a['sources'], b['sources'])
  assert any(not np.array_equal(a['sources'], b['sources']) for a, b in zip(first, other))


def test_shuffle_is_seeded(tmp_path):
  list_path, _ = make_fuss_root(str(tmp_path), [1] * 12, seconds=0.05)
  examples = fuss.read_example_list(list_path)

  def order(seed):
    dataset = fuss.fuss_dataset(examples, max_sources=1, sample_rate=RATE, clip_seconds=None,
                                shuffle=True, seed=seed)
    return [float(e['mixture'][:8].sum()) for e in _elements(dataset)]

  assert order(1) == order(1)
  assert order(1) != order(2)
  assert sorted(order(1)) == sorted(order(2))


# --------------------------------------------------------------------------
# Bad audio stops the pipeline with an error naming the file.


def _first_source(tmp_path, counts=(2,)):
  list_path, _ = make_fuss_root(str(tmp_path), list(counts))
  examples = fuss.read_example_list(list_path)
  return examples, examples[0].source_paths[-1]


def _expect_graph_error(examples, pattern, **kwargs):
  kwargs.setdefault('sample_rate', RATE)
  kwargs.setdefault('clip_seconds', None)
  with pytest.raises(tf.errors.OpError, match=pattern):
    _elements(fuss.fuss_dataset(examples, **kwargs))


def test_truncated_wav(tmp_path):
  examples, path = _first_source(tmp_path)
  data = open(path, 'rb').read()
  open(path, 'wb').write(data[:len(data) - 1000])
  _expect_graph_error(examples, 'truncated WAV.*foreground0_sound.wav')


@pytest.mark.parametrize('content', [b'', b'garbage' * 30])
def test_not_a_wav(tmp_path, content):
  examples, path = _first_source(tmp_path)
  open(path, 'wb').write(content)
  _expect_graph_error(examples, 'not a RIFF/WAVE file.*foreground0_sound.wav')


def test_24bit_wav_is_rejected_naming_it(tmp_path):
  examples, path = _first_source(tmp_path)
  _write(path, np.zeros(4000, np.float32), subtype='PCM_24')
  _expect_graph_error(examples, '16-bit PCM.*foreground0_sound.wav')


def test_wrong_rate_short_clip_and_length_mismatch(tmp_path):
  examples, path = _first_source(tmp_path)
  _expect_graph_error(examples, 'expected sample rate.*16000.*background0_sound.wav',
                      sample_rate=16000)
  _expect_graph_error(examples, 'clip shorter than requested.*background0_sound.wav',
                      clip_seconds=1.0)
  _write(path, np.zeros(1000, np.int16))
  _expect_graph_error(examples, 'differs from the first source.*foreground0_sound.wav')


def test_missing_file_at_read_time(tmp_path):
  examples, path = _first_source(tmp_path)
  os.remove(path)
  _expect_graph_error(examples, 'foreground0_sound.wav')


def test_mixture_check(tmp_path):
  examples, _ = _first_source(tmp_path)
  _write(examples[0].mixture_path, np.full(4000, 1000, np.int16))
  _expect_graph_error(examples, r'mixture file differs.*example00000.wav', check_mixture=True)
  # Without the check the mixture file is never read.
  assert len(_elements(fuss.fuss_dataset(examples, sample_rate=RATE, clip_seconds=None))) == 1


def test_too_many_sources_and_bad_clip(tmp_path):
  examples, _ = _first_source(tmp_path, counts=(3,))
  with pytest.raises(ValueError, match='example00000.wav.*3 sources > max_sources=2'):
    fuss.fuss_dataset(examples, max_sources=2, sample_rate=RATE)
  with pytest.raises(ValueError, match='clip_seconds'):
    fuss.fuss_dataset(examples, sample_rate=RATE, clip_seconds=0.0)
  with pytest.raises(ValueError, match='no examples'):
    fuss.fuss_dataset([], sample_rate=RATE)
