"""mixit-separate-beam: the separation of mixit-separate run on Apache Beam (DirectRunner /
FnApiRunner here), bit for bit the same outputs, its inputs (file, folder, glob, list file),
reruns that skip what is complete and redo what a killed attempt left, bad files, the
records concurrent workers write, the command line, and the base install without Beam.

Skipped when apache_beam is not installed (`pip install ".[beam]"`; `.ci/run` installs it).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

beam = pytest.importorskip('apache_beam')

from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from data_pipeline import audio_io  # noqa: E402
from eval import fuss  # noqa: E402
from mixit import owned_files  # noqa: E402
from mixit.serving import separate  # noqa: E402
from mixit.serving import separate_beam  # noqa: E402
from mixit.serving import separator as separator_lib  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE = 8000
# Beam's Python runner, in this process: the DirectRunner of Beam >= 2.6x may try Prism first
# (a binary it downloads); FnApiRunner is what it falls back to.
IN_PROCESS = ['--runner=FnApiRunner']
OPTIONS = dict(max_chunk_seconds=1.0, overlap_seconds=0.25)


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  """A tiny TDCN++ (M = 4, 8 kHz) exported as a SavedModel."""
  import keras
  import tensorflow as tf
  from mixit import gin_config
  from mixit import model as model_lib
  from mixit.serving import export
  gin_config.parse(['models/tdcnpp_small.gin'], [
      'NUM_SOURCES = 4', f'SAMPLE_RATE = {RATE}', 'network.bottleneck = 16',
      'network.conv_channels = 32', 'network.num_repeats = 1', 'network.num_dilations = 2',
      'network.skip_from = []', 'network.skip_to = []'])
  network = model_lib.build_network()
  network(tf.zeros([1, RATE // 4]))
  model_dir = str(tmp_path_factory.mktemp('model_dir'))
  checkpoint = tf.train.Checkpoint(network=network, optimizer=keras.optimizers.Adam(),
                                   step=tf.Variable(1, dtype=tf.int64))
  tf.train.CheckpointManager(checkpoint, model_dir, max_to_keep=1).save()
  gin_config.write_config(model_dir)
  export_dir = str(tmp_path_factory.mktemp('export') / 'model')
  export.export_saved_model(model_dir, export_dir)
  return export_dir


def _recordings(folder):
  """Five short recordings at three rates, one stereo and one in a subfolder."""
  rng = np.random.default_rng(0)
  files = {'a.wav': (RATE, 1.5, 1), 'b.flac': (16000, 1.2, 1), 'c.wav': (11025, 2.0, 2),
           'd.wav': (RATE, 0.7, 1), 'sub/e.wav': (RATE, 1.0, 1)}
  for name, (rate, seconds, channels) in files.items():
    shape = (int(rate * seconds), channels) if channels > 1 else (int(rate * seconds),)
    audio = (0.1 * rng.standard_normal(shape)).astype(np.float32)
    path = os.path.join(folder, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    import soundfile
    soundfile.write(path, audio, rate, subtype='PCM_16' if name.endswith('.flac') else 'FLOAT')
  return sorted(os.path.join(folder, name) for name in files)


def _files(folder):
  return sorted(os.path.relpath(os.path.join(root, name), folder)
                for root, _, names in os.walk(folder) for name in names)


def _wav_chunks(data: bytes) -> dict:
  """A WAV file's chunks but the time stamp in libsndfile's PEAK chunk (the second it was
  written, so two runs differ there), {chunk id: bytes}."""
  assert data[:4] == b'RIFF' and data[8:12] == b'WAVE', data[:12]
  chunks, at = {}, 12
  while at + 8 <= len(data):
    size = int.from_bytes(data[at + 4:at + 8], 'little')
    body = data[at + 8:at + 8 + size]
    chunks[data[at:at + 4]] = body[:4] + body[8:] if data[at:at + 4] == b'PEAK' else body
    at += 8 + size + size % 2
  return chunks


def _bytes(folder):
  """{output name: its WAV chunks}: the format and the samples, bit for bit."""
  out = {}
  for name in _files(folder):
    if name.endswith('.wav'):
      data = open(os.path.join(folder, name), 'rb').read()
      out[name] = _wav_chunks(data) if data.startswith(b'RIFF') else data
  return out


def _run(exported, input_path, output_dir, args=(), **kwargs):
  options = dict(OPTIONS)
  options.update(kwargs)
  return separate_beam.run(exported, str(input_path), str(output_dir),
                           PipelineOptions(IN_PROCESS + list(args)), **options)


@pytest.fixture(scope='module')
def reference(exported, tmp_path_factory):
  """mixit-separate's outputs (`separate_files`) of the recordings."""
  root = tmp_path_factory.mktemp('reference')
  _recordings(str(root / 'in'))
  separator = separator_lib.load_separator(exported)
  report = separate.separate_files(separator, str(root / 'in'), str(root / 'out'), **OPTIONS)
  assert len(report.succeeded) == 5 and not report.failed
  return root


