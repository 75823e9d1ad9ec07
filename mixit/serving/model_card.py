"""The model card written with every export: a `README.md` inside the export dir.

It says what the model is (M, sample rate, exact parameter count), the
training bindings that matter (losses and their weights, steps, data root), the
FUSS evaluation figures when an evaluation `summary.json` is in the model dir
(or passed), and how to load the export in plain TensorFlow, in
`mixit.load_separator` and, when a `.tflite` was written, in LiteRT.

File safety: the card is `README.md` unless the export dir already holds a
`README.md` the export did not write (a user's notes); then the card goes to
`MODEL_CARD.md`, and if that is taken too the export refuses with a one-line
error. The card is listed in `mixit_export.json` "files" and ends with a marker
line, so `--overwrite` deletes it on the next export, unless a user has since
replaced it with a file of their own (no marker), which is kept.
"""
from __future__ import annotations

import json
import os
import re
from typing import List, Optional

import tensorflow as tf

from mixit import gin_config
from mixit.serving import separator as separator_lib

CARD_NAMES = ('README.md', 'MODEL_CARD.md')
SUMMARY_FILENAME = 'summary.json'
# The config lines a reader of the card needs: losses and weights, steps, data.
_KEY_BINDING = re.compile(r'^\s*[\w./%]*(loss|weight|step|data_root|DATA_ROOT|batch_size|'
                          r'learning_rate|NUM_SOURCES|SAMPLE_RATE|front_end|mixture)'
                          r'[\w./]*\s*=', re.IGNORECASE)


_MARK = '<!-- model card written by mixit-export -->'


def is_card(path: str) -> bool:
  """Whether `path` is a card this module wrote (a user's file with the name is not)."""
  if not tf.io.gfile.exists(path):
    return False
  with tf.io.gfile.GFile(path) as f:
    return f.read().rstrip().endswith(_MARK)


def card_path(output_dir: str) -> str:
  """Where the card goes: the first of CARD_NAMES not already in `output_dir`.

  Raises:
    FileExistsError: every name is taken by a file the export did not write.
  """
  for name in CARD_NAMES:
    path = os.path.join(output_dir, name)
    if not tf.io.gfile.exists(path):
      return path
  raise FileExistsError(f'{output_dir} already holds {" and ".join(CARD_NAMES)} that this '
                        f'export did not write; move one of them to export a model card')


def key_bindings(model_dir: str) -> List[str]:
  """The lines of `model_dir/config.gin` that bind losses, weights, steps and data."""
  path = os.path.join(model_dir, gin_config.CONFIG_FILENAME)
  if not tf.io.gfile.exists(path):
    return []
  with tf.io.gfile.GFile(path) as f:
    lines = f.read().splitlines()
  return [line.strip() for line in lines
          if _KEY_BINDING.match(line) and not line.lstrip().startswith('#')]


def find_summary(model_dir: str, summary_path: Optional[str] = None) -> Optional[dict]:
  """The FUSS `summary.json` passed, or the one in `model_dir`, or None."""
  path = summary_path or os.path.join(model_dir, SUMMARY_FILENAME)
  if not tf.io.gfile.exists(path):
    if summary_path:
      raise FileNotFoundError(f'--eval_summary {summary_path} not found')
    return None
  with tf.io.gfile.GFile(path) as f:
    try:
      summary = json.load(f)
    except ValueError as e:
      raise ValueError(f'{path}: not valid JSON ({e})') from e
  if not isinstance(summary, dict) or 'msi' not in summary or '1s' not in summary:
    raise ValueError(f'{path}: not a FUSS summary.json (needs "msi" and "1s")')
  return summary


def _figure(value) -> str:
  return 'n/a' if value is None else f'{float(value):.2f}'


