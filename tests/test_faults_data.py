"""User mistakes and damaged files in the data readers, mixit-separate and mixit-evaluate:
nothing a command did not write is deleted or overwritten, nothing is scored silently wrong,
and bad input gets an error naming the file."""
import io
import json
import logging
import os
import struct

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from data_pipeline import audio_io
from data_pipeline import fuss as fuss_data
from data_pipeline import inputs
from data_pipeline import sources
from data_pipeline import wild
from eval import fuss
from mixit.serving import separate
from mixit.serving import separator as separator_lib

from conftest import write_fuss_eval_folder

RATE = 8000


# --------------------------------------------------------------------------------------------
# 16-bit WAV layouts that tf.audio.decode_wav refuses (case 10).


def _pcm16(seconds=0.25, channels=1, seed=0):
  rng = np.random.default_rng(seed)
  return rng.integers(-8000, 8000, size=(int(seconds * RATE), channels)).astype(np.int16)


def _plain_wav(samples):
  buffer = io.BytesIO()
  soundfile.write(buffer, samples, RATE, format='WAV', subtype='PCM_16')
  return buffer.getvalue()


def wav_variants(samples):
  """{name: bytes} of valid 16-bit WAVs of `samples` in the layouts other writers produce."""
  plain = _plain_wav(samples)
  buffer = io.BytesIO()
  soundfile.write(buffer, samples, RATE, format='WAVEX', subtype='PCM_16')
  extensible = buffer.getvalue()
  assert extensible[20:22] == b'\xfe\xff'  # WAVE_FORMAT_EXTENSIBLE
  info = b'LIST' + struct.pack('<I', 12) + b'INFOISFT' + struct.pack('<I', 0)
  body = info + plain[12:]
  list_first = b'RIFF' + struct.pack('<I', 4 + len(body)) + b'WAVE' + body
  data_at = plain.index(b'data')
  streamed = plain[:data_at + 4] + struct.pack('<I', 0) + plain[data_at + 8:]
  return {'extensible': extensible, 'list_before_fmt': list_first, 'streamed_size0': streamed}


def _one_source_list(root, data):
  os.makedirs(os.path.join(root, 'train'), exist_ok=True)
  with open(os.path.join(root, 'train', 'source.wav'), 'wb') as f:
    f.write(data)
  with open(os.path.join(root, 'train', 'mix.wav'), 'wb') as f:
    f.write(data)
  list_path = os.path.join(root, 'train_example_list.txt')
  with open(list_path, 'w') as f:
    f.write('train/mix.wav\ttrain/source.wav\n')
  return list_path


@pytest.mark.parametrize('variant', ['extensible', 'list_before_fmt', 'streamed_size0'])
def test_training_reader_reads_16bit_wavs_that_decode_wav_refuses(tmp_path, variant):
  samples = _pcm16(channels=2 if variant == 'extensible' else 1)
  data = wav_variants(samples)[variant]
  # What the in-graph reader alone would do (its error message even fails to decode).
  with pytest.raises((tf.errors.InvalidArgumentError, UnicodeDecodeError)):
    tf.audio.decode_wav(data)
  list_path = _one_source_list(str(tmp_path), data)
  examples = fuss_data.read_example_list(list_path)
  element, = fuss_data.fuss_dataset(examples, max_sources=2, sample_rate=RATE,
                                    clip_seconds=None)
  expected = samples.astype(np.float32).mean(axis=1) / 32768.0
  np.testing.assert_allclose(element['sources'].numpy()[0], expected, atol=1e-7)
  # The evaluator's reader gives the same samples.
  waveform, rate = audio_io.read_audio(os.path.join(str(tmp_path), 'train', 'source.wav'))
  assert rate == RATE
  np.testing.assert_allclose(waveform, expected, atol=1e-7)


def test_training_reader_names_a_wav_it_cannot_read(tmp_path):
  samples = _pcm16()
  data = bytearray(wav_variants(samples)['list_before_fmt'])
  fmt_at = bytes(data).index(b'fmt ')
  data[fmt_at + 22:fmt_at + 24] = struct.pack('<H', 24)  # bits per sample: not 16-bit PCM
  list_path = _one_source_list(str(tmp_path), bytes(data))
  dataset = fuss_data.fuss_dataset(fuss_data.read_example_list(list_path), max_sources=2,
                                   sample_rate=RATE, clip_seconds=None)
  with pytest.raises(tf.errors.OpError, match=r'source\.wav: needs 16-bit PCM'):
    list(dataset)


