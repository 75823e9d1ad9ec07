"""Tests of mixit/losses.py (and the assignment solvers of mixit/assignment.py) against numpy
references, brute force and planted solutions."""
import itertools
import math

import numpy as np
import pytest
import keras
import tensorflow as tf
from scipy.optimize import linear_sum_assignment

from mixit import assignment
from mixit import losses

METHODS = ('exhaustive', 'least_squares')


# ----------------------------------------------------------------------------
# numpy references (float64).

def np_snr_loss(reference, estimate, max_snr=30.0):
  tau = 10.0**(-max_snr / 10.0)
  reference = np.asarray(reference, np.float64)
  estimate = np.asarray(estimate, np.float64)
  ref_power = np.sum(reference**2, -1)
  err_power = np.sum((reference - estimate)**2, -1)
  return 10 * np.log10(err_power + tau * ref_power + 1e-8) - 10 * np.log10(ref_power + 1e-8)


def all_mix_matrices(num_mixtures, num_estimates):
  for digits in itertools.product(range(num_mixtures), repeat=num_estimates):
    matrix = np.zeros((num_mixtures, num_estimates))
    matrix[list(digits), range(num_estimates)] = 1.0
    yield matrix


def np_mixit_brute_force(mixtures, estimates, max_snr=30.0):
  """Minimum over all N^M matrices of the MixIT loss, per example: [B]."""
  num_mixtures, num_estimates = mixtures.shape[1], estimates.shape[1]
  best = np.full(mixtures.shape[0], np.inf)
  for matrix in all_mix_matrices(num_mixtures, num_estimates):
    remix = np.einsum('nm,bmt->bnt', matrix, estimates.astype(np.float64))
    best = np.minimum(best, np_snr_loss(mixtures, remix, max_snr).mean(axis=1))
  return best


def plant(rng, batch, num_mixtures, num_estimates, time=128):
  """Random estimates and mixtures built as known sums of them.

  Every mixture receives at least one estimate; each example has its own assignment.
  """
  estimates = rng.normal(size=(batch, num_estimates, time)).astype(np.float32)
  estimates *= rng.uniform(0.3, 3.0, size=(batch, num_estimates, 1)).astype(np.float32)
  truth = np.zeros((batch, num_mixtures, num_estimates), np.float32)
  seen = set()
  for b in range(batch):
    while True:
      digits = rng.integers(0, num_mixtures, size=num_estimates)
      if len(set(digits)) == num_mixtures and tuple(digits) not in seen:
        seen.add(tuple(digits))
        break
    truth[b, digits, np.arange(num_estimates)] = 1.0
  mixtures = np.einsum('bnm,bmt->bnt', truth, estimates).astype(np.float32)
  return mixtures, estimates, truth


def assert_one_hot_columns(mix_matrix):
  mix_matrix = np.asarray(mix_matrix)
  assert set(np.unique(mix_matrix)) <= {0.0, 1.0}
  np.testing.assert_array_equal(mix_matrix.sum(axis=1), 1.0)


# ----------------------------------------------------------------------------
# SNR.

