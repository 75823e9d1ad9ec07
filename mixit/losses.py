"""Loss functions for (sparse, efficient, semantic) mixture invariant training.

Pure tensor math: imports TensorFlow, numpy and `mixit.assignment` (the exact
assignment solvers, pure tensor math too; `min_cost_assignment` is re-exported
here) only. Tensors are laid out
`[batch, signals, time]`; every function casts its inputs to float32 (so it can
sit after a `mixed_float16` / `mixed_bfloat16` model), works inside
`tf.function`, under XLA (`jit_compile=True`) and under any distribution
strategy, and returns per-example values `[batch]` unless said otherwise.

Formulas and the reasons behind them: docs/formulas.md, "Losses".
"""
import math

import numpy as np
import tensorflow as tf

# Re-exported: `mixit.losses.min_cost_assignment` stays importable.
from mixit.assignment import min_cost_assignment  # noqa: F401

# Added inside every log/division of signal powers so that silent signals give
# finite values and gradients (docs/formulas.md, "Thresholded SNR loss").
EPSILON = 1e-8

# Diagonal loading of the least-squares normal equations, relative to the mean
# of the Gram diagonal: an absolute constant (Google's 1e-3) is meaningless for
# loud signals and leaves the system singular (NaN) for silent or duplicate
# estimates. 1e-3 bounds the condition number of G + delta I by ~1000 M
# (docs/formulas.md, "MixIT" and "Stack facts").
LS_RELATIVE_LOADING = 1e-3
# Floor of the loading so that an all-zero Gram matrix (every estimate silent)
# still has a Cholesky factor.
_LS_ABSOLUTE_LOADING = 1e-12

# The exhaustive search visits candidate matrices in blocks of N^j, with j chosen
# so that a block holds at most this many (candidate, mixture, estimate) entries
# per example; memory stays bounded (a few MB per example) for any M.
_EXHAUSTIVE_BLOCK_ENTRIES = 2**18
# Candidate indices are int32.
_EXHAUSTIVE_MAX_CANDIDATES = 2**31 - 1

# FUSS baseline: an all-zero reference is scored against a threshold 20 dB below
# the mixture power.
_PIT_ZERO_REFERENCE_THRESHOLD = 1e-2
_PIT_MAX_SNR = 30.0

SPARSITY_KINDS = ('l1l2', 'l1l2_exact', 'lp')
# The paper's L1/L2 ratio; the only variant besides 'lp' that sees in-phase copies.
DEFAULT_SPARSITY_KIND = 'l1l2_exact'
COVARIANCE_KINDS = ('squared', 'abs')
ASSIGNMENT_METHODS = ('exhaustive', 'least_squares')


# ----------------------------------------------------------------------------
# Input checking.

def _shape_str(x):
  return str(tuple(x.shape.as_list())) if x.shape.rank is not None else '<unknown rank>'


def _to_float32(name, x, rank):
  """Converts `x` to a float32 tensor of the given rank, or raises ValueError."""
  if not isinstance(x, (tf.Tensor, tf.Variable)):
    x = tf.convert_to_tensor(x)
  if not (x.dtype.is_floating):
    raise ValueError(f'{name} must be a floating-point tensor, got dtype {x.dtype.name} '
                     f'with shape {_shape_str(x)}.')
  if x.shape.rank != rank:
    raise ValueError(f'{name} must have rank {rank}, got shape {_shape_str(x)}.')
  return tf.cast(x, tf.float32)


def _check_dims(what, shapes_and_dims):
  """Raises ValueError unless all statically known dims agree.

  Args:
    what: description of the dimension (e.g. 'batch').
    shapes_and_dims: list of (name, tensor, axis).
  """
  known = [(n, t, a) for n, t, a in shapes_and_dims if t.shape[a] is not None]
  if len({t.shape[a] for _, t, a in known}) > 1:
    detail = ', '.join(f'{n} {_shape_str(t)}' for n, t, _ in shapes_and_dims)
    raise ValueError(f'Mismatched {what} dimension: {detail}.')


