# weir: build, test, bench, run, install.
#   make                 build/weir (release, -O2)
#   make SANITIZE=1      ASan + UBSan build into build-san/
#   make test            install test deps if missing; layer check, unit + integration tests (release and
#                        ASan/UBSan), every fuzz target (TEST_FUZZ_SECONDS, 20 s each)
#   make layers          the include check: each layer includes only the ones below (scripts/check-layers.py)
#   make docs            regenerate the parameter tables of docs/ from the code (build/weir --list-params)
#   make docs-check      fail when those tables are stale (part of make test)
#   make bench           benchmarks (build/weir + load generator), then side by side with
#                        Fluent Bit and Fluentd (bench/peers.py; BENCH_PEERS=0 leaves that out)
#   make bench-peers     only the side-by-side runs
#   make bench-backends  forward -> buffer -> Elasticsearch / Loki / Kafka, real servers; the Phase 2
#                        example Kafka -> weir -> null (bench/phase2.sh); then
#                        Elasticsearch and Loki against Fluent Bit (bench/peers-backends.py)
#   make run             build and run on the embedded default config

PREFIX  ?= /usr/local
DESTDIR ?=
VERSION := 0.1.0

PKGS := libevent libevent_pthreads msgpack jansson libssl libcrypto zlib libzstd libpcre2-8 libcurl rdkafka snappy
CC   ?= cc

ifeq ($(SANITIZE),1)
BUILD   ?= build-san
OPT     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN   := -fsanitize=address,undefined
else
BUILD   ?= build
OPT     := -O2 -g
LDSAN   :=
endif

WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wstrict-prototypes -Wpointer-arith -Wformat=2
CFLAGS  += -std=gnu11 $(OPT) $(WARN) -pthread -D_GNU_SOURCE -DWEIR_VERSION='"$(VERSION)"' \
           -I. $(shell pkg-config --cflags $(PKGS))
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lresolv -lpthread -lm
LDFLAGS += $(LDSAN)