def test_snr_loss_matches_numpy_and_limits():
  rng = np.random.default_rng(0)
  ref = rng.normal(size=(2, 3, 50)).astype(np.float32)
  est = ref + 0.3 * rng.normal(size=ref.shape).astype(np.float32)
  np.testing.assert_allclose(losses.snr_loss(ref, est).numpy(), np_snr_loss(ref, est),
                             rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(losses.snr_loss(ref, est, max_snr=10.0).numpy(),
                             np_snr_loss(ref, est, 10.0), rtol=1e-5, atol=1e-4)
  # A perfect estimate hits the threshold; silence matched by silence costs 0.
  np.testing.assert_allclose(losses.snr_loss(ref, ref).numpy(), -30.0, atol=1e-3)
  zeros = np.zeros((1, 2, 10), np.float32)
  np.testing.assert_allclose(losses.snr_loss(zeros, zeros).numpy(), 0.0, atol=1e-6)


def test_snr_loss_shape_errors():
  with pytest.raises(ValueError, match=r'\(2, 3, 5\).*\(2, 4, 5\)'):
    losses.snr_loss(tf.zeros([2, 3, 5]), tf.zeros([2, 4, 5]))
  with pytest.raises(ValueError, match='rank 3'):
    losses.snr_loss(tf.zeros([3, 5]), tf.zeros([3, 5]))


# ----------------------------------------------------------------------------
# MixIT assignment.

@pytest.mark.parametrize('method,num_mixtures,num_estimates', [
    (method, n, m) for method in METHODS for n, m in [(2, 4), (2, 8), (3, 4), (3, 8), (2, 16)]
] + [('least_squares', 3, 16),
     pytest.param('exhaustive', 3, 16, marks=pytest.mark.slow)])  # 3^16 = 43 M candidates
def test_planted_assignment_recovered(method, num_mixtures, num_estimates):
  rng = np.random.default_rng(num_mixtures * 100 + num_estimates)
  mixtures, estimates, truth = plant(rng, 3, num_mixtures, num_estimates)
  assert len({m.tobytes() for m in truth}) == 3  # a different assignment per example
  mix_matrix = losses.mixit_assignment(mixtures, estimates, method=method).numpy()
  np.testing.assert_array_equal(mix_matrix, truth)
  loss, _ = losses.mixit_loss(mixtures, estimates, method=method)
  np.testing.assert_allclose(loss.numpy(), -30.0, atol=1e-2)


@pytest.mark.parametrize('num_mixtures,num_estimates', [(2, 2), (2, 4), (2, 7), (3, 4), (4, 5)])
def test_exhaustive_equals_brute_force_minimum(num_mixtures, num_estimates):
  rng = np.random.default_rng(num_estimates)
  mixtures = rng.normal(size=(4, num_mixtures, 64)).astype(np.float32)
  estimates = rng.normal(size=(4, num_estimates, 64)).astype(np.float32)
  loss, mix_matrix = losses.mixit_loss(mixtures, estimates, method='exhaustive')
  assert_one_hot_columns(mix_matrix)
  np.testing.assert_allclose(loss.numpy(), np_mixit_brute_force(mixtures, estimates),
                             rtol=1e-5, atol=1e-4)


def test_exhaustive_multiple_blocks_equals_brute_force(monkeypatch):
  # Force a small block so that the while_loop runs over many blocks.
  monkeypatch.setattr(losses, '_EXHAUSTIVE_BLOCK_ENTRIES', 24)
  assert losses._exhaustive_block_digits(2, 9) == 2
  rng = np.random.default_rng(7)
  mixtures = rng.normal(size=(3, 2, 48)).astype(np.float32)
  estimates = rng.normal(size=(3, 9, 48)).astype(np.float32)
  loss, _ = losses.mixit_loss(mixtures, estimates, method='exhaustive')
  np.testing.assert_allclose(loss.numpy(), np_mixit_brute_force(mixtures, estimates),
                             rtol=1e-5, atol=1e-4)


def test_least_squares_never_beats_exhaustive():
  rng = np.random.default_rng(3)
  for num_mixtures, num_estimates in [(2, 4), (2, 8), (3, 6)]:
    mixtures = rng.normal(size=(16, num_mixtures, 64)).astype(np.float32)
    estimates = rng.normal(size=(16, num_estimates, 64)).astype(np.float32)
    exact, _ = losses.mixit_loss(mixtures, estimates, method='exhaustive')
    approx, mix_matrix = losses.mixit_loss(mixtures, estimates, method='least_squares')
    assert_one_hot_columns(mix_matrix)
    assert np.all(approx.numpy() >= exact.numpy() - 1e-4)
  # On random inputs the projection is suboptimal somewhere: the test can see a gap.
  assert np.any(approx.numpy() > exact.numpy() + 1e-3)


def test_least_squares_equals_exhaustive_on_separated_estimates():
  rng = np.random.default_rng(4)
  mixtures, estimates, truth = plant(rng, 4, 2, 8, time=256)
  mixtures = mixtures + 0.05 * rng.normal(size=mixtures.shape).astype(np.float32)
  exact, exact_matrix = losses.mixit_loss(mixtures, estimates, method='exhaustive')
  approx, approx_matrix = losses.mixit_loss(mixtures, estimates, method='least_squares')
  np.testing.assert_array_equal(exact_matrix.numpy(), truth)
  np.testing.assert_array_equal(approx_matrix.numpy(), truth)
  np.testing.assert_allclose(approx.numpy(), exact.numpy(), atol=1e-5)


def _loss_and_gradient(mixtures, estimates, method):
  estimates = tf.Variable(estimates)
  with tf.GradientTape() as tape:
    loss, mix_matrix = losses.mixit_loss(mixtures, estimates, method=method)
    total = tf.reduce_sum(loss)
  return loss.numpy(), mix_matrix.numpy(), tape.gradient(total, estimates).numpy()


@pytest.mark.parametrize('method', METHODS)
def test_degenerate_inputs_are_finite(method):
  rng = np.random.default_rng(5)
  mixtures, estimates, _ = plant(rng, 3, 2, 6)
  estimates[0, 2] = 0.0  # silent estimate
  estimates[0, 4] = 0.0
  estimates[1, 3] = estimates[1, 1]  # duplicate estimates
  estimates[1, 5] = estimates[1, 1]
  mixtures[2] = 0.0  # all-zero mixtures
  for case in (estimates, np.zeros_like(estimates)):  # and every estimate silent
    loss, mix_matrix, grad = _loss_and_gradient(mixtures, case, method)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    assert_one_hot_columns(mix_matrix)
  # Every candidate ties when all estimates are silent: the lowest index wins, i.e.
  # every estimate goes to the first mixture, deterministically.
  np.testing.assert_array_equal(mix_matrix[:, 0], 1.0)


def test_least_squares_handles_loud_and_quiet_scales():
  # Relative diagonal loading: the recovered matrix does not depend on the scale.
  rng = np.random.default_rng(6)
  mixtures, estimates, truth = plant(rng, 2, 2, 8)
  for scale in (1e-6, 1.0, 1e4):
    mix_matrix = losses.mixit_assignment(mixtures * scale, estimates * scale,
                                         method='least_squares')
    np.testing.assert_array_equal(mix_matrix.numpy(), truth)


@pytest.mark.parametrize('method', METHODS)
def test_gradient_reaches_estimates_not_assignment(method):
  rng = np.random.default_rng(8)
  mixtures = rng.normal(size=(2, 2, 32)).astype(np.float32)
  estimates = tf.Variable(rng.normal(size=(2, 4, 32)).astype(np.float32))
  with tf.GradientTape(persistent=True) as tape:
    loss, mix_matrix = losses.mixit_loss(mixtures, estimates, method=method)
    total = tf.reduce_sum(loss)
    fixed = tf.constant(mix_matrix.numpy())
    reference_total = tf.reduce_sum(tf.reduce_mean(
        losses.snr_loss(mixtures, tf.matmul(fixed, estimates)), axis=1))
    matrix_sum = tf.reduce_sum(mix_matrix * tf.range(4, dtype=tf.float32))
  grad = tape.gradient(total, estimates).numpy()
  assert np.abs(grad).max() > 1e-3
  # The gradient is that of the loss with the chosen matrix held constant.
  np.testing.assert_allclose(grad, tape.gradient(reference_total, estimates).numpy(),
                             rtol=1e-5, atol=1e-7)
  assert tape.gradient(matrix_sum, estimates) is None
  # Numeric check of one coordinate (the argmin is locally constant).
  e = estimates.numpy().astype(np.float64)
  h = 1e-3
  e_plus, e_minus = e.copy(), e.copy()
  e_plus[0, 1, 5] += h
  e_minus[0, 1, 5] -= h
  a = mix_matrix.numpy()
  def f(est):
    return np_snr_loss(mixtures, np.einsum('bnm,bmt->bnt', a, est)).mean(1).sum()
  np.testing.assert_allclose(grad[0, 1, 5], (f(e_plus) - f(e_minus)) / (2 * h), rtol=2e-2)


@pytest.mark.parametrize('method', METHODS)
def test_graph_and_xla(method):
  rng = np.random.default_rng(9)
  mixtures, estimates, truth = plant(rng, 3, 2, 8)
  spec = [tf.TensorSpec([None, 2, None], tf.float32), tf.TensorSpec([None, 8, None], tf.float32)]
  graph_fn = tf.function(lambda x, s: losses.mixit_loss(x, s, method=method),
                         input_signature=spec)
  xla_fn = tf.function(lambda x, s: losses.mixit_loss(x, s, method=method), jit_compile=True)
  for fn in (graph_fn, xla_fn):
    loss, mix_matrix = fn(tf.constant(mixtures), tf.constant(estimates))
    np.testing.assert_array_equal(mix_matrix.numpy(), truth)
    np.testing.assert_allclose(loss.numpy(), -30.0, atol=1e-2)


def test_exhaustive_xla_equals_brute_force():
  rng = np.random.default_rng(10)
  mixtures = rng.normal(size=(3, 3, 40)).astype(np.float32)
  estimates = rng.normal(size=(3, 5, 40)).astype(np.float32)
  fn = tf.function(lambda x, s: losses.mixit_loss(x, s, method='exhaustive'), jit_compile=True)
  loss, _ = fn(mixtures, estimates)
  np.testing.assert_allclose(loss.numpy(), np_mixit_brute_force(mixtures, estimates),
                             rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize('dtype', [tf.float16, tf.bfloat16])
@pytest.mark.parametrize('method', METHODS)
def test_mixed_precision_inputs_computed_in_float32(dtype, method):
  rng = np.random.default_rng(11)
  mixtures, estimates, truth = plant(rng, 2, 2, 4)
  loss, mix_matrix = losses.mixit_loss(tf.cast(mixtures, dtype), tf.cast(estimates, dtype),
                                       method=method)
  assert loss.dtype == tf.float32 and mix_matrix.dtype == tf.float32
  np.testing.assert_array_equal(mix_matrix.numpy(), truth)


def test_mixit_input_errors():
  x2 = tf.zeros([2, 2, 16])
  with pytest.raises(ValueError, match=r'N <= M.*\(2, 3, 16\).*\(2, 2, 16\)'):
    losses.mixit_loss(tf.zeros([2, 3, 16]), x2)
  with pytest.raises(ValueError, match=r'N >= 2.*\(2, 1, 16\)'):
    losses.mixit_loss(tf.zeros([2, 1, 16]), x2)
  with pytest.raises(ValueError, match=r'rank 3.*\(2, 16\)'):
    losses.mixit_loss(tf.zeros([2, 16]), x2)
  with pytest.raises(ValueError, match=r'batch.*\(3, 2, 16\)'):
    losses.mixit_loss(tf.zeros([3, 2, 16]), tf.zeros([2, 4, 16]))
  with pytest.raises(ValueError, match=r'time.*\(2, 2, 15\)'):
    losses.mixit_loss(tf.zeros([2, 2, 15]), tf.zeros([2, 4, 16]))
  with pytest.raises(ValueError, match=r'int32.*\(2, 2, 16\)'):
    losses.mixit_loss(tf.zeros([2, 2, 16], tf.int32), tf.zeros([2, 4, 16]))
  with pytest.raises(ValueError, match='Unknown MixIT method'):
    losses.mixit_loss(x2, tf.zeros([2, 4, 16]), method='greedy')
  with pytest.raises(ValueError, match='infeasible'):
    losses.mixit_assignment(tf.zeros([1, 4, 4]), tf.zeros([1, 16, 4]), method='exhaustive')


# ----------------------------------------------------------------------------
# PIT.

def np_pit_brute_force(sources, estimates, mixture, num_sources=None):
  batch, num_refs, _ = sources.shape
  num_est = estimates.shape[1]
  refs = np.zeros((batch, num_est, sources.shape[2]))
  refs[:, :num_refs] = sources
  if num_sources is not None:
    for b, count in enumerate(num_sources):
      refs[b, count:] = 0.0
  mixture_power = np.sum(np.asarray(mixture, np.float64)**2, -1)
  best = np.full(batch, np.inf)
  best_perm = np.zeros((batch, num_est), int)
  for perm in itertools.permutations(range(num_est)):
    aligned = estimates[:, list(perm)].astype(np.float64)
    active = np.sum(refs**2, -1) > 0
    zero_ref = 10 * np.log10(np.sum(aligned**2, -1) + 1e-2 * mixture_power[:, None] + 1e-8)
    value = np.where(active, np_snr_loss(refs, aligned), zero_ref).mean(1)
    better = value < best
    best = np.where(better, value, best)
    best_perm[better] = perm
  return best, best_perm


@pytest.mark.parametrize('num_refs,num_est', [(3, 4), (4, 4), (2, 5)])
def test_pit_equals_brute_force_over_permutations(num_refs, num_est):
  rng = np.random.default_rng(num_refs * 10 + num_est)
  batch, time = 4, 64
  sources = rng.normal(size=(batch, num_refs, time)).astype(np.float32)
  sources[0, -1] = 0.0  # an all-zero reference
  mixture = sources.sum(axis=1)
  perm_true = np.stack([rng.permutation(num_est) for _ in range(batch)])
  padded = np.zeros((batch, num_est, time), np.float32)
  padded[:, :num_refs] = sources
  estimates = np.zeros_like(padded)
  for b in range(batch):
    estimates[b, perm_true[b]] = padded[b]
  estimates += 0.5 * rng.normal(size=estimates.shape).astype(np.float32)
  num_sources = np.array([num_refs] * (batch - 1) + [1], np.int32)
  for count in (None, num_sources):
    loss, perm = losses.pit_loss(sources, estimates, mixture, num_sources=count)
    expected, expected_perm = np_pit_brute_force(sources, estimates, mixture, count)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5, atol=1e-4)
    perm = perm.numpy()
    np.testing.assert_array_equal(perm.sum(axis=1), 1.0)
    np.testing.assert_array_equal(perm.sum(axis=2), 1.0)
    # All-zero references tie with each other: compare the estimates of active ones.
    active = np.zeros((batch, num_est), bool)
    active[:, :num_refs] = np.sum(sources**2, -1) > 0
    if count is not None:
      active &= np.arange(num_est)[None] < count[:, None]
    np.testing.assert_array_equal(np.argmax(perm, axis=2)[active], expected_perm[active])


def test_pit_gradient_and_graph():
  rng = np.random.default_rng(12)
  sources = rng.normal(size=(2, 2, 32)).astype(np.float32)
  estimates = tf.Variable(rng.normal(size=(2, 4, 32)).astype(np.float32))
  with tf.GradientTape() as tape:
    loss, _ = losses.pit_loss(sources, estimates, sources.sum(1))
  grad = tape.gradient(loss, estimates).numpy()
  assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0
  fn = tf.function(lambda s, e, x, n: losses.pit_loss(s, e, x, n), jit_compile=True)
  xla_loss, _ = fn(sources, estimates, sources.sum(1), tf.constant([2, 1]))
  eager_loss, _ = losses.pit_loss(sources, estimates, sources.sum(1), [2, 1])
  np.testing.assert_allclose(xla_loss.numpy(), eager_loss.numpy(), rtol=1e-5)


@pytest.mark.parametrize('size', [1, 2, 7, 16, 19, 32])
def test_min_cost_assignment_equals_scipy(size):
  rng = np.random.default_rng(size)
  cost = rng.normal(size=(3, size, size)).astype(np.float32)
  cost[1] = np.round(cost[1])  # many ties: any optimum is fine, the cost must match
  assigned = assignment.min_cost_assignment(cost).numpy()
  for b in range(3):
    assert sorted(assigned[b]) == list(range(size))
    rows, cols = linear_sum_assignment(cost[b])
    np.testing.assert_allclose(cost[b][np.arange(size), assigned[b]].sum(),
                               cost[b][rows, cols].sum(), rtol=1e-5, atol=1e-4)


def test_hungarian_in_xla_equals_scipy():
  rng = np.random.default_rng(13)
  cost = rng.uniform(size=(4, 20, 20)).astype(np.float32)
  fn = tf.function(assignment.min_cost_assignment, jit_compile=True)
  assigned = fn(cost).numpy()
  for b in range(4):
    np.testing.assert_array_equal(assigned[b], linear_sum_assignment(cost[b])[1])


def test_min_cost_assignment_is_still_importable_from_losses():
  assert losses.min_cost_assignment is assignment.min_cost_assignment


def test_min_cost_assignment_input_errors():
  with pytest.raises(ValueError, match=r'cost must be square, got shape \(1, 3, 4\)'):
    assignment.min_cost_assignment(tf.zeros([1, 3, 4]))
  with pytest.raises(ValueError, match='rank 3'):
    assignment.min_cost_assignment(tf.zeros([3, 3]))
  with pytest.raises(ValueError, match='floating-point'):
    assignment.min_cost_assignment(tf.zeros([1, 3, 3], tf.int32))


def test_pit_input_errors():
  with pytest.raises(ValueError, match=r'S <= M.*\(1, 5, 8\).*\(1, 4, 8\)'):
    losses.pit_loss(tf.zeros([1, 5, 8]), tf.zeros([1, 4, 8]), tf.zeros([1, 8]))
  with pytest.raises(ValueError, match=r'num_sources.*float32'):
    losses.pit_loss(tf.zeros([1, 2, 8]), tf.zeros([1, 4, 8]), tf.zeros([1, 8]),
                    num_sources=tf.zeros([1]))


# ----------------------------------------------------------------------------
# Sparsity, covariance, classification.

def np_sparsity(estimates, mom, kind, p=0.5):
  rms = np.sqrt(np.mean(np.asarray(estimates, np.float64)**2, -1))
  mom_rms = np.sqrt(np.mean(np.asarray(mom, np.float64)**2, -1))
  if kind == 'l1l2':
    return rms.mean(1) / (mom_rms + 1e-8)
  if kind == 'l1l2_exact':
    return rms.sum(1) / (math.sqrt(rms.shape[1]) * np.sqrt((rms**2).sum(1)) + 1e-8)
  return np.mean((rms / (mom_rms[:, None] + 1e-8))**p, axis=1)


@pytest.mark.parametrize('kind', losses.SPARSITY_KINDS)
def test_sparsity_matches_numpy(kind):
  rng = np.random.default_rng(14)
  estimates = rng.normal(size=(3, 4, 50)).astype(np.float32)
  estimates *= rng.uniform(0.0, 2.0, size=(3, 4, 1)).astype(np.float32)
  mom = estimates.sum(1)
  np.testing.assert_allclose(losses.sparsity_loss(estimates, mom, kind=kind, p=0.3).numpy(),
                             np_sparsity(estimates, mom, kind, p=0.3), rtol=1e-5)


def test_sparsity_limits_and_silent_gradients():
  rng = np.random.default_rng(15)
  source = rng.normal(size=(1, 1, 40)).astype(np.float32)
  one_active = np.concatenate([source, np.zeros((1, 3, 40), np.float32)], axis=1)
  equal = np.repeat(source, 4, axis=1) / 4.0
  mom = source[:, 0]
  np.testing.assert_allclose(losses.sparsity_loss(one_active, mom, 'l1l2').numpy(), 0.25,
                             rtol=1e-5)
  np.testing.assert_allclose(losses.sparsity_loss(equal, mom, 'l1l2').numpy(), 0.25, rtol=1e-5)
  np.testing.assert_allclose(losses.sparsity_loss(one_active, mom, 'l1l2_exact').numpy(), 0.5,
                             rtol=1e-5)
  np.testing.assert_allclose(losses.sparsity_loss(equal, mom, 'l1l2_exact').numpy(), 1.0,
                             rtol=1e-5)
  # L_p rewards concentrating the energy: one active source beats an even split.
  assert (losses.sparsity_loss(one_active, mom, 'lp', p=0.5).numpy() <
          losses.sparsity_loss(equal, mom, 'lp', p=0.5).numpy())
  np.testing.assert_allclose(losses.sparsity_loss(one_active, mom, 'lp', p=0.5).numpy(), 0.25,
                             rtol=1e-5)
  for kind in losses.SPARSITY_KINDS:
    estimates = tf.Variable(one_active)
    with tf.GradientTape() as tape:
      value = losses.sparsity_loss(estimates, mom, kind)
    grad = tape.gradient(value, estimates).numpy()
    assert np.all(np.isfinite(grad)), kind
    silent = tf.Variable(np.zeros_like(one_active))
    with tf.GradientTape() as tape:
      value = losses.sparsity_loss(silent, np.zeros_like(mom), kind)
    assert np.all(np.isfinite(value.numpy()))
    assert np.all(np.isfinite(tape.gradient(value, silent).numpy())), kind
  with pytest.raises(ValueError, match='0 < p < 1'):
    losses.sparsity_loss(one_active, mom, 'lp', p=1.5)
  with pytest.raises(ValueError, match='Unknown sparsity kind'):
    losses.sparsity_loss(one_active, mom, 'l0')


def np_covariance(estimates, kind):
  e = np.asarray(estimates, np.float64)
  e = e - e.mean(-1, keepdims=True)
  cov = np.einsum('bit,bjt->bij', e, e)
  power = np.einsum('bii->bi', cov)
  corr = cov / np.sqrt(power[:, :, None] * power[:, None, :] + 1e-8)
  values = corr**2 if kind == 'squared' else np.abs(corr)
  num = e.shape[1]
  return (values * (1 - np.eye(num))).sum((1, 2)) / (num * (num - 1))


@pytest.mark.parametrize('kind', losses.COVARIANCE_KINDS)
def test_covariance_matches_numpy_and_limits(kind):
  rng = np.random.default_rng(16)
  estimates = rng.normal(size=(2, 4, 60)).astype(np.float32)
  estimates[:, 1] += 0.8 * estimates[:, 0]
  np.testing.assert_allclose(losses.covariance_loss(estimates, kind).numpy(),
                             np_covariance(estimates, kind), rtol=1e-5)
  time = np.arange(64)
  orthogonal = np.stack([np.cos(2 * np.pi * k * time / 64) for k in (1, 2, 3)])[None]
  np.testing.assert_allclose(losses.covariance_loss(orthogonal.astype(np.float32), kind), 0.0,
                             atol=1e-6)
  identical = np.repeat(estimates[:1, :1], 3, axis=1) + 5.0  # the mean is removed first
  np.testing.assert_allclose(losses.covariance_loss(identical, kind).numpy(), 1.0, rtol=1e-5)
  # A silent output contributes 0: pairs (0,1), (1,0) give 1 out of 6 pairs.
  with_silent = identical.copy()
  with_silent[:, 2] = 0.0
  estimates_var = tf.Variable(with_silent)
  with tf.GradientTape() as tape:
    value = losses.covariance_loss(estimates_var, kind)
  np.testing.assert_allclose(value.numpy(), 2.0 / 6.0, rtol=1e-5)
  assert np.all(np.isfinite(tape.gradient(value, estimates_var).numpy()))


def np_classification(logits, mix_matrix, labels):
  prob = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
  log_not = np.einsum('bnm,bmc->bnc', mix_matrix, np.log1p(-prob))
  p = 1.0 - np.exp(log_not)
  bce = -(labels * np.log(p) + (1 - labels) * np.log1p(-p))
  return bce.mean((1, 2))


def test_classification_matches_numpy_and_limits():
  rng = np.random.default_rng(17)
  batch, num_mix, num_est, num_classes = 3, 2, 4, 5
  logits = rng.normal(size=(batch, num_est, num_classes)).astype(np.float32)
  _, _, mix_matrix = plant(rng, batch, num_mix, num_est, time=8)
  labels = (rng.uniform(size=(batch, num_mix, num_classes)) > 0.5).astype(np.float32)
  np.testing.assert_allclose(
      losses.classification_loss(logits, mix_matrix, labels).numpy(),
      np_classification(logits, mix_matrix, labels), rtol=1e-5)
  # Certain and correct predictions cost ~0.
  certain = np.where(np.einsum('bnm,bnc->bmc', mix_matrix, labels) > 0, 30.0, -30.0)
  certain_labels = (np.einsum('bnm,bmc->bnc', mix_matrix, (certain > 0).astype(np.float32)) >
                    0).astype(np.float32)
  np.testing.assert_allclose(
      losses.classification_loss(certain.astype(np.float32), mix_matrix,
                                 certain_labels).numpy(), 0.0, atol=1e-6)
  # Saturated wrong predictions: exact (|logit| per entry), finite gradients.
  wrong = tf.Variable(np.full((1, 2, 1), -100.0, np.float32))
  one_each = np.eye(2, dtype=np.float32)[None]
  with tf.GradientTape() as tape:
    value = losses.classification_loss(wrong, one_each, np.ones((1, 2, 1), np.float32))
  np.testing.assert_allclose(value.numpy(), 100.0, rtol=1e-5)
  grad = tape.gradient(value, wrong).numpy()
  np.testing.assert_allclose(grad, -0.5, rtol=1e-5)
  # A mixture that receives no source: its positive label costs -log(1e-7).
  none_to_second = np.array([[[1.0, 1.0], [0.0, 0.0]]], np.float32)
  value = losses.classification_loss(np.zeros((1, 2, 1), np.float32), none_to_second,
                                     np.array([[[1.0], [1.0]]], np.float32))
  expected = (-np.log(0.75) - np.log(1e-7)) / 2
  np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5)


