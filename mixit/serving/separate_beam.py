"""Separating an archive with Apache Beam (`mixit-separate-beam`): the separation of
`mixit-separate`, run in parallel on any Beam runner (DirectRunner, Dataflow, Flink, Spark).

    mixit-separate-beam --saved_model E --input FILE_FOLDER_GLOB_OR_LIST --output_dir O
        [mixit-separate's options] [Beam pipeline options: --runner, --direct_num_workers, ...]

The launcher (`run`) lists the inputs with `mixit.serving.separate.find_inputs` (a file, a
folder, a glob or a list file; its own earlier outputs left out, as `mixit-separate` does),
writes that list in shards into the output dir's work folder `.mixit_separate_beam/`, and runs

    Create(shards) | read each shard | Reshuffle | ParDo(SeparateFn) | CombineGlobally(Summary)
        | finalize

`SeparateFn` loads the SavedModel once per worker process (`DoFn.setup`,
`mixit.serving.separator.load_separator`) and calls `separate.separate_if_needed`, i.e.
`separate.separate_file`, the code of `mixit-separate`: the same streaming in blocks, the
same outputs bit for bit, written to hidden `.partial` files and renamed into place. Under
retries, preemption and reruns:
- each input's record entry is its own part (`OutputRecord(shared=True)`), written atomically
  by the one worker that separates it, so concurrent workers lose no entry; its outputs are
  claimed (a pending part) before they are put in place, so an attempt killed between the
  rename and the record leaves files the next attempt knows as its own;
- an input whose outputs are complete is skipped (unless `--overwrite`); a file the records do
  not list is never replaced or removed;
- `finalize`, one call at the end, folds each output folder's parts into its
  `.mixit_separate.json` (`owned_files.Record.merge_parts`), writes the summary
  `mixit_separate_beam.json` (atomically; a file of that name that is not one is refused
  before the run starts) and removes the run's input shards.
Every reader (`mixit-separate`, `mixit-evaluate --separated_dir`) also reads parts that a run
killed before `finalize` left, and the next run folds them in.

Imports Apache Beam (the `beam` extra); nothing else of the package imports this module.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import time
from typing import Dict, List, Optional, Sequence, Tuple

from absl import logging
import apache_beam as beam
from apache_beam.utils import shared
import tensorflow as tf

from data_pipeline import audio_io
from mixit import owned_files
from mixit.serving import separate
from mixit.serving import separator as separator_lib

SUMMARY_FILENAME = 'mixit_separate_beam.json'
SUMMARY_FORMAT = 'mixit-separate-beam-summary'
# One JSON line per input of the last run: its duration, outputs, levels and active sources.
MANIFEST_FILENAME = 'mixit_separate_beam.manifest.jsonl'
# One JSON line per input that failed in the last run (with --skip_bad): path and error.
FAILURES_FILENAME = 'mixit_separate_beam.failures.jsonl'
# Beam metrics (namespace, names), shown by the runners' UIs while a run goes.
METRICS_NAMESPACE = 'mixit'
# The run's input list, in shards of SHARD_SIZE inputs: `<run id>-<k>.json`.
WORK_FOLDER = '.mixit_separate_beam'
SHARD_SIZE = 200
_SHARD_NAME = re.compile(r'\d{8}-\d{6}-\d+-\d{5}\.json(' + owned_files.TEMPORARY_SUFFIX + ')?')


# ------------------------------------------------------------------------------ the workers


class SeparateFn(beam.DoFn):
  """Separates one `(input path, stem)` per element with the SavedModel loaded once per
  worker process (`setup`; a runner's threads share it through `apache_beam.utils.shared`:
  a `Separator` keeps no state between calls); yields its result (`result`)."""

  def __init__(self, saved_model: str, output_dir: str, *, overwrite: bool, skip_bad: bool,
               progress: bool, options: Dict):
    super().__init__()
    self._shared = shared.Shared()
    self.saved_model = saved_model
    self.output_dir = output_dir
    self.overwrite = overwrite
    self.skip_bad = skip_bad
    self.progress = progress
    self.options = dict(options)
    self.separator = None
    self.records = None

  def setup(self):
    self.separator = self._shared.acquire(
        lambda: separator_lib.load_separator(self.saved_model), tag=self.saved_model)
    self.records = separate.Records(shared=True)

  def process(self, element: Tuple[str, str]):
    path, stem = element
    started = time.monotonic()
    try:
      audio_io.check_utf8_name(path)
      outcome = separate.separate_if_needed(
          self.separator, path, self.output_dir, stem, overwrite=self.overwrite,
          records=self.records, **self.options)
    except Exception as e:
      if not self.skip_bad:
        raise
      message = str(e) if audio_io.printable_path(path) in str(e) else (
          f'{audio_io.printable_path(path)}: {e}')
      logging.info('FAILED: %s', message)
      _count('files_failed')
      yield result(path, stem, 'failed', error=message)
      return
    if outcome is None:
      entry = self.records.folder(
          os.path.join(self.output_dir, os.path.dirname(stem)) or '.').entry(
              os.path.basename(stem)) or {}
      _count('files_skipped')
      yield result(path, stem, 'skipped', manifest=self.manifest_line(
          path, entry.get('seconds'), entry.get('source_power_db'),
          [os.path.join(os.path.dirname(stem), name) for name in entry.get('outputs', [])]))
      return
    if self.progress:
      logging.info('%s: %d sources, %.1f s of audio in %.1f s', path,
                   len(outcome.output_paths), outcome.seconds, time.monotonic() - started)
    _count('files_separated')
    _count('audio_milliseconds', int(round(1000 * outcome.seconds)))
    yield result(path, stem, 'separated', seconds=outcome.seconds, manifest=self.manifest_line(
        path, outcome.seconds, outcome.source_power_db,
        [os.path.relpath(p, self.output_dir) for p in outcome.output_paths]))

  def manifest_line(self, path: str, seconds: Optional[float],
                    levels_db: Optional[Sequence[float]], outputs: Sequence[str]) -> Dict:
    """The manifest's line of one input (None where a record of an older run lacks it)."""
    silence_db = self.options.get('silence_db', separate.DEFAULT_SILENCE_DB)
    return {'input': audio_io.printable_path(path),
            'seconds': None if seconds is None else round(float(seconds), 6),
            'outputs': sorted(outputs, key=_source_index),
            'levels_db': None if levels_db is None else [round(float(db), 2)
                                                         for db in levels_db],
            'active_sources': None if levels_db is None else sum(
                1 for db in levels_db if db > silence_db)}


