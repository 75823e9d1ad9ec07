"""Tests of eval.metrics against direct numpy formulas and brute-force permutation search."""
import itertools

import numpy as np
import pytest

from eval import metrics

_CAP = 10 * np.log10((1 + 1e-8) / 1e-8)  # SI-SNR of a perfect estimate, about 80 dB.


def _projection_si_snr(estimate, reference):
  """Textbook SI-SNR (projection onto the reference), no zero-mean.

  Target and residual powers are taken relative to the estimate's power, where the FUSS
  formula adds its 1e-8 to both.
  """
  estimate = np.asarray(estimate, np.float64)
  reference = np.asarray(reference, np.float64)
  target = np.dot(estimate, reference) / np.dot(reference, reference) * reference
  residual = estimate - target
  power = np.dot(estimate, estimate)
  return 10 * np.log10((np.dot(target, target) / power + 1e-8)
                       / (np.dot(residual, residual) / power + 1e-8))


def _float32_si_snr(estimate, reference):
  """The same formula evaluated in float32, as the public TF evaluator does."""
  def normalize(x):
    return x / np.sqrt(np.maximum(np.sum(x * x, -1, keepdims=True), np.float32(1e-16)))
  e = normalize(np.asarray(estimate, np.float32))
  t = normalize(np.asarray(reference, np.float32))
  c = np.sum(e * t, -1)
  noise = np.float32(1) - c * c
  direct = np.sum(np.square(e - t * c[..., None]), -1)
  noise = np.where(noise >= 0.01, noise, direct)
  eps = np.float32(1e-8)
  return 10 * np.log10((c * c + eps) / (noise + eps))


def _brute_force_assignment(score):
  """Maximum summed score over all injective maps reference -> estimate."""
  sources, estimates = score.shape
  best, best_total = None, -np.inf
  for perm in itertools.permutations(range(estimates), sources):
    total = score[np.arange(sources), perm].sum()
    if total > best_total:
      best, best_total = np.array(perm), total
  return best, best_total


class TestSiSnr:

  def test_random_pairs_match_projection_formula(self):
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(50, 800))
    # Mix each reference with noise at SNRs from -30 to +60 dB.
    snr_db = np.linspace(-30, 60, 50)
    noise = rng.normal(size=(50, 800))
    noise -= (np.sum(noise * reference, -1, keepdims=True)
              / np.sum(reference ** 2, -1, keepdims=True)) * reference
    gain = np.sqrt(np.sum(reference ** 2, -1) / np.sum(noise ** 2, -1) / 10 ** (snr_db / 10))
    estimate = 3.0 * (reference + gain[:, None] * noise)
    got = metrics.si_snr(reference, estimate)
    expected = np.array([_projection_si_snr(e, r) for e, r in zip(estimate, reference)])
    np.testing.assert_allclose(got, expected, atol=1e-9)
    # The 1e-8 guard costs 0.04 dB at 60 dB and nothing measurable below 40 dB.
    np.testing.assert_allclose(got[snr_db < 40], snr_db[snr_db < 40], atol=1e-3)

  def test_identical_and_scaled_estimates_hit_the_cap(self):
    rng = np.random.default_rng(1)
    reference = rng.normal(size=1000)
    for gain in (1.0, 1e-3, 250.0, -2.0):
      assert metrics.si_snr(reference, gain * reference) == pytest.approx(_CAP, abs=1e-6)

  def test_orthogonal_estimate(self):
    t = np.arange(1000)
    reference = np.sin(2 * np.pi * 5 * t / 1000)
    estimate = np.cos(2 * np.pi * 5 * t / 1000)
    assert metrics.si_snr(reference, estimate) == pytest.approx(-_CAP, abs=1e-6)

  def test_silent_estimate_and_silent_reference_give_minus_80(self):
    signal = np.random.default_rng(2).normal(size=500)
    zeros = np.zeros(500)
    assert metrics.si_snr(signal, zeros) == pytest.approx(-_CAP, abs=1e-9)
    assert metrics.si_snr(zeros, signal) == pytest.approx(-_CAP, abs=1e-9)
    assert metrics.si_snr(zeros, zeros) == pytest.approx(-_CAP, abs=1e-9)
    assert np.isfinite(metrics.si_snr(zeros, zeros))

  def test_no_zero_mean(self):
    # With zero-mean, a DC offset would be ignored; the FUSS SI-SNR penalises it.
    rng = np.random.default_rng(3)
    reference = rng.normal(size=2000)
    estimate = reference + 1.0
    got = metrics.si_snr(reference, estimate)
    assert got == pytest.approx(_projection_si_snr(estimate, reference), abs=1e-6)
    assert got < 5.0

  def test_seam_is_continuous(self):
    # Estimates whose squared cosine straddles 0.99, where the noise formula switches.
    rng = np.random.default_rng(4)
    reference = rng.normal(size=4000)
    noise = rng.normal(size=4000)
    noise -= np.dot(noise, reference) / np.dot(reference, reference) * reference
    noise *= np.linalg.norm(reference) / np.linalg.norm(noise)
    for snr_db in (19.9, 19.99, 19.999, 20.0, 20.001, 20.01, 20.1):
      estimate = reference + 10 ** (-snr_db / 20) * noise
      noise_to_signal = 10 ** (-snr_db / 10)
      signal = 1 / (1 + noise_to_signal)
      expected = 10 * np.log10((signal + 1e-8) / (1 - signal + 1e-8))
      assert metrics.si_snr(reference, estimate) == pytest.approx(expected, abs=1e-9)

  def test_float64_matches_float32_evaluator_within_0_01_db(self):
    rng = np.random.default_rng(5)
    reference = (0.1 * rng.normal(size=(40, 16000))).astype(np.float32)
    estimate = (reference + np.logspace(-4, 1, 40)[:, None]
                * rng.normal(size=(40, 16000))).astype(np.float32)
    np.testing.assert_allclose(metrics.si_snr(reference, estimate),
                               _float32_si_snr(estimate, reference), atol=0.01)

  def test_broadcasts_and_returns_float64(self):
    rng = np.random.default_rng(6)
    references = rng.normal(size=(3, 200)).astype(np.float32)
    mixture = references.sum(0)
    got = metrics.si_snr(references, mixture[None])
    assert got.shape == (3,) and got.dtype == np.float64
    np.testing.assert_allclose(
        got, [_projection_si_snr(mixture, r) for r in references], atol=1e-9)

  def test_improvement(self):
    rng = np.random.default_rng(7)
    references = rng.normal(size=(2, 300))
    mixture = references.sum(0)
    estimates = references + 0.1 * rng.normal(size=(2, 300))
    np.testing.assert_allclose(
        metrics.si_snr_improvement(references, estimates, mixture),
        [_projection_si_snr(e, r) - _projection_si_snr(mixture, r)
         for e, r in zip(estimates, references)], atol=1e-9)


