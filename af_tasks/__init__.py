"""af_tasks: the suite's one import namespace (and Inspect registry namespace: ``af_tasks/<name>``).

Layers, lowest first; imports only go down (``tests/test_layers.py`` enforces it):

- ``af_tasks.core``     (folder ``core/``): the pure domain, no torch and no Inspect.
- ``af_tasks.engine``, ``af_tasks.training``, ``af_tasks.sae`` (``engine/``, ``training/``, ``sae/``):
  compute on models; never Inspect.
- ``af_tasks`` (this folder: the tasks), ``af_tasks.solvers``, ``af_tasks.scorers``: Inspect adapters.
- ``af_tasks.app`` (``app/``): the ``af`` command line, demo, experiments, reports.

The folders sit side by side at the top of the repository; setuptools maps them under this package.
"""