def _source_index(output: str) -> int:
  parsed = separate.parse_output_name(output)
  return parsed[1] if parsed else -1


def _count(name: str, value: int = 1) -> None:
  beam.metrics.Metrics.counter(METRICS_NAMESPACE, name).inc(value)


def result(path: str, stem: str, status: str, seconds: float = 0.0,
           error: Optional[str] = None, manifest: Optional[Dict] = None) -> Dict:
  """One input's outcome: 'separated', 'skipped' (complete) or 'failed' (`error`); `folder`:
  its output folder relative to the output dir; `manifest`: its manifest line."""
  return {'input': audio_io.printable_path(path), 'folder': os.path.dirname(stem),
          'status': status, 'seconds': float(seconds), 'error': error, 'manifest': manifest}


def manifest_text(element: Dict) -> List[str]:
  """The manifest line of a result (none for a failed input)."""
  if element['manifest'] is None:
    return []
  return [json.dumps(dict(element['manifest'], status=element['status']))]


class SummaryFn(beam.CombineFn):
  """Counts the results: `{separated, skipped_complete, failed, seconds_of_audio, failures,
  folders}`."""

  def create_accumulator(self):
    return {'separated': 0, 'skipped_complete': 0, 'failed': 0, 'seconds_of_audio': 0.0,
            'failures': [], 'folders': {}}

  def add_input(self, accumulator, element):
    key = {'separated': 'separated', 'skipped': 'skipped_complete',
           'failed': 'failed'}[element['status']]
    accumulator[key] += 1
    accumulator['seconds_of_audio'] += element['seconds']
    if element['status'] == 'failed':
      accumulator['failures'].append({'input': element['input'], 'error': element['error']})
    accumulator['folders'][element['folder']] = None
    return accumulator

  def merge_accumulators(self, accumulators):
    merged = self.create_accumulator()
    for accumulator in accumulators:
      for key in ('separated', 'skipped_complete', 'failed', 'seconds_of_audio'):
        merged[key] += accumulator[key]
      merged['failures'].extend(accumulator['failures'])
      merged['folders'].update(accumulator['folders'])
    return merged

  def extract_output(self, accumulator):
    accumulator['failures'] = sorted(accumulator['failures'], key=lambda f: f['input'])
    accumulator['folders'] = sorted(accumulator['folders'])
    return accumulator


