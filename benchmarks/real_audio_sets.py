r"""The real-audio workbench, part 1: FUSS-format sets from Debian's packages of recorded sound.

    python benchmarks/real_audio_sets.py --work_dir /data/real_audio \
        [--num_train 4000 --num_validation 100 --num_eval 250 --num_heldout 200 --seed 0]

A development and benchmark tool, outside the package and the default tests: it needs
`apt-get download` and `dpkg-deb` (Debian or Ubuntu) and a few hundred MB of downloads.

1. Downloads the packages below into `<work_dir>/debs` and unpacks them into
   `<work_dir>/unpacked` (nothing is installed).
2. Builds a pool of clips as symbolic links, one folder per label `<package>-<kind>`:
   `<work_dir>/pool/{clips,backgrounds}` from the training packages and
   `<work_dir>/pool/heldout_{clips,backgrounds}` from the held-out ones.
3. Writes the sets with `mixit-make-fuss --clips_dir` (the package's one FUSS writer):
   - `<work_dir>/sets/main`: train / validation / eval of 10-s mixtures, every clip file in
     one split only;
   - `<work_dir>/sets/heldout`: an eval split made only of the held-out packages, whose
     clips never reach training.

The pool mixes speech (about 800 recorded voice lines of hedgewars, in 15 voices and several
languages), music beds (warzone2100, hedgewars), instruments, drums and loops (sonic-pi,
LMMS) and everyday effects (tuxpaint, pysiogame, hedgewars). The held-out packages bring
other music (wesnoth, extremetuxracer, lincity-ng, frozen-bubble) and other effects
(freedesktop sound theme, lincity-ng, pingus, ri-li, tuxtype, extremetuxracer).

Your own sounds: lay them out as `<folder>/<label>/...` and run `mixit-make-fuss
--clips_dir <folder> [--backgrounds_dir <beds>]` directly; this script is one worked example.
"""
import os
import re
import subprocess
import sys
from typing import Callable, Dict, List, Optional, Tuple

from absl import app
from absl import flags

_WORK_DIR = flags.DEFINE_string('work_dir', None, 'Where downloads, the pool and the sets go.',
                                required=True)
_NUM_TRAIN = flags.DEFINE_integer('num_train', 4000, 'Training mixtures.')
_NUM_VALIDATION = flags.DEFINE_integer('num_validation', 100, 'Validation mixtures.')
_NUM_EVAL = flags.DEFINE_integer('num_eval', 250, 'Eval mixtures (main set).')
_NUM_HELDOUT = flags.DEFINE_integer('num_heldout', 200, 'Eval mixtures of held-out packages.')
_CLIP_SECONDS = flags.DEFINE_float('clip_seconds', 10.0, 'Mixture length, as in FUSS.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the split assignment and the mixing.')
_SETS = flags.DEFINE_list('sets', ['main', 'heldout'], 'Which sets to write.')

AUDIO = re.compile(r'\.(wav|ogg|oga|opus|flac|mp3)$', re.IGNORECASE)

# A rule maps a path inside an unpacked package to (role, kind), or None to leave it out.
Rule = Callable[[str], Optional[Tuple[str, str]]]


def _sonic_pi(path: str):
  if '/samples/' not in path:
    return None
  prefix = os.path.basename(path).split('_')[0]
  kinds = {'ambi': ('background', 'ambient'), 'loop': ('background', 'loop'),
           'bass': ('clips', 'bass'), 'guit': ('clips', 'guitar'),
           'bd': ('clips', 'drum'), 'drum': ('clips', 'drum'), 'sn': ('clips', 'drum'),
           'perc': ('clips', 'percussion'), 'tabla': ('clips', 'tabla'),
           'elec': ('clips', 'electronic'), 'glitch': ('clips', 'electronic'),
           'mehackit': ('clips', 'electronic'), 'misc': ('clips', 'misc'),
           'vinyl': ('clips', 'misc')}
  return kinds.get(prefix)


def _lmms(path: str):
  match = re.search(r'/samples/([^/]+)/', path)
  if not match or match.group(1) in ('waveforms', 'shapes'):  # single-cycle oscillator shapes
    return None
  kind = match.group(1)
  return ('background', 'loop') if kind in ('bassloops', 'beats') else ('clips', kind)


def _hedgewars(path: str):
  if '/Sounds/voices/' in path:
    return 'clips', 'voice'
  if '/Music/' in path:
    return 'background', 'music'
  if '/Sounds/' in path:
    return 'clips', 'effect'
  return None


def _music_or_effect(path: str):
  return ('background', 'music') if '/music' in path.lower() else ('clips', 'effect')


