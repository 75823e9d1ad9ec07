"""Tests of the FUSS evaluator on hand-built examples with known answers, files and CLI."""
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from data_pipeline import audio_io
from data_pipeline import fuss as fuss_data
from eval import baselines
from eval import fuss
from eval import report

from conftest import write_fuss_eval_folder

RATE = 16000
LENGTH = 2048
CAP = 10 * np.log10((1 + 1e-8) / 1e-8)  # SI-SNR of a perfect estimate.
REQUIRED_KEYS = {'msi', '1s', 'per_count', 'under_separation', 'equal_separation',
                 'over_separation', 'num_examples'}


def orthogonal_sources(count, seed):
  """`[count, LENGTH]` equal-power, mutually orthogonal sources whose two halves are mirror
  images (v, -v), so each half carries exactly half of the energy."""
  rng = np.random.default_rng(seed)
  basis, _ = np.linalg.qr(rng.normal(size=(LENGTH // 2, count)))
  halves = 4.0 * basis.T
  return np.concatenate([halves, -halves], axis=1).astype(np.float32)


def mixture_sisnr(count):
  """SI-SNR of the mixture against each of `count` equal-power orthogonal sources."""
  return CAP if count == 1 else -10 * np.log10(count - 1)


def make_examples():
  return [fuss.LoadedExample(name=f'example{k}', sources=orthogonal_sources(k, seed=k),
                             sample_rate=RATE, line_number=k) for k in (1, 2, 3, 4)]


class PlantedModel:
  """A separate_fn that knows each example's sources (looked up by its mixture)."""

  def __init__(self, examples, make_outputs, num_outputs):
    self._outputs = {e.mixture.tobytes(): make_outputs(e.sources) for e in examples}
    self._num_outputs = num_outputs
    self.calls = []

  def __call__(self, mixtures):
    self.calls.append(mixtures.shape)
    out = np.zeros((mixtures.shape[0], self._num_outputs, mixtures.shape[1]), np.float32)
    for b, mixture in enumerate(mixtures):
      outputs = self._outputs[mixture.astype(np.float32).tobytes()][:self._num_outputs]
      out[b, :len(outputs)] = outputs
    return out


def split_first(sources):
  first_half = sources[0].copy()
  first_half[LENGTH // 2:] = 0
  return np.concatenate([[first_half, sources[0] - first_half], sources[1:]])


def merge_first_two(sources):
  if len(sources) == 1:
    return sources
  return np.concatenate([[sources[0] + sources[1]], sources[2:]])


def pooled(values):
  return float(np.mean(values))


class TestKnownAnswers:

  def test_perfect_separation_of_1_to_4_sources(self):
    examples = make_examples()
    result = fuss.evaluate(PlantedModel(examples, lambda s: s, 4), examples, baselines=())
    summary = result.summary()
    assert summary['1s'] == pytest.approx(CAP, abs=1e-4)
    expected = [CAP - mixture_sisnr(k) for k in (2, 3, 4) for _ in range(k)]
    assert summary['msi'] == pytest.approx(pooled(expected), abs=1e-4)
    assert summary['msi_std'] == pytest.approx(np.std(expected), abs=1e-4)
    for k in (2, 3, 4):
      stats = summary['per_count'][str(k)]
      assert stats['num_pairs'] == k and stats['num_examples'] == 1
      assert stats['sisnri_mean'] == pytest.approx(CAP - mixture_sisnr(k), abs=1e-4)
      assert stats['sisnr_mean'] == pytest.approx(CAP, abs=1e-4)
    assert (summary['under_separation'], summary['equal_separation'],
            summary['over_separation']) == (0.0, 1.0, 0.0)
    assert summary['num_examples'] == 4
    assert REQUIRED_KEYS <= set(summary)

  def test_model_that_outputs_the_mixture(self):
    examples = make_examples()
    result = fuss.evaluate(lambda m: np.repeat(m[:, None], 4, axis=1), examples,
                           baselines=())
    summary = result.summary()
    assert summary['1s'] == pytest.approx(CAP, abs=1e-4)
    assert summary['msi'] == pytest.approx(0.0, abs=1e-4)
    for k in (2, 3, 4):
      assert summary['per_count'][str(k)]['sisnr_mean'] == pytest.approx(
          mixture_sisnr(k), abs=1e-4)
    # Four active outputs everywhere: over-separated unless there are four sources.
    assert summary['over_separation'] == 0.75
    assert summary['equal_separation'] == 0.25
    assert summary['under_separation'] == 0.0

  def test_over_separating_model_splits_one_source_in_two(self):
    examples = make_examples()
    result = fuss.evaluate(PlantedModel(examples, split_first, 5), examples, baselines=())
    summary = result.summary()
    # Half of a source has SI-SNR 0 dB against it; the other half lands on a zero reference.
    assert summary['1s'] == pytest.approx(0.0, abs=1e-4)
    expected = []
    for k in (2, 3, 4):
      expected += [0.0 - mixture_sisnr(k)] + [CAP - mixture_sisnr(k)] * (k - 1)
    assert summary['msi'] == pytest.approx(pooled(expected), abs=1e-4)
    assert summary['over_separation'] == 1.0
    assert summary['equal_separation'] == 0.0
    assert summary['separation_counts'] == {'1': {'2': 1}, '2': {'3': 1}, '3': {'4': 1},
                                            '4': {'5': 1}}
    for row in result.rows:
      assert row['num_active_seps'] == row['num_active_refs'] + 1
      assert row['num_active_pairs'] == row['num_active_refs']

  def test_under_separating_model_merges_two_sources(self):
    examples = make_examples()
    result = fuss.evaluate(PlantedModel(examples, merge_first_two, 4), examples,
                           baselines=())
    summary = result.summary()
    assert summary['1s'] == pytest.approx(CAP, abs=1e-4)
    # The merged output scores 0 dB against one of its two sources; the other one is paired
    # with a silent output and not scored.
    expected = [0.0 - mixture_sisnr(2)]
    for k in (3, 4):
      expected += [0.0 - mixture_sisnr(k)] + [CAP - mixture_sisnr(k)] * (k - 2)
    assert summary['msi'] == pytest.approx(pooled(expected), abs=1e-4)
    assert summary['per_count']['2']['num_pairs'] == 1
    assert summary['under_separation'] == 0.75
    assert summary['equal_separation'] == 0.25
    assert summary['over_separation'] == 0.0

  def test_baselines(self):
    examples = make_examples()
    result = fuss.evaluate(PlantedModel(examples, lambda s: s, 4), examples)
    summary = result.summary(label='perfect')
    mixture = summary['baselines'][baselines.MIXTURE]
    assert mixture['1s'] == pytest.approx(CAP, abs=1e-4)
    assert mixture['msi'] == pytest.approx(0.0, abs=1e-4)
    assert mixture['under_separation'] == 0.75 and mixture['equal_separation'] == 0.25
    oracle = summary['baselines'][baselines.ORACLE_BINARY_MASK]
    # Binary masks recover a single source perfectly; with overlapping white-ish sources they
    # sit between the mixture and perfect separation.
    assert oracle['1s'] == pytest.approx(CAP, abs=0.01)
    assert 0.0 < oracle['msi'] < summary['msi']
    assert oracle['num_examples'] == 4

  def test_silent_sources_and_all_silent_examples(self):
    sources = orthogonal_sources(3, seed=7)
    sources[2] = 0.0  # a listed but silent source: the example counts as 2-source
    examples = [
        fuss.LoadedExample('padded', sources, RATE, 1),
        fuss.LoadedExample('silent', np.zeros((2, LENGTH), np.float32), RATE, 2),
        fuss.LoadedExample('tiny', np.full((1, LENGTH), 1e-9, np.float32), RATE, 3),
    ]
    result = fuss.evaluate(PlantedModel(examples[:1], lambda s: s, 4), examples,
                           baselines=())
    summary = result.summary()
    assert summary['num_examples'] == 1
    assert summary['skipped']['silent_references'] == 2
    assert list(summary['per_count']) == ['2']
    assert summary['msi'] == pytest.approx(CAP - mixture_sisnr(2), abs=1e-4)
    assert result.rows[0]['num_sources'] == 3 and result.rows[0]['num_active_refs'] == 2

  def test_batches_give_the_same_rows(self):
    examples = make_examples()
    examples.insert(2, fuss.LoadedExample('short', orthogonal_sources(2, 9)[:, :1024], RATE, 9))
    model = PlantedModel(examples, lambda s: s, 4)
    one = fuss.evaluate(model, examples, batch_size=1, baselines=())
    model.calls.clear()
    three = fuss.evaluate(model, examples, batch_size=3, baselines=())
    assert one.rows == three.rows
    # Examples of another length start a new batch.
    assert model.calls == [(2, LENGTH), (1, 1024), (2, LENGTH)]

  def test_max_examples(self):
    examples = make_examples()
    result = fuss.evaluate(PlantedModel(examples, lambda s: s, 4), examples, max_examples=2,
                           baselines=())
    assert [row['example'] for row in result.rows] == ['example1', 'example2']


def _float32_sisnr(estimate, reference):
  def normalize(x):
    return x / np.sqrt(np.maximum(np.sum(x * x, -1, keepdims=True), np.float32(1e-16)))
  e, t = normalize(estimate.astype(np.float32)), normalize(reference.astype(np.float32))
  c = np.sum(e * t, -1)
  noise = np.where(1 - c * c >= 0.01, 1 - c * c, np.sum(np.square(e - t * c[..., None]), -1))
  return 10 * np.log10((c * c + np.float32(1e-8)) / (noise + np.float32(1e-8)))


def _public_procedure(examples, estimates_by_example):
  """The FUSS procedure (docs/formulas.md, "Evaluation (FUSS)") step by step in float32 with
  exhaustive permutations (as the public TF code runs it): returns (1S, MSi, under, equal, over)."""
  pairs = {c: ([], []) for c in range(1, 5)}
  separation = []
  for example, estimates in zip(examples, estimates_by_example):
    num_outputs = estimates.shape[0]
    refs = np.zeros((num_outputs, LENGTH), np.float32)
    refs[:len(example.sources)] = example.sources
    loss = -np.array([[_float32_sisnr(e, r) for r in refs] for e in estimates])
    best = min(itertools.permutations(range(num_outputs)),
               key=lambda perm: sum(loss[perm[i], i] for i in range(num_outputs)))
    aligned = estimates[list(best)]
    power_sep = np.mean(aligned ** 2, -1)
    power_ref = np.mean(refs ** 2, -1)
    active_ref = np.sqrt(power_ref) > 1e-8
    active_sep = power_sep > 0.01 * power_ref[active_ref].min()
    count = int(active_ref.sum())
    sep = _float32_sisnr(aligned, refs)
    mix = _float32_sisnr(np.tile(example.mixture, (num_outputs, 1)), refs)
    scored = active_ref & active_sep
    pairs[count][0].extend(sep[scored])
    pairs[count][1].extend((sep - mix)[scored])
    separation.append(np.sign(int(active_sep.sum()) - count))
  msi = np.mean(pairs[2][1] + pairs[3][1] + pairs[4][1])
  return (np.mean(pairs[1][0]), msi, np.mean(np.equal(separation, -1)),
          np.mean(np.equal(separation, 0)), np.mean(np.equal(separation, 1)))


class TestPublicProcedure:

  def test_matches_a_float32_exhaustive_run_to_0_01_db(self):
    rng = np.random.default_rng(3)
    examples, estimates = [], []
    for index in range(24):
      count = 1 + index % 4
      gains = 10 ** (rng.uniform(-15, 5, size=(count, 1)) / 20)
      sources = (0.05 * gains * rng.normal(size=(count, LENGTH))).astype(np.float32)
      examples.append(fuss.LoadedExample(f'e{index}', sources, RATE, index + 1))
      # Leaky estimates with random quality; sometimes an extra faint or strong output.
      leak = 10 ** (rng.uniform(-40, 0, size=(count, count)) / 20) * (1 - np.eye(count))
      est = np.zeros((4, LENGTH), np.float32)
      est[:count] = (np.eye(count) + leak) @ sources
      est[:count] += 0.01 * rng.uniform(0, 1) * rng.normal(size=(count, LENGTH))
      if count < 4 and index % 3:
        est[count] = 10 ** rng.uniform(-3, -1) * rng.normal(size=LENGTH)
      estimates.append(est[rng.permutation(4)])
    lookup = {e.mixture.tobytes(): est for e, est in zip(examples, estimates)}
    result = fuss.evaluate(lambda m: np.stack([lookup[x.tobytes()] for x in m]), examples,
                           baselines=())
    summary = result.summary()
    one_s, msi, under, equal, over = _public_procedure(examples, estimates)
    assert summary['1s'] == pytest.approx(one_s, abs=0.01)
    assert summary['msi'] == pytest.approx(msi, abs=0.01)
    assert (summary['under_separation'], summary['equal_separation'],
            summary['over_separation']) == pytest.approx((under, equal, over))
    assert 0.0 < over < 1.0 and equal > 0.0


class TestBadOutputs:

  def test_nan_outputs_name_the_example(self):
    examples = make_examples()

    def separate(mixtures):
      out = np.repeat(mixtures[:, None], 2, axis=1)
      out[:, 1, 5] = np.nan
      return out

    with pytest.raises(fuss.BadExampleError, match='example1.*NaN'):
      fuss.evaluate(separate, examples, baselines=())
    result = fuss.evaluate(separate, examples, skip_bad=True, baselines=())
    assert result.rows == []
    assert result.summary()['skipped']['bad_input'] == 4

  def test_wrong_length_names_the_example(self):
    examples = make_examples()
    with pytest.raises(fuss.BadExampleError, match=r'example1 \(example list line 1\).*2047'):
      fuss.evaluate(lambda m: m[:, None, :-1], examples, baselines=())

  def test_wrong_rank_raises(self):
    with pytest.raises(ValueError, match='expected \\[1, outputs, time\\]'):
      fuss.evaluate(lambda m: m, make_examples(), baselines=())

  def test_bad_arguments(self):
    with pytest.raises(ValueError, match='batch_size'):
      fuss.evaluate(lambda m: m[:, None], make_examples(), batch_size=0)
    with pytest.raises(ValueError, match='unknown baseline'):
      fuss.evaluate(lambda m: m[:, None], make_examples(), baselines=('ideal_ratio',))


class TestCsv:

  def test_csv_rereads_to_the_same_summary(self, tmp_path):
    examples = make_examples()
    rng = np.random.default_rng(0)
    def noisy_split(s):
      return split_first(s) + 0.05 * rng.normal(size=(len(s) + 1, LENGTH))
    result = fuss.evaluate(PlantedModel(examples, noisy_split, 5), examples, baselines=())
    path = str(tmp_path / 'scores.csv')
    report.write_scores_csv(result.rows, path)
    rows = report.read_scores_csv(path)
    assert rows == result.rows
    assert fuss.summarize(rows) == fuss.summarize(result.rows)
    with open(path) as f:
      lines = f.read().splitlines()
    assert len(lines) == 1 + len(examples)  # one row per example
    header = lines[0].split(',')
    assert [line.split(',')[header.index('example')] for line in lines[1:]] == [
        e.name for e in examples]

  def test_rows_with_different_slot_counts(self, tmp_path):
    examples = make_examples()
    result = fuss.evaluate(PlantedModel(examples, lambda s: s, 2), examples, baselines=())
    assert [row['num_slots'] for row in result.rows] == [2, 2, 3, 4]
    path = str(tmp_path / 'scores.csv')
    report.write_scores_csv(result.rows, path)
    assert report.read_scores_csv(path) == result.rows

  def test_not_a_scores_file(self, tmp_path):
    path = tmp_path / 'other.csv'
    path.write_text('a,b\n1,2\n')
    with pytest.raises(ValueError, match='not a scores.csv'):
      report.read_scores_csv(str(path))


# ----------------------------------------------------------------------------------------------
# Files on disk: a FUSS-format folder, separated outputs, a SavedModel, the CLI.


def write_fuss(root, counts=(1, 2, 3)):
  """Writes a FUSS-layout folder and eval_example_list.txt; returns (list path, sources)."""
  examples = [0.5 * orthogonal_sources(count, seed=100 + index) / 4.0
              for index, count in enumerate(counts)]
  return write_fuss_eval_folder(
      root, examples, RATE,
      source_name=lambda j: f"{'background' if j == 0 else 'foreground'}{j}_sound")


def write_separated(folder, all_sources, record=True):
  """Writes each example's outputs and, as `mixit-separate` does, the record of how many
  outputs each has (here as many as it has references, so the counts differ)."""
  for name, sources in all_sources.items():
    for i, source in enumerate(sources):
      audio_io.write_wav(os.path.join(folder, f'{name}_source{i}.wav'), source, RATE,
                         subtype='FLOAT')
  if record:
    entries = {name: {'input': f'{name}.wav', 'num_sources': len(sources), 'dropped': [],
                      'outputs': [f'{name}_source{i}.wav' for i in range(len(sources))]}
               for name, sources in all_sources.items()}
    with open(os.path.join(folder, fuss.SEPARATE_RECORD), 'w') as f:
      json.dump({'format': 'mixit-separate-record', 'inputs': entries}, f)


class TestFiles:

  def test_separated_dir_perfect(self, tmp_path):
    list_path, all_sources = write_fuss(str(tmp_path / 'fuss'))
    write_separated(str(tmp_path / 'sep'), all_sources)
    examples = fuss_data.read_example_list(list_path)
    result = fuss.evaluate_separated(str(tmp_path / 'sep'), examples)
    summary = result.summary()
    assert summary['1s'] == pytest.approx(CAP, abs=1e-3)
    expected = [CAP - mixture_sisnr(k) for k in (2, 3) for _ in range(k)]
    assert summary['msi'] == pytest.approx(pooled(expected), abs=1e-3)
    assert summary['equal_separation'] == 1.0
    assert [row['line_number'] for row in result.rows] == [1, 2, 3]

  def test_separated_dir_missing_outputs(self, tmp_path):
    list_path, all_sources = write_fuss(str(tmp_path / 'fuss'))
    del all_sources['example00001']
    write_separated(str(tmp_path / 'sep'), all_sources)
    examples = fuss_data.read_example_list(list_path)
    with pytest.raises(fuss.BadExampleError, match='example00001 .*line 2.*no separated'):
      fuss.evaluate_separated(str(tmp_path / 'sep'), examples)
    result = fuss.evaluate_separated(str(tmp_path / 'sep'), examples, skip_bad=True)
    assert [row['example'] for row in result.rows] == ['example00000', 'example00002']
    assert result.summary()['skipped']['bad_input'] == 1

  def test_separated_dir_gap_reads_as_silence_and_wrong_length_raises(self, tmp_path):
    list_path, all_sources = write_fuss(str(tmp_path / 'fuss'), counts=(2,))
    sep = tmp_path / 'sep'
    # Outputs 0 and 2 only, as `mixit-separate --drop_silent` leaves them.
    sources = all_sources['example00000']
    audio_io.write_wav(str(sep / 'example00000_source0.wav'), sources[1], RATE,
                       subtype='FLOAT')
    audio_io.write_wav(str(sep / 'example00000_source2.wav'), sources[0], RATE,
                       subtype='FLOAT')
    audio_io.write_wav(str(sep / 'example00000_source2_old.wav'), sources[0], RATE)
    examples = fuss_data.read_example_list(list_path)
    row, = fuss.evaluate_separated(str(sep), examples, baselines=()).rows
    assert row['num_outputs'] == 3 and row['num_active_seps'] == 2
    assert (row['estimate_index_source1'], row['estimate_index_source2']) == (2, 0)
    assert row['sisnr_separated_source1'] == pytest.approx(CAP, abs=1e-3)
    audio_io.write_wav(str(sep / 'example00000_source1.wav'), np.zeros(100), RATE)
    with pytest.raises(fuss.BadExampleError, match='example00000.*100 samples'):
      fuss.evaluate_separated(str(sep), examples)

  def test_list_and_separated_outputs_on_ram(self, ram_dir):
    """A FUSS list on ram://, separated by mixit-separate into ram://, evaluated from there:
    the same rows as the same separation in memory."""
    from mixit.serving import separate
    from mixit.serving import separator as separator_lib
    list_path, _ = write_fuss(f'{ram_dir}/fuss')
    examples = fuss_data.read_example_list(list_path)

    def halves(mixtures):  # [B, T] -> [B, 2, T]: an imperfect, deterministic separation
      return np.stack([0.5 * mixtures, 0.5 * mixtures], axis=1).astype(np.float32)

    separator = separator_lib.Separator(halves, RATE, 2, max_chunk_seconds=0)
    for example in examples:
      separate.separate_file(separator, example.mixture_path, f'{ram_dir}/sep')
    from_files = fuss.evaluate_separated(f'{ram_dir}/sep', examples, baselines=())
    in_memory = fuss.evaluate(halves, examples, baselines=())
    assert [row['example'] for row in from_files.rows] == [
        'example00000', 'example00001', 'example00002']
    for key in ('msi', '1s'):
      assert from_files.summary()[key] == pytest.approx(in_memory.summary()[key], abs=1e-4)

  def test_missing_source_file_in_list(self, tmp_path):
    list_path, _ = write_fuss(str(tmp_path / 'fuss'))
    os.remove(tmp_path / 'fuss/eval/example00001_sources/foreground1_sound.wav')
    examples = fuss_data.read_example_list(list_path, check_files=False)
    with pytest.raises(fuss.BadExampleError, match='example00001 .*line 2.*foreground1'):
      fuss.evaluate(lambda m: m[:, None], examples)
    result = fuss.evaluate(lambda m: m[:, None], examples, skip_bad=True)
    assert result.summary()['skipped']['bad_input'] == 1
    assert len(result.rows) == 2
    with pytest.raises(FileNotFoundError, match='eval_example_list.txt:2'):
      fuss.evaluate_and_report(list_path, str(tmp_path / 'out'),
                               separated_dir=str(tmp_path), progress=False)

  def test_saved_model_matches_the_same_function_in_memory(self, tmp_path):
    tf = pytest.importorskip('tensorflow')

    class HalfAndHalf(tf.Module):
      """Outputs [first half of the clip, second half] as two sources."""

      def __init__(self, sample_rate):
        super().__init__()
        self.sample_rate = tf.Variable(sample_rate, trainable=False)

      @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
      def serve(self, mixture_waveform):
        length = tf.shape(mixture_waveform)[1]
        first = tf.cast(tf.range(length) < length // 2, tf.float32)
        return {'separated_waveforms': tf.stack(
            [mixture_waveform * first, mixture_waveform * (1 - first)], axis=1)}

    def half_and_half(mixtures):
      first = (np.arange(mixtures.shape[1]) < mixtures.shape[1] // 2).astype(np.float32)
      return np.stack([mixtures * first, mixtures * (1 - first)], axis=1)

    for rate in (RATE, 8000):
      module = HalfAndHalf(rate)
      tf.saved_model.save(module, str(tmp_path / f'model{rate}'),
                          signatures={'serving_default': module.serve})
    separator = fuss.SavedModelSeparator(str(tmp_path / f'model{RATE}'))
    assert separator.sample_rate == RATE
    examples = make_examples()
    from_model = fuss.evaluate(separator, examples, batch_size=2, baselines=(),
                               sample_rate=separator.sample_rate)
    in_memory = fuss.evaluate(half_and_half, examples, baselines=())
    assert len(from_model.rows) == len(in_memory.rows) == 4
    for got, expected in zip(from_model.rows, in_memory.rows):
      assert got.keys() == expected.keys()
      for key, value in expected.items():
        assert got[key] == (pytest.approx(value, abs=1e-6) if isinstance(value, float)
                            else value), key
    # Each half of a (v, -v) source holds half its energy: 0 dB for the 1-source example.
    assert from_model.summary()['1s'] == pytest.approx(0.0, abs=1e-4)

    list_path, _ = write_fuss(str(tmp_path / 'fuss'))
    with pytest.raises(fuss.BadExampleError, match='8000 Hz'):
      fuss.evaluate_and_report(list_path, str(tmp_path / 'out'),
                               saved_model=str(tmp_path / 'model8000'), progress=False)
    with pytest.raises(ValueError, match='--saved_model'):
      fuss.SavedModelSeparator(str(tmp_path / 'fuss'))

  def test_report_files_and_cli_compare(self, tmp_path):
    list_path, all_sources = write_fuss(str(tmp_path / 'fuss'))
    write_separated(str(tmp_path / 'perfect'), all_sources)
    merged = {name: s if len(s) == 1 else np.concatenate([[s[0] + s[1]], s[2:]])
              for name, s in all_sources.items()}
    write_separated(str(tmp_path / 'merged'), merged)
    first = fuss.evaluate_and_report(list_path, str(tmp_path / 'out_perfect'),
                                     separated_dir=str(tmp_path / 'perfect'), progress=False)
    assert first['label'] == 'perfect'
    command = [sys.executable, '-m', 'mixit.commands.evaluate',
               f'--separated_dir={tmp_path / "merged"}', f'--example_list={list_path}',
               f'--output_dir={tmp_path / "out_merged"}',
               f'--compare={tmp_path / "out_perfect" / "summary.json"}', '--label=merged',
               '--noprogress']
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300,
                               cwd=os.path.dirname(os.path.dirname(__file__)))
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert 'MSi' in completed.stdout
    out = tmp_path / 'out_merged'
    for name in fuss.OUTPUT_FILES + ('scores_mixture.csv', 'scores_oracle_binary_mask.csv'):
      assert (out / name).exists(), name
    for name in fuss.OUTPUT_FILES:
      if name.endswith('.png'):
        assert (out / name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    summary = json.loads((out / 'summary.json').read_text())
    assert REQUIRED_KEYS <= set(summary)
    assert summary['label'] == 'merged'
    assert summary['under_separation'] == pytest.approx(2 / 3)
    assert set(summary['baselines']) == set(baselines.NAMES)
    text = (out / 'summary.txt').read_text()
    assert 'perfect' in text and 'oracle binary mask' in text
    assert fuss.summarize(report.read_scores_csv(str(out / 'scores.csv'))) == {
        k: v for k, v in summary.items()
        if k not in ('label', 'skipped', 'baselines')}

  def test_cli_errors(self, tmp_path):
    command = [sys.executable, '-m', 'mixit.commands.evaluate',
               f'--example_list={tmp_path}/none.txt', f'--output_dir={tmp_path}/out',
               f'--separated_dir={tmp_path}']
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300,
                               cwd=os.path.dirname(os.path.dirname(__file__)))
    assert completed.returncode == 1
    assert 'example list not found' in completed.stderr


# ----------------------------------------------------------------------------
# Over-separation diagnostics, against values worked out by hand.

def _diagnostic_examples():
  """Three examples with 4 outputs each, whose diagnostics are known exactly:
  - 'copies': 1 source split into copies 0.6 r and 0.4 r: 2 active outputs, the
    loudest holds 0.36 of the input power, |correlation| 1;
  - 'one_hot': 1 source in one output: 1 active, share 1, no pair to correlate;
  - 'split': 2 equal-power orthogonal sources in two outputs: 2 active, share 0.5,
    |correlation| 0.
  """
  r = orthogonal_sources(1, seed=40)
  uv = orthogonal_sources(2, seed=41)
  zeros = np.zeros((2, LENGTH), np.float32)
  examples = [fuss.LoadedExample('copies', r, RATE, 1),
              fuss.LoadedExample('one_hot', r * 0.5, RATE, 2),
              fuss.LoadedExample('split', uv, RATE, 3)]
  outputs = {'copies': np.concatenate([0.6 * r, 0.4 * r, zeros]),
             'one_hot': np.concatenate([r * 0.5, zeros, zeros[:1]]),
             'split': np.concatenate([uv, zeros])}
  return examples, outputs


def test_over_separation_diagnostics_by_hand():
  examples, outputs = _diagnostic_examples()
  rows = {e.name: fuss.score_row(e, outputs[e.name]) for e in examples}
  expected = {'copies': (2, 0.36, 1.0), 'one_hot': (1, 1.0, None), 'split': (2, 0.5, 0.0)}
  for name, (active, share, correlation) in expected.items():
    row = rows[name]
    assert row['num_active_seps'] == active, name
    np.testing.assert_allclose(row['loudest_output_share'], share, rtol=1e-6)
    if correlation is None:
      assert row['mean_abs_correlation'] is None
    else:
      np.testing.assert_allclose(row['mean_abs_correlation'], correlation, atol=1e-6)
  summary = fuss.summarize(rows.values())
  diagnostics = summary['diagnostics']
  # Active outputs against active references, per reference count.
  assert diagnostics['active_outputs'] == {'1': {'mean': 1.5, 'num_examples': 2},
                                          '2': {'mean': 2.0, 'num_examples': 1}}
  np.testing.assert_allclose(diagnostics['excess_active_outputs'], 1 / 3)
  # Loudest-output share over the two 1-source examples: (0.36 + 1) / 2.
  np.testing.assert_allclose(diagnostics['1s_loudest_output_share'], 0.68, rtol=1e-6)
  np.testing.assert_allclose(diagnostics['1s_loudest_output_share_db'],
                             (10 * np.log10(0.36) + 0) / 2, rtol=1e-6)
  # |correlation| over the examples with >= 2 active outputs: (1 + 0) / 2.
  np.testing.assert_allclose(diagnostics['mean_abs_correlation'], 0.5, atol=1e-6)
  assert diagnostics['mean_abs_correlation_examples'] == 2
  # The exact FUSS figures do not move: the 1-source copies example scores its
  # aligned output 0.6 r, whose SI-SNR is the cap.
  assert 'diagnostics' not in summary['per_count']['1']
  np.testing.assert_allclose(summary['1s'], CAP, rtol=1e-6)


def test_one_source_summary_has_no_sisnri():
  """SI-SNRi of a 1-source example is SI-SNR minus the +80 dB cap: reported as None."""
  examples, outputs = _diagnostic_examples()
  summary = fuss.summarize(fuss.score_row(e, outputs[e.name]) for e in examples)
  assert summary['per_count']['1']['sisnri_mean'] is None
  assert summary['per_count']['1']['sisnri_std'] is None
  assert summary['per_count']['1']['sisnr_mean'] is not None
  assert summary['per_count']['2']['sisnri_mean'] is not None


def test_diagnostics_in_every_report_file(tmp_path):
  examples, outputs = _diagnostic_examples()
  result = fuss.EvaluationResult(
      rows=[fuss.score_row(e, outputs[e.name]) for e in examples], baseline_rows={},
      skipped_silent=[], skipped_bad=[])
  out = tmp_path / 'report'
  summary = fuss.write_report(result, str(out), label='planted')
  rows = report.read_scores_csv(str(out / 'scores.csv'))
  by_name = {row['example']: row for row in rows}
  np.testing.assert_allclose(by_name['copies']['loudest_output_share'], 0.36, rtol=1e-6)
  assert by_name['one_hot']['mean_abs_correlation'] is None
  # The CSV re-reads to the same summary, diagnostics included.
  assert fuss.summarize(rows) == summary_without_extras(summary)
  on_disk = json.loads((out / 'summary.json').read_text())
  assert on_disk['diagnostics'] == summary['diagnostics']
  text = (out / 'summary.txt').read_text()
  assert 'Over-separation diagnostics' in text and 'loudest output' in text
  assert (out / 'over_separation.png').stat().st_size > 1000


def summary_without_extras(summary):
  return {k: v for k, v in summary.items() if k not in ('label', 'skipped', 'baselines')}


def test_msi_vs_1s_plot_keeps_capped_points_off_the_scale():
  """An oracle 1S at the +80 dB cap sits on the top edge, labelled, and the axis spans the
  models' points instead of 0..80 dB."""
  import matplotlib.pyplot as plt
  from eval import plots
  figure, axes = plt.subplots()
  points = [(8.0, 14.0, {'label': 'model'}, 'model'), (9.0, 12.0, {'label': 'other'}, 'other'),
            (15.0, CAP, {'label': 'oracle', 'marker': 'x'}, None)]
  plots.scatter_with_cap(axes, points)
  bottom, top = axes.get_ylim()
  assert 12.0 > bottom > 0.0 and 14.0 < top < 30.0, (bottom, top)
  texts = [t.get_text() for t in axes.texts]
  assert any('80 dB (SI-SNR cap)' in t for t in texts), texts
  plt.close(figure)


def test_msi_vs_1s_plot_of_a_run_with_nothing_to_plot_writes_a_note_without_warnings(tmp_path):
  """A report of only 1-source (or only multi-source) examples has no MSi-vs-1S point: the plot
  says so in words, with no empty legend (matplotlib warns on one)."""
  import warnings
  from eval import plots
  path = str(tmp_path / 'msi_vs_1s.png')
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    plots.plot_msi_vs_1s([('model', {'msi': None, '1s': 12.0})], path)
  assert os.path.getsize(path) > 1000
