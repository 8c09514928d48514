"""The ``jaxport train`` pipeline and the typed API that reads its runs back.

- :mod:`jaxport.pipeline.config`: the resolved configuration (profiles, TOML, overrides); every
  field declared with :func:`jaxport.pipeline.config_schema.setting` (help, flag, where it acts).
- :mod:`jaxport.pipeline.trainer_configs`: the RL settings as each trainer's config.
- :mod:`jaxport.pipeline.run`: :class:`Pipeline`, which calls the stages in order and resumes.
- :mod:`jaxport.pipeline.forecast_stage`, :mod:`jaxport.pipeline.universe_stage`,
  :mod:`jaxport.pipeline.basket_stage`: stages 1-2, the universe policy (with its save and
  restore), one basket's env data, pair-scope training, gate and evaluation.
- :mod:`jaxport.pipeline.provenance`, :mod:`jaxport.pipeline.stage_io`: git/versions/devices and
  stage seeds; how a stage writes and reports.
- :mod:`jaxport.pipeline.summary`: the typed ``pipeline_summary.json`` (:class:`RunSummary`).
- :mod:`jaxport.pipeline.rundir`: :class:`RunDir`, a finished run read back (config, data, features,
  each pair's env, policy and checkpoint); ``jaxport eval``/``report``/``export`` use it.
- :mod:`jaxport.pipeline.reevaluate`, :mod:`jaxport.pipeline.report`: ``jaxport eval`` and
  ``jaxport report``.

Names are imported lazily (``import jaxport.pipeline`` stays light).
"""

from __future__ import annotations

from jaxport.lazy_exports import lazy_exports

_LAZY = {
    "Pipeline": "run",
    "RunInterrupted": "run",
    "PipelineConfig": "config",
    "build_config": "config",
    "RunSummary": "summary",
    "read_summary": "summary",
    "config_from_summary": "summary",
    "RunDir": "rundir",
    "evaluate_run": "reevaluate",
    "write_report": "report",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _LAZY)