# --------------------------------------------------------------------------------------------
# Lists: byte-order marks and duplicates (cases 8, 11).


def _write_wav(path, seconds=0.25, seed=0):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  soundfile.write(path, _pcm16(seconds, seed=seed), RATE, subtype='PCM_16')
  return path


def test_utf8_bom_in_lists_is_not_part_of_the_first_path(tmp_path):
  for name in ('a', 'b'):
    _write_wav(str(tmp_path / 'train' / f'{name}.wav'))
  list_path = tmp_path / 'train_example_list.txt'
  list_path.write_bytes(b'\xef\xbb\xbftrain/a.wav\ttrain/b.wav\n')
  example, = fuss_data.read_example_list(str(list_path))
  assert example.mixture_path == str(tmp_path / 'train' / 'a.wav')
  wild_list = tmp_path / 'wild.txt'
  wild_list.write_bytes(b'\xef\xbb\xbftrain/a.wav\r\ntrain/b.wav\r\n')
  assert wild.list_audio_files(str(wild_list)) == [str(tmp_path / 'train' / 'a.wav'),
                                                   str(tmp_path / 'train' / 'b.wav')]
  labels = tmp_path / 'labels.csv'
  labels.write_bytes(b'\xef\xbb\xbfpath,labels\ntrain/a.wav,dog\ntrain/b.wav,\n')
  names, values = wild.read_clip_labels(str(labels), wild.list_audio_files(str(wild_list)))
  assert names == ['dog'] and values.tolist() == [[1.0], [0.0]]


def test_duplicate_example_list_lines_are_warned_about_and_refused_by_the_evaluator(
    tmp_path, caplog):
  for name in ('a', 'b', 'c'):
    _write_wav(str(tmp_path / 'eval' / f'{name}.wav'))
  list_path = tmp_path / 'eval_example_list.txt'
  list_path.write_text('eval/a.wav\teval/b.wav\neval/c.wav\teval/b.wav\neval/a.wav\teval/b.wav\n')
  with caplog.at_level(logging.WARNING):
    assert len(fuss_data.read_example_list(str(list_path))) == 3
  assert any(':3: duplicate of line 1' in r.getMessage() for r in caplog.records)
  with pytest.raises(ValueError, match=r'eval_example_list\.txt:3: duplicate of line 1'):
    fuss.evaluate_and_report(str(list_path), str(tmp_path / 'out'),
                             separated_dir=str(tmp_path), progress=False)
  assert not (tmp_path / 'out').exists()


def test_wild_folder_with_fewer_files_than_num_mixtures_is_refused(tmp_path):
  import gin
  gin.clear_config()  # no training binding an earlier test parsed may reach train_input_fn
  _write_wav(str(tmp_path / 'wild' / 'only.wav'))
  with pytest.raises(ValueError, match=r'wild: 1 audio file.*needs 2 distinct files'):
    inputs.train_input_fn(source=sources.WildMixtures(path=str(tmp_path / 'wild')),
                          batch_size=1, num_mixtures=2, sample_rate=RATE, clip_seconds=0.1,
                          shuffle_buffer=2)
  _write_wav(str(tmp_path / 'wild' / 'second.wav'), seed=1)
  batch = next(iter(inputs.train_input_fn(
      source=sources.WildMixtures(path=str(tmp_path / 'wild')), batch_size=1,
      num_mixtures=2, sample_rate=RATE, clip_seconds=0.1, shuffle_buffer=2, seed=0)))
  mixtures = batch['mixtures'].numpy()[0]
  assert not np.allclose(mixtures[0], mixtures[1])


# --------------------------------------------------------------------------------------------
# mixit-separate: a record of its outputs (cases 5, 7).


class Spread:
  """Stand-in model with M outputs: output k is (k + 1) times the mixture, over the sum."""

  def __init__(self, num_sources):
    self.weights = np.arange(1, num_sources + 1, dtype=np.float32)
    self.weights /= self.weights.sum()

  def __call__(self, mixture):
    return (self.weights[None, :, None] * mixture[:, None, :]).astype(np.float32)


def _separator(num_sources):
  return separator_lib.Separator(Spread(num_sources), RATE, num_sources, max_chunk_seconds=0)


def _tone(path, seconds=0.5, freq=300.0):
  t = np.arange(int(seconds * RATE)) / RATE
  soundfile.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), RATE,
                  subtype='PCM_16')
  return str(path)