def read_shard(path: str) -> List[Tuple[str, str]]:
  with tf.io.gfile.GFile(path) as f:
    return [tuple(item) for item in json.load(f)]


def finalize(counts: Dict, output_dir: str, shards: Sequence[str], header: Dict) -> Dict:
  """The end of a run (one call): folds each output folder's parts into its record, writes
  the summary, removes the run's input shards. Returns the summary."""
  for folder in counts['folders']:
    owned_files.Record(os.path.join(output_dir, folder) if folder else output_dir,
                       owned_files.SEPARATION).merge_parts()
  summary = dict(header)
  summary['finished'] = _now()
  summary.update({key: counts[key] for key in ('separated', 'skipped_complete', 'failed')})
  summary['seconds_of_audio'] = round(counts['seconds_of_audio'], 3)
  summary['failures'] = counts['failures']
  owned_files.write_atomically(
      os.path.join(output_dir, FAILURES_FILENAME),
      ''.join(json.dumps(failure) + '\n' for failure in counts['failures']))
  owned_files.write_atomically(summary_path(output_dir), json.dumps(summary, indent=1) + '\n')
  remove_shards(output_dir, shards)
  return summary


# ------------------------------------------------------------------------------ the launcher


def summary_path(output_dir: str) -> str:
  return os.path.join(output_dir, SUMMARY_FILENAME)


def check_summary(output_dir: str) -> None:
  """Refuses to start when the summary's name is taken by a file that is not one, or the
  manifest's or the failures record's by a file that no run of this tool wrote (there is no
  summary of one beside it)."""
  path = summary_path(output_dir)
  ours = False
  if tf.io.gfile.exists(path):
    try:
      with tf.io.gfile.GFile(path) as f:
        data = json.load(f)
      ours = isinstance(data, dict) and data.get('format') == SUMMARY_FORMAT
    except ValueError:
      pass
    if not ours:
      raise FileExistsError(f'{path} exists and is not a mixit-separate-beam summary; it is '
                            'never overwritten: separate into another --output_dir, or move '
                            'that file')
  for name in (MANIFEST_FILENAME, FAILURES_FILENAME):
    other = os.path.join(output_dir, name)
    if not ours and tf.io.gfile.exists(other):
      raise FileExistsError(f'{other} exists and no mixit-separate-beam run wrote it; it is '
                            'never overwritten: separate into another --output_dir, or move '
                            'that file')


def write_shards(output_dir: str, inputs: Sequence[Tuple[str, str]],
                 shard_size: int = SHARD_SIZE) -> List[str]:
  """Writes the input list in shards into the work folder (atomically); returns their paths."""
  folder = os.path.join(output_dir, WORK_FOLDER)
  tf.io.gfile.makedirs(folder)
  run_id = f'{datetime.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}'
  paths = []
  for index, start in enumerate(range(0, len(inputs), shard_size)):
    path = os.path.join(folder, f'{run_id}-{index:05d}.json')
    owned_files.write_atomically(path, json.dumps([list(x) for x in
                                                   inputs[start:start + shard_size]]))
    paths.append(path)
  return paths


def remove_shards(output_dir: str, shards: Optional[Sequence[str]] = None) -> None:
  """Removes input shards from the work folder (the named ones; None: every file named as a
  shard is, a run's left by a killed run), then the folder when it is empty."""
  folder = os.path.join(output_dir, WORK_FOLDER)
  if not tf.io.gfile.isdir(folder):
    return
  if shards is None:
    names = [n for n in tf.io.gfile.listdir(folder) if _SHARD_NAME.fullmatch(n)]
  else:
    names = [os.path.basename(path) for path in shards]
  owned_files.remove_files(folder, names)
  if not tf.io.gfile.listdir(folder):
    tf.io.gfile.rmtree(folder)


