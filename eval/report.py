"""FUSS evaluation reports: scores.csv, summary.json and the text summary.

`scores.csv` holds one row per scored example. Columns: `example` (mixture file stem),
`line_number`, `num_sources` (listed), `num_outputs` (M), `num_slots` (max of the two),
`num_active_refs`, `num_active_seps`, `num_active_pairs`, `under/equal/over_separation` (0/1),
then per reference slot k = 1..num_slots: `estimate_index_source<k>` (the output aligned to
slot k, >= num_outputs for zero padding), `active_ref_`, `active_sep_`, `active_pair_` (0/1),
`power_sources_`, `power_separated_` (mean square), `sisnr_separated_`, `sisnr_mixture_`,
`sisnr_improvement_source<k>` (dB). The over-separation diagnostics `loudest_output_share`
(loudest output's power / input power) and `mean_abs_correlation` (mean |cosine| between
active outputs; empty with fewer than two) follow the counts; they are not FUSS figures.
Floats are written with all their digits, so the CSV re-reads to exactly the same summary;
cells of slots an example does not have are empty.
"""
from __future__ import annotations

import csv
import io
import json
from typing import List, Optional, Sequence

import tensorflow as tf

from eval import baselines as baselines_lib

_INT_COLUMNS = ('line_number', 'num_sources', 'num_outputs', 'num_slots', 'num_active_refs',
                'num_active_seps', 'num_active_pairs', 'under_separation', 'equal_separation',
                'over_separation')
# Over-separation diagnostics of `eval.fuss.score_row` (empty when undefined).
_FLOAT_COLUMNS = ('loudest_output_share', 'mean_abs_correlation')
_SLOT_INT_KEYS = ('estimate_index', 'active_ref', 'active_sep', 'active_pair')
_SLOT_FLOAT_KEYS = ('power_sources', 'power_separated', 'sisnr_separated', 'sisnr_mixture',
                    'sisnr_improvement')


def score_columns(num_slots: int) -> List[str]:
  """CSV header for rows of up to `num_slots` reference slots."""
  columns = ['example', *_INT_COLUMNS, *_FLOAT_COLUMNS]
  for key in _SLOT_INT_KEYS + _SLOT_FLOAT_KEYS:
    columns += [f'{key}_source{k}' for k in range(1, num_slots + 1)]
  return columns


def _cell(value) -> str:
  if value is None:
    return ''
  if isinstance(value, float):
    return repr(value)  # shortest string that reads back to the same double
  return str(value)


def write_scores_csv(rows: Sequence[dict], path: str) -> None:
  """Writes one line per example (local or gs:// path)."""
  num_slots = max((int(row['num_slots']) for row in rows), default=0)
  columns = score_columns(num_slots)
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator='\n')
  writer.writerow(columns)
  for row in rows:
    unknown = set(row) - set(columns)
    if unknown:
      raise ValueError(f'row of {row.get("example")} has unknown columns {sorted(unknown)}')
    writer.writerow([_cell(row.get(column)) for column in columns])
  with tf.io.gfile.GFile(path, 'w') as f:
    f.write(buffer.getvalue())


def read_scores_csv(path: str) -> List[dict]:
  """Reads `scores.csv` back into rows with the types `eval.fuss.score_row` gives."""
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f'scores file not found: {path}')
  with tf.io.gfile.GFile(path, 'r') as f:
    reader = csv.DictReader(io.StringIO(f.read()))
    raw_rows = list(reader)
    header = reader.fieldnames or []
  missing = [column for column in score_columns(0)
             if column not in header and column not in _FLOAT_COLUMNS]
  if missing:
    raise ValueError(f'{path}: not a scores.csv (missing columns {missing})')
  rows = []
  for line, raw in enumerate(raw_rows, start=2):
    row = {'example': raw['example']}
    try:
      for column in _INT_COLUMNS:
        row[column] = int(raw[column]) if raw[column] != '' else None
      for column in _FLOAT_COLUMNS:  # absent from reports written before they existed
        value = raw.get(column, '')
        row[column] = float(value) if value not in ('', None) else None
      for key in _SLOT_INT_KEYS + _SLOT_FLOAT_KEYS:
        convert = int if key in _SLOT_INT_KEYS else float
        for k in range(1, row['num_slots'] + 1):
          row[f'{key}_source{k}'] = convert(raw[f'{key}_source{k}'])
    except (KeyError, TypeError, ValueError) as e:
      raise ValueError(f'{path}:{line}: bad or missing value ({e})') from e
    rows.append(row)
  return rows


def write_json(data: dict, path: str) -> None:
  with tf.io.gfile.GFile(path, 'w') as f:
    f.write(json.dumps(data, indent=2, allow_nan=False) + '\n')


def read_summary_json(path: str) -> dict:
  """Reads a `summary.json` (e.g. of another run, for `--compare`)."""
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f'summary file not found: {path}')
  with tf.io.gfile.GFile(path, 'r') as f:
    try:
      summary = json.loads(f.read())
    except json.JSONDecodeError as e:
      raise ValueError(f'{path}: not valid JSON ({e})') from e
  missing = [key for key in ('msi', '1s', 'per_count', 'num_examples') if key not in summary]
  if missing:
    raise ValueError(f'{path}: not a FUSS summary.json (missing keys {missing})')
  return summary


