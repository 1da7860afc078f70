"""Hydra callbacks: after a multirun sweep (`python train.py -m ...`), one architect report over its jobs."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from slmtier.errors import SlmtierError

log = logging.getLogger(__name__)


class AggregateReport(Callback):
    """Writes report.html/.md/.json into the sweep directory from every job that finished (has metrics.json)."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from slmtier.report.aggregate import write_aggregate

        sweep_dir = Path(config.hydra.sweep.dir)
        runs = sorted(path.parent for path in sweep_dir.rglob("metrics.json"))
        if not runs:
            log.warning("no finished job under %s: no combined report", sweep_dir)
            return
        try:
            paths = write_aggregate(runs, sweep_dir)
        except SlmtierError as err:  # a report problem must not hide the sweep's own results
            log.error("combined report not written: %s", err)
            return
        print(f"combined report over {len(runs)} run(s): {paths[-1]}")
