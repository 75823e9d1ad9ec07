r"""The FUSS evaluator: MSi, 1S, under/equal/over separation, reports and plots.

Scores a separation system on a FUSS example list exactly as the public FUSS evaluator
(google-research/sound-separation, `dcase2020_fuss_baseline/evaluate_lib.py`) does; see
`eval/metrics.py` for the per-example procedure and `summarize` for the pooling. Unlike the
public evaluator, `scores.csv` holds exactly one row per scored example, named by its mixture
file and list line (the public one, after its switch from `DataFrame.append` to
`pd.concat([df, series])`, appends every metric as a separate row of one unnamed column, and
never records which example a row belongs to).

The command line is `mixit-evaluate` (`mixit/commands/evaluate.py`): it evaluates a SavedModel
(`evaluate`) or the files `mixit-separate` wrote (`evaluate_separated`: the record
`.mixit_separate.json` there gives each example's output count and the outputs dropped as
silent) and writes the report (`write_report`, listed in `.mixit_evaluate.json`).
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import re
from typing import Callable, Iterable, List, Optional, Sequence

import numpy as np

from data_pipeline import audio_io
from data_pipeline import fuss as fuss_data
from eval import baselines as baselines_lib
from eval import metrics
from mixit import owned_files
from mixit import progress as progress_lib
from mixit.serving import separator as separator_lib

SeparateFn = Callable[[np.ndarray], np.ndarray]


class BadExampleError(ValueError):
  """An example that cannot be scored; the message names it."""


@dataclasses.dataclass
class LoadedExample:
  """One example in memory.

  Attributes:
    name: the mixture file's stem (`example00042`), used for separated files and CSV rows.
    sources: `[source, time]` float32 references; the mixture is their sum (as FUSS defines).
    sample_rate: Hz.
    line_number: line in the example list (None for examples built in memory).
  """
  name: str
  sources: np.ndarray
  sample_rate: int
  line_number: Optional[int] = None

  @property
  def mixture(self) -> np.ndarray:
    return np.sum(self.sources, axis=0, dtype=np.float32)

  @property
  def num_samples(self) -> int:
    return int(self.sources.shape[-1])

  def describe(self) -> str:
    return (self.name if self.line_number is None
            else f'{self.name} (example list line {self.line_number})')


def example_name(path: str) -> str:
  """`.../eval/example00042.wav` -> `example00042`."""
  return os.path.splitext(os.path.basename(path))[0]


def load_example(example: fuss_data.FussExample) -> LoadedExample:
  """Reads the sources of one list entry.

  Raises:
    BadExampleError: a source is missing or undecodable, or sources differ in rate or length.
  """
  name = example_name(example.mixture_path)
  where = f'{name} (example list line {example.line_number})'
  waveforms, rates = [], []
  for path in example.source_paths:
    try:
      waveform, rate = audio_io.read_audio(path)
    except (OSError, ValueError) as e:
      raise BadExampleError(f'{where}: cannot read source {path}: {e}') from e
    waveforms.append(waveform)
    rates.append(rate)
  if len(set(rates)) != 1:
    raise BadExampleError(f'{where}: sources have different sample rates {rates}')
  lengths = [w.shape[0] for w in waveforms]
  if len(set(lengths)) != 1:
    raise BadExampleError(f'{where}: sources have different lengths {lengths} (samples)')
  return LoadedExample(name=name, sources=np.stack(waveforms), sample_rate=rates[0],
                       line_number=example.line_number)


def _check_estimates(estimates, example: LoadedExample, origin: str) -> np.ndarray:
  estimates = np.asarray(estimates)
  if estimates.ndim != 2 or estimates.shape[0] < 1:
    raise BadExampleError(f'{example.describe()}: {origin} gave estimates of shape '
                          f'{estimates.shape}, expected [outputs, {example.num_samples}]')
  if estimates.shape[1] != example.num_samples:
    raise BadExampleError(f'{example.describe()}: {origin} gave estimates of '
                          f'{estimates.shape[1]} samples, the references have '
                          f'{example.num_samples}')
  if not np.all(np.isfinite(estimates)):
    bad = int(np.sum(~np.isfinite(estimates)))
    raise BadExampleError(f'{example.describe()}: {origin} gave {bad} NaN or infinite samples')
  return estimates


# --------------------------------------------------------------------------------------------
# Sources of estimates.


class SavedModelSeparator:
  """A `separate_fn` over an exported SavedModel (its serving signature).

  Loads through `mixit.serving.separator.load_saved_model` (the one SavedModel loader; it needs no
  training or model code); `sample_rate` / `num_sources` are None when the model does not
  record them.
  """

  def __init__(self, path: str):
    self.path = os.fspath(path)
    try:
      self._model, self._signature, self.sample_rate, self.num_sources = (
          separator_lib.load_saved_model(self.path, require_constants=False))
    except (OSError, ValueError) as e:
      raise ValueError(f'--saved_model {self.path}: {e}') from e

  def __call__(self, mixtures: np.ndarray) -> np.ndarray:
    """`[batch, time]` -> `[batch, outputs, time]`."""
    return separator_lib.serve(self._signature, np.asarray(mixtures, np.float32))


# What `mixit-separate` writes beside its outputs (`mixit.owned_files.SEPARATION`, see
# `mixit.serving.separate.OutputRecord`; read here through `mixit.owned_files`, so the
# evaluator needs nothing of the inference code).
SEPARATE_RECORD = owned_files.SEPARATION.filename
_OUTPUT_NAME = re.compile(r'(.+)_source(\d+)\.wav$')


def read_separate_record(separated_dir: str) -> dict:
  """`{example name: {"num_sources": M, "dropped": [...], ...}}` from the folder's record, or
  {} when there is none."""
  return owned_files.Record(separated_dir, owned_files.SEPARATION).groups


def list_separated(separated_dir: str) -> dict:
  """`{example name: {output index: path}}` for every `<name>_source<i>.wav` in the folder."""
  import tensorflow as tf
  found = {}
  for name in tf.io.gfile.listdir(separated_dir):
    match = _OUTPUT_NAME.fullmatch(name.rstrip('/'))
    if match:
      found.setdefault(match.group(1), {})[int(match.group(2))] = os.path.join(
          separated_dir, name.rstrip('/'))
  return found


def read_separated(separated_dir: str, example: LoadedExample,
                   outputs: Optional[dict] = None,
                   num_outputs: Optional[int] = None,
                   dropped: Sequence[int] = ()) -> np.ndarray:
  """Reads `<separated_dir>/<example>_source{i}.wav`, i = 0, 1, ... (as `mixit-separate`
  writes them).

  Args:
    separated_dir: the folder of outputs.
    example: the example whose outputs to read.
    outputs: `{index: path}` of its files (default: listed from the folder).
    num_outputs: how many outputs the example must have (the count `mixit-separate`
      recorded, or the one the other examples have); None: the largest index + 1.
    dropped: indices recorded as dropped silent (`mixit-separate --drop_silent`).

  A missing index is read as a silent output when it was recorded as dropped, or, without a
  count to check against, when it lies below the largest one: `--drop_silent` leaves such
  gaps, and a silent output is never active, so it scores the same as the file it replaces.

  Returns:
    `[outputs, time]` float32.

  Raises:
    BadExampleError: no output file, an output beyond `num_outputs` (a stale file of another
      separation) or missing from it, an undecodable file, or a sample rate or length other
      than the references'.
  """
  found = list_separated(separated_dir).get(example.name, {}) if outputs is None else outputs
  if not found:
    raise BadExampleError(f'{example.describe()}: no separated outputs '
                          f'{example.name}_source<i>.wav in {separated_dir}')
  if num_outputs is not None:
    extra = sorted(index for index in found if index >= num_outputs)
    if extra:
      raise BadExampleError(
          f'{example.describe()}: {found[extra[0]]} is beyond the {num_outputs} outputs '
          f'expected ({len(extra)} such file(s)): outputs of another separation? Separate '
          'again with --overwrite, or into an empty folder')
    missing = [index for index in range(num_outputs)
               if index not in found and index not in dropped]
    if missing:
      raise BadExampleError(
          f'{example.describe()}: {example.name}_source{missing[0]}.wav is missing from '
          f'{separated_dir} ({num_outputs} outputs expected, {len(found)} found)')
  count = num_outputs if num_outputs is not None else max(found) + 1
  estimates = np.zeros((count, example.num_samples), np.float32)
  for index, path in found.items():
    try:
      waveform, rate = audio_io.read_audio(path)
    except (OSError, ValueError) as e:
      raise BadExampleError(f'{example.describe()}: {e}') from e
    if rate != example.sample_rate:
      raise BadExampleError(f'{example.describe()}: {path} is at {rate} Hz, the '
                            f'references at {example.sample_rate} Hz')
    if waveform.shape[0] != example.num_samples:
      raise BadExampleError(f'{example.describe()}: {path} has {waveform.shape[0]} '
                            f'samples, the references have {example.num_samples}')
    estimates[index] = waveform
  return estimates


# --------------------------------------------------------------------------------------------
# Evaluation.


def score_row(example: LoadedExample, estimates: np.ndarray) -> dict:
  """One `scores.csv` row: counts, flags and per-slot scores (slots numbered from 1)."""
  scores = metrics.score_example(example.sources, estimates, example.mixture)
  row = {
      'example': example.name,
      'line_number': example.line_number,
      'num_sources': int(example.sources.shape[0]),
      'num_outputs': int(estimates.shape[0]),
      'num_slots': int(scores.active_refs.shape[0]),
      'num_active_refs': scores.num_active_refs,
      'num_active_seps': scores.num_active_seps,
      'num_active_pairs': scores.num_active_pairs,
      'under_separation': int(scores.num_active_seps < scores.num_active_refs),
      'equal_separation': int(scores.num_active_seps == scores.num_active_refs),
      'over_separation': int(scores.num_active_seps > scores.num_active_refs),
  }
  # Beside the FUSS figures, never part of them (see `summarize`).
  diagnostics = metrics.over_separation_diagnostics(example.sources, estimates, example.mixture)
  row['loudest_output_share'] = diagnostics.loudest_output_share
  row['mean_abs_correlation'] = diagnostics.mean_abs_correlation
  per_slot = {
      # Index of the output aligned to this reference slot; >= num_outputs marks zero padding.
      'estimate_index': scores.assignment,
      'active_ref': scores.active_refs,
      'active_sep': scores.active_seps,
      'active_pair': scores.active_pairs,
      'power_sources': scores.power_sources,
      'power_separated': scores.power_separated,
      'sisnr_separated': scores.sisnr_separated,
      'sisnr_mixture': scores.sisnr_mixture,
      'sisnr_improvement': scores.sisnr_improvement,
  }
  for key, values in per_slot.items():
    for slot, value in enumerate(values, start=1):
      row[f'{key}_source{slot}'] = (float(value) if np.issubdtype(values.dtype, np.floating)
                                    else int(value))
  return row


def _count_stats(values: Sequence[float]) -> tuple:
  if not values:
    return None, None
  return float(np.mean(values)), float(np.std(values))


def summarize(rows: Iterable[dict]) -> dict:
  """Pools per-example rows into the FUSS summary.

  1S is the mean SI-SNR over the scored pairs of examples with one active reference; MSi the
  mean SI-SNRi over the scored pairs of examples with two or more, pooled over pairs (not a
  mean of per-example means). Standard deviations are population ones (numpy's default), as
  the public evaluator prints them. Examples are grouped by their number of *active*
  references, which is what the public evaluator counts.

  Returns:
    `{"msi", "1s", "per_count": {"1": {...}, ...}, "under_separation", "equal_separation",
      "over_separation", "num_examples"}` plus `msi_std`, `1s_std` and `separation_counts`
    (`{"<active refs>": {"<active estimates>": examples}}`). Means over nothing are None.
  """
  rows = list(rows)
  sisnr, sisnri, examples = {}, {}, {}
  separation_counts = {}
  for row in rows:
    count = int(row['num_active_refs'])
    examples[count] = examples.get(count, 0) + 1
    sisnr.setdefault(count, [])
    sisnri.setdefault(count, [])
    for slot in range(1, int(row['num_slots']) + 1):
      if int(row[f'active_pair_source{slot}']):
        sisnr[count].append(float(row[f'sisnr_separated_source{slot}']))
        sisnri[count].append(float(row[f'sisnr_improvement_source{slot}']))
    by_estimates = separation_counts.setdefault(str(count), {})
    key = str(int(row['num_active_seps']))
    by_estimates[key] = by_estimates.get(key, 0) + 1
  per_count = {}
  for count in sorted(examples):
    sisnr_mean, sisnr_std = _count_stats(sisnr[count])
    # For one source the mixture *is* the reference: its SI-SNR is the +80 dB cap and an
    # "improvement" over it says nothing, so none is reported (1S is the figure).
    sisnri_mean, sisnri_std = _count_stats(sisnri[count] if count >= 2 else [])
    per_count[str(count)] = {
        'num_examples': examples[count], 'num_pairs': len(sisnr[count]),
        'sisnr_mean': sisnr_mean, 'sisnr_std': sisnr_std,
        'sisnri_mean': sisnri_mean, 'sisnri_std': sisnri_std}
  multi = [value for count in sorted(sisnri) if count >= 2 for value in sisnri[count]]
  msi, msi_std = _count_stats(multi)
  one_source, one_source_std = _count_stats(sisnr.get(1, []))

  def rate(key):
    return float(np.mean([int(row[key]) for row in rows])) if rows else None

  return {
      'msi': msi,
      '1s': one_source,
      'per_count': per_count,
      'under_separation': rate('under_separation'),
      'equal_separation': rate('equal_separation'),
      'over_separation': rate('over_separation'),
      'num_examples': len(rows),
      'msi_std': msi_std,
      '1s_std': one_source_std,
      'separation_counts': {k: dict(sorted(v.items(), key=lambda kv: int(kv[0])))
                            for k, v in sorted(separation_counts.items(),
                                               key=lambda kv: int(kv[0]))},
      'diagnostics': over_separation_summary(rows),
  }


def _mean_or_none(values: Sequence[float]) -> Optional[float]:
  return float(np.mean(values)) if values else None


def over_separation_summary(rows: Sequence[dict]) -> dict:
  """Over-separation diagnostics pooled over examples; not part of the FUSS figures.

  Returns:
    `active_outputs`: `{"<active refs>": {"mean": active outputs, "num_examples"}}`;
    `excess_active_outputs`: mean of (active outputs - active references);
    `1s_loudest_output_share` (and `_db`, the mean of its dB values): over
    1-source examples, the loudest output's share of the input power (1 = the
    input in one output);
    `mean_abs_correlation`: mean over examples with >= 2 active outputs of their
    mean |cosine| between active outputs (1 = scaled copies), and
    `mean_abs_correlation_examples`, how many such examples.
  """
  by_refs = {}
  for row in rows:
    by_refs.setdefault(int(row['num_active_refs']), []).append(int(row['num_active_seps']))
  shares = [float(row['loudest_output_share']) for row in rows
            if int(row['num_active_refs']) == 1 and row.get('loudest_output_share') is not None]
  correlations = [float(row['mean_abs_correlation']) for row in rows
                  if row.get('mean_abs_correlation') is not None]
  return {
      'active_outputs': {str(count): {'mean': float(np.mean(values)),
                                      'num_examples': len(values)}
                         for count, values in sorted(by_refs.items())},
      'excess_active_outputs': _mean_or_none(
          [int(row['num_active_seps']) - int(row['num_active_refs']) for row in rows]),
      '1s_loudest_output_share': _mean_or_none(shares),
      '1s_loudest_output_share_db': _mean_or_none(
          [10 * np.log10(max(share, 1e-30)) for share in shares]),
      'mean_abs_correlation': _mean_or_none(correlations),
      'mean_abs_correlation_examples': len(correlations),
  }


@dataclasses.dataclass
class EvaluationResult:
  """Rows of the model and of each baseline, and what was skipped (and why)."""
  rows: List[dict]
  baseline_rows: dict
  skipped_silent: List[str]
  skipped_bad: List[str]

  def summary(self, label: Optional[str] = None) -> dict:
    """`summarize(rows)` plus `label`, `skipped` and `baselines` (their summaries)."""
    summary = summarize(self.rows)
    summary['label'] = label
    summary['skipped'] = {'silent_references': len(self.skipped_silent),
                          'bad_input': len(self.skipped_bad),
                          'bad_input_reasons': list(self.skipped_bad)}
    summary['baselines'] = {name: summarize(rows) for name, rows in self.baseline_rows.items()}
    return summary


def _run(examples, estimates_for_batch, batch_size: int, max_examples: Optional[int],
         skip_bad: bool, baselines: Sequence[str], progress: bool,
         sample_rate: Optional[int]) -> EvaluationResult:
  """Loads, separates (in batches of equal-length examples) and scores."""
  if batch_size < 1:
    raise ValueError(f'batch_size must be >= 1, got {batch_size}')
  unknown = [name for name in baselines if name not in baselines_lib.NAMES]
  if unknown:
    raise ValueError(f'unknown baseline(s) {unknown}; expected some of {baselines_lib.NAMES}')
  examples = list(examples)
  if max_examples is not None:
    if max_examples < 1:
      raise ValueError(f'max_examples must be >= 1, got {max_examples}')
    examples = examples[:max_examples]
  result = EvaluationResult(rows=[], baseline_rows={name: [] for name in baselines},
                            skipped_silent=[], skipped_bad=[])
  bar = progress_lib.Bar(len(examples), 'examples', enabled=progress)
  done = 0

  def bad(error: BadExampleError):
    if not skip_bad:
      raise error
    result.skipped_bad.append(str(error))

  def flush(batch: List[LoadedExample]):
    nonlocal done
    if not batch:
      return
    for example, estimates in zip(batch, estimates_for_batch(batch)):
      try:
        if isinstance(estimates, BadExampleError):
          raise estimates
        estimates = _check_estimates(estimates, example, 'the separator')
      except BadExampleError as e:
        bad(e)
        continue
      result.rows.append(score_row(example, estimates))
      for name in baselines:
        if name == baselines_lib.MIXTURE:
          baseline = baselines_lib.no_separation(example.sources, example.mixture)
        else:
          baseline = baselines_lib.oracle_binary_mask(example.sources, example.mixture,
                                                      example.sample_rate)
        result.baseline_rows[name].append(score_row(example, baseline))
    done += len(batch)
    bar.update(done)
    batch.clear()

  batch: List[LoadedExample] = []
  for example in examples:
    try:
      loaded = example if isinstance(example, LoadedExample) else load_example(example)
    except BadExampleError as e:
      bad(e)
      done += 1
      continue
    if sample_rate is not None and loaded.sample_rate != sample_rate:
      bad(BadExampleError(f'{loaded.describe()}: references at {loaded.sample_rate} Hz, the '
                          f'model runs at {sample_rate} Hz'))
      done += 1
      continue
    reference_rms = np.sqrt(np.mean(np.square(loaded.sources.astype(np.float64)), axis=-1))
    if not np.any(reference_rms > metrics.ACTIVE_REFERENCE_RMS):
      # Nothing to score against. The public evaluator skips examples whose samples are all
      # within 1e-8 of zero (and would crash on the rarer ones whose RMS is all below 1e-8);
      # the RMS test covers both.
      result.skipped_silent.append(loaded.describe())
      done += 1
      continue
    if batch and (loaded.num_samples != batch[0].num_samples or len(batch) == batch_size):
      flush(batch)
    batch.append(loaded)
  flush(batch)
  bar.update(len(examples), force=True)
  bar.finish()
  return result


def evaluate(separate_fn: SeparateFn, examples, batch_size: int = 1,
             max_examples: Optional[int] = None, skip_bad: bool = False,
             baselines: Sequence[str] = baselines_lib.NAMES, progress: bool = False,
             sample_rate: Optional[int] = None) -> EvaluationResult:
  """Evaluates a separation function on FUSS examples.

  Args:
    separate_fn: `mixtures [batch, time] float32 -> [batch, outputs, time]` (any M; the number
      of outputs may differ from the number of references).
    examples: `data_pipeline.fuss.FussExample`s (from `read_example_list`) or
      `LoadedExample`s.
    batch_size: examples per call of `separate_fn` (consecutive examples of equal length).
    max_examples: evaluate only the first this many examples.
    skip_bad: skip (and count) unreadable examples and bad outputs instead of raising.
    baselines: names from `eval.baselines.NAMES` to score beside the model.
    progress: show a progress bar on stderr.
    sample_rate: the rate `separate_fn` expects; examples at another rate are bad input.

  Returns:
    EvaluationResult; `.summary(label)` gives the summary dictionary.

  Raises:
    BadExampleError (a ValueError naming the example): unreadable sources, NaN/inf outputs,
      outputs of the wrong length or rank; unless `skip_bad`.
  """
  def estimates_for_batch(batch):
    mixtures = np.stack([example.mixture for example in batch])
    separated = np.asarray(separate_fn(mixtures))
    if separated.ndim != 3 or separated.shape[0] != len(batch):
      raise ValueError(f'separate_fn returned shape {separated.shape} for mixtures of shape '
                       f'{mixtures.shape}; expected [{len(batch)}, outputs, time] '
                       f'(examples {", ".join(e.describe() for e in batch)})')
    return list(separated)

  return _run(examples, estimates_for_batch, batch_size, max_examples, skip_bad, baselines,
              progress, sample_rate)


def evaluate_separated(separated_dir: str, examples, max_examples: Optional[int] = None,
                       skip_bad: bool = False,
                       baselines: Sequence[str] = baselines_lib.NAMES,
                       progress: bool = False) -> EvaluationResult:
  """Evaluates already-separated files `<separated_dir>/<example>_source{i}.wav`.

  Same arguments, result and errors as `evaluate`; a missing output raises unless `skip_bad`.
  """
  import tensorflow as tf
  if not tf.io.gfile.isdir(separated_dir):
    raise ValueError(f'--separated_dir {separated_dir}: not a directory')
  examples = list(examples)
  if max_examples is not None and max_examples >= 1:
    examples = examples[:max_examples]
  record = read_separate_record(separated_dir)
  listed = list_separated(separated_dir)
  # Without a record, every example must have as many outputs as the others: a folder holding
  # the outputs of two models (M = 8, then M = 4 over it) or a lost last output would
  # otherwise be scored without a word.
  counts = {}
  for example in examples:
    name = (example.name if isinstance(example, LoadedExample)
            else example_name(example.mixture_path))
    if name not in record and listed.get(name):
      counts[name] = max(listed[name]) + 1
  common = collections.Counter(counts.values()).most_common(1)[0][0] if counts else None

  def estimates_for_batch(batch):
    out = []
    for example in batch:
      entry = record.get(example.name)
      try:
        if entry is not None:
          estimates = read_separated(separated_dir, example, listed.get(example.name, {}),
                                     int(entry['num_sources']), entry.get('dropped', ()))
        else:
          count = counts.get(example.name)
          if count is not None and count != common:
            raise BadExampleError(
                f'{example.describe()}: {count} outputs (up to {example.name}_source'
                f'{count - 1}.wav) but the other examples have {common}: outputs of two '
                'separations in one folder, or a lost output? Separate again into an empty '
                'folder')
          estimates = read_separated(separated_dir, example, listed.get(example.name, {}))
        out.append(estimates)
      except BadExampleError as e:
        out.append(e)
    return out

  return _run(examples, estimates_for_batch, 1, max_examples, skip_bad, baselines, progress,
              None)


# --------------------------------------------------------------------------------------------
# Reports.

OUTPUT_FILES = ('scores.csv', 'summary.json', 'summary.txt', 'msi_vs_1s.png',
                'sisnri_per_count.png', 'separation_counts.png', 'over_separation.png')


# Lists the files a report wrote (`mixit.owned_files.REPORT`), so that `--overwrite` removes
# those and nothing else.
REPORT_RECORD = owned_files.REPORT.filename


def _report_names() -> List[str]:
  return list(OUTPUT_FILES) + [f'scores_{name}.csv' for name in baselines_lib.NAMES]


def check_output_dir(output_dir: str, overwrite: bool = False) -> List[str]:
  """Checks that `output_dir` holds no earlier report, or, with `overwrite`, only one that
  this evaluator wrote; returns the files of that report (to be removed).

  Raises:
    FileExistsError: a report is there and `overwrite` is off.
    ValueError: with `overwrite`, a report file that no earlier run of the evaluator
      recorded (it is never deleted).
  """
  import tensorflow as tf
  if not tf.io.gfile.exists(output_dir):
    return []
  if not tf.io.gfile.isdir(output_dir):
    raise ValueError(f'--output_dir {output_dir} exists and is not a directory')
  present = set(name.rstrip('/') for name in tf.io.gfile.listdir(output_dir))
  report_files = sorted(present & set(_report_names()))
  if not report_files and REPORT_RECORD not in present:
    return []
  if not overwrite:
    shown = ', '.join(report_files[:4]) or REPORT_RECORD
    raise FileExistsError(f'--output_dir {output_dir} already holds a report ({shown}); pass '
                          '--overwrite to replace it, or use another --output_dir')
  own = []
  if REPORT_RECORD in present:
    own = owned_files.Record(output_dir, owned_files.REPORT).files
  else:
    # A report written before the record existed: its files are ours if its summary is.
    try:
      with tf.io.gfile.GFile(os.path.join(output_dir, 'summary.json')) as f:
        summary = json.load(f)
      if isinstance(summary, dict) and {'msi', 'per_count', 'num_examples'} <= set(summary):
        own = report_files
    except (ValueError, tf.errors.OpError):
      pass
  foreign = [name for name in report_files if name not in own]
  if foreign:
    raise ValueError(f'--output_dir {output_dir}: {", ".join(foreign)} was not written by '
                     'mixit-evaluate; refusing to replace it: use another --output_dir')
  remove = [name for name in own if name in present and '/' not in name]
  if REPORT_RECORD in present:
    remove.append(REPORT_RECORD)
  return remove


def write_report(result: EvaluationResult, output_dir: str, label: Optional[str] = None,
                 compare: Sequence[str] = (), overwrite: bool = False) -> dict:
  """Writes scores, summaries and plots to `output_dir` and returns the summary.

  Args:
    result: from `evaluate` / `evaluate_separated`.
    output_dir: local or gs:// folder (created).
    label: run name in the summary and the plots.
    compare: `summary.json` files of other runs, overlaid on the MSi-vs-1S plot and listed
      in the text summary.
    overwrite: replace an earlier report in `output_dir` (its files, as it recorded them, are
      removed first, so no stale baseline CSV stays beside the new scores); without it an
      earlier report raises FileExistsError. Other files are never touched.
  """
  import tensorflow as tf
  from eval import plots
  from eval import report
  comparisons = []
  for path in compare:
    other = report.read_summary_json(path)
    if not other.get('label'):
      other['label'] = os.path.basename(os.path.dirname(os.path.abspath(path))) or path
    comparisons.append(other)
  old_files = check_output_dir(output_dir, overwrite)
  tf.io.gfile.makedirs(output_dir)
  # A report lists the files of the top level only (a user's subfolder is never walked).
  before = set(owned_files.list_files(output_dir, subfolders=())) - set(old_files)
  owned_files.remove_files(output_dir, old_files)
  summary = result.summary(label)
  report.write_scores_csv(result.rows, os.path.join(output_dir, 'scores.csv'))
  for name, rows in result.baseline_rows.items():
    report.write_scores_csv(rows, os.path.join(output_dir, f'scores_{name}.csv'))
  report.write_json(summary, os.path.join(output_dir, 'summary.json'))
  text = report.format_summary(summary, comparisons)
  with tf.io.gfile.GFile(os.path.join(output_dir, 'summary.txt'), 'w') as f:
    f.write(text)
  runs = [(label or 'model', summary)] + [(other['label'], other) for other in comparisons]
  plots.plot_msi_vs_1s(runs, os.path.join(output_dir, 'msi_vs_1s.png'))
  plots.plot_per_count(summary, os.path.join(output_dir, 'sisnri_per_count.png'), label)
  plots.plot_separation_counts(summary, os.path.join(output_dir, 'separation_counts.png'))
  plots.plot_over_separation(result.rows, os.path.join(output_dir, 'over_separation.png'),
                             label)
  written = sorted(set(owned_files.list_files(output_dir, subfolders=())) - before
                   - {REPORT_RECORD})
  owned_files.Record(output_dir, owned_files.REPORT).write(written)
  return summary


def evaluate_and_report(example_list: str, output_dir: str, saved_model: Optional[str] = None,
                        separated_dir: Optional[str] = None, label: Optional[str] = None,
                        compare: Sequence[str] = (), batch_size: int = 4,
                        max_examples: Optional[int] = None, skip_bad: bool = False,
                        baselines: Sequence[str] = baselines_lib.NAMES,
                        progress: bool = True, overwrite: bool = False,
                        allow_outside_root: bool = False) -> dict:
  """What `mixit-evaluate` does: evaluate a SavedModel or separated files, write the report.

  `allow_outside_root`: accept listed paths outside the list's folder (refused by default).

  Exactly one of `saved_model` and `separated_dir` must be given. An earlier report in
  `output_dir` is refused before anything is scored unless `overwrite` (see
  `write_report`); an example listed twice is refused. Returns the summary.
  """
  if (saved_model is None) == (separated_dir is None):
    raise ValueError('give exactly one of --saved_model and --separated_dir')
  check_output_dir(output_dir, overwrite)
  examples = fuss_data.read_example_list(example_list, check_files=not skip_bad,
                                         allow_outside_root=allow_outside_root,
                                         duplicates='error')
  if label is None:
    label = os.path.basename(os.path.normpath(saved_model or separated_dir))
  if saved_model is not None:
    separator = SavedModelSeparator(saved_model)
    result = evaluate(separator, examples, batch_size=batch_size, max_examples=max_examples,
                      skip_bad=skip_bad, baselines=baselines, progress=progress,
                      sample_rate=separator.sample_rate)
  else:
    result = evaluate_separated(separated_dir, examples, max_examples=max_examples,
                                skip_bad=skip_bad, baselines=baselines, progress=progress)
  return write_report(result, output_dir, label=label, compare=compare, overwrite=overwrite)
