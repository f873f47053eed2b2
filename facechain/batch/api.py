"""``facechain.batch(PLAN)``: what ``facechain batch PLAN.yaml`` does, with the same keywords."""

from __future__ import annotations

from pathlib import Path

from .. import options, progress
from .plan import BatchPlan, load_plan
from .runner import BatchSummary, run_batch


def batch(plan: str | Path | BatchPlan, *, output: str | Path | None = None, executor: str = "local",
          ray_address: str | None = None, ray_resources: dict[str, dict] | list[str] | None = None,
          ray_workers: int | None = None, max_attempts: int = 3, workers: int = 1, model_root: list[str] | None = None,
          quiet: bool = False) -> BatchSummary:
    """Run a plan of people and portraits to the end as jobs; returns its :class:`BatchSummary` (also written as
    ``<output>/summary.json``; ``summary.failed``: people with errors, which a rerun of the plan retries).

    ``plan``: a PLAN.yaml (format: docs/cluster.md) or a parsed :class:`BatchPlan`. ``output``: where
    portraits and the summary go (default: the plan's ``output``, else ``<plan>-results`` beside it).
    ``executor``: ``"local"`` (``workers`` processes for GPU jobs here) or ``"ray"`` (a Ray cluster:
    ``ray_address``, ``ray_resources``, ``ray_workers``, ``max_attempts`` as for ``facechain serve``).
    ``model_root``: local folders jobs may take models from (besides the model cache). Jobs go through
    the service's queue in ``$FACECHAIN_HOME/service``, so a rerun finishes only what is missing.
    """
    options.validate(dict(executor=executor, ray_address=ray_address, ray_resources=ray_resources,
                          ray_workers=ray_workers, max_attempts=max_attempts, workers=workers))
    from ..service.settings import ServiceSettings

    the_plan = plan if isinstance(plan, BatchPlan) else load_plan(plan)  # a bad plan fails before anything starts
    settings = ServiceSettings.from_options(workers=workers, model_root=model_root, executor=executor,
                                            ray_address=ray_address, ray_resources=ray_resources,
                                            ray_workers=ray_workers, max_attempts=max_attempts)
    with progress.reporting(quiet=quiet):
        return run_batch(the_plan, executor=executor, output=output, settings=settings)
