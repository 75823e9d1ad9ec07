"""FUSS evaluation plots (matplotlib, Agg): MSi vs 1S, SI-SNRi per count, separation counts."""
from __future__ import annotations

import io
from typing import Optional, Sequence, Tuple

import matplotlib

matplotlib.use('Agg')
import matplotlib.patches  # pylint: disable=g-import-not-at-top,wrong-import-position
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import tensorflow as tf  # pylint: disable=wrong-import-position

from eval import baselines as baselines_lib  # pylint: disable=wrong-import-position


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
  plotted = 0
  for index, (label, summary) in enumerate(runs):
    if summary.get('msi') is None or summary.get('1s') is None:
      continue
    axes.scatter(summary['msi'], summary['1s'], s=60, color=colors[index % len(colors)],
                 label=label, zorder=3, marker='o' if index == 0 else 's')
    axes.annotate(label, (summary['msi'], summary['1s']), textcoords='offset points',
                  xytext=(6, 4), fontsize=8)
    plotted += 1
  own_baselines = (runs[0][1].get('baselines') or {}) if runs else {}
  oracle = own_baselines.get(baselines_lib.ORACLE_BINARY_MASK)
  if oracle and oracle.get('msi') is not None and oracle.get('1s') is not None:
    axes.scatter(oracle['msi'], oracle['1s'], marker='x', color='grey', s=60, zorder=3,
                 label=baselines_lib.TITLES[baselines_lib.ORACLE_BINARY_MASK])
  if baselines_lib.MIXTURE in own_baselines:
    axes.axvline(0.0, color='grey', linestyle='--', linewidth=1,
                 label=baselines_lib.TITLES[baselines_lib.MIXTURE] + ': MSi = 0')
  if not plotted:
    axes.text(0.5, 0.5, 'no run has both 1- and multi-source examples',
              transform=axes.transAxes, ha='center', va='center')
  axes.set_xlabel('MSi: SI-SNRi on 2-4 source mixtures (dB)')
  axes.set_ylabel('1S: SI-SNR on 1-source mixtures (dB)')
  axes.grid(True, alpha=0.3)
  axes.legend(fontsize=8, loc='best')
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