def list_inputs(input_path: str, output_dir: str) -> List[Tuple[str, str]]:
  """What `mixit-separate` would separate: `separate.find_inputs`, less this tool's outputs."""
  inputs = separate.find_inputs(input_path)
  return separate.exclude_own_outputs(inputs, output_dir, separate.Records())


def build(pipeline: beam.Pipeline, shards: Sequence[str], output_dir: str, *, saved_model: str,
          overwrite: bool, skip_bad: bool, progress: bool, options: Dict, header: Dict):
  """Adds the separation of the inputs in `shards` to `pipeline`; returns the summary's
  PCollection (one element)."""
  results = (pipeline
             | 'Shards' >> beam.Create(list(shards))
             | 'ReadShards' >> beam.FlatMap(read_shard)
             | 'Spread' >> beam.Reshuffle()
             | 'Separate' >> beam.ParDo(SeparateFn(saved_model, output_dir, overwrite=overwrite,
                                                   skip_bad=skip_bad, progress=progress,
                                                   options=options)))
  # The manifest: one file, written by Beam's file sink (temporary shards, then one rename).
  _ = (results
       | 'ManifestLines' >> beam.FlatMap(manifest_text)
       | 'Manifest' >> beam.io.WriteToText(os.path.join(output_dir, MANIFEST_FILENAME),
                                           shard_name_template=''))
  return (results
          | 'Count' >> beam.CombineGlobally(SummaryFn())
          | 'Finalize' >> beam.Map(finalize, output_dir, list(shards), header))


def run(saved_model: str, input_path: str, output_dir: str, pipeline_options, *,
        overwrite: bool = False, skip_bad: bool = False, progress: bool = False,
        **options) -> Dict:
  """Separates every input of `input_path` into `output_dir` on the runner that
  `pipeline_options` (an `apache_beam.options.pipeline_options.PipelineOptions`) names, and
  returns the summary it wrote. `options` are `separate_file`'s (chunking, output format).

  The output dir is held (`owned_files.FolderLock`) while the launcher waits for the run.
  Without `skip_bad` the first file that fails fails the run (after the runner's retries);
  the parts written until then are folded into the records before the error is raised.
  """
  output_dir = os.fspath(output_dir)
  separator_lib.load_saved_model(saved_model)  # a wrong --saved_model fails here, not on workers
  check_summary(output_dir)
  with owned_files.FolderLock(output_dir, 'mixit-separate-beam'):
    inputs = list_inputs(input_path, output_dir)
    remove_shards(output_dir)  # of a run that was killed (the lock says none is running)
    shards = write_shards(output_dir, inputs)
    header = {'format': SUMMARY_FORMAT, 'saved_model': saved_model, 'input': input_path,
              'output_dir': output_dir, 'started': _now(), 'inputs': len(inputs),
              'manifest': MANIFEST_FILENAME, 'failures_record': FAILURES_FILENAME}
    # The summary's name is this run's from now on: a manifest or failures record written
    # beside it is known as this tool's by the next run, even if this one dies.
    owned_files.write_atomically(summary_path(output_dir), json.dumps(header, indent=1) + '\n')
    try:
      with beam.Pipeline(options=pipeline_options) as pipeline:
        build(pipeline, shards, output_dir, saved_model=saved_model, overwrite=overwrite,
              skip_bad=skip_bad, progress=progress, options=options, header=header)
    except Exception:
      _fold_what_finished(output_dir, {os.path.dirname(stem) for _, stem in inputs})
      remove_shards(output_dir, shards)
      raise
    with tf.io.gfile.GFile(summary_path(output_dir)) as f:
      summary = json.load(f)
  if summary.get('started') != header['started'] or 'finished' not in summary:
    raise RuntimeError(f'the run ended without writing its summary {summary_path(output_dir)}')
  return summary


def _fold_what_finished(output_dir: str, folders) -> None:
  """After a failed run: the parts of the inputs that were separated go into the records."""
  for folder in sorted(folders):
    try:
      owned_files.Record(os.path.join(output_dir, folder) if folder else output_dir,
                         owned_files.SEPARATION).merge_parts()
    except (ValueError, OSError, tf.errors.OpError) as e:
      logging.warning('could not fold the records of %s: %s', folder or output_dir, e)


def _now() -> str:
  return datetime.datetime.now().isoformat(timespec='seconds')
