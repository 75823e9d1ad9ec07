"""DESIGN.md's module list and dependency arrows are the imports of the code, and the import
rules hold: losses and the assignment solvers are pure math, data_pipeline and eval import no
training code."""
import ast
import pathlib
import re
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ('mixit', 'data_pipeline', 'eval', 'benchmarks')


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(REPO).with_suffix('').parts
  return '.'.join(parts[:-1]) if parts[-1] == '__init__' else '.'.join(parts)


def _is_module(name: str) -> bool:
  path = REPO.joinpath(*name.split('.'))
  return path.with_suffix('.py').is_file() or (path / '__init__.py').is_file()


def _is_package(name: str) -> bool:
  return (REPO.joinpath(*name.split('.')) / '__init__.py').is_file()


def _imports(path: pathlib.Path):
  """(package modules, other top-level modules) that `path` imports anywhere in the file."""
  package, other = set(), set()
  for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names = [f'{node.module}.{alias.name}' if _is_module(f'{node.module}.{alias.name}')
               else node.module for alias in node.names]
    else:
      continue
    for name in names:
      if name.split('.')[0] in PACKAGES:
        package.add(name)
      else:
        other.add(name.split('.')[0])
  return package - {_module_name(path)}, other


def _code_graph():
  graph = {}
  for package in PACKAGES:
    for path in sorted((REPO / package).rglob('*.py')):
      graph[_module_name(path)] = _imports(path)
  return graph


def _design_graph():
  text = (REPO / 'DESIGN.md').read_text(encoding='utf-8')
  section = text.split('\n## Dependencies\n', 1)[1]
  block = re.search(r'```\n(.*?)```', section, re.S).group(1)
  graph = {}
  for line in block.strip().splitlines():
    module, _, deps = line.partition(' -> ')
    assert module not in graph, f'DESIGN.md lists {module} twice'
    graph[module] = set() if deps.strip() == '(none)' else {d.strip() for d in deps.split(',')}
  return graph


def test_design_md_arrows_are_the_imports():
  code = {module: deps for module, (deps, _) in _code_graph().items()}
  design = _design_graph()
  # Package __init__ files other than mixit's and mixit.commands' (the quiet start of a
  # command-line run) hold no code: DESIGN.md need not list them.
  for module in [m for m in code if m not in ('mixit', 'mixit.commands') and _is_package(m)]:
    assert not code.pop(module), f'{module}/__init__.py imports package modules'
  assert sorted(set(code) - set(design)) == [], 'modules missing from DESIGN.md'
  assert sorted(set(design) - set(code)) == [], 'DESIGN.md lists modules that do not exist'
  for module in sorted(code):
    assert design[module] == code[module], (
        f'{module}: DESIGN.md says -> {sorted(design[module])}, the code imports '
        f'{sorted(code[module])}')


def test_every_module_is_described_in_design_md():
  text = (REPO / 'DESIGN.md').read_text(encoding='utf-8').split('\n## Dependencies\n')[0]
  for package in PACKAGES:
    for path in sorted((REPO / package).rglob('*.py')):
      if path.name != '__init__.py':
        # Modules of a subpackage are named with their folder: `training/loop.py`.
        name = path.relative_to(REPO / package).as_posix()
        assert f'`{name}`' in text or f'{package}/{name}' in text, (
            f'DESIGN.md does not describe {package}/{name}')


def _closure(graph, start):
  seen, todo = set(), [start]
  while todo:
    for dep in graph.get(todo.pop(), ((), ()))[0]:
      if dep not in seen:
        seen.add(dep)
        todo.append(dep)
  return seen


def test_import_rules():
  graph = _code_graph()
  stdlib = set(sys.stdlib_module_names)
  # mixit.losses is pure math; of the package it imports only the assignment solvers, which
  # import nothing of it.
  for module, allowed in (('mixit.losses', {'mixit.assignment'}), ('mixit.assignment', set())):
    deps, other = graph[module]
    assert deps <= allowed, f'{module} must be pure math, imports {deps}'
    assert other - stdlib <= {'numpy', 'tensorflow'}, (module, other - stdlib)
  # mixit.owned_files (the records of the files a command wrote) imports nothing of the
  # package and only TensorFlow (and absl's logging, for the lock's takeover warning) of the
  # rest, so eval and the SavedModel loader may use it.
  deps, other = graph['mixit.owned_files']
  assert not deps and other - stdlib <= {'tensorflow', 'absl'}, (deps, other - stdlib)
  # mixit.stft_constants: the analysis window/hop, plain numbers eval's baselines share;
  # data_pipeline.audio_io: the one audio I/O stack (resampler, down-mix, block reading and
  # writing) that the separator streams through; it imports nothing of the package.
  # mixit.progress: the rate/ETA display eval.fuss shows (it imports nothing of the package).
  serving = {'mixit', 'mixit.serving.separator', 'mixit.stft_constants',
             'data_pipeline.audio_io', 'mixit.progress', 'mixit.owned_files'}
  for module in graph:
    reached = _closure(graph, module)
    if module.startswith('data_pipeline'):
      assert all(m.startswith('data_pipeline') for m in reached), (module, sorted(reached))
    if module.startswith('eval'):
      training = sorted(m for m in reached
                        if not m.startswith(('data_pipeline', 'eval')) and m not in serving)
      assert not training, f'{module} reaches {training}'
  # The SavedModel loader eval relies on needs nothing of the model or training code.
  assert _closure(graph, 'mixit.serving.separator') <= serving
  assert not _closure(graph, 'mixit.progress')
  assert not _closure(graph, 'mixit.owned_files')