def test_classification_shape_errors():
  with pytest.raises(ValueError, match=r'class.*\(1, 4, 5\).*\(1, 2, 6\)'):
    losses.classification_loss(tf.zeros([1, 4, 5]), tf.zeros([1, 2, 4]), tf.zeros([1, 2, 6]))
  with pytest.raises(ValueError, match=r'source.*\(1, 4, 5\).*\(1, 2, 3\)'):
    losses.classification_loss(tf.zeros([1, 4, 5]), tf.zeros([1, 2, 3]), tf.zeros([1, 2, 5]))


# ----------------------------------------------------------------------------
# Sparsity on planted splits of one mixture of mixtures.
#
# Four ways to split the same MoM over M = 8 outputs, all summing to the MoM:
# one-hot (everything in one output), in-phase copies (a_m * mom), an
# orthogonal split (two orthogonal halves of equal power) and a uniform split
# (eight orthogonal parts of equal power). The FUSS evaluator counts 1, 2, 2 and
# 8 active outputs.

_M = 8


def _orthogonal_parts(count, length=512, seed=21):
  """`count` mutually orthogonal unit-power signals `[count, length]`."""
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.normal(size=(length, count)))
  return (q.T * np.sqrt(length)).astype(np.float64)


def planted_splits():
  parts = _orthogonal_parts(_M)
  mom = parts.sum(0) / np.sqrt(_M)  # unit power
  zeros = np.zeros((_M, mom.size))
  one_hot = zeros.copy()
  one_hot[0] = mom
  copies = zeros.copy()
  copies[:2] = 0.5 * mom
  halves = parts[:4].sum(0) / np.sqrt(_M), parts[4:].sum(0) / np.sqrt(_M)
  orthogonal = zeros.copy()
  orthogonal[0], orthogonal[1] = halves
  uniform = parts / np.sqrt(_M)
  splits = {'one_hot': one_hot, 'copies': copies, 'orthogonal': orthogonal, 'uniform': uniform}
  for split in splits.values():
    np.testing.assert_allclose(split.sum(0), mom, atol=1e-9)
  return mom, splits


