"""The ``streams`` command: run the pipeline, its broker, its tools and its evaluation."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from streams.errors import ConfigError, StreamsError
from streams.settings import get_settings


def _read(path: str) -> bytes:
    return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()


def _emit(obj: object) -> None:
    text = obj.model_dump_json(indent=2) if hasattr(obj, "model_dump_json") else json.dumps(obj, indent=2)
    print(text)


def cmd_kafka(args: argparse.Namespace) -> int:
    from streams.kafka.connection import read_state
    from streams.tools import broker

    settings = get_settings()
    if args.action == "start":
        if settings.broker:
            print(f"STREAMS_BROKER is set ({settings.broker}): not starting a local broker.")
            return 0
        state = broker.start_background(settings)
        print(f"Kafka {broker.kafka_version()} running at {state['bootstrap']} (pid {state['pid']}, "
              f"data {state['data_dir']})")
    elif args.action == "stop":
        print("stopped (its data stays: `streams kafka start` resumes it)" if broker.stop_background(settings)
              else "no local broker running")
    elif args.action == "reset":
        wiped = broker.reset_background(settings)
        print(f"deleted {broker.data_dir(settings)}" if wiped else "no local broker data to delete")
    else:
        state = read_state(settings)
        print(f"running at {state['bootstrap']} (pid {state['pid']})" if state else "not running")
        return 0 if state else 1
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from streams.contract.topics import ensure_topics, topic_specs
    from streams.kafka.connection import bootstrap_servers

    settings = get_settings()
    created = ensure_topics(settings, bootstrap_servers(settings))
    for spec in topic_specs(settings):
        print(f"{spec.name:32} partitions={spec.partitions}{'  (created)' if spec.name in created else ''}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.contract.topics import ensure_topics
    from streams.kafka.connection import bootstrap_servers
    from streams.sources.ingest import IngestTokens, check_open_door

    settings = get_settings()
    warning = check_open_door(settings, IngestTokens.from_settings(settings))
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_topics(settings, bootstrap_servers(settings))
    from streams.app import StreamsWorker, app

    app.stages.tagger  # noqa: B018  load the NER before joining the group: a bad model fails here, and a
    # seconds-long load inside the running event loop would stall the worker's first rebalance
    worker = StreamsWorker(app, loglevel=args.loglevel, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from streams.kafka.connection import bootstrap_servers
    from streams.sources.ingest import RateLimiter, file_messages
    from streams.sources.producer import ArticleProducer, PublishReport

    settings = get_settings()
    source = Path(args.file)
    messages = sys.stdin.buffer.read().splitlines() if args.file == "-" else list(file_messages(source))
    report = PublishReport()
    limiter = RateLimiter(args.rate)
    with ArticleProducer(settings, bootstrap_servers(settings)) as producer:
        for message in tqdm(messages, desc="publishing", unit="msg", disable=args.quiet):
            if not message.strip():
                continue
            limiter.wait()
            if args.raw:
                producer.publish_raw(message)
                report.sent += 1
            else:
                producer.publish(message, report)
    rejected = ", ".join(f"{k}={v}" for k, v in sorted(report.rejected.items())) or "none"
    print(f"sent {report.sent}, rejected {sum(report.rejected.values())} ({rejected})")
    return 0


def cmd_poll(args: argparse.Namespace) -> int:
    from streams.kafka.connection import bootstrap_servers
    from streams.sources.producer import ArticleProducer
    from streams.sources.rss import PollConfig, Poller, PollState

    settings = get_settings()
    config = PollConfig.load(Path(args.feeds))
    state = PollState.load(Path(args.state) if args.state else settings.home / "rss-state.json")
    with ArticleProducer(settings, bootstrap_servers(settings)) as producer:
        poller = Poller(config, state, producer.publish, producer.flush, fetch_private=settings.fetch_private)
        if args.once:
            r = poller.poll_once()
            print(f"{r.published} new, {r.not_modified} unchanged, {r.skipped} already sent, "
                  f"{r.rejected} refused at the door, {len(r.errors)} errors")
            for error in r.errors:
                print(f"  {error}", file=sys.stderr)
            return 1 if r.errors else 0
        poller.run()
    return 0


def _as_raw_message(args: argparse.Namespace) -> bytes:
    """The input as a raw wire message: JSON as it is, or a text/HTML file wrapped in one."""
    data = _read(args.file)
    if not (args.content_type or args.title) and data.lstrip().startswith(b"{"):
        return data
    text = data.decode("utf-8", "replace")
    name = Path(args.file).name if args.file != "-" else "stdin"
    content_type = args.content_type or ("text/html" if text.lstrip()[:1] == "<" else "text/plain")
    return json.dumps({"id": name, "url": f"https://localhost/{name}", "source": "cli", "title": args.title,
                       "body": text, "content_type": content_type,
                       "published_at": datetime.now(UTC).isoformat()}).encode()


def _clean_or_tagged(args: argparse.Namespace):
    """A clean article (or a dead letter) from raw, clean or tagged JSON, text or HTML."""
    from streams.contract.events import CleanArticle, TaggedArticle
    from streams.stages.clean import clean_message

    data = _as_raw_message(args)
    try:
        obj = json.loads(data)
    except json.JSONDecodeError:
        obj = None
    if isinstance(obj, dict) and "entities" in obj:
        return TaggedArticle.model_validate(obj)
    if isinstance(obj, dict) and "content_hash" in obj:
        return CleanArticle.model_validate(obj)
    return clean_message(data, datetime.now(UTC), get_settings().max_body_bytes)


def _stages(rules: str | None = None):
    """The stages as the worker builds them; ``rules`` overrides ``STREAMS_RULES``."""
    from streams.build import Stages

    settings = get_settings()
    return Stages(settings.model_copy(update={"rules": Path(rules)}) if rules else settings)


def cmd_clean(args: argparse.Namespace) -> int:
    from streams.stages.clean import clean_message

    _emit(clean_message(_as_raw_message(args), datetime.now(UTC), get_settings().max_body_bytes))
    return 0


def _tagged(args: argparse.Namespace, tagger):
    """The input as a tagged article, or None after printing its dead letter."""
    from streams.contract.events import DeadLetter, TaggedArticle

    article = _clean_or_tagged(args)
    if isinstance(article, DeadLetter):
        _emit(article)
        return None
    return article if isinstance(article, TaggedArticle) else tagger.tag(article)


def cmd_tag(args: argparse.Namespace) -> int:
    tagged = _tagged(args, _stages().tagger)
    if tagged is not None:
        _emit(tagged)
    return 0 if tagged is not None else 1


def cmd_alert(args: argparse.Namespace) -> int:
    stages = _stages(args.rules)
    tagged = _tagged(args, stages.tagger)
    if tagged is None:
        return 1
    for alert in stages.alerts().evaluate(tagged):
        print(alert.model_dump_json())
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    from streams.stages.alert import RulesError, load_rules
    from streams.stages.tag import KnowledgeBase

    try:
        rules = load_rules(Path(args.file), set(KnowledgeBase.load(get_settings().knowledge_base).entities))
    except RulesError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{args.file}: {len(rules)} rules OK ({', '.join(r.id for r in rules)})")
    return 0


def cmd_eval_ner(args: argparse.Namespace) -> int:
    import spacy

    from streams.stages.tag import build_nlp
    from streams.tools.ner import evaluate_conll

    s = get_settings()
    nlp = build_nlp(s.spacy_model, s.knowledge_base)
    report = {"model": s.spacy_model or "blank('en') + knowledge base + patterns",
              "spacy_version": spacy.__version__, **evaluate_conll(nlp, Path(args.conll))}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.conll}: {report['sentences']} sentences, {report['words']} words; model: {report['model']}")
    print(f"{'label':8}{'precision':>10}{'recall':>8}{'F1':>8}{'support':>9}")
    for label, r in [*report["labels"].items(), ("overall", report["overall"])]:
        print(f"{label:8}{r['precision']:>10.4f}{r['recall']:>8.4f}{r['f1']:>8.4f}{r['support']:>9}")
    print(f"speed: {report['words_per_second']:,} words/s (one process, nlp.pipe, spaCy {report['spacy_version']})")
    return 0


def cmd_train_ner(args: argparse.Namespace) -> int:
    from streams.tools.ner import DEFAULT_OUTPUT, train

    out = train(Path(args.conll), Path(args.out) if args.out else DEFAULT_OUTPUT,
                text=Path(args.text) if args.text else None, glove=not args.no_glove, with_dev=args.with_dev)
    print(f"model written to {out}")
    return 0


def cmd_train_clean(args: argparse.Namespace) -> int:
    from streams.stages.clean.detector import MODEL_DIR
    from streams.tools.train_clean import train_all

    options = {"iterations": args.iterations} if args.iterations else {}
    for path in train_all(Path(args.corpus), Path(args.out) if args.out else MODEL_DIR, **options):
        print(f"wrote {path}")
    return 0


def cmd_eval_pages(args: argparse.Namespace) -> int:
    from streams.stages.clean.detector import MODEL_DIR
    from streams.tools.eval_pages import evaluate_pages, print_report
    from streams.tools.train_clean import read_pages

    pages = read_pages(Path(args.corpus), limit=args.limit)
    report = evaluate_pages(pages, Path(args.models) if args.models else MODEL_DIR, shipped=args.shipped,
                            entities=not args.no_entities, progress=not args.json)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from streams.contract.schemas import check_schemas, write_schemas

    if args.check:
        stale = check_schemas()
        for name in stale:
            print(f"out of date: schemas/{name}")
        return 1 if stale else 0
    for path in write_schemas():
        print(f"wrote {path}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from streams.tools.evaluate import evaluate, print_report

    report = evaluate(Path(args.feed), Path(args.gold), progress=not args.json)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


def cmd_eval_stories(args: argparse.Namespace) -> int:
    from streams.build import Stages
    from streams.tools.eval_stories import evaluate, print_report

    settings = get_settings()
    config = Stages(settings).stories().config
    report = evaluate(Path(args.corpus), settings, config, Path(args.pred) if args.pred else None,
                      folds=args.folds, progress=not args.json)
    if args.load:
        from streams.tools.eval_stories import cost_at_scale

        report["cost"] = cost_at_scale(Path(args.load), config, live=args.live, progress=not args.json)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    from streams.kafka.connection import bootstrap_servers
    from streams.sinks.consumers import SeenIds, alert_consumer, follow, format_alert, matches, parse

    settings = get_settings()
    seen = SeenIds.for_reader(settings, "follow")
    consumer = alert_consumer(settings, bootstrap_servers(settings), None, args.from_beginning)
    try:
        for record in follow(consumer, stop_after_idle=args.idle):
            if (alert := parse(record)) is None:
                print(f"skipped a record that is not an alert at {record.partition}:{record.offset}", file=sys.stderr)
            elif alert.id not in seen and matches(alert, args.severity, args.rule):
                print(alert.model_dump_json() if args.json else format_alert(alert), flush=True)
                seen.add(alert.id)
    finally:
        consumer.close()
    return 0


def cmd_forward(args: argparse.Namespace) -> int:
    from streams.kafka.connection import bootstrap_servers
    from streams.sinks.consumers import AlertmanagerForwarder, WebhookForwarder, forward

    settings = get_settings()
    kind = AlertmanagerForwarder if args.kind == "alertmanager" else WebhookForwarder
    forwarder = kind.from_settings(args.url, settings, retries=args.retries)
    counts = forward(forwarder, settings, bootstrap_servers(settings),
                     args.group or f"{settings.app_id}-forward-{args.kind}", stop_after_idle=args.idle)
    print(f"delivered {counts['delivered']}, dead-lettered {counts['dead_lettered']}, "
          f"repeats dropped {counts['repeats']}")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from streams.kafka.connection import bootstrap_servers
    from streams.tools.audit import wait_until_accounted

    settings = get_settings()
    result = wait_until_accounted(settings, bootstrap_servers(settings), quiet=args.wait, limit=max(args.wait, 1) * 20)
    print(result.summary())
    return 0 if result.ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.tools.demo import run_demo

    return run_demo(limit=args.limit, corpus=Path(args.corpus) if args.corpus else None)


def cmd_bench(args: argparse.Namespace) -> int:
    from streams.tools.bench import run_bench

    run_bench(Path(args.corpus), args.articles, args.workers or [1, 2], args.rate, args.fixed_seconds,
              Path(args.out), args.json)
    return 0


def cmd_bench_hop(args: argparse.Namespace) -> int:
    from streams.kafka.connection import bootstrap_servers
    from streams.tools.hop import VARIANTS, bench_hop, print_table

    print_table(bench_hop(bootstrap_servers(get_settings()), args.records, args.variant or list(VARIANTS)))
    return 0


#: the page to read for each command (relative to the repository; tests/test_docs.py checks both ways)
DOCS = {
    "kafka": "docs/operations.md#the-local-broker", "topics": "README.md#the-wire-format-articlesraw",
    "worker": "docs/operations.md#workers", "produce": "README.md#getting-articles-in",
    "poll": "README.md#getting-articles-in", "clean": "docs/clean.md", "tag": "docs/tagging.md",
    "alert": "docs/alert-rules.md", "rules": "docs/alert-rules.md", "eval-ner": "docs/tagging.md",
    "train-ner": "docs/tagging.md", "train-clean": "docs/clean.md", "eval-pages": "docs/clean.md",
    "schemas": "README.md#the-wire-format-articlesraw", "eval": "docs/benchmark.md",
    "eval-stories": "docs/stories.md#measured", "alerts": "docs/alert-rules.md",
    "forward": "docs/security.md", "audit": "docs/reliability.md", "demo": "README.md#two-commands",
    "bench": "docs/benchmark.md", "bench-hop": "docs/benchmark.md#fewer-costs-per-record-2026-12-07",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streams", description=__doc__,
                                     epilog="Start with README.md; each command's help names its page in docs/.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("kafka", help="start, stop, check or wipe the local Kafka broker (it keeps its data)")
    p.add_argument("action", choices=["start", "stop", "status", "reset"])
    p.set_defaults(func=cmd_kafka)

    p = sub.add_parser("topics", help="create the pipeline's topics (idempotent) and list them")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("worker", help="run a pipeline worker (all four stages)")
    p.add_argument("--loglevel", default="warning")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("produce", help="publish JSON Lines articles to articles.raw")
    p.add_argument("file", help="a .jsonl file, a directory of .json/.jsonl/.html/.txt files, or - for stdin")
    p.add_argument("--raw", action="store_true", help="send lines as they are, without validation")
    p.add_argument("--rate", type=lambda v: float(v.removesuffix("/s")), metavar="N[/s]",
                   help="at most N messages per second (load tests)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("poll", help="poll RSS/Atom feeds and publish new items once")
    p.add_argument("feeds", help="FEEDS.yaml: interval and a list of feeds")
    p.add_argument("--state", help="state file (default: $STREAMS_HOME/rss-state.json)")
    p.add_argument("--once", action="store_true", help="poll every feed once and exit")
    p.set_defaults(func=cmd_poll)

    p = sub.add_parser("clean", help="print the clean event for one article (raw JSON, text or HTML)")
    p.add_argument("file", help="a file, or - for stdin")
    p.add_argument("--content-type", choices=["text/plain", "text/html"])
    p.add_argument("--title")
    p.set_defaults(func=cmd_clean)

    for name, func, help_ in (("tag", cmd_tag, "print the tagged event for one article (raw/clean JSON, text, HTML)"),
                              ("alert", cmd_alert, "print the alerts one article would fire, as JSON lines")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("file", help="a file, or - for stdin")
        p.add_argument("--content-type", choices=["text/plain", "text/html"])
        p.add_argument("--title")
        if name == "alert":
            p.add_argument("--rules", help="rules file (default: STREAMS_RULES)")
        p.set_defaults(func=func)

    p = sub.add_parser("rules", help="validate a rules file")
    p.add_argument("action", choices=["check"])
    p.add_argument("file")
    p.set_defaults(func=cmd_rules)

    p = sub.add_parser("eval-ner", help="score the tag pipeline's entities on a CoNLL-2003 file")
    p.add_argument("--conll", required=True, help="e.g. ../shared/corpus/conll2003/eng.testb")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval_ner)

    p = sub.add_parser("train-ner", help="train the NER on CoNLL-2003 (eng.train, eng.testa as dev)")
    p.add_argument("--conll", required=True, help="directory with eng.train and eng.testa")
    p.add_argument("--text", help="with --no-glove: unlabelled news to learn word vectors from (JSON lines with a "
                   "body, or text), e.g. ../shared/corpus/bbc.jsonl")
    p.add_argument("--no-glove", action="store_true", help="without the pretrained GloVe vectors")
    p.add_argument("--with-dev", action="store_true", help="the final recipe: train on eng.train and eng.testa")
    p.add_argument("--out", help="output directory (default: streams/data/ner, the model that ships)")
    p.set_defaults(func=cmd_train_ner)

    p = sub.add_parser("train-clean", help="train the clean stage's article detector on real pages (make train-clean)")
    p.add_argument("--corpus", required=True, help="webpages.jsonl.gz: pages with their text and the gold article")
    p.add_argument("--out", help="output directory (default: streams/data/article, the models that ship)")
    p.add_argument("--iterations", type=int, help="boosting rounds per model (default: the trainer's)")
    p.set_defaults(func=cmd_train_clean)

    p = sub.add_parser("eval-pages", help="the clean stage on real pages: both paths, held out, per dataset")
    p.add_argument("--corpus", default=str(Path(__file__).resolve().parents[2] / "shared/corpus/webpages.jsonl.gz"),
                   help="default: ../shared/corpus/webpages.jsonl.gz")
    p.add_argument("--shipped", action="store_true", help="score with the model trained on every page")
    p.add_argument("--models", help="directory of the models (default: streams/data/article)")
    p.add_argument("--limit", type=int, help="only the first N pages")
    p.add_argument("--no-entities", action="store_true", help="skip tagging the outputs (entity precision)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval_pages)

    p = sub.add_parser("schemas", help="write (or --check) the JSON Schemas in schemas/")
    p.add_argument("--check", action="store_true")
    p.set_defaults(func=cmd_schemas)

    p = sub.add_parser("eval", help="score the stages in-process against a labelled feed")
    p.add_argument("--feed", required=True)
    p.add_argument("--gold", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("eval-stories", help="replay articles through clean, dedup and stories; score the story ids")
    p.add_argument("--corpus", default=str(Path(__file__).resolve().parents[2] / "shared/corpus/stories/dev.jsonl"),
                   help="JSONL: id, title, body, published, source, url, optional gold event_id "
                   "(default: ../shared/corpus/stories/dev.jsonl)")
    p.add_argument("--pred", help='write {"id", "story_id"} per article here (score_stories.py reads it)')
    p.add_argument("--folds", type=int, default=5, help="also the figures held out by event over K folds (0: off)")
    p.add_argument("--load", help="also the stage's cost with --live stories built from this JSONL (title, body)")
    p.add_argument("--live", type=int, default=5000, help="live stories for --load (default 5000)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval_stories)

    p = sub.add_parser("alerts", help="follow the alerts topic: readable lines or --json")
    p.add_argument("--json", action="store_true")
    p.add_argument("--severity", choices=["info", "low", "medium", "high", "critical"], help="at least this")
    p.add_argument("--rule", action="append", help="only these rule ids (repeatable)")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--idle", type=float, help="exit after this many seconds without alerts")
    p.set_defaults(func=cmd_alerts)

    p = sub.add_parser("forward", help="deliver alerts to a webhook or to Prometheus Alertmanager")
    p.add_argument("kind", choices=["webhook", "alertmanager"])
    p.add_argument("url", help="the webhook URL, or Alertmanager's base URL (http://host:9093)")
    p.add_argument("--group", help="consumer group (default: <app id>-forward-<kind>)")
    p.add_argument("--retries", type=int, default=5, help="attempts after the first, 0-10 (then alerts.deadletter)")
    p.add_argument("--idle", type=float, help="exit after this many seconds without alerts")
    p.set_defaults(func=cmd_forward)

    p = sub.add_parser("audit", help="is every input on articles.raw accounted for? lists the lost (exit 1)")
    p.add_argument("--wait", type=float, default=0.0,
                   help="while inputs are waiting, audit again until nothing moved for this many seconds")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("demo", help="local broker + pipeline + sample articles, alerts and metrics on screen")
    p.add_argument("--limit", type=int, default=300, help="corpus articles to feed (when a corpus is found)")
    p.add_argument("--corpus", help="bbc.jsonl-style corpus (default: ../shared/corpus/bbc.jsonl if present)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="throughput, latency and efficiency of the pipeline on the local broker")
    p.add_argument("--corpus", default="../shared/corpus/bbc.jsonl", help="bbc.jsonl-style corpus")
    p.add_argument("--articles", type=int, default=5000,
                   help="unique articles per run (past the corpus size, new ones from pairs of corpus articles)")
    p.add_argument("--workers", type=int, action="append", help="worker processes (repeatable; default: 1 and 2)")
    p.add_argument("--rate", type=float, default=50.0, help="offered load of the fixed-load phase, articles/s")
    p.add_argument("--fixed-seconds", type=float, default=15.0, help="length of the fixed-load phase")
    p.add_argument("--out", default="var/bench", help="where bench.json and bench.png go")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout (progress on stderr)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("bench-hop", help="Faust's CPU per record over one hop, each saving undone")
    p.add_argument("--records", type=int, default=20000, help="records through the hop in each variant")
    from streams.tools.hop import VARIANTS  # no Faust import: only the worker process loads it

    p.add_argument("--variant", action="append", choices=list(VARIANTS),
                   help="repeatable; default: all, the project's first")
    p.set_defaults(func=cmd_bench_hop)
    for name, command in sub.choices.items():
        command.epilog = f"Read: {DOCS[name]}"
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        sys.exit(args.func(args))
    except KeyboardInterrupt:
        sys.exit(130)
    except ConfigError as exc:
        print(f"streams {args.command}: {exc}", file=sys.stderr)
        sys.exit(2)
    except StreamsError as exc:
        print(f"streams {args.command}: {exc}", file=sys.stderr)
        sys.exit(1)