def test_outputs_are_bit_identical_to_mixit_separate(exported, reference, tmp_path):
  out = tmp_path / 'out'
  summary = _run(exported, reference / 'in', out)
  assert (summary['separated'], summary['skipped_complete'], summary['failed']) == (5, 0, 0)
  assert summary['inputs'] == 5 and summary['failures'] == []
  assert summary['seconds_of_audio'] == pytest.approx(1.5 + 1.2 + 2.0 + 0.7 + 1.0, abs=1e-3)
  expected = _bytes(reference / 'out')
  assert len(expected) == 20 and _bytes(out) == expected
  assert all(set(chunks) >= {b'fmt ', b'data'} for chunks in expected.values())
  # The records are mixit-separate's, parts folded in; the work folder and parts are gone.
  for folder in ('', 'sub'):
    with open(os.path.join(reference, 'out', folder, '.mixit_separate.json')) as f:
      want = json.load(f)
    with open(os.path.join(out, folder, '.mixit_separate.json')) as f:
      assert json.load(f) == want
  assert _files(out) == sorted(_files(reference / 'out') + [
      separate_beam.SUMMARY_FILENAME, separate_beam.MANIFEST_FILENAME,
      separate_beam.FAILURES_FILENAME])
  with open(out / separate_beam.SUMMARY_FILENAME) as f:
    assert json.load(f) == summary
  # mixit-evaluate reads them as mixit-separate's.
  assert sorted(fuss.read_separate_record(str(out))) == ['a', 'b', 'c', 'd']
  assert fuss.read_separate_record(str(out / 'sub'))['e']['num_sources'] == 4


def test_two_worker_processes_give_the_same_outputs(exported, reference, tmp_path):
  """The DirectRunner's multi-processing mode: the model is loaded once per worker process."""
  out = tmp_path / 'out'
  summary = _run(exported, reference / 'in', out,
                 ['--direct_num_workers=2', '--direct_running_mode=multi_processing'])
  assert summary['separated'] == 5
  assert _bytes(out) == _bytes(reference / 'out')


def test_list_file_glob_and_folder_inputs(exported, reference, tmp_path):
  recordings = reference / 'in'
  listing = tmp_path / 'lists' / 'some.txt'
  listing.parent.mkdir()
  outside = tmp_path / 'elsewhere' / 'x.wav'
  outside.parent.mkdir()
  outside.write_bytes((recordings / 'a.wav').read_bytes())
  # Relative lines are relative to the list's folder; comments, blanks and repeats skipped.
  relative = os.path.relpath(recordings, listing.parent)
  listing.write_text(f'# my picks\n{relative}/a.wav\n\n{recordings / "sub" / "e.wav"}\n'
                     f'{outside}\n{recordings / "sub" / "e.wav"}\n')
  inputs = separate.find_inputs(str(listing))
  assert [stem for _, stem in inputs] == ['a', 'e', 'x']  # outside the list's folder: names
  assert inputs[0][0] == os.path.join(str(listing.parent), relative, 'a.wav')
  # A glob: the audio files it matches, stems relative to the folder before the wildcard.
  glob_inputs = separate.find_inputs(str(recordings / '*' / '*.wav'))
  assert glob_inputs == [(str(recordings / 'sub' / 'e.wav'), 'sub/e')]
  assert [s for _, s in separate.find_inputs(str(recordings / '*.wav'))] == ['a', 'c', 'd']
  assert [s for _, s in separate.find_inputs(str(recordings))] == ['a', 'b', 'c', 'd', 'sub/e']
  with pytest.raises(ValueError, match='matches no audio files'):
    separate.find_inputs(str(recordings / '*.mp3'))
  # The pipeline on a list and on a glob: the same bytes as mixit-separate's outputs.
  expected = _bytes(reference / 'out')
  summary = _run(exported, listing, tmp_path / 'from_list')
  assert summary['separated'] == 3
  got = _bytes(tmp_path / 'from_list')
  want = {}
  for i in range(4):
    want[f'a_source{i}.wav'] = want[f'x_source{i}.wav'] = expected[f'a_source{i}.wav']
    want[f'e_source{i}.wav'] = expected[f'sub/e_source{i}.wav']
  assert got == want
  summary = _run(exported, recordings / '*' / '*.wav', tmp_path / 'from_glob')
  assert summary['separated'] == 1
  assert _bytes(tmp_path / 'from_glob') == {k: v for k, v in expected.items()
                                            if k.startswith('sub/')}


