"""Monitoring: rules checked and unit-tested with promtool, the compose file valid, and a real
Prometheus scraping a running worker answers every dashboard and recording-rule expression."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from streams.tools.broker import free_port
from tests.conftest import ROOT, Pipeline, make_feed, require, wait_http

PROM = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "streams.json"


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    require(shutil.which("promtool") is not None, "promtool (Debian package prometheus)")
    check = subprocess.run(["promtool", "check", "rules", str(PROM / "rules.yml")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(["promtool", "test", "rules", "tests.yml"], cwd=PROM, capture_output=True, text=True)
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_compose_file_is_valid_and_every_mounted_path_exists() -> None:
    require(shutil.which("docker-compose") is not None, "docker-compose (Debian package docker-compose)")
    done = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            host = volume.split(":", 1)[0]
            assert (ROOT / host).exists(), f"{name} mounts {host}, which does not exist"
        if "build" in service:
            assert (ROOT / service["build"]["dockerfile"]).exists()


def dashboard_expressions() -> list[str]:
    return [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]


def recording_rules() -> list[str]:
    groups = yaml.safe_load((PROM / "rules.yml").read_text())["groups"]
    return [r["record"] for g in groups for r in g["rules"] if "record" in r]


class Prometheus:
    def __init__(self, directory: Path, target: str) -> None:
        self.port = free_port()
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(PROM / "rules.yml")],
                  "scrape_configs": [{"job_name": "streams", "static_configs": [{"targets": [target]}]}]}
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(directory / "prometheus.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={directory / 'prometheus.yml'}",
             f"--storage.tsdb.path={directory / 'tsdb'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def query(self, expr: str) -> list[dict]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = json.loads(urllib.request.urlopen(url, timeout=10).read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expr: str) -> float:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else float("nan")

    def wait_ready(self) -> None:
        wait_http(f"http://127.0.0.1:{self.port}/-/ready")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()


@pytest.mark.kafka
def test_real_prometheus_answers_every_dashboard_and_rule_expression(pipeline: Pipeline, tmp_path: Path) -> None:
    require(shutil.which("prometheus") is not None, "prometheus (Debian package prometheus)")
    feed = make_feed(tmp_path, limit=200)
    worker = pipeline.start_worker(STREAMS_LAG_INTERVAL="1")
    worker.wait_ready()
    prom = Prometheus(tmp_path, f"127.0.0.1:{worker.web_port}")
    try:
        prom.wait_ready()
        time.sleep(3)  # a few scrapes of the idle worker first, so rates have a baseline
        half = len(feed.lines) // 2
        pipeline.publish(feed.lines[:half])
        time.sleep(4)
        pipeline.publish(feed.lines[half:])
        reader = pipeline.collect(expected=len(feed.lines))
        assert reader.accounted() == len(feed.lines)
        time.sleep(4)  # the last scrapes and rule evaluations

        missing = []
        for expr in [*dashboard_expressions(), *recording_rules()]:
            deadline = time.monotonic() + 20
            while not prom.query(expr) and time.monotonic() < deadline:
                time.sleep(1)
            if not prom.query(expr):
                missing.append(expr)
        assert not missing, f"no data for {missing}"
        assert prom.value('sum(up{job="streams"})') == 1

        # counters match what was sent: in = tagged + duplicates + dead letters
        sent = prom.value('sum(streams_articles_in_total{stage="clean"})')
        tagged = prom.value('sum(streams_articles_out_total{stage="tag"})')
        dups = prom.value("sum(streams_duplicates_total)")
        dead = prom.value("sum(streams_deadletters_total)")
        assert sent == len(feed.lines)
        assert tagged + dups + dead == sent
        assert (tagged, dups, dead) == (len(reader.events["articles.tagged"]),
                                        len(reader.events["articles.duplicates"]),
                                        len(reader.events["articles.deadletter"]))
        assert 0 < prom.value("streams:end_to_end_seconds:p99") < 60
    finally:
        prom.stop()