def _sparsity_of(split, mom, kind):
  return float(losses.sparsity_loss(split[None].astype(np.float32),
                                    mom[None].astype(np.float32), kind=kind, p=0.5).numpy()[0])


def test_sparsity_orders_planted_splits():
  """one-hot < copies < orthogonal < uniform, with each variant's documented exception."""
  mom, splits = planted_splits()
  v = {kind: {name: _sparsity_of(s, mom, kind) for name, s in splits.items()}
       for kind in losses.SPARSITY_KINDS}
  # The power law sees every kind of split, strictly.
  lp = v['lp']
  assert lp['one_hot'] < lp['copies'] < lp['orthogonal'] < lp['uniform'], lp
  np.testing.assert_allclose(
      [lp['one_hot'], lp['copies'], lp['orthogonal'], lp['uniform']],
      [1 / _M, 2 * 0.5**0.5 / _M, 2 * 0.5**0.25 / _M, _M**-0.25], rtol=1e-5)
  # The exact L1/L2 ratio (the default) depends only on how the power is shared,
  # not on phase: copies and an orthogonal split with the same shares score the
  # same (its documented exception); both are well above one-hot.
  exact = v['l1l2_exact']
  assert exact['one_hot'] < exact['copies'] < exact['uniform'], exact
  np.testing.assert_allclose(
      [exact['one_hot'], exact['copies'], exact['orthogonal'], exact['uniform']],
      [1 / np.sqrt(_M), np.sqrt(2 / _M), np.sqrt(2 / _M), 1.0], rtol=1e-5)
  # The mixture-normalised proxy mean_m r_m / rms(mom) is blind to copies: they
  # read 1/M, exactly as one-hot does (its documented exception).
  proxy = v['l1l2']
  np.testing.assert_allclose([proxy['one_hot'], proxy['copies']], [1 / _M, 1 / _M], rtol=1e-5)
  assert proxy['copies'] < proxy['orthogonal'] < proxy['uniform'], proxy