def test_a_rerun_skips_complete_files_and_redoes_what_a_killed_attempt_left(
    exported, reference, tmp_path):
  out = tmp_path / 'out'
  _run(exported, reference / 'in', out)
  expected = _bytes(out)
  # An output deleted; an attempt killed after putting d's outputs in place but before
  # recording them (its claim is all that says they are ours); a user's file.
  os.remove(out / 'a_source1.wav')
  data = json.load(open(out / '.mixit_separate.json'))
  entry = data['inputs'].pop('d')
  owned_files.write_atomically(str(out / '.mixit_separate.json'), json.dumps(data))
  owned_files.Record(str(out), owned_files.SEPARATION).write_part(
      'd', entry['outputs'], pending=True, input=entry['input'], num_sources=4, dropped=[])
  (out / 'notes_source0.wav').write_bytes(b'mine')
  summary = _run(exported, reference / 'in', out)
  assert (summary['separated'], summary['skipped_complete'], summary['failed']) == (2, 3, 0)
  assert _bytes(out) == dict(expected, **{'notes_source0.wav': b'mine'})
  assert not (out / owned_files.SEPARATION.parts).exists()
  assert sorted(json.load(open(out / '.mixit_separate.json'))['inputs']) == ['a', 'b', 'c', 'd']
  # Another model's outputs (another M) are not replaced without --overwrite.
  data = json.load(open(out / '.mixit_separate.json'))
  data['inputs']['b']['num_sources'] = 3
  owned_files.write_atomically(str(out / '.mixit_separate.json'), json.dumps(data))
  summary = _run(exported, reference / 'in', out, skip_bad=True)
  assert (summary['separated'], summary['skipped_complete'], summary['failed']) == (0, 4, 1)
  assert 'pass --overwrite' in summary['failures'][0]['error']
  summary = _run(exported, reference / 'in', out, overwrite=True)
  assert (summary['separated'], summary['skipped_complete']) == (5, 0)
  assert _bytes(out) == dict(expected, **{'notes_source0.wav': b'mine'})


def test_a_bad_file_is_listed_with_skip_bad_and_fails_the_run_without(exported, reference,
                                                                      tmp_path):
  recordings = tmp_path / 'in'
  _recordings(str(recordings))
  (recordings / 'broken.wav').write_bytes(b'RIFF....WAVEnonsense')
  (tmp_path / 'out').mkdir()
  (tmp_path / 'out' / 'broken_source0.wav').write_bytes(b'mine')
  summary = _run(exported, recordings, tmp_path / 'out', skip_bad=True)
  assert (summary['separated'], summary['failed']) == (5, 1)
  assert summary['failures'] == [{'input': str(recordings / 'broken.wav'),
                                  'error': summary['failures'][0]['error']}]
  assert 'exists and was not written by mixit-separate' in summary['failures'][0]['error']
  os.remove(tmp_path / 'out' / 'broken_source0.wav')
  summary = _run(exported, recordings, tmp_path / 'out', skip_bad=True)
  assert (summary['separated'], summary['skipped_complete'], summary['failed']) == (0, 5, 1)
  assert 'corrupt WAV file' in summary['failures'][0]['error']
  # The failed file left no claim, no partial output, no work files.
  assert [n for n in _files(tmp_path / 'out') if 'broken' in n] == []
  assert not (tmp_path / 'out' / owned_files.SEPARATION.parts).exists()
  assert not (tmp_path / 'out' / separate_beam.WORK_FOLDER).exists()
  # Without --skip_bad the run fails naming the file; what finished is recorded.
  with pytest.raises(Exception, match='broken.wav: corrupt WAV file'):
    _run(exported, recordings, tmp_path / 'out2')
  assert not (tmp_path / 'out2' / owned_files.SEPARATION.parts).exists()
  assert not (tmp_path / 'out2' / separate_beam.WORK_FOLDER).exists()
  recorded = owned_files.Record(str(tmp_path / 'out2'), owned_files.SEPARATION).groups
  assert set(recorded) <= {'a', 'b', 'c', 'd'}
  assert all((tmp_path / 'out2' / name).exists() for entry in recorded.values()
             for name in entry['outputs'])