def test_separate_never_takes_a_user_file_for_its_own_output(tmp_path):
  folder = tmp_path / 'recordings'
  folder.mkdir()
  _tone(folder / 'bird.wav')
  users = _tone(folder / 'bird_source1.wav', freq=900.0)  # the user's own recording
  _tone(folder / 'frog.wav', freq=500.0)
  mine = open(users, 'rb').read()
  for overwrite in (False, True):
    report = separate.separate_files(_separator(2), str(folder), str(folder), skip_bad=True,
                                     overwrite=overwrite)
    # The user file is an input like the others; bird.wav cannot be separated without
    # overwriting it, and says so.
    assert sorted(r.input_path for r in report.succeeded) == [users, str(folder / 'frog.wav')]
    (path, message), = report.failed
    assert path == str(folder / 'bird.wav')
    assert f'{users} exists and was not written by mixit-separate' in message
    assert open(users, 'rb').read() == mine
  with pytest.raises(FileExistsError, match='bird_source1.wav exists and was not written'):
    separate.separate_files(_separator(2), str(folder), str(folder), overwrite=True)
  assert open(users, 'rb').read() == mine
  assert (folder / 'bird_source1_source1.wav').exists()


def test_separate_overwrite_removes_the_inputs_stale_outputs(tmp_path):
  _tone(tmp_path / 'mix.wav')
  out = tmp_path / 'out'
  separate.separate_files(_separator(8), str(tmp_path / 'mix.wav'), str(out))
  (out / 'notes_source9.wav').write_bytes(b'not ours')
  separate.separate_files(_separator(4), str(tmp_path / 'mix.wav'), str(out), overwrite=True)
  assert sorted(os.listdir(out)) == ['.mixit_separate.json', 'mix_source0.wav',
                                     'mix_source1.wav', 'mix_source2.wav', 'mix_source3.wav',
                                     'notes_source9.wav']
  record = json.loads((out / '.mixit_separate.json').read_text())
  assert record['inputs']['mix']['num_sources'] == 4


def _fuss_folder(root, count):
  """`count` two-source examples; returns (list path, {name: sources [2, T]})."""
  rng = np.random.default_rng(0)
  examples = [(0.1 * rng.standard_normal((2, 4000))).astype(np.float32) for _ in range(count)]
  return write_fuss_eval_folder(root, examples, RATE)


def test_evaluator_names_examples_whose_output_count_differs(tmp_path):
  list_path, _ = _fuss_folder(str(tmp_path / 'fuss'), 3)
  sep = tmp_path / 'sep'
  # mixit-separate of an M = 8 model, then of an M = 4 model over it (the record lists 4).
  separate.separate_files(_separator(8), str(tmp_path / 'fuss' / 'eval'), str(sep))
  separate.separate_files(_separator(4), str(tmp_path / 'fuss' / 'eval'), str(sep),
                          overwrite=True)
  examples = fuss_data.read_example_list(list_path)
  rows = fuss.evaluate_separated(str(sep), examples, baselines=()).rows
  assert [row['num_outputs'] for row in rows] == [4, 4, 4]
  # A stale output that is not in the record, and a lost last output, are named.
  audio_io.write_wav(str(sep / 'example00001_source6.wav'), np.zeros(4000), RATE)
  with pytest.raises(fuss.BadExampleError,
                     match=r'example00001 \(example list line 2\).*example00001_source6\.wav is '
                     'beyond the 4 outputs'):
    fuss.evaluate_separated(str(sep), examples, baselines=())
  os.remove(sep / 'example00001_source6.wav')
  os.remove(sep / 'example00002_source3.wav')
  with pytest.raises(fuss.BadExampleError,
                     match=r'example00002 \(example list line 3\).*example00002_source3\.wav is '
                     'missing'):
    fuss.evaluate_separated(str(sep), examples, baselines=())
  # Without a record, every example must have as many outputs as the others.
  os.remove(sep / '.mixit_separate.json')
  with pytest.raises(fuss.BadExampleError,
                     match=r'example00002 \(example list line 3\): 3 outputs.*other examples '
                     'have 4'):
    fuss.evaluate_separated(str(sep), examples, baselines=())
  result = fuss.evaluate_separated(str(sep), examples, baselines=(), skip_bad=True)
  assert [row['example'] for row in result.rows] == ['example00000', 'example00001']


