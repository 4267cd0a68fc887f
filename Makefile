# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
APT_PACKAGES := openjdk-17-jre-headless maven

.PHONY: demo test lint eval schemas prereqs kafka-start kafka-stop clean

demo: $(STAMP) prereqs  ## local broker + pipeline + sample articles, alerts and metrics on screen
	$(BIN)/streams demo

test: $(STAMP) prereqs  ## the whole suite, integration tests on a real local broker included
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check streams tests

eval: $(STAMP)  ## quality and in-process throughput on the full public feed
	$(PYTHON) ../shared/tools/make_feed.py --corpus ../shared/corpus/bbc.jsonl \
	  --near-pairs ../shared/corpus/bbc-similar-pairs.jsonl --out /tmp/streams-feed.jsonl \
	  --gold /tmp/streams-gold.jsonl --seed 7
	$(BIN)/streams eval --feed /tmp/streams-feed.jsonl --gold /tmp/streams-gold.jsonl

schemas: $(STAMP)  ## regenerate schemas/ from the event models
	$(BIN)/streams schemas

kafka-start: $(STAMP) prereqs
	$(BIN)/streams kafka start

kafka-stop: $(STAMP)
	$(BIN)/streams kafka stop

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

# Java 17 runs the broker, Maven fetches it; installed from Debian when missing and we are root.
prereqs:
	@missing=""; command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "Please install:$$missing (Java 17+ runs Kafka, Maven fetches it)"; exit 1; fi; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache var