def test_default_sparsity_penalises_every_copies_split():
  """Any in-phase split over >= 2 outputs scores above one-hot under the default."""
  assert losses.DEFAULT_SPARSITY_KIND == 'l1l2_exact'
  assert trainer_defaults()['sparsity_kind'] == losses.DEFAULT_SPARSITY_KIND
  mom, splits = planted_splits()
  rng = np.random.default_rng(3)
  one_hot = _sparsity_of(splits['one_hot'], mom, 'l1l2_exact')
  for _ in range(20):
    active = rng.integers(2, _M + 1)
    shares = np.zeros(_M)
    shares[:active] = rng.dirichlet(np.ones(active))
    copies = shares[:, None] * mom[None]
    assert _sparsity_of(copies, mom, 'l1l2_exact') > one_hot + 1e-3
    # ... while the proxy cannot tell it from one-hot.
    np.testing.assert_allclose(_sparsity_of(copies, mom, 'l1l2'), 1 / _M, rtol=1e-5)


def trainer_defaults():
  from mixit.training import trainer as trainer_lib
  return {'sparsity_kind': trainer_lib.LossSettings().sparsity_kind}


def _one_sgd_step_from_copies(kind, learning_rate):
  """Outputs behind uniform mixture consistency, started as unequal copies of the MoM.

  Returns the loudest output's share of the MoM power before and after one SGD
  step on the sparsity loss alone, and the outputs after the step.
  """
  mom, _ = planted_splits()
  shares = np.array([0.4, 0.3, 0.2, 0.1, 0, 0, 0, 0])
  raw = tf.Variable((shares[:, None] * mom[None])[None].astype(np.float32))
  mom_tf = tf.constant(mom[None].astype(np.float32))

  def outputs():
    # Mixture consistency (the 'uniform' kind): the outputs always sum to the MoM.
    return raw + (mom_tf - tf.reduce_sum(raw, axis=1))[:, None] / _M

  def loudest_share():
    power = tf.reduce_mean(tf.square(outputs()), axis=-1)[0].numpy()
    return power.max() / np.mean(mom**2)

  before = loudest_share()
  optimizer = keras.optimizers.SGD(learning_rate=learning_rate)
  with tf.GradientTape() as tape:
    value = tf.reduce_mean(losses.sparsity_loss(outputs(), mom_tf, kind=kind, p=0.5))
  optimizer.apply_gradients([(tape.gradient(value, raw), raw)])
  return before, loudest_share(), outputs().numpy()[0], mom