class TestAlignment:

  @pytest.mark.parametrize('sources,estimates', [(1, 1), (2, 2), (3, 4), (4, 4), (2, 6),
                                                 (5, 5), (4, 8), (8, 8)])
  def test_hungarian_equals_brute_force_on_random_scores(self, sources, estimates):
    rng = np.random.default_rng(10 * sources + estimates)
    for _ in range(5):
      score = rng.normal(size=(sources, estimates))
      expected, expected_total = _brute_force_assignment(score)
      got = metrics.best_assignment(score)
      np.testing.assert_array_equal(got, expected)
      assert score[np.arange(sources), got].sum() == pytest.approx(expected_total)

  @pytest.mark.parametrize('num_outputs', [2, 4, 8])
  def test_align_estimates_recovers_a_planted_permutation(self, num_outputs):
    rng = np.random.default_rng(num_outputs)
    references = rng.normal(size=(num_outputs, 400))
    perm = rng.permutation(num_outputs)
    estimates = references[perm] + 0.3 * rng.normal(size=(num_outputs, 400))
    aligned, assignment, padded = metrics.align_estimates(references, estimates)
    np.testing.assert_array_equal(perm[assignment], np.arange(num_outputs))
    np.testing.assert_array_equal(aligned, estimates[assignment])
    np.testing.assert_array_equal(padded, references)
    score = metrics.pairwise_si_snr(references, estimates)
    _, best_total = _brute_force_assignment(score)
    assert score[np.arange(num_outputs), assignment].sum() == pytest.approx(best_total)

  def test_pairwise_matches_elementwise(self):
    rng = np.random.default_rng(11)
    references = rng.normal(size=(3, 1000))
    estimates = rng.normal(size=(5, 1000))
    # Near-perfect pairs (60 dB, -20 dB of noise and an exact copy) take the direct residual.
    estimates[1] = references[2] + 1e-3 * rng.normal(size=1000)
    estimates[3] = -2.0 * references[0]
    estimates[4] = 0.0
    matrix = metrics.pairwise_si_snr(references, estimates)
    assert matrix.shape == (3, 5)
    expected = np.array([[metrics.si_snr(r, e) for e in estimates] for r in references])
    np.testing.assert_allclose(matrix, expected, rtol=0, atol=1e-9)
    assert matrix[2, 1] == pytest.approx(_projection_si_snr(estimates[1], references[2]),
                                         abs=1e-9)
    assert matrix[0, 3] == pytest.approx(_CAP, abs=1e-6)
    np.testing.assert_allclose(matrix[:, 4], -_CAP, atol=1e-9)

  def test_fewer_estimates_than_references_are_zero_padded(self):
    rng = np.random.default_rng(12)
    references = rng.normal(size=(3, 200))
    estimates = references[[2]]
    aligned, assignment, _ = metrics.align_estimates(references, estimates)
    assert aligned.shape == (3, 200)
    assert assignment[2] == 0
    np.testing.assert_array_equal(aligned[:2], 0.0)

  def test_bad_shapes_raise(self):
    with pytest.raises(ValueError, match='samples'):
      metrics.pairwise_si_snr(np.zeros((2, 10)), np.zeros((2, 11)))
    with pytest.raises(ValueError, match='source <= estimate'):
      metrics.best_assignment(np.zeros((3, 2)))


