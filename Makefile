# cim-events: the event-store daemon, its client library and tools.
#
#   make            build everything into build/
#   make run        install what is missing, build, start nats-server + daemon
#   make test       install what is missing, build, run every test
#   make asan       the tests again, built with ASan + UBSan (build-asan/)
#   make valgrind   the integration tests, every daemon under valgrind memcheck
#   make bench      the same-run benchmark (tests/bench/), results in build/bench.json
#   make install    PREFIX=/usr/local DESTDIR= (and SYSCONFDIR, SYSTEMDUNITDIR, MANDIR)
#   make uninstall  the same variables
#
# Sources are found by directory: proto/*.c go into both the daemon and
# the client library, daemon/*.c make cim-eventsd, client/*.c other than
# cli*.c make libcimevents, client/cli*.c make the cim-events tool, and
# conn/*.c (how to reach NATS: the settings table and its file,
# environment and flags, NATS options, NKey seeds) go into both programs,
# cim-eventsd and cim-events. conn/ is not in proto/ because it needs
# libnats and libinih, and proto/ is also built into the library and the
# libFuzzer targets, which link neither.

VERSION   := 0.2.0
# The library's ABI: while the version is 0.x, each minor version may change
# it (0.2 grew the id length fields of cim_new_event and its kin), so the
# soname carries the minor version too.
SOMAJOR   := 0.2
PREFIX    ?= /usr/local
DESTDIR   ?=
SYSCONFDIR ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
MANDIR    ?= $(PREFIX)/share/man
BUILD     ?= build

# Debian packages the build, the tests and `make run` need (Go and nats.go:
# the Go example of docs/protocol.md, built by tests/integration/test_languages.c).
DEB_PKGS  := nats-server libnats-dev libcbor-dev libjansson-dev libsodium-dev \
             libcriterion-dev libinih-dev libsystemd-dev pkg-config gcc make \
             clang libclang-rt-14-dev valgrind openssl systemd libjemalloc-dev \
             golang-go golang-github-nats-io-go-nats-dev

CC        ?= cc
SAN       ?=
OPT       ?= -O2
CFLAGS    ?= $(OPT) -g
WARN      := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
             -Wmissing-prototypes -Wno-unused-parameter
CPPFLAGS  := -D_GNU_SOURCE -Iproto -Iclient/include -Idaemon -Iconn -Itests/support
PKGS      := libnats libcbor jansson libsodium
DEPFLAGS  = -MMD -MP
ALLCFLAGS = $(WARN) $(CFLAGS) $(SAN) -fPIC $(CPPFLAGS) $(DEPFLAGS)
LIBS      := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lnats -lcbor -ljansson -lsodium) -lpthread
INIH_LIBS := $(shell pkg-config --libs inih 2>/dev/null || echo -linih)
DLIBS     := $(LIBS) $(INIH_LIBS) $(shell pkg-config --libs libsystemd 2>/dev/null || echo -lsystemd)
# The daemon's allocator (docs/benchmarks.md says why): jemalloc serves
# every malloc of the process, nats.c's and jansson's too. ALLOC= links
# the system allocator. The sanitizer build keeps the system allocator
# (ASan brings its own); valgrind follows jemalloc by --soname-synonyms
# (tests/support/harness.c).
ALLOC     ?= -ljemalloc
DALLOC     = $(if $(SAN),,$(ALLOC))
TLIBS     := $(shell pkg-config --libs criterion 2>/dev/null || echo -lcriterion)