def test_a_summary_name_taken_by_another_file_is_refused(exported, reference, tmp_path):
  out = tmp_path / 'out'
  out.mkdir()
  (out / separate_beam.SUMMARY_FILENAME).write_text('{"mine": 1}')
  with pytest.raises(FileExistsError, match='is not a mixit-separate-beam summary'):
    _run(exported, reference / 'in', out)
  assert _files(out) == [separate_beam.SUMMARY_FILENAME]


def _env():
  env = dict(os.environ)
  env.pop('TF_CPP_MIN_LOG_LEVEL', None)
  return env


def test_command_line(exported, reference, tmp_path):
  out = tmp_path / 'out'
  listing = tmp_path / 'inputs.lst'
  listing.write_text(f'{reference / "in" / "a.wav"}\n{tmp_path / "missing.wav"}\n')
  command = [sys.executable, '-m', 'mixit.commands.separate_beam', '--saved_model', exported,
             '--input', str(listing), '--output_dir', str(out), '--max_chunk_seconds=1',
             '--overlap', '0.25', '--skip_bad', '--runner', 'FnApiRunner']
  result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO,
                          env=_env())
  assert result.returncode == 1, result.stderr[-3000:]
  summary = json.loads(result.stdout)
  assert (summary['separated'], summary['failed']) == (1, 1)
  assert 'missing.wav' in summary['failures'][0]['error']
  assert '1 file(s) failed' in result.stderr and 'Traceback' not in result.stderr
  assert _bytes(out) == {k: v for k, v in _bytes(reference / 'out').items()
                         if k.startswith('a_')}
  # A flag that is neither ours nor Beam's is a usage error, not ignored.
  result = subprocess.run(command[:-2] + ['--overwirte'], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env=_env())
  assert result.returncode == 1 and '--overwirte' in result.stderr, result.stderr[-2000:]
  # Without --skip_bad: one error line naming the file.
  result = subprocess.run([c for c in command if c != '--skip_bad'], capture_output=True,
                          text=True, timeout=300, cwd=REPO, env=_env())
  lines = [line for line in result.stderr.splitlines()
           if line.startswith('mixit-separate-beam: error:')]
  assert result.returncode == 1 and len(lines) == 1, result.stderr[-3000:]
  assert 'missing.wav' in lines[0] and 'Traceback' not in result.stderr


def test_without_beam_the_command_says_which_extra_to_install(tmp_path):
  code = ("import sys; sys.modules['apache_beam'] = None; "  # `import apache_beam` fails
          "sys.argv = ['mixit-separate-beam', '--saved_model=m', '--input=i', "
          f"'--output_dir={tmp_path}/o', '--runner=DirectRunner']; "
          'from mixit.commands import separate_beam; separate_beam.run()')
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env=_env())
  assert result.returncode == 1
  lines = [line for line in result.stderr.splitlines() if 'mixit-separate-beam' in line]
  assert len(lines) == 1 and lines[0].startswith('mixit-separate-beam: error:'), result.stderr
  assert 'pip install "mixit[beam]"' in lines[0]
  assert 'Traceback' not in result.stderr and not (tmp_path / 'o').exists()


def test_the_base_install_never_imports_beam(exported, tmp_path):
  """`import mixit`, mixit-separate and the separation library run without Apache Beam."""
  code = ('import sys; import mixit; from mixit.commands import separate as command; '
          'from mixit.serving import separate; from eval import fuss; '
          'sys.argv = ["mixit-separate", "--saved_model", sys.argv[1], "--input", sys.argv[2], '
          '"--output_dir", sys.argv[3], "--noprogress"]\n'
          'try:\n  command.run()\nexcept SystemExit as e:\n  assert not e.code, e.code\n'
          'print("apache_beam" in sys.modules)')
  audio_io.write_wav(str(tmp_path / 'x.wav'), np.zeros(RATE, np.float32) + 0.1, RATE)
  result = subprocess.run([sys.executable, '-c', code, exported, str(tmp_path / 'x.wav'),
                           str(tmp_path / 'out')], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env=_env())
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.split() == ['False']
  assert (tmp_path / 'out' / 'x_source0.wav').exists()


