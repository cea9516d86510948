"""A job file (or preset) with its overrides and cluster profile, planned and checked."""

from __future__ import annotations

from magic_core import ConfigError

from .clusters import load_profile
from .job_kinds import build_any_job, job_kind
from .jobs import AttributeJob, read_mapping
from .plan_estimate import Plan, estimate
from .plan_job import where
from .plan_warnings import warnings


def make_plan(source: str, overrides: tuple[str, ...] = (), cluster: str = "local"
              ) -> tuple[Plan, list[str]]:
    """The plan of ``source`` and its warnings; a job `magic attribute` would refuse raises
    ConfigError (one line)."""
    data = read_mapping(source)
    if job_kind(data) != "attribute":
        raise ConfigError("magic plan plans attribution jobs (kind: attribute); an unlearning "
                          "job runs one process: see its slurm: section")
    profile = load_profile(cluster)

    def plan_of(extra: tuple[str, ...]) -> Plan:
        job = build_any_job(data, overrides + extra)
        assert isinstance(job, AttributeJob)  # job_kind said so
        return estimate(job, where(job, profile, cluster))

    def replan(extra: tuple[str, ...]) -> Plan | None:
        try:
            return plan_of(extra)
        except ConfigError:
            return None  # a candidate fix this job cannot take

    made = plan_of(())
    return made, warnings(made, replan)
