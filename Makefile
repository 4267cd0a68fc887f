# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
APT_PACKAGES := openjdk-17-jre-headless maven

.PHONY: demo test lint eval eval-pages eval-stories bench train-ner train-clean schemas prereqs test-prereqs _install kafka-start kafka-stop clean

demo: $(STAMP) prereqs  ## local broker + pipeline + sample articles, alerts and metrics on screen
	$(BIN)/streams demo

test: $(STAMP) test-prereqs  ## the whole suite, integration tests on a real local broker included
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check streams tests

bench: $(STAMP) prereqs  ## pipeline throughput, latency and efficiency against the floor (var/bench/)
	$(BIN)/streams bench --corpus ../shared/corpus/bbc.jsonl

eval: $(STAMP)  ## quality and in-process throughput on the full public feed
	$(PYTHON) ../shared/tools/make_feed.py --corpus ../shared/corpus/bbc.jsonl \
	  --near-pairs ../shared/corpus/bbc-similar-pairs.jsonl --out /tmp/streams-feed.jsonl \
	  --gold /tmp/streams-gold.jsonl --seed 7
	$(BIN)/streams eval --feed /tmp/streams-feed.jsonl --gold /tmp/streams-gold.jsonl

eval-stories: $(STAMP)  ## stories on 248 real articles of 46 events: BCubed, pairwise, breaking alerts, held out by event
	$(BIN)/streams eval-stories --corpus ../shared/corpus/stories/dev.jsonl --pred /tmp/streams-stories-pred.jsonl \
		--load ../shared/corpus/bbc.jsonl --live 5000
	python3 ../shared/tools/score_stories.py --gold ../shared/corpus/stories/dev.jsonl --pred /tmp/streams-stories-pred.jsonl

eval-pages: $(STAMP)  ## the clean stage on 2,008 real pages: both paths, each dataset held out
	$(BIN)/streams eval-pages --corpus ../shared/corpus/webpages.jsonl.gz

train-clean: $(STAMP)  ## retrain the clean stage's article detector (streams/data/article) on the real pages
	$(BIN)/streams train-clean --corpus ../shared/corpus/webpages.jsonl.gz

train-ner: $(STAMP)  ## retrain the shipped NER (streams/data/ner): CoNLL-2003 train+dev, GloVe 6B 50d vectors
	$(BIN)/streams train-ner --conll ../shared/corpus/conll2003 --with-dev

schemas: $(STAMP)  ## regenerate schemas/ from the event models
	$(BIN)/streams schemas

kafka-start: $(STAMP) prereqs
	$(BIN)/streams kafka start

kafka-stop: $(STAMP)
	$(BIN)/streams kafka stop

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,train]'
	rm -f $(VENV)/.installed-* && touch $@

# System tools, from Debian when missing (as root): command=package. The demo needs Java (runs
# Kafka) and Maven (fetches it); the tests also need Prometheus, Alertmanager and docker-compose.
DEMO_TOOLS := java=openjdk-17-jre-headless mvn=maven
TEST_TOOLS := $(DEMO_TOOLS) promtool=prometheus prometheus=prometheus \
	prometheus-alertmanager=prometheus-alertmanager docker-compose=docker-compose

prereqs:
	@$(MAKE) --no-print-directory _install TOOLS="$(DEMO_TOOLS)"

test-prereqs:
	@$(MAKE) --no-print-directory _install TOOLS="$(TEST_TOOLS)"

_install:
	@missing=""; for pair in $(TOOLS); do command -v $${pair%%=*} >/dev/null || missing="$$missing $${pair#*=}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "Please install:$$missing"; exit 1; fi; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache var