def _db(value: Optional[float], std: Optional[float] = None) -> str:
  if value is None:
    return 'n/a'
  return f'{value:6.2f}' if std is None else f'{value:6.2f} +/- {std:5.2f}'


def _rate(value: Optional[float]) -> str:
  return 'n/a' if value is None else f'{value:.2f}'


def format_summary(summary: dict, comparisons: Sequence[dict] = ()) -> str:
  """Text report: the model with its baselines beside it, then the compared runs."""
  label = summary.get('label') or 'model'
  columns = [(label, summary)]
  for name, baseline in (summary.get('baselines') or {}).items():
    columns.append((baselines_lib.TITLES.get(name, name), baseline))
  for other in comparisons:
    columns.append((other.get('label') or 'compared run', other))
  counts = sorted({int(c) for _, s in columns for c in s.get('per_count', {})})
  lines = [f'FUSS evaluation of {label}: {summary["num_examples"]} examples scored']
  skipped = summary.get('skipped')
  if skipped:
    lines.append(f'skipped: {skipped["silent_references"]} with all-zero references, '
                 f'{skipped["bad_input"]} bad input')
    lines += [f'  {reason}' for reason in skipped.get('bad_input_reasons', [])[:20]]
  lines.append('')
  width = max(24, *(len(name) + 2 for name, _ in columns))
  lines.append(f'{"":34}' + ''.join(f'{name:>{width}}' for name, _ in columns))

  def add(title, values):
    lines.append(f'{title:34}' + ''.join(f'{value:>{width}}' for value in values))

  add('1S: SI-SNR, 1 source (dB)', [_db(s.get('1s'), s.get('1s_std')) for _, s in columns])
  add('MSi: SI-SNRi, 2+ sources (dB)', [_db(s.get('msi'), s.get('msi_std'))
                                         for _, s in columns])
  for count in counts:
    stats = [s.get('per_count', {}).get(str(count), {}) for _, s in columns]
    if count >= 2:  # 1-source examples are scored by SI-SNR (1S) above
      add(f'SI-SNRi, {count} sources (dB)',
          [_db(c.get('sisnri_mean'), c.get('sisnri_std')) for c in stats])
    add(f'  pairs / examples, {count} source(s)',
        [f'{c.get("num_pairs", 0)} / {c.get("num_examples", 0)}' for c in stats])
  for key in ('under_separation', 'equal_separation', 'over_separation'):
    add(key.replace('_', ' '), [_rate(s.get(key)) for _, s in columns])
  add('examples', [str(s.get('num_examples')) for _, s in columns])
  lines.append('')
  lines.append('In the words of the public FUSS evaluator (model):')
  per_count = summary.get('per_count', {})
  if '1' in per_count:
    lines.append(f'SI-SNR for count(s) [1] = {_db(summary["1s"], summary["1s_std"]).strip()} dB')
  for count in counts:
    if count >= 2 and str(count) in per_count:
      stats = per_count[str(count)]
      lines.append(f'SI-SNRi for count(s) [{count}] = '
                   f'{_db(stats["sisnri_mean"], stats["sisnri_std"]).strip()} dB')
  multi = [c for c in counts if c >= 2]
  if multi:
    lines.append(f'SI-SNRi for count(s) {multi} = '
                 f'{_db(summary["msi"], summary["msi_std"]).strip()} dB')
  for key in ('under_separation', 'equal_separation', 'over_separation'):
    lines.append(f'{key.replace("_", " ").capitalize()}: {_rate(summary.get(key))}')
  lines += _diagnostics_lines(summary.get('diagnostics'))
  return '\n'.join(lines) + '\n'


def _diagnostics_lines(diagnostics: Optional[dict]) -> List[str]:
  if not diagnostics:
    return []
  lines = ['', 'Over-separation diagnostics (model; not FUSS figures):']
  for count, stats in diagnostics.get('active_outputs', {}).items():
    lines.append(f'  active outputs, {count} active reference(s): {stats["mean"]:.2f} '
                 f'({stats["num_examples"]} examples)')
  if diagnostics.get('excess_active_outputs') is not None:
    lines.append(f'  active outputs - active references: '
                 f'{diagnostics["excess_active_outputs"]:+.2f} on average')
  share = diagnostics.get('1s_loudest_output_share')
  if share is not None:
    lines.append(f'  1-source examples, loudest output\'s share of the input power: {share:.2f} '
                 f'(mean of dB: {diagnostics["1s_loudest_output_share_db"]:.1f} dB)')
  correlation = diagnostics.get('mean_abs_correlation')
  if correlation is not None:
    lines.append(f'  mean |correlation| between active outputs: {correlation:.3f} '
                 f'({diagnostics["mean_abs_correlation_examples"]} examples with >= 2; '
                 f'1 = scaled copies)')
  return lines
