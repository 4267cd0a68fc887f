"""`make demo` runs unattended: its own broker, a worker, the feed, alerts and a summary, exit 0."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.kafka


def test_demo_runs_start_to_finish(bootstrap: str) -> None:
    env = {**os.environ}
    env.pop("STREAMS_BROKER", None)  # the demo starts (and stops) a broker of its own
    done = subprocess.run([sys.executable, "-m", "streams", "demo", "--limit", "80"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Alerts as they arrive:" in out and "Summary" in out
    accounted = next(line for line in out.splitlines() if "accounted for" in line and " of " in line)
    n, total = accounted.split()[-3], accounted.split()[-1]
    assert n == total
    assert "streams_articles_out_total" in out and "/metrics" in out
    assert "[HIGH" in out or "[MEDIUM" in out or "[LOW" in out  # at least one alert was printed
