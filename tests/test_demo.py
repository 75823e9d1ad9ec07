"""Smoke test of the main job: the demo pipeline end to end at a tiny size."""
import json
import os
import subprocess
import sys

import numpy as np
import soundfile
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUMMARY_KEYS = {'msi', '1s', 'per_count', 'under_separation', 'equal_separation',
                'over_separation', 'num_examples', 'diagnostics'}
DIAGNOSTIC_KEYS = {'active_outputs', 'excess_active_outputs', '1s_loudest_output_share',
                   '1s_loudest_output_share_db', 'mean_abs_correlation',
                   'mean_abs_correlation_examples'}


def test_demo_end_to_end(tmp_path):
  out = tmp_path / 'demo'
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  proc = subprocess.run(
      [sys.executable, '-m', 'mixit.commands.demo', f'--output_dir={out}', '--num_steps=4',
       '--num_train=12', '--num_eval=5', '--seed=3',
       '--gin_param=training.eval_steps = 1', '--gin_param=training.checkpoint_every = 2'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  for name in ['data', 'model', 'saved_model', 'evaluation', 'separated']:
    assert str(out / name) in proc.stdout, name

  # Data: the FUSS layout and lists.
  for split in ['train', 'validation', 'eval']:
    assert (out / 'data' / f'{split}_example_list.txt').exists()

  # Training: checkpoints at steps 2 and 4 and the config that export re-reads.
  model_dir = out / 'model'
  assert tf.train.latest_checkpoint(str(model_dir)).endswith('ckpt-4')
  assert (model_dir / 'config.gin').exists()

  # The SavedModel loads with plain TF and separates into M sources that sum to the input.
  loaded = tf.saved_model.load(str(out / 'saved_model'))
  mixture = np.random.default_rng(0).normal(size=(2, 5000)).astype(np.float32) * 0.1
  separated = loaded.signatures['serving_default'](
      mixture_waveform=tf.constant(mixture))['separated_waveforms'].numpy()
  assert separated.shape == (2, 8, 5000)
  np.testing.assert_allclose(separated.sum(axis=1), mixture, atol=1e-4)

  # Evaluation: summary.json with the FUSS keys, consistent with the scores.
  with open(out / 'evaluation' / 'summary.json') as f:
    summary = json.load(f)
  assert SUMMARY_KEYS <= set(summary)
  assert summary['num_examples'] == 5
  rates = [summary[k] for k in ['under_separation', 'equal_separation', 'over_separation']]
  assert abs(sum(rates) - 1.0) < 1e-9
  # The over-separation diagnostics beside the FUSS figures, consistent with the counts.
  diagnostics = summary['diagnostics']
  assert DIAGNOSTIC_KEYS <= set(diagnostics)
  counted = sum(v['num_examples'] for v in diagnostics['active_outputs'].values())
  assert counted == summary['num_examples']
  assert diagnostics['excess_active_outputs'] is not None
  if '1' in summary['per_count']:
    assert 0 < diagnostics['1s_loudest_output_share']
    assert summary['per_count']['1']['sisnri_mean'] is None
  if diagnostics['mean_abs_correlation'] is not None:
    assert 0.0 <= diagnostics['mean_abs_correlation'] <= 1.0
  assert 'Over-separation diagnostics' in (out / 'evaluation' / 'summary.txt').read_text()
  for png in ['msi_vs_1s.png', 'sisnri_per_count.png', 'separation_counts.png',
              'over_separation.png']:
    assert (out / 'evaluation' / png).stat().st_size > 1000

  # Separation: one wav per source, decoding to signals that sum to the mixture file.
  wavs = sorted((out / 'separated').glob('example00000_source*.wav'))
  assert len(wavs) == 8
  sources = np.stack([soundfile.read(str(w), dtype='float32')[0] for w in wavs])
  mixture_file, _ = soundfile.read(str(out / 'data' / 'eval' / 'example00000.wav'),
                                   dtype='float32')
  assert sources.shape[1] == mixture_file.shape[0]
  np.testing.assert_allclose(sources.sum(axis=0), mixture_file, atol=2e-4)
