"""FUSS evaluation plots (matplotlib, Agg): MSi vs 1S, SI-SNRi per count, separation counts."""
from __future__ import annotations

import io
from typing import Optional, Sequence, Tuple

import matplotlib

matplotlib.use('Agg')
import matplotlib.patches
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from eval import baselines as baselines_lib


def _save(figure, path: str) -> None:
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=110, bbox_inches='tight')
  plt.close(figure)
  with tf.io.gfile.GFile(path, 'wb') as f:
    f.write(buffer.getvalue())


def plot_msi_vs_1s(runs: Sequence[Tuple[str, dict]], path: str) -> None:
  """MSi (x) against 1S (y), one point per run, as the paper's figures show models.

  Args:
    runs: (label, summary) pairs; the first is the run being reported, the others come from
      `--compare`. The first run's oracle-mask baseline is drawn as a grey cross and its
      no-separation floor (MSi = 0 dB) as a dashed line.
    path: PNG file.
  """
  figure, axes = plt.subplots(figsize=(6, 4.5))
  colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
  points = []  # (msi, 1s, scatter kwargs, annotation)
  for index, (label, summary) in enumerate(runs):
    if summary.get('msi') is None or summary.get('1s') is None:
      continue
    points.append((summary['msi'], summary['1s'],
                   dict(s=60, color=colors[index % len(colors)], label=label, zorder=3,
                        marker='o' if index == 0 else 's'), label))
  plotted = len(points)
  own_baselines = (runs[0][1].get('baselines') or {}) if runs else {}
  oracle = own_baselines.get(baselines_lib.ORACLE_BINARY_MASK)
  if oracle and oracle.get('msi') is not None and oracle.get('1s') is not None:
    points.append((oracle['msi'], oracle['1s'],
                   dict(marker='x', color='grey', s=60, zorder=3,
                        label=baselines_lib.TITLES[baselines_lib.ORACLE_BINARY_MASK]), None))
  scatter_with_cap(axes, points)
  if baselines_lib.MIXTURE in own_baselines:
    axes.axvline(0.0, color='grey', linestyle='--', linewidth=1,
                 label=baselines_lib.TITLES[baselines_lib.MIXTURE] + ': MSi = 0')
  if not plotted:
    axes.text(0.5, 0.5, 'no run has both 1- and multi-source examples',
              transform=axes.transAxes, ha='center', va='center')
  axes.set_xlabel('MSi: SI-SNRi on 2-4 source mixtures (dB)')
  axes.set_ylabel('1S: SI-SNR on 1-source mixtures (dB)')
  axes.grid(True, alpha=0.3)
  if axes.get_legend_handles_labels()[0]:  # nothing labelled: no empty legend box
    axes.legend(fontsize=8, loc='best')
  _save(figure, path)


# SI-SNR saturates at +-10 log10((1 + 1e-8) / 1e-8) = 80 dB (the evaluator's power epsilon): a
# perfect 1-source estimate, such as the oracle mask's, reads +80 dB.
SI_SNR_CAP_DB = 80.0
_CAPPED_DB = SI_SNR_CAP_DB - 1.0


def scatter_with_cap(axes, points, ceiling_db: float = _CAPPED_DB,
                     note: str = 'SI-SNR cap') -> None:
  """Scatters (x, y, kwargs, label) points; a |y| at or above `ceiling_db` (by default the
  SI-SNR cap) is drawn on the top (bottom) edge as a triangle labelled with its value and
  `note`, so that it does not squash the points of real models."""
  uncapped = [y for _, y, _, _ in points if abs(y) < ceiling_db]
  capped = [p for p in points if abs(p[1]) >= ceiling_db]
  if uncapped and capped:
    top = max(uncapped) + max(3.0, 0.15 * (max(uncapped) - min(uncapped)))
    bottom = min(uncapped) - max(3.0, 0.15 * (max(uncapped) - min(uncapped)))
  else:
    top = bottom = None
  for x, y, kwargs, label in points:
    if top is not None and abs(y) >= ceiling_db:
      kwargs = dict(kwargs, marker='^' if y > 0 else 'v')
      edge = top if y > 0 else bottom
      axes.scatter(x, edge, **kwargs, clip_on=False)
      axes.annotate(f'{y:.0f} dB ({note})', (x, edge), textcoords='offset points',
                    xytext=(6, -10 if y > 0 else 6), fontsize=7, color='grey')
    else:
      axes.scatter(x, y, **kwargs)
    if label is not None:
      axes.annotate(label, (x, edge if top is not None and abs(y) >= ceiling_db else y),
                    textcoords='offset points', xytext=(6, 4), fontsize=8)
  if top is not None:
    axes.set_ylim(bottom, top)