@pytest.mark.parametrize('kind', ['l1l2_exact', 'lp'])
def test_one_step_from_copies_concentrates_power(kind):
  before, after, outputs, mom = _one_sgd_step_from_copies(kind, learning_rate=100.0)
  assert after > before + 0.01, (before, after)
  np.testing.assert_allclose(outputs.sum(0), mom, atol=1e-3)  # still a split of the MoM (float32)


def test_proxy_step_from_copies_does_not_concentrate():
  """The blind spot: along copies splits the proxy is flat, so its step cannot favour the
  loudest output (here it even spreads power into the silent ones, where |r| has its kink)."""
  before, after, _, _ = _one_sgd_step_from_copies('l1l2', learning_rate=100.0)
  assert after <= before + 1e-4, (before, after)


def test_exhaustive_search_turns_signed_copies_into_a_gain_selector():
  """The trap that exhaustive MixIT fell into with strong sparsity (REPRODUCTION.md).

  Outputs that are signed scaled copies `a_m mom` of the MoM (sum a_m = 1, as mixture
  consistency keeps them) separate nothing, but their subset sums take many values, so the
  exhaustive search remixes the best scalar multiple of the MoM for each mixture: a finite,
  negative loss. For such rank-one outputs the least-squares solution is a_m times one row,
  so its projection sends every positive-gain copy to one mixture and every negative-gain copy
  to the other, and it scores the same outputs far worse. The honest split beats both.
  """
  rng = np.random.default_rng(5)
  time = 16000
  # One loud output and seven anti-phase ones, shaped like a trained model's (eval example 0
  # of the weight-40 exhaustive run: +12.6 dB and -0.7 to -5.8 dB against the input). Scaled
  # here to sum to 1 (they summed to -1.03), which flips every sign; the loud one stays at
  # +12.4 dB.
  gains = np.array([4.3, -0.93, -0.9, -0.89, -0.78, -0.73, -0.6, -0.5])
  gains = gains / gains.sum()
  for quieter in (1.0, 0.5, 0.25):
    x1, x2 = rng.standard_normal((2, time))
    x2 *= quieter
    mom = x1 + x2
    mixtures = np.stack([x1, x2])[None].astype(np.float32)
    copies = (gains[:, None] * mom[None])[None].astype(np.float32)
    honest = np.zeros_like(copies)
    honest[0, 0], honest[0, 1] = x1, x2
    ex = float(losses.mixit_loss(mixtures, copies, 'exhaustive')[0].numpy()[0])
    ls = float(losses.mixit_loss(mixtures, copies, 'least_squares')[0].numpy()[0])
    # The best scalar fit a * mom of x1 and of x2, which bounds what any gain selector can do.
    best_scalar = np.mean([np_snr_loss(x, (x @ mom / (mom @ mom)) * mom) for x in (x1, x2)])
    assert ex < -2.5 and ex >= best_scalar - 1e-3, (quieter, ex, best_scalar)
    assert ls > 10.0, (quieter, ls)
    for method in METHODS:
      assert float(losses.mixit_loss(mixtures, honest, method)[0].numpy()[0]) < ex - 20.0
