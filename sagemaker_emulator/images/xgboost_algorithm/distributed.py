"""Multi-instance (data-parallel) training over XGBoost's collective, on one machine.

Every emulated instance is its own process; all host names (``algo-1`` ... ``algo-N``) mean
127.0.0.1.  The flow keeps the container's two rounds:

1. All hosts join a communicator whose tracker runs in the lexicographically first host on
   ``SM_EMULATOR_TRACKER_PORT`` (9099 when unset, the container's port) and every host broadcasts
   ``{"host", "include_in_training"}``.
2. Hosts without data leave (exit 0).  If several hosts have data, they train together in a second
   communicator whose tracker runs in the first host *with* data; if only one has data it trains
   alone; if none has data every host fails with "No hosts received training data.".

Simplification: the container starts the second tracker on "first port + 1".  Here the
second-round master opens its tracker on a free port chosen by the OS *while round 1 is still up*
and broadcasts that port, so the tracker exists before anyone connects and no second port has to
be reserved.  Ranks follow the sorted host names, so rank 0 (which prints the metric lines) is
the master (which saves the model).  Workers retry connecting until the tracker listens; forming a
group gives up after ``SM_EMULATOR_TRACKER_CONNECT_TIMEOUT`` seconds (default 600), so a peer that
died before joining makes the others fail instead of hanging.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from xgboost import collective
from xgboost.tracker import RabitTracker

from .relay import Relay

logger = logging.getLogger(__name__)

LOCAL_HOST_IP = "127.0.0.1"
DEFAULT_PORT = 9099
TRACKER_PORT_ENV = "SM_EMULATOR_TRACKER_PORT"
CONNECT_TIMEOUT_SECONDS = float(os.environ.get("SM_EMULATOR_TRACKER_CONNECT_TIMEOUT", "600"))
RETRY_INTERVAL_SECONDS = 0.2
LEGACY_CONNECT_RETRIES = 10
TRACKER_SHUTDOWN_TIMEOUT_SECONDS = 60


class HostExcluded(Exception):
    """Raised on a host without data: the container lets such a host exit 0 without training."""


def _task_id(hosts: Sequence[str], host: str) -> str:
    # The tracker ranks workers by task id; zero padding keeps the string order == host order.
    return f"{hosts.index(host):06d}"


@dataclass
class Tracker:
    """The master's ``RabitTracker``, reachable on the port asked for (through a relay where XGBoost ignores it)."""

    rabit: RabitTracker
    port: int
    relay: Relay | None = None

    def wait_for(self, timeout: float) -> None:
        if hasattr(self.rabit, "wait_for"):
            self.rabit.wait_for(timeout)
        elif self.rabit.thread is not None:  # XGBoost 1.x: the Python tracker's thread
            self.rabit.thread.join(timeout)

    def release(self) -> None:
        """Free the tracker now, quietly (XGBoost would otherwise complain from ``__del__`` later)."""
        if self.relay is not None:
            self.relay.close()
        try:
            self.rabit.free()  # idempotent: drops the handle before freeing it
        except Exception:
            logger.debug("RabitTracker could not be freed cleanly", exc_info=True)


def _start_tracker(n_workers: int, port: int) -> Tracker:
    # The timeout bounds only forming (and closing) the group, so a peer that died before
    # connecting cannot leave the others waiting forever.
    if hasattr(RabitTracker, "worker_args"):  # XGBoost 2 and 3: the native tracker
        rabit = RabitTracker(
            n_workers=n_workers,
            host_ip=LOCAL_HOST_IP,
            port=port,
            sortby="task",
            timeout=int(CONNECT_TIMEOUT_SECONDS),
        )
        rabit.start()
        bound = int(rabit.worker_args()["dmlc_tracker_port"])
    else:  # XGBoost 1.x (the 1.x images' environments): the Python tracker, bound to the port asked for
        rabit = RabitTracker(host_ip=LOCAL_HOST_IP, n_workers=n_workers, port=port, sortby="task")
        rabit.start(n_workers)
        bound = int(rabit.worker_envs()["DMLC_TRACKER_PORT"])
    if port in (0, bound):
        return Tracker(rabit, bound)
    return Tracker(rabit, port, Relay(port, bound))  # XGBoost 2.1 bound elsewhere (see relay.py)


def _release(tracker: Tracker | None) -> None:
    if tracker is not None:
        tracker.release()