TRAINING_PACKAGES: Dict[str, Rule] = {
    'sonic-pi-samples': _sonic_pi,
    'lmms-common': _lmms,
    'tuxpaint-data': lambda p: ('clips', 'effect') if '/sounds/' in p else None,
    'pysiogame': lambda p: ('clips', 'effect') if '/sounds/' in p else None,
    'hedgewars-data': _hedgewars,
    'warzone2100-music': lambda p: ('background', 'music'),
}
HELDOUT_PACKAGES: Dict[str, Rule] = {
    'wesnoth-1.16-music': lambda p: ('background', 'music'),
    'extremetuxracer-data': _music_or_effect,
    'lincity-ng-data': _music_or_effect,
    'frozen-bubble-data': lambda p: (('background', 'music') if 'zik' in os.path.basename(p)
                                     else ('clips', 'effect')),
    'sound-theme-freedesktop': lambda p: ('clips', 'effect'),
    'pingus-data': lambda p: ('clips', 'effect') if '/sounds/' in p else None,
    'ri-li-data': _music_or_effect,
    'tuxtype-data': lambda p: ('clips', 'effect') if '/sounds/' in p else None,
}


def _run(command: List[str], **kwargs) -> None:
  print('$', ' '.join(command), flush=True)
  subprocess.run(command, check=True, **kwargs)


def fetch(work_dir: str, packages: List[str]) -> Dict[str, str]:
  """Downloads and unpacks each package (once); returns {package: unpacked folder}."""
  debs = os.path.join(work_dir, 'debs')
  os.makedirs(debs, exist_ok=True)
  have = {name.split('_')[0] for name in os.listdir(debs) if name.endswith('.deb')}
  missing = [p for p in packages if p not in have]
  if missing:
    _run(['apt-get', 'download'] + missing, cwd=debs)
  unpacked = {}
  for package in packages:
    deb = next(os.path.join(debs, n) for n in sorted(os.listdir(debs))
               if n.startswith(package + '_') and n.endswith('.deb'))
    target = os.path.join(work_dir, 'unpacked', package)
    if not os.path.isdir(target):
      os.makedirs(target + '.partial', exist_ok=True)
      _run(['dpkg-deb', '-x', deb, target + '.partial'])
      os.rename(target + '.partial', target)
    unpacked[package] = target
  return unpacked


def build_pool(unpacked: Dict[str, str], rules: Dict[str, Rule], clips_dir: str,
               backgrounds_dir: str) -> Dict[str, int]:
  """Links every audio file a rule keeps into `<dir>/<package>-<kind>/`; returns counts."""
  counts: Dict[str, int] = {}
  for package, rule in rules.items():
    root = unpacked[package]
    for folder, _, names in os.walk(root):
      for name in sorted(names):
        if not AUDIO.search(name):
          continue
        path = os.path.join(folder, name)
        decision = rule(path)
        if decision is None:
          continue
        role, kind = decision
        label = f'{package}-{kind}'
        target_root = clips_dir if role == 'clips' else backgrounds_dir
        # The path inside the package, flattened: voices share file names across voices.
        flat = os.path.relpath(path, root).replace(os.sep, '__')
        link = os.path.join(target_root, label, flat)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        if not os.path.lexists(link):
          os.symlink(path, link)
        key = f'{role}:{label}'
        counts[key] = counts.get(key, 0) + 1
  return counts


def make_set(output_dir: str, clips_dir: str, backgrounds_dir: str, counts: Tuple[int, int, int],
             fractions: str) -> None:
  if os.path.exists(os.path.join(output_dir, 'synthetic_fuss.json')):
    print(f'{output_dir} already written; delete it to rebuild')
    return
  _run([sys.executable, '-m', 'mixit.commands.make_fuss', f'--output_dir={output_dir}',
        f'--clips_dir={clips_dir}', f'--backgrounds_dir={backgrounds_dir}',
        f'--num_train={counts[0]}', f'--num_validation={counts[1]}', f'--num_eval={counts[2]}',
        f'--clip_seconds={_CLIP_SECONDS.value}', f'--seed={_SEED.value}',
        f'--split_fractions={fractions}'])


def main(argv) -> None:
  del argv
  work_dir = os.path.abspath(_WORK_DIR.value)
  unpacked = fetch(work_dir, list(TRAINING_PACKAGES) + list(HELDOUT_PACKAGES))
  pool = os.path.join(work_dir, 'pool')
  tables = {
      'training': build_pool(unpacked, TRAINING_PACKAGES, os.path.join(pool, 'clips'),
                             os.path.join(pool, 'backgrounds')),
      'held-out': build_pool(unpacked, HELDOUT_PACKAGES, os.path.join(pool, 'heldout_clips'),
                             os.path.join(pool, 'heldout_backgrounds')),
  }
  print('| packages | role:label | files |\n|---|---|---|')
  for name, counts in tables.items():
    for key, count in sorted(counts.items()):
      print(f'| {name} | {key} | {count} |')
  sets = os.path.join(work_dir, 'sets')
  if 'main' in _SETS.value:
    make_set(os.path.join(sets, 'main'), os.path.join(pool, 'clips'),
             os.path.join(pool, 'backgrounds'),
             (_NUM_TRAIN.value, _NUM_VALIDATION.value, _NUM_EVAL.value), '0.8,0.1,0.1')
  if 'heldout' in _SETS.value:
    make_set(os.path.join(sets, 'heldout'), os.path.join(pool, 'heldout_clips'),
             os.path.join(pool, 'heldout_backgrounds'), (0, 0, _NUM_HELDOUT.value), '0,0,1')


if __name__ == '__main__':
  app.run(main)