def test_an_output_dir_another_run_holds_is_refused(exported, reference, tmp_path):
  with owned_files.FolderLock(str(tmp_path / 'out'), 'mixit-separate-beam (another run)'):
    with pytest.raises(owned_files.FolderLockedError, match='is in use by'):
      _run(exported, reference / 'in', tmp_path / 'out')
  assert _files(tmp_path / 'out') == []


def test_outputs_written_into_the_input_folder_are_not_inputs_of_a_rerun(exported, tmp_path):
  folder = tmp_path / 'in'
  _recordings(str(folder))
  assert _run(exported, folder, folder)['separated'] == 5
  rerun = _run(exported, folder, folder)
  assert (rerun['inputs'], rerun['skipped_complete'], rerun['separated']) == (5, 5, 0)


def _jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


def _level_db(source, mixture):
  return 10 * np.log10(np.mean(np.square(source, dtype=np.float64)) /
                       np.mean(np.square(mixture, dtype=np.float64)))


def test_the_manifest_and_the_failures_record(exported, tmp_path):
  import soundfile
  recordings = tmp_path / 'in'
  _recordings(str(recordings))
  (recordings / 'broken.wav').write_bytes(b'RIFF....WAVEnonsense')
  out = tmp_path / 'out'
  summary = _run(exported, recordings, out, skip_bad=True)
  assert (summary['separated'], summary['failed']) == (5, 1)
  failures = _jsonl(out / separate_beam.FAILURES_FILENAME)
  assert failures == summary['failures'] and failures[0]['input'] == str(recordings / 'broken.wav')
  manifest = {line['input']: line for line in _jsonl(out / separate_beam.MANIFEST_FILENAME)}
  assert sorted(manifest) == [str(recordings / n) for n in ('a.wav', 'b.flac', 'c.wav', 'd.wav',
                                                            os.path.join('sub', 'e.wav'))]
  seconds = {'a.wav': 1.5, 'b.flac': 1.2, 'c.wav': 2.0, 'd.wav': 0.7, 'sub/e.wav': 1.0}
  for name, length in seconds.items():
    line = manifest[str(recordings / name)]
    stem = os.path.splitext(name)[0]
    assert line['status'] == 'separated'
    assert line['seconds'] == pytest.approx(length, abs=1e-3)
    assert line['outputs'] == [f'{stem}_source{i}.wav' for i in range(4)]
    assert all((out / output).exists() for output in line['outputs'])
    assert line['active_sources'] == sum(db > separate.DEFAULT_SILENCE_DB
                                         for db in line['levels_db'])
    if name in ('a.wav', 'd.wav', 'sub/e.wav'):  # mono at the model's rate: numpy's levels
      mixture, _ = soundfile.read(str(recordings / name), dtype='float32')
      for output, db in zip(line['outputs'], line['levels_db']):
        source, _ = soundfile.read(str(out / output), dtype='float32')
        assert db == pytest.approx(_level_db(source, mixture), abs=0.02)
  # A rerun: every good file skipped as complete, its manifest line read from the records.
  (recordings / 'broken.wav').unlink()
  summary = _run(exported, recordings, out, skip_bad=True)
  assert (summary['skipped_complete'], summary['failed']) == (5, 0)
  assert _jsonl(out / separate_beam.FAILURES_FILENAME) == []
  again = {line['input']: line for line in _jsonl(out / separate_beam.MANIFEST_FILENAME)}
  assert {k: dict(v, status='separated') for k, v in again.items()} == manifest
  assert {line['status'] for line in again.values()} == {'skipped'}


def test_drop_silent_outputs_are_left_out_of_the_manifest_not_its_levels(exported, tmp_path):
  recordings = tmp_path / 'in'
  _recordings(str(recordings))
  out = tmp_path / 'out'
  _run(exported, recordings, out, drop_silent=True, silence_db=-6.0)
  for line in _jsonl(out / separate_beam.MANIFEST_FILENAME):
    kept = [i for i, db in enumerate(line['levels_db']) if db > -6.0]
    stem = os.path.splitext(os.path.relpath(line['input'], recordings))[0]
    assert line['outputs'] == [f'{stem}_source{i}.wav' for i in kept]
    assert line['active_sources'] == len(kept) and len(line['levels_db']) == 4