class TestScoreExample:

  def test_activity_thresholds(self):
    rng = np.random.default_rng(20)
    references = np.zeros((4, 1000))
    references[0] = rng.normal(size=1000)
    references[1] = 0.5 * rng.normal(size=1000)  # power 0.25: the quietest active one.
    # Estimates: two good ones, one just above and one just below 1% of 0.25 in power.
    estimates = np.stack([
        references[1], references[0],
        np.sqrt(0.0026) * np.sign(rng.normal(size=1000)),
        np.sqrt(0.0024) * np.sign(rng.normal(size=1000))])
    scores = metrics.score_example(references, estimates)
    np.testing.assert_array_equal(scores.assignment[:2], [1, 0])
    np.testing.assert_array_equal(scores.active_refs, [True, True, False, False])
    assert scores.num_active_refs == 2
    assert scores.num_active_seps == 3
    assert scores.num_active_pairs == 2
    np.testing.assert_allclose(scores.sisnr_separated[:2], _CAP, atol=1e-6)
    np.testing.assert_allclose(scores.power_sources, np.mean(references ** 2, -1))
    mixture = references.sum(0)
    np.testing.assert_allclose(
        scores.sisnr_mixture[:2], [_projection_si_snr(mixture, r) for r in references[:2]],
        atol=1e-9)
    np.testing.assert_allclose(scores.sisnr_improvement,
                               scores.sisnr_separated - scores.sisnr_mixture)

  def test_rms_threshold_of_references(self):
    references = np.stack([np.ones(100), np.full(100, 0.9e-8), np.full(100, 1.1e-8)])
    scores = metrics.score_example(references, references)
    np.testing.assert_array_equal(scores.active_refs, [True, False, True])


def test_pooled_sums_give_the_evaluator_summary():
  """`pooled_sums` (training-time validation) pools exactly as `eval.fuss.summarize` does
  from the per-example rows of `mixit-evaluate`."""
  from eval import fuss
  rng = np.random.default_rng(0)
  batch, num_refs, num_est, time = 6, 4, 5, 400
  sources = rng.standard_normal((batch, num_refs, time))
  active = [4, 1, 2, 3, 0, 2]  # active references per example (0: skipped example)
  for b, count in enumerate(active):
    sources[b, count:] = 0.0
  sources[1, 0] *= 0.1
  estimates = np.zeros((batch, num_est, time))
  for b in range(batch):
    order = rng.permutation(num_est)
    for i in range(num_refs):
      noise = 0.3 * (i + 1) * rng.standard_normal(time)
      estimates[b, order[i]] = sources[b, i] + noise * np.std(sources[b, i])
    estimates[b, order[num_refs]] = 0.05 * rng.standard_normal(time)  # a quiet extra output
  estimates[3] *= 1e-3  # every output below the activity floor
  estimates[5, 0] = sources[5, 0]  # a perfect estimate: the direct-residual branch
  mixtures = sources.sum(axis=1)

  sums = dict(zip(metrics.POOLED_SUMS, metrics.pooled_sums(
      estimates=estimates, references=sources, mixtures=mixtures)))
  rows = [fuss.score_row(fuss.LoadedExample(f'example{b}', sources[b], 16000), estimates[b])
          for b in range(batch) if active[b]]
  summary = fuss.summarize(rows)
  assert sums['num_examples'] == summary['num_examples'] == 5
  assert sums['msi_sum'] / sums['msi_count'] == pytest.approx(summary['msi'], abs=1e-9)
  assert sums['one_source_sum'] / sums['one_source_count'] == pytest.approx(summary['1s'],
                                                                          abs=1e-9)
  assert sums['one_source_count'] == summary['per_count']['1']['num_pairs']
  assert sums['si_snr_count'] == sum(c['num_pairs'] for c in summary['per_count'].values())
  for key in ('under', 'equal', 'over'):
    assert sums[key] / sums['num_examples'] == pytest.approx(summary[f'{key}_separation'])
  assert sums['under'] >= 1 and sums['over'] >= 1
  with pytest.raises(ValueError, match='pooled_sums'):
    metrics.pooled_sums(estimates=estimates, references=sources, mixtures=mixtures[0])