def _static_dim(name, x, axis, what):
  dim = x.shape[axis]
  if dim is None:
    raise ValueError(f'The {what} dimension (axis {axis}) of {name} must be known '
                     f'statically, got shape {_shape_str(x)}.')
  return dim


# ----------------------------------------------------------------------------
# Signal-to-noise losses.

def _log10(x):
  return tf.math.log(x) / math.log(10.0)


def snr_loss(reference, estimate, max_snr=30.0):
  """Thresholded negative SNR in dB (docs/formulas.md, "Thresholded SNR loss").

  `L = 10 log10(||y - yhat||^2 + tau ||y||^2 + eps) - 10 log10(||y||^2 + eps)`
  with `tau = 10^(-max_snr / 10)` and eps = 1e-8, so the loss never goes below
  about -max_snr dB and is 0 for an all-zero reference matched by silence.

  Args:
    reference: `[batch, signals, time]`.
    estimate: `[batch, signals, time]`.
    max_snr: SNR threshold in dB.

  Returns:
    `[batch, signals]` float32.
  """
  reference = _to_float32('reference', reference, 3)
  estimate = _to_float32('estimate', estimate, 3)
  if (reference.shape.is_fully_defined() and estimate.shape.is_fully_defined()
      and reference.shape != estimate.shape):
    raise ValueError(f'reference and estimate shapes differ: reference '
                     f'{_shape_str(reference)}, estimate {_shape_str(estimate)}.')
  for axis, what in enumerate(('batch', 'signal', 'time')):
    _check_dims(what, [('reference', reference, axis), ('estimate', estimate, axis)])
  tau = 10.0**(-max_snr / 10.0)
  reference_power = tf.reduce_sum(tf.square(reference), axis=-1)
  error_power = tf.reduce_sum(tf.square(reference - estimate), axis=-1)
  return 10.0 * (_log10(error_power + tau * reference_power + EPSILON) -
                 _log10(reference_power + EPSILON))


# ----------------------------------------------------------------------------
# MixIT.

def _check_mixit_inputs(mixtures, estimates):
  mixtures = _to_float32('mixtures', mixtures, 3)
  estimates = _to_float32('estimates', estimates, 3)
  _check_dims('batch', [('mixtures', mixtures, 0), ('estimates', estimates, 0)])
  _check_dims('time', [('mixtures', mixtures, 2), ('estimates', estimates, 2)])
  num_mixtures = _static_dim('mixtures', mixtures, 1, 'mixture')
  num_estimates = _static_dim('estimates', estimates, 1, 'source')
  if num_mixtures < 2:
    raise ValueError(f'MixIT needs N >= 2 mixtures, got mixtures {_shape_str(mixtures)}.')
  if num_mixtures > num_estimates:
    raise ValueError(f'MixIT needs N <= M (at least one estimate per mixture), got mixtures '
                     f'{_shape_str(mixtures)} (N={num_mixtures}) and estimates '
                     f'{_shape_str(estimates)} (M={num_estimates}).')
  return mixtures, estimates, num_mixtures, num_estimates


def _gram_and_xcorr(mixtures, estimates):
  """Inner products of mixtures and estimates in one batched matmul.

  Args:
    mixtures: `[batch, N, time]` float32.
    estimates: `[batch, M, time]` float32.

  Returns:
    mixture_power `[batch, N]` (||x_n||^2), xcorr `[batch, N, M]` (<x_n, s_m>),
    gram `[batch, M, M]` (<s_m, s_m'>).
  """
  num_mixtures = mixtures.shape[1]
  signals = tf.concat([mixtures, estimates], axis=1)
  inner = tf.matmul(signals, signals, transpose_b=True)
  mixture_power = tf.linalg.diag_part(inner[:, :num_mixtures, :num_mixtures])
  xcorr = inner[:, :num_mixtures, num_mixtures:]
  gram = inner[:, num_mixtures:, num_mixtures:]
  return mixture_power, xcorr, gram