def test_beam_metrics_count_files_audio_and_failures(exported, tmp_path):
  from apache_beam.metrics.metric import MetricsFilter
  recordings = tmp_path / 'in'
  _recordings(str(recordings))
  (recordings / 'broken.wav').write_bytes(b'RIFF....WAVEnonsense')
  out = str(tmp_path / 'out')
  inputs = separate_beam.list_inputs(str(recordings), out)
  shards = separate_beam.write_shards(out, inputs, shard_size=2)
  pipeline = beam.Pipeline(options=PipelineOptions(IN_PROCESS))
  separate_beam.build(pipeline, shards, out, saved_model=exported, overwrite=False,
                      skip_bad=True, progress=False, options=OPTIONS,
                      header={'format': separate_beam.SUMMARY_FORMAT, 'started': 'now'})
  result = pipeline.run()
  result.wait_until_finish()
  counters = {c.key.metric.name: c.committed for c in result.metrics().query(
      MetricsFilter().with_namespace(separate_beam.METRICS_NAMESPACE))['counters']}
  assert counters == {'files_separated': 5, 'files_failed': 1,
                      'audio_milliseconds': 1500 + 1200 + 2000 + 700 + 1000}


def test_a_manifest_or_failures_name_taken_by_another_file_is_refused(exported, reference,
                                                                      tmp_path):
  for name in (separate_beam.MANIFEST_FILENAME, separate_beam.FAILURES_FILENAME):
    out = tmp_path / name
    out.mkdir()
    (out / name).write_text('my notes\n')
    with pytest.raises(FileExistsError, match='no mixit-separate-beam run wrote it'):
      _run(exported, reference / 'in', out)
    assert _files(out) == [name] and (out / name).read_text() == 'my notes\n'


def _outputs_state(folder):
  """{name: (bytes, mtime in ns)} of every file but the run's own summary files."""
  own = {separate_beam.SUMMARY_FILENAME, separate_beam.MANIFEST_FILENAME,
         separate_beam.FAILURES_FILENAME}
  return {name: (open(os.path.join(folder, name), 'rb').read(),
                 os.stat(os.path.join(folder, name)).st_mtime_ns)
          for name in _files(folder) if name not in own}


def test_a_rerun_leaves_complete_outputs_and_records_untouched(exported, reference, tmp_path):
  out = tmp_path / 'out'
  _run(exported, reference / 'in', out)
  before = _outputs_state(out)
  assert len(before) == 22  # 20 outputs and 2 records
  summary = _run(exported, reference / 'in', out)
  assert (summary['separated'], summary['skipped_complete']) == (0, 5)
  assert _outputs_state(out) == before


def test_a_run_that_dies_midway_is_finished_by_a_rerun(exported, reference, tmp_path,
                                                       monkeypatch):
  """The run dies in the middle of `c` (its sources written to hidden `.partial` files, not
  yet in place), as a killed worker would; a rerun finishes it and leaves nothing partial."""
  out = tmp_path / 'out'
  put_in_place = separate._put_in_place

  def dies_on_c(writers, *args, **kwargs):
    if any(os.path.basename(p).startswith('c_source') for p in writers.paths):
      raise RuntimeError('worker killed')
    return put_in_place(writers, *args, **kwargs)

  monkeypatch.setattr(separate, '_put_in_place', dies_on_c)
  with pytest.raises(Exception, match='worker killed'):
    _run(exported, reference / 'in', out)
  assert any('partial' in name for name in _files(out))  # what the dead attempt left
  monkeypatch.setattr(separate, '_put_in_place', put_in_place)
  summary = _run(exported, reference / 'in', out)
  assert summary['separated'] + summary['skipped_complete'] == 5 and summary['separated'] >= 1
  assert [name for name in _files(out) if 'partial' in name] == []
  assert not (out / owned_files.SEPARATION.parts).exists()
  assert _bytes(out) == _bytes(reference / 'out')


def test_mixit_separate_overwrite_trusts_the_beam_record(exported, reference, tmp_path):
  out = tmp_path / 'out'
  _run(exported, reference / 'in', out)
  (out / 'notes_source0.wav').write_bytes(b'mine')
  (out / 'sub' / 'e_source9.wav').write_bytes(b'also mine')
  # Without --overwrite mixit-separate refuses the outputs; with it, it replaces exactly them.
  with pytest.raises(FileExistsError, match='pass --overwrite'):
    separate.separate_files(exported, str(reference / 'in'), str(out), **OPTIONS)
  report = separate.separate_files(exported, str(reference / 'in'), str(out), overwrite=True,
                                   **OPTIONS)
  assert len(report.succeeded) == 5 and not report.failed
  assert _bytes(out) == dict(_bytes(reference / 'out'), **{
      'notes_source0.wav': b'mine', 'sub/e_source9.wav': b'also mine'})