def render(metadata: dict, bindings: List[str], summary: Optional[dict] = None) -> str:
  """The card's Markdown text."""
  m, rate = metadata['num_sources'], metadata['sample_rate']
  lines = [
      '# MixIT sound separation model (TDCN++)', '',
      'A universal sound separation network trained with mixture invariant training '
      '(MixIT; Wisdom et al., "Sparse, Efficient, and Semantic Mixture Invariant Training", '
      '2021), exported by `mixit-export`.', '',
      '| | |', '| --- | --- |',
      f'| output sources (M) | {m} |',
      f'| sample rate | {rate} Hz (mono) |',
      f'| parameters | {metadata["num_parameters"]} |',
      f'| classes | {metadata.get("num_classes", 0)} |',
      f'| training step | {metadata.get("step")} |',
      f'| checkpoint | `{metadata.get("checkpoint")}` |',
      f'| model dir | `{metadata.get("model_dir")}` |', '',
      '## Training config', '',
      'The bindings of the run\'s `config.gin` that set the losses and their weights, the '
      'steps and the data:', '', '```']
  lines += bindings or ['(no config.gin bindings found)']
  lines += ['```', '', '## Data', '']
  roots = [line.split('=', 1)[1].strip() for line in bindings
           if re.match(r'\s*(DATA_ROOT|[\w.]*data_root)\s*=', line)]
  lines.append(f'Trained on the mixtures under {", ".join(f"`{r}`" for r in roots)} '
               '(unsupervised: mixtures of mixtures, no reference sources).' if roots else
               'The data root is not recorded in the config.')
  lines.append('')
  if summary is not None:
    lines += ['## Evaluation (FUSS)', '',
              f'{summary.get("num_examples", "?")} examples scored.', '',
              '| metric | value |', '| --- | --- |',
              f'| MSi: SI-SNRi, 2+ sources (dB) | {_figure(summary.get("msi"))} |',
              f'| 1S: SI-SNR, 1 source (dB) | {_figure(summary.get("1s"))} |',
              f'| under-separation rate | {_figure(summary.get("under_separation"))} |',
              f'| over-separation rate | {_figure(summary.get("over_separation"))} |', '']
  lines += ['## Usage', '', 'Plain TensorFlow (nothing of mixit needed):', '', '```python',
            'import tensorflow as tf',
            "model = tf.saved_model.load('EXPORT_DIR')",
            "separate = model.signatures['serving_default']",
            f'# mixture: float32 [batch, time] at {rate} Hz',
            f"sources = separate({separator_lib.INPUT_KEY}=mixture)"
            f"['{separator_lib.OUTPUT_KEY}']  # [batch, {m}, time]",
            '```', '', 'With mixit (long inputs in overlapping windows):', '', '```python',
            'import mixit', "separator = mixit.load_separator('EXPORT_DIR')",
            'sources = separator.separate_at_model_rate(waveform)  # [M, time]', '```', '']
  litert = metadata.get('litert')
  if litert:
    window = litert['window_samples']
    lines += ['LiteRT (on device; `pip install ai-edge-litert`):', '', '```python',
              'import numpy as np',
              'from ai_edge_litert.interpreter import Interpreter',
              f"runner = Interpreter(model_path='EXPORT_DIR/{litert['file']}', num_threads=2)",
              'runner.allocate_tensors()',
              f'window = np.zeros([1, {window}], np.float32)  # zero-padded mixture, {rate} Hz',
              "runner.set_tensor(runner.get_input_details()[0]['index'], window)",
              'runner.invoke()',
              "sources = runner.get_tensor(runner.get_output_details()[0]['index'])"
              f'  # [1, {m}, {window}]',
              '```', '',
              f'The `.tflite` takes a fixed window of {window} samples '
              f'({litert["window_seconds"]:g} s): pad a shorter mixture with zeros and cut the '
              'outputs back; run a long recording window by window.', '']
    quantized = litert.get('quantized')
    if quantized:
      kind = {'dynamic_int8': 'int8 weights (dynamic-range quantisation; the front end, '
                              'the first dense layer and the depthwise convolutions '
                              'stay float32)',
              'float16': 'float16 weights'}[quantized['quantization']]
      lines += [f'`{quantized["file"]}` is the same model with {kind}: '
                f'{quantized["size_bytes"] / 1e6:.1f} MB against {litert["size_bytes"] / 1e6:.1f} '
                'MB for the float `.tflite`, used the same way. Check its separation on your '
                'own audio against the float model before you deploy it.', '']
      check = quantized.get('check')
      if check:
        snr, seconds = check['si_snr_vs_float_db'], check['median_seconds']
        lines += [f'At export, on {check["input"]} with {check["threads"]} interpreter threads: '
                  f'{seconds["quantized"]:.3f} s per window against {seconds["float32"]:.3f} s '
                  f'for the float `.tflite`; its outputs against the float model\'s, SI-SNR '
                  f'{snr["worst"]:.1f} dB for the worst source, {snr["median"]:.1f} dB median.',
                  '']
  lines.append(_MARK)
  return '\n'.join(lines) + '\n'


def write(output_dir: str, metadata: dict, model_dir: str,
          summary_path: Optional[str] = None) -> str:
  """Writes the card into `output_dir`; returns its file name (relative)."""
  path = card_path(output_dir)
  text = render(metadata, key_bindings(model_dir), find_summary(model_dir, summary_path))
  with tf.io.gfile.GFile(path, 'w') as f:
    f.write(text)
  return os.path.basename(path)