def _communicator_args(port: int, task_id: str) -> dict[str, object]:
    """``collective.init``'s arguments in the spelling of the installed XGBoost (1.x reads them case-sensitively,
    upper case; 2 and 3 lower case)."""
    if hasattr(RabitTracker, "worker_args"):
        return {"dmlc_communicator": "rabit", "dmlc_tracker_uri": LOCAL_HOST_IP, "dmlc_tracker_port": port,
                "dmlc_task_id": task_id, "dmlc_retry": 1}
    # 1.x cannot be initialised again after a failed attempt ("Rank -1 is less than 0"): rabit retries the
    # connection itself instead, sleeping 0, 2, 4 … s between attempts (90 s in all for 10)
    return {"xgboost_communicator": "rabit", "DMLC_TRACKER_URI": LOCAL_HOST_IP, "DMLC_TRACKER_PORT": port,
            "DMLC_TASK_ID": task_id, "DMLC_WORKER_CONNECT_RETRY": LEGACY_CONNECT_RETRIES}


def _init_with_retry(hosts: Sequence[str], port: int, task_id: str) -> None:
    """Join the communicator, retrying while the tracker is not listening yet."""
    deadline = time.monotonic() + CONNECT_TIMEOUT_SECONDS
    attempt = 0
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                collective.init(**_communicator_args(port, task_id))
            logger.info("Connected to RabitTracker.")
            return
        except Exception as error:
            if time.monotonic() > deadline or not hasattr(RabitTracker, "worker_args"):
                raise RuntimeError(
                    f"Failed to connect to Rabit Tracker on port {port}: hosts {list(hosts)} did not all "
                    f"join within {CONNECT_TIMEOUT_SECONDS:g} seconds"
                ) from error
            if attempt == 0:
                logger.info(f"Failed to connect to RabitTracker on attempt {attempt}, retrying")
            attempt += 1
            time.sleep(RETRY_INTERVAL_SECONDS)


@contextmanager
def communicator(
    hosts: Sequence[str], current_host: str, port: int, tracker: Tracker | None
) -> Iterator[int]:
    """Join a communicator of ``hosts``; yields this host's rank.  ``tracker`` is the master's."""
    _init_with_retry(hosts, port, _task_id(hosts, current_host))
    try:
        rank = collective.get_rank()
        if rank != hosts.index(current_host):
            raise RuntimeError(f"Host {current_host} got rank {rank}, expected {hosts.index(current_host)}")
        yield rank
    finally:
        collective.finalize()
        if tracker is not None:
            try:
                tracker.wait_for(TRACKER_SHUTDOWN_TIMEOUT_SECONDS)
            except Exception:  # a worker that died must not keep the master from reporting
                logger.warning("RabitTracker did not shut down cleanly")


def _exchange(record: dict, world_size: int) -> list[dict]:
    """Every rank broadcasts ``record`` in turn; returns all records in rank order."""
    rank = collective.get_rank()
    return [collective.broadcast(record if rank == root else None, root) for root in range(world_size)]


def run(
    train_fn: Callable[[bool], None],
    include_in_training: bool,
    hosts: Sequence[str],
    current_host: str,
) -> None:
    """Run ``train_fn(is_master)`` on the hosts that have data; raise HostExcluded on the others."""
    hosts = sorted(hosts)
    port = int(os.environ.get(TRACKER_PORT_ENV) or DEFAULT_PORT)
    first_tracker = _start_tracker(len(hosts), port) if current_host == hosts[0] else None
    second_tracker: Tracker | None = None
    try:
        # Round 1: everybody learns which hosts have data.
        with communicator(hosts, current_host, port, first_tracker):
            record = {"host": current_host, "include_in_training": include_in_training}
            hosts_with_data = sorted(
                r["host"] for r in _exchange(record, len(hosts)) if r["include_in_training"]
            )
            second_port = None
            if len(hosts_with_data) > 1:
                second_master = hosts_with_data[0]
                if current_host == second_master:
                    second_tracker = _start_tracker(len(hosts_with_data), 0)
                    second_port = second_tracker.port
                second_port = collective.broadcast(second_port, hosts.index(second_master))

        if not include_in_training:
            logger.warning(f"Host {current_host} not being used for distributed training.")
            raise HostExcluded(current_host)

        # Round 2: the hosts with data train together (or one of them alone).
        if len(hosts_with_data) > 1:
            assert second_port is not None
            with communicator(hosts_with_data, current_host, second_port, second_tracker):
                train_fn(current_host == hosts_with_data[0])
        elif len(hosts_with_data) == 1:
            logger.debug(
                f"Only 1 host with training data, starting single node training job from: {current_host}"
            )
            train_fn(True)
        else:
            raise RuntimeError("No hosts received training data.")
    finally:
        _release(first_tracker)
        _release(second_tracker)