def test_evaluate_refuses_an_earlier_report_and_overwrites_only_its_own_files(tmp_path):
  list_path, all_sources = _fuss_folder(str(tmp_path / 'fuss'), 2)
  sep = tmp_path / 'sep'
  for name, planted in all_sources.items():
    for i, source in enumerate(planted):
      audio_io.write_wav(str(sep / f'{name}_source{i}.wav'), source, RATE, subtype='FLOAT')
  out = tmp_path / 'out'
  out.mkdir()
  (out / 'my_notes.txt').write_text('mine')
  fuss.evaluate_and_report(list_path, str(out), separated_dir=str(sep), progress=False)
  assert (out / 'scores_mixture.csv').exists() and (out / 'scores_oracle_binary_mask.csv').exists()
  first = (out / 'summary.json').read_bytes()
  with pytest.raises(FileExistsError, match=r'already holds a report.*--overwrite'):
    fuss.evaluate_and_report(list_path, str(out), separated_dir=str(sep), progress=False,
                             baselines=())
  assert (out / 'summary.json').read_bytes() == first
  summary = fuss.evaluate_and_report(list_path, str(out), separated_dir=str(sep),
                                     progress=False, baselines=(), overwrite=True)
  assert summary['baselines'] == {}
  names = sorted(os.listdir(out))
  assert 'scores_mixture.csv' not in names and 'scores_oracle_binary_mask.csv' not in names
  assert 'my_notes.txt' in names and 'scores.csv' in names
  # A report file the evaluator did not write is never replaced, even with --overwrite.
  other = tmp_path / 'other'
  other.mkdir()
  (other / 'summary.txt').write_text('my own summary')
  with pytest.raises(ValueError, match='summary.txt was not written by mixit-evaluate'):
    fuss.evaluate_and_report(list_path, str(other), separated_dir=str(sep), progress=False,
                             overwrite=True)
  assert (other / 'summary.txt').read_text() == 'my own summary'


def _non_utf8_name(folder):
  """A copy of a good WAV under a name whose bytes are not UTF-8 (Latin-1 'café')."""
  data = open(_tone(folder / 'tmp_source.wav'), 'rb').read()
  os.remove(folder / 'tmp_source.wav')
  raw = os.fsencode(str(folder)) + b'/caf\xe9.wav'
  with open(raw, 'wb') as f:
    f.write(data)
  return os.fsdecode(raw)


def test_separate_skips_a_non_utf8_name_by_name_and_separates_the_rest(tmp_path):
  folder = tmp_path / 'recordings'
  folder.mkdir()
  good = _tone(folder / 'good.wav')
  bad = _non_utf8_name(folder)
  report = separate.separate_files(_separator(2), str(folder), str(tmp_path / 'out'),
                                   skip_bad=True)
  assert [r.input_path for r in report.succeeded] == [good]
  (path, message), = report.failed
  assert path == str(folder) + '/caf\\xe9.wav' and 'not valid UTF-8' in message
  assert 'caf\\xe9.wav' in message
  message.encode('utf-8')  # printable: no surrogates
  with pytest.raises(audio_io.AudioDecodeError, match=r'caf\\xe9.wav: the file name is not'):
    separate.separate_files(_separator(2), str(folder), str(tmp_path / 'out2'))
  with pytest.raises(audio_io.AudioDecodeError, match='not valid UTF-8'):
    separate.separate_files(_separator(2), bad, str(tmp_path / 'out3'))
  assert os.path.exists(os.fsencode(bad))  # the input is untouched


def test_wild_and_clip_readers_name_and_skip_a_non_utf8_file(tmp_path):
  from data_pipeline import clips
  folder = tmp_path / 'wild'
  (folder / 'birds').mkdir(parents=True)
  for k in range(3):
    _tone(folder / 'birds' / f'b{k}.wav', freq=300.0 + 100 * k)
  _non_utf8_name(folder / 'birds')
  with pytest.raises(ValueError, match=r'caf\\xe9.wav: the file name is not valid UTF-8'):
    wild.wild_dataset(str(folder), sample_rate=RATE, clip_seconds=0.25, repeat=False)
  dataset, _ = wild.wild_dataset(str(folder), sample_rate=RATE, clip_seconds=0.25,
                                 repeat=False, skip_bad=True)
  assert len(list(dataset)) == 3
  _, summary = clips.make_dataset(str(tmp_path / 'set'), str(folder), num_train=2,
                                  num_validation=0, num_eval=0, sample_rate=RATE,
                                  clip_seconds=0.25, split_fractions=(1, 0, 0))
  assert summary['clips']['skipped'] == 1 and summary['clips']['usable']['train'] == 3
