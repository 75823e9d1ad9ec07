"""The model card of an export: its figures against the network and the run's files,
the evaluation section only with a summary.json, and a user's README.md surviving."""
import json
import os

import numpy as np
import pytest

import mixit  # noqa: F401  (sets KERAS_BACKEND)

from mixit.serving import export
from mixit.serving import model_card

from test_litert import make_model_dir

SUMMARY = {'msi': 11.234, '1s': 37.5, 'under_separation': 0.125, 'over_separation': 0.375,
           'per_count': {}, 'num_examples': 17}


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  model_dir = tmp_path_factory.mktemp('run')
  network = make_model_dir(model_dir)
  with open(model_dir / 'config.gin', 'a') as f:
    f.write("\nmixit_loss.weight_sparsity = 0.1\ntrain.num_steps = 1234\n"
            "DATA_ROOT = '/data/fuss_planted'\n# commented.loss = 9\n")
  count = int(sum(np.prod(v.shape) for v in network.trainable_variables))
  return model_dir, count


def test_card_contents(run, tmp_path):
  model_dir, count = run
  out = tmp_path / 'export'
  metadata = export.export_saved_model(str(model_dir), str(out), verify=False)
  card = (out / 'README.md').read_text()
  assert metadata['model_card'] == 'README.md' and 'README.md' in metadata['files']
  assert '| output sources (M) | 8 |' in card
  assert '| sample rate | 16000 Hz (mono) |' in card
  assert f'| parameters | {count} |' in card
  for line in ('mixit_loss.weight_sparsity = 0.1', 'train.num_steps = 1234',
               "DATA_ROOT = '/data/fuss_planted'"):
    assert line in card
  assert 'commented.loss' not in card
  assert "`'/data/fuss_planted'`" in card
  assert "signatures['serving_default']" in card and 'mixit.load_separator' in card
  assert 'Evaluation' not in card and 'MSi' not in card
  assert 'ai_edge_litert' not in card  # no .tflite written


def test_card_evaluation_figures(run, tmp_path):
  model_dir, _ = run
  summary = tmp_path / 'summary.json'
  summary.write_text(json.dumps(SUMMARY))
  out = tmp_path / 'export'
  export.export_saved_model(str(model_dir), str(out), verify=False, eval_summary=str(summary))
  card = (out / 'README.md').read_text()
  assert '| MSi: SI-SNRi, 2+ sources (dB) | 11.23 |' in card
  assert '| 1S: SI-SNR, 1 source (dB) | 37.50 |' in card
  assert '| under-separation rate | 0.12 |' in card
  assert '| over-separation rate | 0.38 |' in card
  assert '17 examples' in card


def test_card_reads_summary_in_model_dir_and_rejects_bad_one(run, tmp_path):
  model_dir, _ = run
  (model_dir / 'summary.json').write_text(json.dumps(SUMMARY))
  try:
    export.export_saved_model(str(model_dir), str(tmp_path / 'a'), verify=False)
    assert '| 1S: SI-SNR, 1 source (dB) | 37.50 |' in (tmp_path / 'a' / 'README.md').read_text()
  finally:
    os.remove(model_dir / 'summary.json')
  bad = tmp_path / 'bad.json'
  bad.write_text('{"msi": 1}')
  with pytest.raises(ValueError, match='bad.json'):
    export.export_saved_model(str(model_dir), str(tmp_path / 'b'), verify=False,
                              eval_summary=str(bad))
  assert not (tmp_path / 'b').exists() or not os.listdir(tmp_path / 'b')


def test_user_readme_survives(run, tmp_path):
  model_dir, _ = run
  out = tmp_path / 'export'
  export.export_saved_model(str(model_dir), str(out), verify=False)
  # Re-export over its own card: the card is replaced, it is the export's file.
  export.export_saved_model(str(model_dir), str(out), verify=False, overwrite=True)
  assert (out / 'README.md').read_text().startswith('# MixIT')
  # A user's README.md: kept byte for byte, the card goes to MODEL_CARD.md.
  os.remove(out / 'README.md')
  (out / 'README.md').write_text('my notes\n')
  metadata = export.export_saved_model(str(model_dir), str(out), verify=False, overwrite=True)
  assert (out / 'README.md').read_text() == 'my notes\n'
  assert metadata['model_card'] == 'MODEL_CARD.md'
  assert 'README.md' not in metadata['files']
  assert (out / 'MODEL_CARD.md').read_text().startswith('# MixIT')
  # Both names taken by user files: a one-line refusal, nothing deleted.
  metadata_json = json.loads((out / 'mixit_export.json').read_text())
  metadata_json['files'].remove('MODEL_CARD.md')
  (out / 'mixit_export.json').write_text(json.dumps(metadata_json))
  with pytest.raises(FileExistsError, match='MODEL_CARD.md') as error:
    export.export_saved_model(str(model_dir), str(out), verify=False, overwrite=True)
  assert '\n' not in str(error.value)
  assert (out / 'README.md').read_text() == 'my notes\n'
  assert (out / 'MODEL_CARD.md').read_text().startswith('# MixIT')


def test_card_shows_litert_usage():
  metadata = {'num_sources': 4, 'sample_rate': 8000, 'num_parameters': 99,
              'litert': {'file': 'model.tflite', 'window_samples': 80000,
                         'window_seconds': 10.0}}
  card = model_card.render(metadata, [])
  assert "Interpreter(model_path='EXPORT_DIR/model.tflite'" in card
  assert 'np.zeros([1, 80000], np.float32)' in card and '[1, 4, 80000]' in card
  assert '(10 s)' in card


def test_export_command_writes_tflite_and_card_with_the_given_summary(run, tmp_path):
  """`mixit-export --litert --eval_summary S` (the console script): the flags reach the export."""
  import subprocess
  import sys
  from ai_edge_litert import interpreter as litert_interpreter
  model_dir, _ = run
  summary = tmp_path / 'summary.json'
  summary.write_text(json.dumps(SUMMARY))
  out = tmp_path / 'export'
  result = subprocess.run(
      [sys.executable, '-m', 'mixit.commands.export', f'--model_dir={model_dir}',
       f'--output_dir={out}', '--litert', '--litert_window_seconds=0.5',
       f'--eval_summary={summary}'],
      capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  card = (out / 'README.md').read_text()
  assert '| MSi: SI-SNRi, 2+ sources (dB) | 11.23 |' in card
  assert 'ai_edge_litert' in card
  runner = litert_interpreter.Interpreter(model_path=str(out / 'model.tflite'))
  (detail,) = runner.get_input_details()
  assert list(detail['shape']) == [1, 8000]  # 0.5 s at 16 kHz
