# cim-events: the event-store daemon, its client library and tools.
#
#   make            build everything into build/
#   make run        install what is missing, build, start nats-server + daemon
#   make test       install what is missing, build, run every test
#   make asan       the tests again, built with ASan + UBSan (build-asan/)
#   make bench      the same-run benchmark (tests/bench/), results in build/bench.json
#   make install    PREFIX=/usr/local DESTDIR=
#
# Sources are found by directory: proto/*.c go into both the daemon and
# the client library, daemon/*.c make cim-eventsd, client/*.c other than
# cli*.c make libcimevents, client/cli*.c make the cim-events tool.

VERSION   := 0.1.0
SOMAJOR   := 0
PREFIX    ?= /usr/local
DESTDIR   ?=
BUILD     ?= build

# Debian packages the build, the tests and `make run` need.
DEB_PKGS  := nats-server libnats-dev libcbor-dev libjansson-dev libsodium-dev \
             libcriterion-dev libinih-dev libsystemd-dev pkg-config gcc make

CC        ?= cc
SAN       ?=
OPT       ?= -O2
CFLAGS    ?= $(OPT) -g
WARN      := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
             -Wmissing-prototypes -Wno-unused-parameter
CPPFLAGS  := -D_GNU_SOURCE -Iproto -Iclient/include -Idaemon -Itests/support
PKGS      := libnats libcbor jansson libsodium
DEPFLAGS  = -MMD -MP
ALLCFLAGS = $(WARN) $(CFLAGS) $(SAN) -fPIC $(CPPFLAGS) $(DEPFLAGS)
LIBS      := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lnats -lcbor -ljansson -lsodium) -lpthread
DLIBS     := $(LIBS) $(shell pkg-config --libs inih libsystemd 2>/dev/null || echo -linih -lsystemd)
TLIBS     := $(shell pkg-config --libs criterion 2>/dev/null || echo -lcriterion)

PROTO_SRC  := $(wildcard proto/*.c)
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
# Programs the integration tests run as processes of their own (each one
# tests/progs/<name>.c, linked with the client library), and the example
# programs of docs/ (examples/<name>.c), which the tests run too.
PROGS     := $(patsubst tests/progs/%.c,$(BUILD)/tests/progs/%,$(PROG_SRC))
EXAMPLES  := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EXAMPLE_SRC))

.PHONY: all deps run test asan bench install uninstall clean check-unit check-integration examples
.DEFAULT_GOAL := all

all: $(DAEMON) $(CLI) $(SOLIB) $(ALIB) $(PCFILE) $(EXAMPLES)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -c $< -o $@

$(DAEMON): $(call obj,$(DAEMON_SRC) $(PROTO_SRC))
	$(CC) $(SAN) -o $@ $^ $(DLIBS)

$(SOLIB): $(call obj,$(CLIENT_SRC) $(PROTO_SRC))
	$(CC) $(SAN) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(LIBS)
	ln -sf libcimevents.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/libcimevents.so

$(ALIB): $(call obj,$(CLIENT_SRC) $(PROTO_SRC))
	rm -f $@
	ar rcs $@ $^

$(CLI): $(call obj,$(CLI_SRC)) $(ALIB)
	$(CC) $(SAN) -o $@ $(call obj,$(CLI_SRC)) $(ALIB) $(LIBS)

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

$(INTEG): $(call obj,$(INTEG_SRC) $(SUPPORT_SRC)) $(ALIB) $(DAEMON) $(CLI) $(PROGS) $(EXAMPLES)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $(call obj,$(INTEG_SRC) $(SUPPORT_SRC)) $(ALIB) $(LIBS) $(TLIBS)

$(BENCH): $(call obj,$(BENCH_SRC) tests/support/proc.c) $(ALIB) $(DAEMON)
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $(call obj,$(BENCH_SRC) tests/support/proc.c) $(ALIB) $(LIBS) -lm

# BENCH_ARGS: e.g. --quick, or --url nats://... for a running server and daemon
bench: deps
	$(MAKE) all $(BENCH)
	$(BENCH) --daemon $(abspath $(DAEMON)) --json $(BUILD)/bench.json $(BENCH_ARGS)

# The integration tests find the binaries through these variables.
TEST_ENV = CIM_TEST_DAEMON=$(abspath $(DAEMON)) CIM_TEST_CLI=$(abspath $(CLI)) \
           CIM_TEST_VECTORS=$(abspath tests/vectors) \
           CIM_TEST_PROGS=$(abspath $(BUILD)/tests/progs) \
           CIM_TEST_EXAMPLES=$(abspath $(BUILD)/examples)

check-unit: $(UNIT)
	$(TEST_ENV) $(UNIT) --jobs=2

check-integration: $(INTEG)
	$(TEST_ENV) $(INTEG) --jobs=1

test: deps
	$(MAKE) all $(UNIT) $(INTEG)
	$(MAKE) check-unit
	$(MAKE) check-integration

asan: deps
	$(MAKE) BUILD=build-asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  check-unit check-integration

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

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib \
	  $(DESTDIR)$(PREFIX)/include/cim $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(DAEMON) $(CLI) $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(SOLIB) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libcimevents.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libcimevents.so
	install -m 644 $(ALIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 client/include/cim/events.h $(DESTDIR)$(PREFIX)/include/cim/
	install -m 644 $(PCFILE) $(DESTDIR)$(PREFIX)/lib/pkgconfig/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/cim-eventsd $(DESTDIR)$(PREFIX)/bin/cim-events \
	  $(DESTDIR)$(PREFIX)/lib/libcimevents.* $(DESTDIR)$(PREFIX)/include/cim/events.h \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/cimevents.pc

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
