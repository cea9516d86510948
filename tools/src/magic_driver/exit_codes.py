"""Exit codes of the `magic` command that scripts act on.

``EXIT_PREEMPTED``: the run was asked to stop (SIGTERM, or SIGUSR1 ahead of a
time limit), finished its current step, checkpointed into its run directory
and exited; rerunning the same job resumes it. 75 is sysexits' EX_TEMPFAIL
("try again later"), which is what a job script should do: requeue.
"""

EXIT_PREEMPTED = 75