def _first_argmax(values, axis):
  """argmax that returns the lowest index among ties (and for all-NaN slices)."""
  values = tf.where(tf.math.is_nan(values), tf.constant(-np.inf, values.dtype), values)
  size = values.shape[axis]
  is_max = tf.equal(values, tf.reduce_max(values, axis=axis, keepdims=True))
  shape = [1] * values.shape.rank
  shape[axis] = size
  index = tf.reshape(tf.range(size, dtype=tf.int32), shape)
  return tf.reduce_min(tf.where(is_max, index, size), axis=axis)


def _least_squares_assignment(mixtures, estimates):
  """Normal equations + one-hot projection; returns `[batch, N, M]`."""
  _, xcorr, gram = _gram_and_xcorr(mixtures, estimates)
  num_estimates = estimates.shape[1]
  mean_diag = tf.reduce_mean(tf.linalg.diag_part(gram), axis=-1)
  loading = LS_RELATIVE_LOADING * mean_diag + _LS_ABSOLUTE_LOADING
  system = gram + loading[:, None, None] * tf.eye(num_estimates, dtype=gram.dtype)
  # (G + delta I) A^T = S X^T = xcorr^T; the loaded Gram is positive definite.
  chol = tf.linalg.cholesky(system)
  mix_ls_t = tf.linalg.cholesky_solve(chol, tf.transpose(xcorr, [0, 2, 1]))  # [B, M, N]
  best = _first_argmax(mix_ls_t, axis=2)  # [B, M]
  return tf.transpose(tf.one_hot(best, mixtures.shape[1], dtype=tf.float32), [0, 2, 1])