# every folder (and subfolder) of the layers: docs/architecture.md, "Layers"
LAYERS   := lib config buffer aggregator forward-protocol outputs
SRC_DIRS := $(sort $(shell find $(LAYERS) -type d))
LIB_SRC  := $(filter-out aggregator/main.c,$(foreach d,$(SRC_DIRS),$(wildcard $(d)/*.c)))
LIB_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC)) $(BUILD)/obj/default_conf.o
UNIT_SRC := $(wildcard test/unit/test_*.c)
UNIT_BIN := $(patsubst test/unit/%.c,$(BUILD)/test/%,$(UNIT_SRC))

.PHONY: layers all clean test test-unit test-integration bench bench-peers bench-backends run install deps test-deps fuzz \
        docs docs-check

all: $(BUILD)/weir $(BUILD)/weir-loadgen

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The embedded default config: config/default.conf compiled in as a string.
$(BUILD)/obj/default_conf.c: config/default.conf
	@mkdir -p $(dir $@)
	@{ echo 'const char weir_default_conf[] ='; \
	   sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$$/\\n"/' $<; echo ';'; } > $@
$(BUILD)/obj/default_conf.o: $(BUILD)/obj/default_conf.c
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libweir.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/weir: $(BUILD)/obj/aggregator/main.o $(BUILD)/libweir.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# the load generator: bench/loadgen.h names its units
LOADGEN_SRC := bench/loadgen.c bench/loadgen_records.c bench/loadgen_conn.c
$(BUILD)/weir-loadgen: $(patsubst %.c,$(BUILD)/obj/%.o,$(LOADGEN_SRC))
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ns/record of the enrich filter chain (bench/filters.c), run by make bench
$(BUILD)/bench-filters: $(BUILD)/obj/bench/filters.o $(BUILD)/libweir.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ns/record of the Elasticsearch _bulk encoder (bench/es_encode.c), run by make bench
$(BUILD)/bench-es-encode: $(BUILD)/obj/bench/es_encode.o $(BUILD)/libweir.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test/%: $(BUILD)/obj/test/unit/%.o $(BUILD)/libweir.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(shell pkg-config --libs cmocka)

deps:
	@scripts/install-deps.sh

test-deps:
	@scripts/install-deps.sh --test

# The whole suite twice: release build, then ASan+UBSan build (build-san/).
test: test-deps
	@python3 scripts/check-layers.py
	@$(MAKE) --no-print-directory docs-check
	@$(MAKE) --no-print-directory all $(UNIT_BIN)
	@$(MAKE) --no-print-directory test-unit test-integration
	@$(MAKE) --no-print-directory SANITIZE=1 all test-unit test-integration
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)

# the layer check: includes point only down (docs/architecture.md, "Layers")
layers:
	@python3 scripts/check-layers.py

# The parameter tables of docs/configuration.md and docs/outputs/*.md come from
# the code's conf_spec tables (scripts/gen-config-docs.py, $(BUILD)/weir --list-params).
docs: $(BUILD)/weir
	@python3 scripts/gen-config-docs.py --weir $(BUILD)/weir

docs-check: $(BUILD)/weir
	@python3 scripts/gen-config-docs.py --check --weir $(BUILD)/weir

test-unit: $(UNIT_BIN)
	@scripts/run-unit.sh $(UNIT_BIN)

# The ASan/UBSan pass leaves out the tests that never start weir (marker
# peer_only: Fluentd against the conformance goldens): the release pass ran them.
test-integration: all
	WEIR_BIN=$(abspath $(BUILD)/weir) WEIR_LOADGEN=$(abspath $(BUILD)/weir-loadgen) \
	  scripts/run-integration.sh $(if $(SANITIZE),-m "not peer_only")

# BENCH_PEERS=0: without the runs against Fluent Bit and Fluentd (bench/peers.py, found at
# ../shared/peers, FLUENT_BIT / FLUENTD or on PATH; a peer found nowhere is skipped).
BENCH_PEERS ?= 1
bench: all $(BUILD)/bench-filters $(BUILD)/bench-es-encode
	@scripts/bench.sh $(abspath $(BUILD))
	@echo "== filters (bench/filters.c): the enrich chain on one core"
	@$(BUILD)/bench-filters
	@echo "== the Elasticsearch _bulk encoder (bench/es_encode.c) on one core"
	@$(BUILD)/bench-es-encode
	@if [ "$(BENCH_E2E)" != 0 ]; then \
		echo "== end to end: Kafka -> weir on config/examples/phase2-kafka-to-es.conf -> null (bench/phase2.sh; BENCH_E2E=0 leaves it out)"; \
		if [ -d "$${WEIR_TEST_CACHE:-$$HOME/.cache/weir-test}/kafka" ]; then bench/phase2.sh $(abspath $(BUILD)); \
		else echo "skipped: no Kafka broker cached (make test-deps first)"; fi; fi
	@if [ "$(BENCH_PEERS)" != 0 ]; then \
		echo "== side by side: weir, Fluent Bit, Fluentd (bench/peers.py; BENCH_PEERS=0 leaves it out)"; \
		bench/peers.py $(abspath $(BUILD)); fi

bench-peers: all
	@bench/peers.py $(abspath $(BUILD))

# The backends, each against a real server started by the script (Elasticsearch,
# Loki, Kafka: the test peers); needs make test-deps first. BENCH_BACKENDS
# chooses a subset, e.g. BENCH_BACKENDS="kafka". phase2: Kafka -> weir on
# config/examples/phase2-kafka-to-es.conf -> null (bench/phase2.sh).
BENCH_BACKENDS ?= elasticsearch loki kafka phase2
bench-backends: all
	@for b in $(BENCH_BACKENDS); do echo "== bench/$$b.sh"; bench/$$b.sh $(abspath $(BUILD)) || exit 1; done
	@if [ "$(BENCH_PEERS)" != 0 ]; then \
		echo "== Elasticsearch and Loki: weir and Fluent Bit (bench/peers-backends.py; BENCH_PEERS=0 leaves it out)"; \
		PY=$${WEIR_TEST_CACHE:-$$HOME/.cache/weir-test}/venv/bin/python; [ -x "$$PY" ] || PY=python3; \
		BENCH_BACKENDS="$(BENCH_BACKENDS)" $$PY bench/peers-backends.py $(abspath $(BUILD)); fi

run: deps
	@$(MAKE) --no-print-directory $(BUILD)/weir
	$(BUILD)/weir

# install: the binary, the systemd unit (paths substituted), the sample
# config as $(SYSCONFDIR)/weir/weir.conf (kept if it exists), the embedded
# default config, the example configs (config/examples/ ->
# $(PREFIX)/share/weir/examples/) and the docs. SYSCONFDIR is /etc for PREFIX=/usr.
SYSCONFDIR     ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR         ?= $(PREFIX)/share/doc/weir
install: $(BUILD)/weir
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/weir $(DESTDIR)$(DOCDIR) \
	  $(DESTDIR)$(SYSCONFDIR)/weir $(DESTDIR)$(SYSTEMDUNITDIR)
	install -m 0755 $(BUILD)/weir $(DESTDIR)$(PREFIX)/bin/weir
	install -m 0644 config/default.conf $(DESTDIR)$(PREFIX)/share/weir/weir.conf
	install -d $(DESTDIR)$(PREFIX)/share/weir/examples
	install -m 0644 config/examples/*.conf $(DESTDIR)$(PREFIX)/share/weir/examples/
	sed -e 's|@BINDIR@|$(PREFIX)/bin|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' \
	  packaging/weir.service > $(DESTDIR)$(SYSTEMDUNITDIR)/weir.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/weir.service
	test -e $(DESTDIR)$(SYSCONFDIR)/weir/weir.conf || \
	  install -m 0644 packaging/weir.conf $(DESTDIR)$(SYSCONFDIR)/weir/weir.conf
	install -m 0644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/

# libFuzzer targets (clang from Debian): each test/fuzz/fuzz_*.c runs
# FUZZ_SECONDS (default 60) on its corpus under test/fuzz/corpus/<name>/.
FUZZ_SECONDS ?= 60
# `make test` gives each target 20 s on its seed corpus: enough to replay the
# corpus and catch a regression, and it keeps CI well under an hour; a longer
# search is `make fuzz` (60 s each) or FUZZ_SECONDS=600 make fuzz.
TEST_FUZZ_SECONDS ?= 20
# For scripts (fuzz.sh): print a make variable, e.g. make -s print-LIB_SRC
print-%:
	@echo $($*)

fuzz:
	@scripts/fuzz.sh $(FUZZ_SECONDS)

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
