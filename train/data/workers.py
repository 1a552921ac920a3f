"""How many DataLoader worker processes a run starts: --num_threads, never more than the CPUs
this process may use (the count torch's DataLoader warns above, "This DataLoader will create N
worker processes in total. Our suggested max number of worker in current system is M")."""
import os

OFFICIAL_DEFAULT = 4  # the official train.py's --num_threads


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS tells it, as torch counts)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_workers() -> int:
    return min(OFFICIAL_DEFAULT, usable_cpus())


def capped_workers(requested: int) -> tuple:
    """(the workers to start, a one-line note when `requested` was more than the CPUs, else None)."""
    cpus = usable_cpus()
    if requested <= cpus:
        return requested, None
    return cpus, (f"--num_threads {requested}: this process may use {cpus} CPUs, so it starts {cpus} "
                  f"data-loading workers")