def plot_over_separation(rows: Sequence[dict], path: str, label: Optional[str] = None) -> None:
  """Three panels of the over-separation diagnostics of one run's `scores.csv` rows.

  Left: active outputs against active references per example (jittered), with the
  diagonal of equal counts. Middle: for 1-source examples, the loudest output's share
  of the input power, in dB (0 dB: one output holds everything). Right: mean
  |correlation| between active outputs (1: scaled copies).
  """
  figure, (left, middle, right) = plt.subplots(1, 3, figsize=(12, 3.4))
  title = f' ({label})' if label else ''
  if rows:
    refs = np.array([int(r['num_active_refs']) for r in rows], float)
    seps = np.array([int(r['num_active_seps']) for r in rows], float)
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, size=(2, len(rows)))
    left.scatter(refs + jitter[0], seps + jitter[1], s=12, alpha=0.6)
    top = max(refs.max(), seps.max()) + 0.5
    left.plot([0, top], [0, top], color='grey', linestyle='--', linewidth=1, label='equal')
    left.legend(fontsize=8, loc='upper left')
  left.set_xlabel('active references')
  left.set_ylabel('active outputs')
  left.set_title('active outputs per example' + title, fontsize=9)
  left.grid(True, alpha=0.3)
  shares = [float(r['loudest_output_share']) for r in rows
            if int(r['num_active_refs']) == 1 and r.get('loudest_output_share') is not None]
  if shares:
    middle.hist(10 * np.log10(np.maximum(shares, 1e-6)), bins=20, color='tab:blue')
  else:
    middle.text(0.5, 0.5, 'no 1-source examples', transform=middle.transAxes, ha='center')
  middle.set_xlabel("loudest output's share of the input (dB)")
  middle.set_ylabel('1-source examples')
  middle.set_title('1 source: power in the loudest output', fontsize=9)
  middle.grid(True, alpha=0.3)
  correlations = [float(r['mean_abs_correlation']) for r in rows
                  if r.get('mean_abs_correlation') is not None]
  if correlations:
    right.hist(correlations, bins=np.linspace(0, 1, 21), color='tab:red')
  else:
    right.text(0.5, 0.5, 'no example with 2+ active outputs', transform=right.transAxes,
               ha='center')
  right.set_xlabel('mean |correlation| between active outputs')
  right.set_ylabel('examples')
  right.set_title('copies read 1', fontsize=9)
  right.grid(True, alpha=0.3)
  figure.subplots_adjust(wspace=0.35)
  _save(figure, path)


def plot_per_count(summary: dict, path: str, label: Optional[str] = None) -> None:
  """Mean (+/- std) SI-SNR of 1-source examples and SI-SNRi per source count, with baselines.

  Args:
    summary: a summary with optional `baselines`.
    path: PNG file.
    label: name of the run (default: summary['label'] or 'model').
  """
  systems = [(label or summary.get('label') or 'model', summary)]
  systems += [(baselines_lib.TITLES.get(name, name), s)
              for name, s in (summary.get('baselines') or {}).items()]
  counts = sorted({int(c) for _, s in systems for c in s.get('per_count', {})})
  multi = [c for c in counts if c >= 2]
  figure, (left, right) = plt.subplots(
      1, 2, figsize=(9, 4), gridspec_kw={'width_ratios': [1, max(len(multi), 1)]})
  width = 0.8 / len(systems)
  for index, (name, s) in enumerate(systems):
    stats = s.get('per_count', {})
    one = stats.get('1', {})
    if one.get('sisnr_mean') is not None:
      left.bar(index * width, one['sisnr_mean'], width, yerr=one['sisnr_std'], capsize=3,
               label=name)
    means = [stats.get(str(c), {}).get('sisnri_mean') for c in multi]
    stds = [stats.get(str(c), {}).get('sisnri_std') for c in multi]
    x = np.arange(len(multi)) + index * width - 0.4 + width / 2
    have = [i for i, m in enumerate(means) if m is not None]
    if have:
      right.bar(x[have], [means[i] for i in have], width, yerr=[stds[i] for i in have],
                capsize=3, label=name)
  left.set_xticks([])
  left.set_title('1 source: SI-SNR (dB)')
  left.grid(True, axis='y', alpha=0.3)
  right.set_xticks(np.arange(len(multi)), [str(c) for c in multi])
  right.set_xlabel('active reference sources')
  right.set_title('SI-SNRi (dB)')
  right.axhline(0.0, color='black', linewidth=0.8)
  right.grid(True, axis='y', alpha=0.3)
  handles, labels = left.get_legend_handles_labels()
  if not handles:
    handles, labels = right.get_legend_handles_labels()
  if handles:
    figure.legend(handles, labels, loc='upper center', ncol=len(systems), fontsize=8,
                  bbox_to_anchor=(0.5, 0.0))
  _save(figure, path)


def plot_separation_counts(summary: dict, path: str) -> None:
  """Histograms of active-estimate counts, one panel per active-reference count.

  The bar where the two counts are equal is green; bars left of it are under-separation,
  right of it over-separation.
  """
  table = summary.get('separation_counts') or {}
  ref_counts = sorted(int(c) for c in table)
  if not ref_counts:
    figure, axes = plt.subplots(figsize=(4, 3))
    axes.text(0.5, 0.5, 'no examples scored', ha='center', va='center')
    axes.set_axis_off()
    _save(figure, path)
    return
  max_estimates = max(int(e) for row in table.values() for e in row)
  max_estimates = max(max_estimates, max(ref_counts))
  figure, axes = plt.subplots(1, len(ref_counts), figsize=(3 * len(ref_counts), 3),
                              sharey=True, squeeze=False)
  for axis, ref_count in zip(axes[0], ref_counts):
    row = table[str(ref_count)]
    x = np.arange(max_estimates + 1)
    heights = [row.get(str(e), 0) for e in x]
    colors = ['tab:green' if e == ref_count else ('tab:orange' if e < ref_count else 'tab:red')
              for e in x]
    axis.bar(x, heights, color=colors)
    axis.set_xticks(x)
    axis.set_title(f'{ref_count} active reference(s)', fontsize=9)
    axis.set_xlabel('active estimates')
    axis.grid(True, axis='y', alpha=0.3)
  axes[0][0].set_ylabel('examples')
  legend = [matplotlib.patches.Patch(color=color, label=label) for color, label in (
      ('tab:orange', 'under-separated'), ('tab:green', 'equal'), ('tab:red', 'over-separated'))]
  figure.legend(handles=legend, loc='upper center', ncol=3, fontsize=8,
                bbox_to_anchor=(0.5, 0.0))
  _save(figure, path)
