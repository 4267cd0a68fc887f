"""The ``streams`` command: run the pipeline, its broker, its tools and its evaluation."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from streams.settings import get_settings


def _read(path: str) -> bytes:
    return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()


def _emit(obj: object) -> None:
    text = obj.model_dump_json(indent=2) if hasattr(obj, "model_dump_json") else json.dumps(obj, indent=2)
    print(text)


def cmd_kafka(args: argparse.Namespace) -> int:
    from streams import broker

    settings = get_settings()
    if args.action == "start":
        if settings.broker:
            print(f"STREAMS_BROKER is set ({settings.broker}): not starting a local broker.")
            return 0
        state = broker.start_background(settings)
        print(f"Kafka {broker.kafka_version()} running at {state['bootstrap']} (pid {state['pid']}, "
              f"data {state['data_dir']})")
    elif args.action == "stop":
        print("stopped" if broker.stop_background(settings) else "no local broker running")
    else:
        state = broker.read_state(settings)
        print(f"running at {state['bootstrap']} (pid {state['pid']})" if state else "not running")
        return 0 if state else 1
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from streams.broker import bootstrap_servers
    from streams.topics import ensure_topics, topic_specs

    settings = get_settings()
    created = ensure_topics(settings, bootstrap_servers(settings))
    for spec in topic_specs(settings):
        print(f"{spec.name:32} partitions={spec.partitions}{'  (created)' if spec.name in created else ''}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import faust

    from streams.broker import bootstrap_servers
    from streams.topics import ensure_topics

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_topics(settings, bootstrap_servers(settings))
    from streams.app import app

    worker = faust.Worker(app, loglevel=args.loglevel, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from streams.broker import bootstrap_servers
    from streams.producer import ArticleProducer, PublishReport

    settings = get_settings()
    lines = _read(args.file).splitlines()
    report = PublishReport()
    with ArticleProducer(settings, bootstrap_servers(settings)) as producer:
        for line in tqdm(lines, desc="publishing", unit="msg", disable=args.quiet):
            if not line.strip():
                continue
            if args.raw:
                producer.publish_raw(line)
                report.sent += 1
            else:
                producer.publish(line, report)
    rejected = ", ".join(f"{k}={v}" for k, v in sorted(report.rejected.items())) or "none"
    print(f"sent {report.sent}, rejected {sum(report.rejected.values())} ({rejected})")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from streams.stages import clean_message
    from streams.stages.validate import parse_raw

    settings = get_settings()
    data = _read(args.file)
    if args.content_type or args.title or not data.lstrip().startswith(b"{"):
        text = data.decode("utf-8", "replace")
        content_type = args.content_type or ("text/html" if text.lstrip()[:1] == "<" else "text/plain")
        data = json.dumps({"id": Path(args.file).name if args.file != "-" else "stdin",
                           "url": "https://localhost/" + (Path(args.file).name if args.file != "-" else "stdin"),
                           "source": "cli", "title": args.title, "body": text, "content_type": content_type,
                           "published_at": datetime.now(UTC).isoformat()}).encode()
    assert parse_raw is not None
    _emit(clean_message(data, datetime.now(UTC), settings.max_body_bytes))
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from streams.schemas import check_schemas, write_schemas

    if args.check:
        stale = check_schemas()
        for name in stale:
            print(f"out of date: schemas/{name}")
        return 1 if stale else 0
    for path in write_schemas():
        print(f"wrote {path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from streams.evaluate import evaluate, print_report

    report = evaluate(Path(args.feed), Path(args.gold), progress=not args.json)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.demo import run_demo

    return run_demo(limit=args.limit, corpus=Path(args.corpus) if args.corpus else None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streams", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("kafka", help="start, stop or check the local Kafka broker")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(func=cmd_kafka)

    p = sub.add_parser("topics", help="create the pipeline's topics (idempotent) and list them")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("worker", help="run a pipeline worker (all four stages)")
    p.add_argument("--loglevel", default="warning")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("produce", help="publish JSON Lines articles to articles.raw")
    p.add_argument("file", help="a .jsonl file, or - for stdin")
    p.add_argument("--raw", action="store_true", help="send lines as they are, without validation")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("clean", help="print the clean event for one article (raw JSON, text or HTML)")
    p.add_argument("file", help="a file, or - for stdin")
    p.add_argument("--content-type", choices=["text/plain", "text/html"])
    p.add_argument("--title")
    p.set_defaults(func=cmd_clean)

    p = sub.add_parser("schemas", help="write (or --check) the JSON Schemas in schemas/")
    p.add_argument("--check", action="store_true")
    p.set_defaults(func=cmd_schemas)

    p = sub.add_parser("eval", help="score the stages in-process against a labelled feed")
    p.add_argument("--feed", required=True)
    p.add_argument("--gold", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("demo", help="local broker + pipeline + sample articles, alerts and metrics on screen")
    p.add_argument("--limit", type=int, default=300, help="corpus articles to feed (when a corpus is found)")
    p.add_argument("--corpus", help="bbc.jsonl-style corpus (default: ../shared/corpus/bbc.jsonl if present)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        sys.exit(args.func(args))
    except KeyboardInterrupt:
        sys.exit(130)
