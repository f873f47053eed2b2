"""Batch runs: a YAML plan of people and what to make for each, run as service jobs (local or Ray).

``facechain batch PLAN.yaml [--executor local|ray]`` and ``facechain.batch(PLAN)`` (:mod:`.api`; this
package is also that callable) read a plan (:mod:`.plan`), queue its jobs with their dependencies,
follow them with one overall progress bar, and write ``summary.json`` (:mod:`.runner`). A rerun
finishes only what is missing.
"""

from __future__ import annotations

from .plan import BatchPlan, Item, PersonPlan, load_plan, parse_plan
from .runner import BatchSummary, PersonSummary, run_batch, write_summary

__all__ = ["BatchPlan", "BatchSummary", "Item", "PersonPlan", "PersonSummary", "load_plan", "parse_plan", "run_batch",
           "write_summary"]
