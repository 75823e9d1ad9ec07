"""SI-SNR, SI-SNR improvement and permutation alignment, as the FUSS evaluator scores them.

Everything here is numpy float64. The formulas are those of the public FUSS evaluator
(google-research/sound-separation, DCASE 2020 baseline): scale-invariant SNR *without* removing
the mean, estimates aligned to zero-padded references by maximum summed SI-SNR, and the
activity thresholds that decide which (reference, estimate) pairs are scored (docs/formulas.md,
"Evaluation (FUSS)"). Training-time validation scores with this module too (`pooled_sums`).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import scipy.optimize

# Guard of the normalisation: a silent signal normalises to zeros instead of NaN.
_NORM_FLOOR = 1e-16
# Added to signal and noise power: caps SI-SNR at +-80 dB for perfect or silent signals.
_POWER_EPSILON = 1e-8
# Below this normalised noise power, 1 - c^2 loses too many digits to cancellation, so the
# residual is summed directly instead (the public evaluator's 'seam').
_SEAM = 0.01
# A reference counts as active when its RMS exceeds this.
ACTIVE_REFERENCE_RMS = 1e-8
# An estimate counts as active when its power exceeds this fraction (-20 dB) of the power of
# the quietest active reference.
ACTIVE_ESTIMATE_RELATIVE_POWER = 0.01


def _normalize(x: np.ndarray) -> np.ndarray:
  power = np.sum(np.square(x), axis=-1, keepdims=True)
  return x / np.sqrt(np.maximum(power, _NORM_FLOOR))


def _si_snr_from_cosine(cosine, direct_noise) -> np.ndarray:
  """SI-SNR from the cosine c of normalised signals; `direct_noise(mask)` sums the residual
  `||e_n - c t_n||^2` where `mask` is set (near-perfect pairs)."""
  signal = np.square(cosine)
  noise = 1.0 - signal
  near_perfect = ~(noise >= _SEAM)
  if np.any(near_perfect):
    noise = np.where(near_perfect, direct_noise(near_perfect), noise)
  return 10.0 * np.log10((signal + _POWER_EPSILON) / (noise + _POWER_EPSILON))


def si_snr(reference, estimate) -> np.ndarray:
  """Scale-invariant SNR in dB, no zero-mean, computed in float64.

  Reference first, as every scoring and loss function of the package
  (`mixit.losses.snr_loss`, `pairwise_si_snr`, `score_example`).

  Args:
    reference: `[..., time]`.
    estimate: `[..., time]`, broadcastable against `reference`.

  Returns:
    `[...]` float64 SI-SNR in dB, within [-80, 80].
  """
  e = _normalize(np.asarray(estimate, dtype=np.float64))
  t = _normalize(np.asarray(reference, dtype=np.float64))
  e, t = np.broadcast_arrays(e, t)
  cosine = np.sum(e * t, axis=-1)

  def direct_noise(mask):
    del mask
    return np.sum(np.square(e - t * cosine[..., np.newaxis]), axis=-1)

  return _si_snr_from_cosine(cosine, direct_noise)


def si_snr_improvement(reference, estimate, mixture) -> np.ndarray:
  """SI-SNR(reference, estimate) - SI-SNR(reference, mixture) in dB.

  Args:
    reference: `[..., time]`.
    estimate: `[..., time]`.
    mixture: `[time]` or broadcastable against `reference`.
  """
  return si_snr(reference, estimate) - si_snr(reference, mixture)


def pairwise_si_snr(references, estimates) -> np.ndarray:
  """SI-SNR of every (reference, estimate) pair.

  Args:
    references: `[source, time]`.
    estimates: `[estimate, time]`.

  Returns:
    `[source, estimate]` float64, entry `[i, j] = si_snr(references[i], estimates[j])`.
  """
  references = np.asarray(references, dtype=np.float64)
  estimates = np.asarray(estimates, dtype=np.float64)
  if references.ndim != 2 or estimates.ndim != 2:
    raise ValueError(f'pairwise_si_snr wants [source, time] and [estimate, time], got '
                     f'{references.shape} and {estimates.shape}')
  if references.shape[1] != estimates.shape[1]:
    raise ValueError(f'references have {references.shape[1]} samples, estimates '
                     f'{estimates.shape[1]}')
  e = _normalize(estimates)
  t = _normalize(references)
  # All cosines in one product; the residual is only summed for the few near-perfect pairs.
  cosine = t @ e.T

  def direct_noise(mask):
    noise = np.zeros_like(cosine)
    for i, j in zip(*np.nonzero(mask)):
      noise[i, j] = np.sum(np.square(e[j] - t[i] * cosine[i, j]))
    return noise

  return _si_snr_from_cosine(cosine, direct_noise)


def best_assignment(score: np.ndarray) -> np.ndarray:
  """Estimate index for each reference, maximising the summed score (Hungarian method).

  Args:
    score: `[source, estimate]` with source <= estimate.

  Returns:
    `[source]` int array of distinct estimate indices.
  """
  score = np.asarray(score, dtype=np.float64)
  if score.ndim != 2 or score.shape[0] > score.shape[1]:
    raise ValueError(f'best_assignment wants [source, estimate] with source <= estimate, got '
                     f'{score.shape}')
  rows, cols = scipy.optimize.linear_sum_assignment(score, maximize=True)
  assignment = np.empty(score.shape[0], dtype=np.int64)
  assignment[rows] = cols
  return assignment


def pad_to(signals: np.ndarray, count: int) -> np.ndarray:
  """Zero-pads `[signal, time]` to `[count, time]`."""
  missing = count - signals.shape[0]
  if missing < 0:
    raise ValueError(f'cannot pad {signals.shape[0]} signals down to {count}')
  return np.concatenate([signals, np.zeros((missing, signals.shape[1]), signals.dtype)])


def align_estimates(references, estimates):
  """Permutes estimates onto zero-padded references, maximising summed SI-SNR.

  Both sides are zero-padded to `K = max(source, estimate)` slots. Zero references score the
  same -80 dB against every estimate, so they never change which estimate a real reference
  gets; the estimates left over land on them.

  Args:
    references: `[source, time]`.
    estimates: `[estimate, time]`.

  Returns:
    (aligned `[K, time]` float64 with `aligned[i]` the estimate matched to reference slot `i`,
     assignment `[K]` int: the estimate index (>= estimate count for zero padding),
     padded references `[K, time]` float64).
  """
  references = np.asarray(references, dtype=np.float64)
  estimates = np.asarray(estimates, dtype=np.float64)
  slots = max(references.shape[0], estimates.shape[0])
  references = pad_to(references, slots)
  padded_estimates = pad_to(estimates, slots)
  assignment = best_assignment(pairwise_si_snr(references, padded_estimates))
  return padded_estimates[assignment], assignment, references


@dataclasses.dataclass
class ExampleScores:
  """Scores of one example, per reference slot (`[K]` arrays, K = max(sources, outputs))."""
  sisnr_separated: np.ndarray
  sisnr_mixture: np.ndarray
  power_separated: np.ndarray
  power_sources: np.ndarray
  active_refs: np.ndarray
  active_seps: np.ndarray
  assignment: np.ndarray

  @property
  def sisnr_improvement(self) -> np.ndarray:
    return self.sisnr_separated - self.sisnr_mixture

  @property
  def active_pairs(self) -> np.ndarray:
    return self.active_refs & self.active_seps

  @property
  def num_active_refs(self) -> int:
    return int(np.sum(self.active_refs))

  @property
  def num_active_seps(self) -> int:
    return int(np.sum(self.active_seps))

  @property
  def num_active_pairs(self) -> int:
    return int(np.sum(self.active_pairs))


def score_example(references, estimates, mixture=None) -> ExampleScores:
  """Scores one example the way the FUSS evaluator does.

  Args:
    references: `[source, time]` reference sources (zero rows allowed).
    estimates: `[estimate, time]` separated outputs.
    mixture: `[time]`; defaults to the sum of the references, as FUSS defines it.

  Returns:
    ExampleScores over `K = max(source, estimate)` slots.
  """
  references = np.asarray(references, dtype=np.float64)
  estimates = np.asarray(estimates, dtype=np.float64)
  mixture = (np.sum(references, axis=0) if mixture is None
             else np.asarray(mixture, dtype=np.float64))
  aligned, assignment, references = align_estimates(references, estimates)
  power_separated = np.mean(np.square(aligned), axis=-1)
  power_sources = np.mean(np.square(references), axis=-1)
  active_refs = np.sqrt(power_sources) > ACTIVE_REFERENCE_RMS
  if np.any(active_refs):
    floor = ACTIVE_ESTIMATE_RELATIVE_POWER * np.min(power_sources[active_refs])
    active_seps = power_separated > floor
  else:
    active_seps = np.zeros_like(active_refs)
  return ExampleScores(
      sisnr_separated=si_snr(references, aligned),
      sisnr_mixture=si_snr(references, mixture[np.newaxis]),
      power_separated=power_separated,
      power_sources=power_sources,
      active_refs=active_refs,
      active_seps=active_seps,
      assignment=assignment)


def active_estimate_mask(references, estimates) -> np.ndarray:
  """`[estimate]` bool: which outputs the evaluator counts as active (see `score_example`)."""
  references = np.asarray(references, dtype=np.float64)
  estimates = np.asarray(estimates, dtype=np.float64)
  power_sources = np.mean(np.square(references), axis=-1)
  active_refs = np.sqrt(power_sources) > ACTIVE_REFERENCE_RMS
  if not np.any(active_refs):
    return np.zeros(estimates.shape[0], dtype=bool)
  floor = ACTIVE_ESTIMATE_RELATIVE_POWER * np.min(power_sources[active_refs])
  return np.mean(np.square(estimates), axis=-1) > floor


@dataclasses.dataclass(frozen=True)
class OverSeparationDiagnostics:
  """What the FUSS figures do not show about how an example was split.

  `loudest_output_share`: power of the loudest output over the power of the input
  mixture (1 when one output holds everything; 1/M^2 for M equal in-phase copies).
  `mean_abs_correlation`: mean |cosine| (no mean removal, as SI-SNR) over pairs of
  active outputs; 1 for scaled copies of one signal, 0 for orthogonal outputs;
  None with fewer than two active outputs.
  """
  num_active_outputs: int
  loudest_output_share: Optional[float]
  mean_abs_correlation: Optional[float]


def over_separation_diagnostics(references, estimates, mixture) -> OverSeparationDiagnostics:
  """Diagnostics of one example; `references [source, time]`, `estimates [estimate, time]`."""
  estimates = np.asarray(estimates, dtype=np.float64)
  mixture = np.asarray(mixture, dtype=np.float64)
  active = active_estimate_mask(references, estimates)
  mixture_power = np.mean(np.square(mixture))
  share = None
  if mixture_power > 0 and estimates.shape[0]:
    share = float(np.max(np.mean(np.square(estimates), axis=-1)) / mixture_power)
  correlation = None
  kept = estimates[active]
  if kept.shape[0] >= 2:
    unit = kept / np.linalg.norm(kept, axis=-1, keepdims=True)
    cosine = np.abs(unit @ unit.T)
    upper = np.triu_indices(kept.shape[0], k=1)
    correlation = float(np.mean(cosine[upper]))
  return OverSeparationDiagnostics(int(np.sum(active)), share, correlation)


# Running sums that pool scored pairs over many examples (training-time validation). The
# means are `si_snr_sum / si_snr_count` (every scored pair), `one_source_sum /
# one_source_count` (1S), `msi_sum / msi_count` (MSi, SI-SNRi pooled over pairs) and
# `under|equal|over / num_examples` (separation rates); see `eval.fuss.summarize`, which pools
# the same way from `scores.csv` rows.
POOLED_SUMS = ('si_snr_sum', 'si_snr_count', 'one_source_sum', 'one_source_count',
               'msi_sum', 'msi_count', 'under', 'equal', 'over', 'num_examples')


def pooled_sums(*, estimates, references, mixtures) -> np.ndarray:
  """Scores a batch with `score_example` and returns its running sums.

  Keyword-only, so that no caller can swap estimates and references.

  Examples without an active reference are skipped (the evaluator cannot score them).

  Args:
    estimates: `[batch, estimate, time]`.
    references: `[batch, source, time]` (zero rows allowed).
    mixtures: `[batch, time]`.

  Returns:
    `[len(POOLED_SUMS)]` float64, in the order of `POOLED_SUMS`.
  """
  mixtures = np.asarray(mixtures, dtype=np.float64)
  references = np.asarray(references, dtype=np.float64)
  estimates = np.asarray(estimates, dtype=np.float64)
  if (mixtures.ndim != 2 or references.ndim != 3 or estimates.ndim != 3
      or not mixtures.shape[0] == references.shape[0] == estimates.shape[0]):
    raise ValueError(f'pooled_sums wants [batch, time], [batch, source, time] and '
                     f'[batch, estimate, time], got {mixtures.shape}, {references.shape} and '
                     f'{estimates.shape}')
  sums = dict.fromkeys(POOLED_SUMS, 0.0)
  for mixture, example_references, example_estimates in zip(mixtures, references, estimates):
    scores = score_example(example_references, example_estimates, mixture)
    refs, seps = scores.num_active_refs, scores.num_active_seps
    if refs == 0:
      continue
    pairs = scores.active_pairs
    pair_sisnr = float(np.sum(scores.sisnr_separated[pairs]))
    sums['si_snr_sum'] += pair_sisnr
    sums['si_snr_count'] += scores.num_active_pairs
    if refs == 1:
      sums['one_source_sum'] += pair_sisnr
      sums['one_source_count'] += scores.num_active_pairs
    else:
      sums['msi_sum'] += float(np.sum(scores.sisnr_improvement[pairs]))
      sums['msi_count'] += scores.num_active_pairs
    sums['under'] += seps < refs
    sums['equal'] += seps == refs
    sums['over'] += seps > refs
    sums['num_examples'] += 1
  return np.array([sums[key] for key in POOLED_SUMS], dtype=np.float64)