def _digits_one_hot(num_digits, base):
  """One-hot table `[base^num_digits, base, num_digits]` of all base-`base` numbers.

  Candidate k assigns estimate m to mixture (k // base^m) % base.
  """
  count = base**num_digits
  k = np.arange(count, dtype=np.int64)[:, None]
  digits = (k // base**np.arange(num_digits, dtype=np.int64)[None, :]) % base  # [K, j]
  return (digits[:, None, :] == np.arange(base)[None, :, None]).astype(np.float32)


def _exhaustive_block_digits(num_mixtures, num_estimates):
  """Number j of estimates enumerated inside one block of N^j candidates."""
  j = 1
  while (j < num_estimates and
         num_mixtures**(j + 1) * num_mixtures * (j + 1) <= _EXHAUSTIVE_BLOCK_ENTRIES):
    j += 1
  return j


def _exhaustive_assignment(mixtures, estimates, max_snr):
  """Exact search over all N^M one-hot-column matrices in Gram form.

  The M estimates are split into j "low" ones, enumerated together inside a
  block (N^j candidates), and M - j "high" ones, fixed per block and stepped by a
  `tf.while_loop`. With A = [A_low, A_high] the squared remix error of mixture n

    ||x_n||^2 - 2 a_n.P_n + a_n^T G a_n
    = [||x_n||^2 - 2 a_ln.P_ln + a_ln^T G_ll a_ln]          (per block: fixed)
      + 2 a_ln^T (G_lh a_hn)                                (linear in a_ln)
      + [a_hn^T G_hh a_hn - 2 a_hn.P_hn]                    (one number per block)

  so each block costs O(N^j * N * j) per example and nothing of size N^M x T or
  even N^M x M^2 is built. Candidates are scored with the MixIT loss itself
  (sum of logs over mixtures), not the summed squared error.

  Ties go to the lowest candidate index, so the result is deterministic.

  Returns:
    `[batch, N, M]` float32.
  """
  num_mixtures, num_estimates = mixtures.shape[1], estimates.shape[1]
  num_candidates = num_mixtures**num_estimates
  if num_candidates > _EXHAUSTIVE_MAX_CANDIDATES:
    raise ValueError(f'Exhaustive MixIT over N^M = {num_mixtures}^{num_estimates} matrices is '
                     f'infeasible (mixtures {_shape_str(mixtures)}, estimates '
                     f"{_shape_str(estimates)}); use method='least_squares'.")
  tau = 10.0**(-max_snr / 10.0)
  mixture_power, xcorr, gram = _gram_and_xcorr(mixtures, estimates)
  low = _exhaustive_block_digits(num_mixtures, num_estimates)
  high = num_estimates - low
  block = num_mixtures**low
  num_blocks = num_mixtures**high

  a_low = tf.constant(_digits_one_hot(low, num_mixtures))  # [K_low, N, j]
  gram_ll = gram[:, :low, :low]
  gram_lh = gram[:, :low, low:]
  gram_hh = gram[:, low:, low:]
  xcorr_l = xcorr[:, :, :low]
  xcorr_h = xcorr[:, :, low:]

  # Per-block-invariant part [B, K_low, N].
  a_low_flat = tf.reshape(a_low, [block * num_mixtures, low])  # rows (k, n)
  g_a = tf.einsum('bmp,qp->bqm', gram_ll, a_low_flat)  # [B, K_low*N, j]
  quad_ll = tf.reduce_sum(g_a * a_low_flat[None], axis=-1)
  quad_ll = tf.reshape(quad_ll, [-1, block, num_mixtures])
  lin_l = tf.einsum('knm,bnm->bkn', a_low, xcorr_l)
  base = mixture_power[:, None, :] - 2.0 * lin_l + quad_ll
  floor = tau * mixture_power[:, None, :] + EPSILON  # [B, 1, N]

  high_powers = tf.constant(num_mixtures**np.arange(max(high, 1)), dtype=tf.int32)[:high]
  mixture_ids = tf.range(num_mixtures, dtype=tf.int32)

  def block_scores(block_index):
    digits = (block_index // high_powers) % num_mixtures  # [h]
    a_high = tf.cast(tf.equal(mixture_ids[:, None], digits[None, :]), tf.float32)  # [N, h]
    const = (tf.einsum('bmq,nm,nq->bn', gram_hh, a_high, a_high) -
             2.0 * tf.einsum('nm,bnm->bn', a_high, xcorr_h))
    cross_w = 2.0 * tf.einsum('bmq,nq->bnm', gram_lh, a_high)  # [B, N, j]
    cross = tf.einsum('knm,bnm->bkn', a_low, cross_w)
    error = tf.maximum(base + cross + const[:, None, :], 0.0)
    return tf.reduce_sum(tf.math.log(error + floor), axis=-1)  # [B, K_low]

  def body(block_index, best_score, best_index):
    scores = block_scores(block_index)
    local = tf.argmin(scores, axis=1, output_type=tf.int32)  # first minimum
    local_score = tf.reduce_min(scores, axis=1)
    better = local_score < best_score  # earlier blocks win ties
    best_score = tf.where(better, local_score, best_score)
    best_index = tf.where(better, block_index * block + local, best_index)
    return block_index + 1, best_score, best_index

  batch = tf.shape(mixtures)[0]
  init = (tf.constant(0, tf.int32), tf.fill([batch], tf.constant(np.inf, tf.float32)),
          tf.zeros([batch], tf.int32))
  _, _, best_index = tf.while_loop(lambda i, *_: i < num_blocks, body, init,
                                   maximum_iterations=num_blocks)
  powers = tf.constant(num_mixtures**np.arange(num_estimates, dtype=np.int64), tf.int64)
  digits = (tf.cast(best_index, tf.int64)[:, None] // powers[None, :]) % num_mixtures
  return tf.transpose(tf.one_hot(digits, num_mixtures, dtype=tf.float32), [0, 2, 1])


def mixit_assignment(mixtures, estimates, method='exhaustive', max_snr=30.0):
  """Best mixing matrix of mixture invariant training (no gradient).

  Args:
    mixtures: reference mixtures `[batch, N, time]`, N >= 2.
    estimates: separated sources `[batch, M, time]`, M >= N.
    method: 'exhaustive' (exact: all N^M matrices scored in Gram form, about
      O(M^2 T + N^M M) work; fine up to M = 16 for N = 2) or 'least_squares' (the
      efficient MixIT of the paper: normal equations with diagonal loading
      relative to mean(diag G), then each column projected to a one-hot vector,
      O(M^2 T + M^3)).
    max_snr: SNR threshold of the loss that the exhaustive search minimises.

  Returns:
    mix_matrix `[batch, N, M]` float32 with exactly one 1 per column
    (estimate m goes to mixture n where `mix_matrix[b, n, m] = 1`).
  """
  mixtures, estimates, _, _ = _check_mixit_inputs(mixtures, estimates)
  mixtures = tf.stop_gradient(mixtures)
  estimates = tf.stop_gradient(estimates)
  if method == 'exhaustive':
    mix_matrix = _exhaustive_assignment(mixtures, estimates, max_snr)
  elif method == 'least_squares':
    mix_matrix = _least_squares_assignment(mixtures, estimates)
  else:
    raise ValueError(f'Unknown MixIT method {method!r}; expected one of {ASSIGNMENT_METHODS}.')
  return tf.stop_gradient(mix_matrix)


def mixit_loss(mixtures, estimates, method='least_squares', max_snr=30.0):
  """Mixture invariant training loss (docs/formulas.md, "MixIT").

  `L = (1/N) sum_n snr_loss(x_n, [A s]_n)` for the assignment A of
  `mixit_assignment`; the gradient reaches the estimates through the remix, not
  through the choice of A.

  Args:
    mixtures: `[batch, N, time]`.
    estimates: `[batch, M, time]`.
    method: 'exhaustive' or 'least_squares'.
    max_snr: SNR threshold in dB.

  Returns:
    (loss `[batch]`, mix_matrix `[batch, N, M]`).
  """
  mixtures, estimates, _, _ = _check_mixit_inputs(mixtures, estimates)
  mix_matrix = mixit_assignment(mixtures, estimates, method=method, max_snr=max_snr)
  remixed = tf.matmul(mix_matrix, estimates)
  loss = tf.reduce_mean(snr_loss(mixtures, remixed, max_snr=max_snr), axis=1)
  return loss, mix_matrix


# ----------------------------------------------------------------------------
# Supervised permutation-invariant loss.

def _pit_pairwise_loss(sources, estimates, mixture_power, active):
  """Loss of every (reference i, estimate j) pair from inner products: `[B, M, M]`.

  Only used to choose the alignment; the returned loss is recomputed in the
  time domain.
  """
  tau = 10.0**(-_PIT_MAX_SNR / 10.0)
  source_power = tf.reduce_sum(tf.square(sources), axis=-1)  # [B, M]
  estimate_power = tf.reduce_sum(tf.square(estimates), axis=-1)
  cross = tf.matmul(sources, estimates, transpose_b=True)
  error = tf.maximum(source_power[:, :, None] - 2.0 * cross + estimate_power[:, None, :], 0.0)
  active_loss = 10.0 * (_log10(error + tau * source_power[:, :, None] + EPSILON) -
                        _log10(source_power[:, :, None] + EPSILON))
  inactive_loss = 10.0 * _log10(
      estimate_power[:, None, :] +
      _PIT_ZERO_REFERENCE_THRESHOLD * mixture_power[:, None, None] + EPSILON)
  return tf.where(active[:, :, None], active_loss, inactive_loss)


def pit_loss(sources, estimates, mixture, num_sources=None):
  """Supervised permutation-invariant loss with the FUSS treatment of silence.

  References are zero-padded to M. An active reference i aligned to estimate j
  costs `snr_loss(s_i, s_hat_j, max_snr=30)`; an all-zero reference costs
  `10 log10(||s_hat_j||^2 + 10^-2 ||x||^2 + eps)` (a threshold 20 dB below the
  mixture x), which pushes unused outputs to silence. The alignment minimising
  the summed loss is found exactly without enumerating M! permutations
  (`mixit.assignment.min_cost_assignment`).

  Args:
    sources: references `[batch, S, time]`, S <= M.
    estimates: `[batch, M, time]`.
    mixture: `[batch, time]`.
    num_sources: optional `[batch]` int: references with index >= num_sources
      are treated as all-zero.

  Returns:
    (loss `[batch]`: mean over the M aligned pairs, perm `[batch, M, M]` float32
    with `perm[b, i, j] = 1` when estimate j is aligned to reference i).
  """
  sources = _to_float32('sources', sources, 3)
  estimates = _to_float32('estimates', estimates, 3)
  mixture = _to_float32('mixture', mixture, 2)
  _check_dims('batch', [('sources', sources, 0), ('estimates', estimates, 0),
                        ('mixture', mixture, 0)])
  _check_dims('time', [('sources', sources, 2), ('estimates', estimates, 2),
                       ('mixture', mixture, 1)])
  num_refs = _static_dim('sources', sources, 1, 'source')
  num_est = _static_dim('estimates', estimates, 1, 'source')
  if num_refs > num_est:
    raise ValueError(f'pit_loss needs S <= M, got sources {_shape_str(sources)} and '
                     f'estimates {_shape_str(estimates)}.')
  sources = tf.pad(sources, [[0, 0], [0, num_est - num_refs], [0, 0]])
  if num_sources is not None:
    num_sources = tf.convert_to_tensor(num_sources)
    if not num_sources.dtype.is_integer or num_sources.shape.rank != 1:
      raise ValueError(f'num_sources must be an integer vector [batch], got dtype '
                       f'{num_sources.dtype.name} and shape {_shape_str(num_sources)}.')
    _check_dims('batch', [('num_sources', num_sources, 0), ('sources', sources, 0)])
    real = tf.range(num_est)[None, :] < tf.cast(num_sources, tf.int32)[:, None]
    sources = sources * tf.cast(real, tf.float32)[:, :, None]
  mixture_power = tf.reduce_sum(tf.square(mixture), axis=-1)
  active = tf.reduce_sum(tf.square(sources), axis=-1) > 0.0
  cost = _pit_pairwise_loss(tf.stop_gradient(sources), tf.stop_gradient(estimates),
                            tf.stop_gradient(mixture_power), active)
  assigned = tf.stop_gradient(min_cost_assignment(cost))  # [B, M]
  perm = tf.one_hot(assigned, num_est, dtype=tf.float32)  # [B, ref, est]
  aligned = tf.gather(estimates, assigned, axis=1, batch_dims=1)
  active_loss = snr_loss(sources, aligned, max_snr=_PIT_MAX_SNR)
  inactive_loss = 10.0 * _log10(
      tf.reduce_sum(tf.square(aligned), axis=-1) +
      _PIT_ZERO_REFERENCE_THRESHOLD * mixture_power[:, None] + EPSILON)
  loss = tf.reduce_mean(tf.where(active, active_loss, inactive_loss), axis=1)
  return loss, tf.stop_gradient(perm)


# ----------------------------------------------------------------------------
# Regularisers.

def _safe_power(x, exponent):
  """x ** exponent for x >= 0 with a zero (not NaN/inf) gradient at x = 0."""
  positive = x > 0.0
  safe = tf.where(positive, x, tf.ones_like(x))
  return tf.where(positive, tf.pow(safe, exponent), tf.zeros_like(x))


def sparsity_loss(estimates, mom, kind=DEFAULT_SPARSITY_KIND, p=0.5):
  """Sparsity of the per-source RMS vector r (paper section 2.3).

  `r_m = sqrt(mean_t s_m^2)`, `rms(mom) = sqrt(mean_t mom^2)`, eps = 1e-8.
  Over M outputs that sum to the MoM, a planted one-hot split, a split into
  in-phase copies `a_m mom`, an orthogonal split and a uniform split score:

  - 'l1l2_exact' (default; the paper's L1/L2 ratio):
    `||r||_1 / (sqrt(M) ||r||_2 + eps)`, scale-invariant, 1/sqrt(M) for one
    active output and 1 for M equally loud ones. It sees only how the power is
    shared, not phase: copies and an orthogonal split with the same shares
    score the same, both above one-hot.
  - 'lp': the power law `mean_m (r_m / (rms(mom) + eps))^p` with 0 < p < 1;
    one-hot < copies < orthogonal < uniform, strictly.
  - 'l1l2': the mixture-normalised proxy `mean_m r_m / (rms(mom) + eps)` of
    Google's chirp code, where rms(mom) stands in for ||r||_2. Blind spot: for
    any copies split (a_m >= 0, sum a_m = 1) sum_m r_m = rms(mom), so it reads
    1/M, its floor, exactly as one-hot does, and its gradient along such
    splits is zero. Mixture consistency hands every output a share of the
    residual, which is such a split: a model trained with it over-separates.
  Silent sources have a zero (finite) gradient in every variant.

  Args:
    estimates: `[batch, M, time]`.
    mom: mixture of mixtures `[batch, time]`.
    kind: one of 'l1l2_exact', 'lp', 'l1l2'.
    p: exponent of 'lp', 0 < p < 1.

  Returns:
    `[batch]` float32.
  """
  estimates = _to_float32('estimates', estimates, 3)
  mom = _to_float32('mom', mom, 2)
  _check_dims('batch', [('estimates', estimates, 0), ('mom', mom, 0)])
  _check_dims('time', [('estimates', estimates, 2), ('mom', mom, 1)])
  mean_square = tf.reduce_mean(tf.square(estimates), axis=-1)  # [B, M]
  if kind == 'l1l2_exact':
    num = _static_dim('estimates', estimates, 1, 'source')
    l1 = tf.reduce_sum(_safe_power(mean_square, 0.5), axis=1)
    l2 = _safe_power(tf.reduce_sum(mean_square, axis=1), 0.5)
    return l1 / (math.sqrt(num) * l2 + EPSILON)
  mom_rms = tf.sqrt(tf.reduce_mean(tf.square(mom), axis=-1))
  if kind == 'l1l2':
    return tf.reduce_mean(_safe_power(mean_square, 0.5), axis=1) / (mom_rms + EPSILON)
  if kind == 'lp':
    if not 0.0 < p < 1.0:
      raise ValueError(f"sparsity_loss kind='lp' needs 0 < p < 1, got p={p}.")
    # (r / rms)^p = (mean_square / rms^2)^(p/2).
    ratio = mean_square / tf.square(mom_rms + EPSILON)[:, None]
    return tf.reduce_mean(_safe_power(ratio, p / 2.0), axis=1)
  raise ValueError(f'Unknown sparsity kind {kind!r}; expected one of {SPARSITY_KINDS}.')


def covariance_loss(estimates, kind='squared'):
  """Mean normalised covariance between distinct outputs.

  On zero-mean outputs, `C_ij = <s_i, s_j> / sqrt(<s_i, s_i><s_j, s_j> + eps)`;
  the loss is the mean over i != j of C_ij^2 ('squared') or |C_ij| ('abs'):
  0 for orthogonal outputs, 1 for identical ones; a silent output contributes 0.

  Args:
    estimates: `[batch, M, time]`.
    kind: 'squared' or 'abs'.

  Returns:
    `[batch]` float32 (zeros when M = 1).
  """
  estimates = _to_float32('estimates', estimates, 3)
  if kind not in COVARIANCE_KINDS:
    raise ValueError(f'Unknown covariance kind {kind!r}; expected one of {COVARIANCE_KINDS}.')
  num = _static_dim('estimates', estimates, 1, 'source')
  if num < 2:
    return tf.zeros_like(estimates[:, 0, 0])
  centred = estimates - tf.reduce_mean(estimates, axis=-1, keepdims=True)
  cov = tf.matmul(centred, centred, transpose_b=True)
  power = tf.linalg.diag_part(cov)
  corr = cov / tf.sqrt(power[:, :, None] * power[:, None, :] + EPSILON)
  values = tf.square(corr) if kind == 'squared' else tf.abs(corr)
  off_diagonal = 1.0 - tf.eye(num, dtype=tf.float32)
  return tf.reduce_sum(values * off_diagonal, axis=[1, 2]) / (num * (num - 1))


def classification_loss(source_logits, mix_matrix, mixture_labels):
  """Semantic loss: noisy-OR of the source class probabilities through A.

  `p_nc = 1 - prod_{m: A_nm = 1} (1 - sigmoid(l_mc))`, binary cross-entropy
  against the weak labels of mixture n, mean over N and C. Computed in log space:
  `log(1 - p_nc) = -z_nc` with `z_nc = sum_m A_nm softplus(l_mc)` and
  `log p_nc = log(1 - exp(-z_nc))`, which stays exact and finite for saturated
  logits. A mixture that receives no source has p = 0; its positive labels cost
  -log(eps) with eps = 1e-7 (the usual BCE clip) instead of infinity.

  Args:
    source_logits: `[batch, M, C]` per-source class logits.
    mix_matrix: `[batch, N, M]` (one-hot columns; from MixIT or PIT).
    mixture_labels: `[batch, N, C]` multi-hot (or soft) labels in [0, 1].

  Returns:
    `[batch]` float32.
  """
  source_logits = _to_float32('source_logits', source_logits, 3)
  mix_matrix = _to_float32('mix_matrix', mix_matrix, 3)
  mixture_labels = _to_float32('mixture_labels', mixture_labels, 3)
  _check_dims('batch', [('source_logits', source_logits, 0), ('mix_matrix', mix_matrix, 0),
                        ('mixture_labels', mixture_labels, 0)])
  _check_dims('source', [('source_logits', source_logits, 1), ('mix_matrix', mix_matrix, 2)])
  _check_dims('mixture', [('mix_matrix', mix_matrix, 1), ('mixture_labels', mixture_labels, 1)])
  _check_dims('class', [('source_logits', source_logits, 2),
                        ('mixture_labels', mixture_labels, 2)])
  # log softplus(l): for l < -15, softplus(l) = e^l to float32 precision, so log
  # softplus(l) = l, which avoids underflow of z for very negative logits.
  low = source_logits < -15.0
  log_softplus = tf.where(low, source_logits,
                          tf.math.log(tf.nn.softplus(tf.maximum(source_logits, -15.0))))
  assigned = mix_matrix[:, :, :, None] > 0.0  # [B, N, M, 1]
  weights = tf.where(assigned, mix_matrix[:, :, :, None], 1.0)
  terms = tf.where(assigned, log_softplus[:, None] + tf.math.log(weights), -np.inf)
  has_source = tf.reduce_any(assigned, axis=2)  # [B, N, 1]
  log_z = tf.reduce_logsumexp(tf.where(has_source[:, :, None], terms, 0.0), axis=2)
  z = tf.exp(log_z)  # [B, N, C]
  # log(1 - e^-z) = log z - z/2 + O(z^2): below e^-20 the correction vanishes.
  tiny = log_z < -20.0
  log_p = tf.where(tiny, log_z, tf.math.log(-tf.math.expm1(-tf.maximum(z, math.exp(-20.0)))))
  log_p = tf.where(has_source, log_p, math.log(1e-7))
  z = tf.where(has_source, z, 0.0)
  bce = -mixture_labels * log_p + (1.0 - mixture_labels) * z
  return tf.reduce_mean(bce, axis=[1, 2])