PROTO_SRC  := $(wildcard proto/*.c)
CONN_SRC   := $(wildcard conn/*.c)
DAEMON_SRC := $(wildcard daemon/*.c)
CLIENT_SRC := $(filter-out client/cli%.c,$(wildcard client/*.c))
CLI_SRC    := $(wildcard client/cli*.c)
UNIT_SRC   := $(wildcard tests/unit/*.c)
INTEG_SRC  := $(wildcard tests/integration/*.c)
BENCH_SRC  := $(wildcard tests/bench/*.c)
SUPPORT_SRC:= $(wildcard tests/support/*.c)
PROG_SRC   := $(wildcard tests/progs/*.c)
EXAMPLE_SRC:= $(wildcard examples/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

DAEMON    := $(BUILD)/cim-eventsd
CLI       := $(BUILD)/cim-events
SOLIB     := $(BUILD)/libcimevents.so.$(VERSION)
SONAME    := libcimevents.so.$(SOMAJOR)
ALIB      := $(BUILD)/libcimevents.a
PCFILE    := $(BUILD)/cimevents.pc
UNIT      := $(BUILD)/tests/unit-tests
INTEG     := $(BUILD)/tests/integration-tests
BENCH     := $(BUILD)/tests/bench
# the relay floor of `make bench`: a program of its own (tests/bench/relay/)
RELAY     := $(BUILD)/tests/bench-relay
# Programs the integration tests run as processes of their own (each one
# tests/progs/<name>.c, linked with the client library), and the example
# programs of docs/ (examples/<name>.c), which the tests run too.
PROGS     := $(patsubst tests/progs/%.c,$(BUILD)/tests/progs/%,$(PROG_SRC))
EXAMPLES  := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EXAMPLE_SRC))

.PHONY: all deps run test asan bench install uninstall clean check-unit check-integration examples \
        check-systemd check-install
.DEFAULT_GOAL := all

all: $(DAEMON) $(CLI) $(SOLIB) $(ALIB) $(PCFILE) $(EXAMPLES)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -c $< -o $@

$(DAEMON): $(call obj,$(DAEMON_SRC) $(CONN_SRC) $(PROTO_SRC))
	$(CC) $(SAN) -o $@ $^ $(DALLOC) $(DLIBS)

$(SOLIB): $(call obj,$(CLIENT_SRC) $(PROTO_SRC))
	$(CC) $(SAN) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(LIBS)
	ln -sf libcimevents.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/libcimevents.so

$(ALIB): $(call obj,$(CLIENT_SRC) $(PROTO_SRC))
	rm -f $@
	ar rcs $@ $^

$(CLI): $(call obj,$(CLI_SRC) $(CONN_SRC)) $(ALIB)
	$(CC) $(SAN) -o $@ $(call obj,$(CLI_SRC) $(CONN_SRC)) $(ALIB) $(LIBS) $(INIH_LIBS)

# The pkg-config file names PREFIX, so it is written again whenever PREFIX
# differs from the one it was made with.
define write_pc
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' \
	  'includedir=$${prefix}/include' '' 'Name: cimevents' \
	  'Description: client library of the cim-events event store' \
	  'Version: $(VERSION)' 'Requires.private: libnats libcbor jansson libsodium' \
	  'Libs: -L$${libdir} -lcimevents' 'Cflags: -I$${includedir}' > $(1)
endef

$(PCFILE): Makefile $(if $(shell grep -qx 'prefix=$(PREFIX)' $(PCFILE) 2>/dev/null || echo stale),FORCE)
	@mkdir -p $(BUILD)
	$(call write_pc,$@)

.PHONY: FORCE
FORCE:

# ---- tests ---------------------------------------------------------------

$(UNIT): $(call obj,$(UNIT_SRC) $(PROTO_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $^ $(LIBS) $(TLIBS)

$(BUILD)/tests/progs/%: $(BUILD)/obj/tests/progs/%.o $(ALIB)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $< $(ALIB) $(LIBS)

$(BUILD)/examples/%: $(BUILD)/obj/examples/%.o $(ALIB)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $< $(ALIB) $(LIBS)

examples: $(EXAMPLES)

# (conn/nkey.c too: the security tests make NKeys with it)
$(INTEG): $(call obj,$(INTEG_SRC) $(SUPPORT_SRC) conn/nkey.c) $(ALIB) $(DAEMON) $(CLI) $(PROGS) $(EXAMPLES)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $(call obj,$(INTEG_SRC) $(SUPPORT_SRC) conn/nkey.c) $(ALIB) $(LIBS) $(TLIBS)

$(BENCH): $(call obj,$(BENCH_SRC) tests/support/proc.c) $(ALIB) $(DAEMON)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $(call obj,$(BENCH_SRC) tests/support/proc.c) $(ALIB) $(LIBS) -lm

$(RELAY): $(BUILD)/obj/tests/bench/relay/relay.o
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $< $(LIBS)

# BENCH_ARGS: e.g. --quick, or --url nats://... for a running server and daemon
bench: deps
	$(MAKE) all $(BENCH) $(RELAY)
	$(BENCH) --daemon $(abspath $(DAEMON)) --relay $(abspath $(RELAY)) \
	  --json $(BUILD)/bench.json $(BENCH_ARGS)

# The integration tests find the binaries through these variables.
TEST_ENV = CIM_TEST_DAEMON=$(abspath $(DAEMON)) CIM_TEST_CLI=$(abspath $(CLI)) \
           CIM_TEST_VECTORS=$(abspath tests/vectors) \
           CIM_TEST_PROGS=$(abspath $(BUILD)/tests/progs) \
           CIM_TEST_EXAMPLES=$(abspath $(BUILD)/examples) \
           CIM_TEST_DOCS=$(abspath docs) CIM_TEST_GOCACHE=$(abspath $(BUILD)/gocache)

check-unit: $(UNIT)
	$(TEST_ENV) $(UNIT) --jobs=2

check-integration: $(INTEG)
	$(TEST_ENV) $(INTEG) --jobs=1

# ---- fault tests -----------------------------------------------------------
# tests/faults/: the daemon killed with SIGKILL under a 16-client load,
# nats-server killed and restarted, one node of a 3-node JetStream cluster
# killed, the stream's storage limit reached; each ends with the checker
# (tests/faults/load.h) holding the store to the load's journal.
#   make test-faults    the full run (30 kill cycles, ...); figures on stdout
#   make check-faults   the small run (part of make test)
FAULT_SRC := $(wildcard tests/faults/*.c)
FAULTS    := $(BUILD)/tests/fault-tests
FAULT_SCALE ?= small

.PHONY: check-faults test-faults

$(FAULTS): $(call obj,$(FAULT_SRC) $(SUPPORT_SRC)) $(ALIB) $(DAEMON)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $(call obj,$(FAULT_SRC) $(SUPPORT_SRC)) $(ALIB) $(LIBS) $(TLIBS)

# FAULT_FILTER: a Criterion filter, e.g. 'fault_cluster/*' for one suite.
FAULT_FILTER ?= */*
check-faults: $(FAULTS)
	$(TEST_ENV) CIM_FAULT_SCALE=$(FAULT_SCALE) $(FAULTS) --jobs=1 --filter '$(FAULT_FILTER)' 

test-faults: deps
	$(MAKE) all $(FAULTS)
	$(MAKE) check-faults FAULT_SCALE=full

test: deps
	$(MAKE) all $(UNIT) $(INTEG)
	$(MAKE) check-unit
	$(MAKE) fuzz-short
	$(MAKE) check-integration
	$(MAKE) check-faults
	$(MAKE) check-systemd
	$(MAKE) check-install

asan: deps
	CIM_TEST_ASAN=1 $(MAKE) BUILD=build-asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  check-unit check-integration

# The integration tests with every daemon they start under valgrind's
# memcheck (CIM_TEST_VALGRIND=1, tests/support/harness.c): a test fails
# when its daemon makes an invalid access or leaks (definitely or
# indirectly lost). Each daemon's report is kept in $(VALGRIND_LOGS); the
# summary counts them (a daemon killed with SIGKILL has no leak check).
VALGRIND_LOGS := $(BUILD)/valgrind
# VALGRIND_FILTER: a Criterion filter, e.g. 'forget/*', for some suites only
VALGRIND_FILTER ?= */*

.PHONY: valgrind
valgrind: deps
	$(MAKE) all $(INTEG)
	@rm -rf $(VALGRIND_LOGS) && mkdir -p $(VALGRIND_LOGS)
	@t0=$$(date +%s); st=0; \
	$(TEST_ENV) CIM_TEST_VALGRIND=1 CIM_TEST_VALGRIND_LOGS=$(abspath $(VALGRIND_LOGS)) \
	  $(INTEG) --jobs=1 --filter '$(VALGRIND_FILTER)' || st=$$?; \
	runs=0; clean=0; killed=0; bad=0; leaks=0; \
	for f in $(VALGRIND_LOGS)/*.log; do \
	  [ -e "$$f" ] || continue; runs=$$((runs + 1)); \
	  grep -q 'ERROR SUMMARY: 0 errors' "$$f" && clean=$$((clean + 1)); \
	  grep -q 'ERROR SUMMARY:' "$$f" || killed=$$((killed + 1)); \
	  if grep -q 'CIM-VG-ERROR-BEGIN' "$$f" || grep -Eq 'ERROR SUMMARY: [1-9]' "$$f"; then \
	    bad=$$((bad + 1)); echo "valgrind: errors in $$f"; fi; \
	  grep -Eq '(definitely|indirectly) lost: [1-9]' "$$f" && leaks=$$((leaks + 1)); \
	done; \
	echo "valgrind: $$runs daemon runs: $$clean checked at exit with 0 errors," \
	  "$$killed killed before the leak check, $$bad with errors, $$leaks with" \
	  "definite or indirect leaks; tests exit status $$st; $$(( $$(date +%s) - t0 )) s" \
	  "(reports in $(VALGRIND_LOGS))"; \
	[ $$st -eq 0 ] && [ $$bad -eq 0 ] && [ $$leaks -eq 0 ] && [ $$runs -gt 0 ]

# ---- fuzzing ---------------------------------------------------------------
# libFuzzer targets for the decoders (tests/fuzz/README.md): the JSON
# requests (fuzz_request), DAG-CBOR values and blocks (fuzz_block), CIDs
# (fuzz_cid), CAR files and their offline check (fuzz_car), key blocks and
# encrypted values and blocks (fuzz_crypt). Built with clang into
# $(BUILD)/fuzz/, proto/*.c included.
#   make fuzz         each target FUZZ_TIME seconds on a copy of its corpus
#                     ($(BUILD)/fuzz/corpus-<name>), FUZZ_JOBS at a time
#   make fuzz-short   each target FUZZ_SHORT seconds from the committed
#                     corpus only; fails on any finding (part of make test)
#   make fuzz-merge   adds what the runs found that adds coverage to the
#                     committed corpus (tests/fuzz/corpus/<name>)
# Reproducers go to $(BUILD)/fuzz/artifacts/; FUZZ_ARGS adds libFuzzer
# options. Replay one input: $(BUILD)/fuzz/fuzz_block <file>.
FUZZ_CC     ?= clang
FUZZ_TIME   ?= 600
FUZZ_SHORT  ?= 15
FUZZ_JOBS   ?= 1
FUZZ_ARGS   ?=
FUZZ_NAMES  := request block cid car crypt
FUZZ_DIR    := $(BUILD)/fuzz
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := $(WARN) -g -O1 -fno-omit-frame-pointer $(CPPFLAGS) $(DEPFLAGS)
FUZZ_LIBS   := $(shell pkg-config --libs libcbor jansson libsodium 2>/dev/null || echo -lcbor -ljansson -lsodium)
FUZZ_BINS   := $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_NAMES))
FUZZ_PROTO  := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(PROTO_SRC))

# (fuzz-run-<name> and fuzz-short-<name> are pattern rules, which make does
# not search for .PHONY targets.)
.PHONY: fuzz fuzz-short fuzz-merge fuzz-build
.SECONDARY: $(FUZZ_PROTO) $(patsubst %,$(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o,$(FUZZ_NAMES))

$(FUZZ_DIR)/obj/proto/%.o: proto/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -c $< -o $@

$(FUZZ_DIR)/obj/tests/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_SAN) -c $< -o $@

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_PROTO)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(FUZZ_LIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	$(MAKE) -k -j$(FUZZ_JOBS) $(addprefix fuzz-run-,$(FUZZ_NAMES))

fuzz-run-%: $(FUZZ_DIR)/fuzz_%
	tests/fuzz/run.sh $* $(FUZZ_TIME) $(FUZZ_DIR) $(FUZZ_DIR)/corpus-$* $(FUZZ_ARGS)

fuzz-short: fuzz-build
	$(MAKE) -k -j$(FUZZ_JOBS) $(addprefix fuzz-short-,$(FUZZ_NAMES))

# From the committed corpus only, so make test fuzzes from the same start each time.
fuzz-short-%: $(FUZZ_DIR)/fuzz_%
	rm -rf $(FUZZ_DIR)/short-$*
	tests/fuzz/run.sh $* $(FUZZ_SHORT) $(FUZZ_DIR) $(FUZZ_DIR)/short-$* $(FUZZ_ARGS)

fuzz-merge: fuzz-build
	@for n in $(FUZZ_NAMES); do \
	  if [ -d $(FUZZ_DIR)/corpus-$$n ]; then \
	    maxlen=65536; [ $$n = cid ] && maxlen=512; \
	    $(FUZZ_DIR)/fuzz_$$n -merge=1 -max_len=$$maxlen tests/fuzz/corpus/$$n \
	      $(FUZZ_DIR)/corpus-$$n 2>&1 | grep -E '^MERGE-OUTER: [0-9]+ new files' || exit 1; \
	  fi; \
	done

-include $(shell find $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)

# ---- set-up and running --------------------------------------------------

# Installs the Debian packages that are not there yet (through sudo when
# not root).
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

NATS_PORT ?= 4222
# A local JetStream server (store under ./var, loopback only) and the
# daemon in the foreground; Ctrl-C stops both.
run: deps
	$(MAKE) all
	@mkdir -p var
	@nats-server -js -a 127.0.0.1 -p $(NATS_PORT) -sd "$(CURDIR)/var/jetstream" \
	  -l "$(CURDIR)/var/nats-server.log" & ns=$$!; \
	trap 'kill $$ns 2>/dev/null; wait $$ns 2>/dev/null' EXIT INT TERM; \
	echo "nats-server pid $$ns on nats://127.0.0.1:$(NATS_PORT) (log: var/nats-server.log)"; \
	$(DAEMON) --nats-url nats://127.0.0.1:$(NATS_PORT); \
	st=$$?; exit $$st

# ---- install ---------------------------------------------------------------
# The unit's ExecStart names $(PREFIX)/bin/cim-eventsd; the example
# configuration always goes in as cim-eventsd.conf.example, and as
# cim-eventsd.conf (0600) only when there is none yet, never over one.

UNIT_FILE := systemd/cim-eventsd.service
MANPAGES  := docs/man/cim-eventsd.8 docs/man/cim-events.1 docs/man/cim-eventsd.conf.5
CONFDIR    = $(DESTDIR)$(SYSCONFDIR)/cim-events

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib \
	  $(DESTDIR)$(PREFIX)/include/cim $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	  $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(MANDIR)/man8 $(CONFDIR)
	install -m 755 $(DAEMON) $(CLI) $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(SOLIB) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libcimevents.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libcimevents.so
	install -m 644 $(ALIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 client/include/cim/events.h $(DESTDIR)$(PREFIX)/include/cim/
	install -m 644 $(PCFILE) $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	sed 's|^ExecStart=/usr/local/bin/cim-eventsd|ExecStart=$(PREFIX)/bin/cim-eventsd|; s|/etc/cim-events/|$(SYSCONFDIR)/cim-events/|g' \
	  $(UNIT_FILE) > $(DESTDIR)$(SYSTEMDUNITDIR)/cim-eventsd.service
	chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/cim-eventsd.service
	install -m 644 docs/man/cim-events.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 docs/man/cim-eventsd.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 644 docs/man/cim-eventsd.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 systemd/cim-eventsd.conf $(CONFDIR)/cim-eventsd.conf.example
	@if [ -e $(CONFDIR)/cim-eventsd.conf ]; then \
	  echo "keeping $(CONFDIR)/cim-eventsd.conf"; \
	else install -m 600 systemd/cim-eventsd.conf $(CONFDIR)/cim-eventsd.conf; fi

# The configuration (cim-eventsd.conf) stays: it is the operator's.
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/cim-eventsd $(DESTDIR)$(PREFIX)/bin/cim-events \
	  $(DESTDIR)$(PREFIX)/lib/libcimevents.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME) \
	  $(DESTDIR)$(PREFIX)/lib/libcimevents.so $(DESTDIR)$(PREFIX)/lib/libcimevents.a \
	  $(DESTDIR)$(PREFIX)/include/cim/events.h \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/cimevents.pc \
	  $(DESTDIR)$(SYSTEMDUNITDIR)/cim-eventsd.service \
	  $(DESTDIR)$(MANDIR)/man1/cim-events.1 $(DESTDIR)$(MANDIR)/man5/cim-eventsd.conf.5 \
	  $(DESTDIR)$(MANDIR)/man8/cim-eventsd.8 $(CONFDIR)/cim-eventsd.conf.example
	-rmdir $(DESTDIR)$(PREFIX)/include/cim 2>/dev/null

# The unit checked by systemd itself: `systemd-analyze verify` on a copy
# whose ExecStart is the built daemon, and its exposure score
# (`systemd-analyze security --offline=true`) at most 2.0 (--threshold=20).
SECURITY_MAX ?= 20
check-systemd: $(DAEMON)
	@mkdir -p $(BUILD)/systemd
	sed 's|^ExecStart=/usr/local/bin/cim-eventsd|ExecStart=$(abspath $(DAEMON))|' \
	  $(UNIT_FILE) > $(BUILD)/systemd/cim-eventsd.service
	systemd-analyze verify --man=no $(BUILD)/systemd/cim-eventsd.service
	@systemd-analyze security --offline=true --threshold=$(SECURITY_MAX) \
	  $(BUILD)/systemd/cim-eventsd.service > $(BUILD)/systemd/security.txt 2>&1; st=$$?; \
	grep 'Overall exposure level' $(BUILD)/systemd/security.txt; \
	if [ $$st -ne 0 ]; then cat $(BUILD)/systemd/security.txt; \
	  echo "check-systemd: exposure over $(SECURITY_MAX)/10"; exit 1; fi

# make install into a temporary DESTDIR, checked file by file
# (tests/install/check_install.sh), then make uninstall.
check-install: all
	tests/install/check_install.sh "$(MAKE)" $(abspath $(BUILD))/install-check

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
