# SiteWatch: `make demo` runs the whole stack with demo data; `make test` runs every check.
# Both bootstrap what is missing: Debian packages (apt-get, when root), the .venv with pinned
# Python packages, the map's npm packages and the Apache Kafka jars (Maven Central, once).
# A second run is fast and changes nothing; nothing is downloaded when the stack runs.

PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEB_PACKAGES := postgresql-15 postgresql-15-postgis-3 mosquitto mosquitto-clients mosquitto-dev \
  libmosquitto-dev gcc chromium fonts-wqy-microhei libssl3 openssl
DATA_DIR ?= ./sitewatch-data
# The embedded broker: Apache Kafka 3.9.x jars (stack/kafka/pom.xml) copied into KAFKA_LIB.
KAFKA_LIB := .kafka/lib
KAFKA_STAMP := .kafka/.installed
MVN_DEPENDENCY_PLUGIN := org.apache.maven.plugins:maven-dependency-plugin:3.6.1
# Mosquitto's journal plugin (stack/mosquitto): what it acknowledged survives a crash.
JOURNAL_PLUGIN := .mosquitto/sitewatch_journal.so

.PHONY: demo test bootstrap system python map console screenshots kafka mosquitto-journal lint bench soak fuzz clean

demo: bootstrap
	$(BIN)/sitewatch demo --data-dir $(DATA_DIR)

test: bootstrap lint
	$(BIN)/pytest

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy config gm rules wire geofence ingest attachments categories

bench: bootstrap
	$(BIN)/sitewatch bench --write docs/BENCHMARKS.md

# Ten minutes at ~1,000 fixes/s on a private stack: memory and lag sampled every 5 s must stay
# bounded and the run must reconcile exactly; writes its section of docs/BENCHMARKS.md.
SOAK_MINUTES ?= 10
soak: bootstrap
	$(BIN)/python -m measure.soak --minutes $(SOAK_MINUTES) --write-docs

# Hostile input end to end against one private stack: 20,000 MQTT messages and 10,000 ingest
# and 10,000 API requests, every invariant of tests/fuzz checked; figures into
# docs/reliability.md.
FUZZ_MQTT ?= 20000
FUZZ_HTTP ?= 10000
fuzz: bootstrap
	SITEWATCH_FUZZ_MQTT=$(FUZZ_MQTT) SITEWATCH_FUZZ_HTTP=$(FUZZ_HTTP) \
	SITEWATCH_FUZZ_REPORT=artifacts/fuzz.json $(BIN)/pytest tests/fuzz -q
	$(BIN)/python -m tests.fuzz.report artifacts/fuzz.json docs/reliability.md

bootstrap: system python map console kafka mosquitto-journal

system:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	command -v java >/dev/null 2>&1 || missing="$$missing default-jre-headless"; \
	command -v mvn >/dev/null 2>&1 || missing="$$missing maven"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing Debian packages (install them as root): $$missing"; exit 1; \
	  fi; \
	fi

python: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

map: map_ui/node_modules/.installed

map_ui/node_modules/.installed: map_ui/package.json map_ui/package-lock.json
	cd map_ui && npm ci --no-audit --no-fund
	touch $@

# The console (console_ui/): Vue 3 + ECharts from npm, built by Vite into console_ui/dist.
CONSOLE_SOURCES := $(shell find console_ui/src -type f 2>/dev/null) console_ui/index.html \
  console_ui/vite.config.js
console: console_ui/dist/index.html

console_ui/node_modules/.installed: console_ui/package.json console_ui/package-lock.json
	cd console_ui && npm ci --no-audit --no-fund
	touch $@

console_ui/dist/index.html: console_ui/node_modules/.installed $(CONSOLE_SOURCES)
	cd console_ui && npm run --silent build -- --logLevel warn

# Screenshots of every console page, as each role, in both languages (docs/console/).
screenshots: bootstrap
	$(BIN)/python -m measure.console_shots docs/console

kafka: $(KAFKA_STAMP)

$(KAFKA_STAMP): stack/kafka/pom.xml
	rm -rf $(KAFKA_LIB)
	mvn -q -B -f stack/kafka/pom.xml $(MVN_DEPENDENCY_PLUGIN):copy-dependencies \
	  -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(KAFKA_LIB)
	touch $@

mosquitto-journal: $(JOURNAL_PLUGIN)

$(JOURNAL_PLUGIN): stack/mosquitto/sitewatch_journal.c
	mkdir -p $(dir $@)
	gcc -shared -fPIC -O2 -Wall -Wextra -Werror -o $@ $<

clean:
	rm -rf $(VENV) map_ui/node_modules console_ui/node_modules console_ui/dist .kafka .mosquitto
