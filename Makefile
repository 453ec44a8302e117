# Non-recursive Makefile for xblk.  Everything is built under $(BUILD)
# (default build/, configured by ./configure).  Sources are picked up by
# folder, so adding a file to util/ or block/ needs no edit here.
#
#   make            library, tools and tests
#   make check      unit + integration tests, ends with "N passed, N failed"
#   make check-asan the same tests built with ASan/UBSan under build/asan
#   make check-long the long soaks (kill test with hundreds of rounds)
#   make bench      benchmarks against qemu-img and qemu-system, JSON + table
#   make install    programs, libxblk (include/xblk/, lib/, xblk.pc) under
#                   $(DESTDIR)$(PREFIX)

BUILD ?= build
-include $(BUILD)/config.mak

ifeq ($(wildcard $(BUILD)/config.mak),)
$(error $(BUILD)/config.mak missing: run ./configure first)
endif

.DEFAULT_GOAL := all

# A newer configure (new libraries probed) reconfigures with the same
# options; make then restarts with the new config.mak.
$(BUILD)/config.mak: configure
	./configure $(or $(CONFIGURE_ARGS),--builddir=$(BUILD))

WARN = -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare \
       -Wno-missing-field-initializers -Wformat-security -Wvla
CFLAGS ?= -O2 -g
# -fPIC -fvisibility=hidden: every object may go into libxblk.so, which
# exports only what include/xblk/ marks XBLK_API (and api/libxblk.map).
ALL_CFLAGS = -std=gnu11 $(CFLAGS) $(WARN) -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
	-fPIC -fvisibility=hidden -I. -Iinclude -I$(BUILD) $(LIB_CFLAGS) \
	$(UI_CFLAGS) $(SAN_FLAGS) $(EXTRA_CFLAGS) -MMD -MP
ALL_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)
LIBS = $(LIB_LIBS) -lpthread -lm -ldl

LIB_SRCS := $(wildcard util/*.c block/*.c migration/*.c snapshot/*.c) \
	tools/img-common.c
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIBXBLK := $(BUILD)/libxblk.a

# The engine's QMP monitor: the server, dispatch and the engine's
# commands (monitor/*.c) over the code generated from the engine's schema
# (QAPI_OBJS below).  Part of libxblk; the emulator's own commands live
# in monitor/host/ (LIBSYS).
MON_SRCS := $(wildcard monitor/*.c)
MON_OBJS := $(MON_SRCS:%.c=$(BUILD)/%.o)
QAPI_MODS := qapi-types qapi-visit qapi-commands qapi-events qapi-introspect
QAPI_BUILTIN_MODS := qapi-builtin-types qapi-builtin-visit
QAPI_GEN_C := $(QAPI_MODS:%=$(BUILD)/qapi/engine-%.c) \
	$(QAPI_BUILTIN_MODS:%=$(BUILD)/qapi/%.c)
QAPI_OBJS := $(QAPI_GEN_C:.c=.o)

# libxblk for embedders (include/xblk/, docs/embedding.md): the API glue
# in api/ over the engine, as libxblk.so.0 and a static archive, both in
# $(BUILD)/lib/ (the engine-internal archives above stay as they are).
XBLK_VERSION := $(shell sed -n 's/^\#define XBLK_VERSION_STRING "\(.*\)"/\1/p' util/version.h)
API_SRCS := $(wildcard api/*.c)
API_OBJS := $(API_SRCS:%.c=$(BUILD)/%.o)
PUB_LIBDIR := $(BUILD)/lib
SHLIB := $(PUB_LIBDIR)/libxblk.so.$(XBLK_VERSION)
PUB_STATIC := $(PUB_LIBDIR)/libxblk.a
PUB_OBJS := $(API_OBJS) $(LIB_OBJS) $(MON_OBJS) $(QAPI_OBJS)
# An ASan library leaves the runtime's symbols to the executable.
SHLIB_NO_UNDEF := $(if $(filter yes,$(SANITIZERS)),,-Wl,--no-undefined)

# The machine layer and the monitor's host part (the machine's commands,
# monitor/host/, and the code generated for them from qapi/qapi-schema.json
# minus the engine's part): only the emulator host links them.
QAPI_HOST_C := $(QAPI_MODS:%=$(BUILD)/qapi/%.c)
QAPI_HOST_OBJS := $(QAPI_HOST_C:.c=.o)
# The front end (ui/, docs/ui.md): its SDL-free core always, the SDL2/GL
# window (ui/sdl/) when configure found SDL2, SDL2_ttf and libepoxy.
UI_SRCS := $(wildcard ui/*.c) \
	$(if $(filter yes,$(CONFIG_SDL)),$(wildcard ui/sdl/*.c))
SYS_SRCS := $(wildcard monitor/host/*.c hw/*.c hw/ide/*.c hw/xbox/*.c) \
	$(UI_SRCS)
SYS_OBJS := $(SYS_SRCS:%.c=$(BUILD)/%.o) $(QAPI_HOST_OBJS)
LIBSYS := $(BUILD)/libsys.a

TOOL_NAMES := $(filter-out xblk-system,$(patsubst tools/%.c,%,$(wildcard tools/xblk-*.c)))
TOOLS := $(TOOL_NAMES:%=$(BUILD)/%) $(BUILD)/xblk-system

TEST_SRCS := $(wildcard tests/*/test-*.c tests/*/*/test-*.c)
ifneq ($(CONFIG_SDL),yes)
TEST_SRCS := $(filter-out tests/ui/sdl/%,$(TEST_SRCS))
endif
TEST_BINS := $(TEST_SRCS:%.c=$(BUILD)/%)
# helper-*.c: programs tests drive (not run by the runner themselves)
HELPER_SRCS := $(wildcard tests/*/helper-*.c tests/*/*/helper-*.c)
HELPER_BINS := $(HELPER_SRCS:%.c=$(BUILD)/%)

BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRCS:%.c=$(BUILD)/%)

# libFuzzer targets (make fuzz) and their replay drivers (built by all,
# run by make check over the corpora): tests/fuzz/fuzz.mk.
FUZZ_REPLAY_BINS :=
-include tests/fuzz/fuzz.mk

# QAPI: scripts/qapi-gen compiles the schema into C under $(BUILD)/qapi/,
# in two parts (qapi/qapi-schema.json says why):
#   - the engine's schema, qapi/engine-schema.json, with prefix engine-
#     and the built-ins (QAPI_OBJS), archived with the engine's monitor
#     (MON_OBJS) as libqapi.a and linked into libxblk;
#   - the whole schema, qapi/qapi-schema.json, with --extern for the
#     engine's part: C only for the host's commands, types and events,
#     plus the introspection of everything (QAPI_HOST_OBJS, in libsys.a).
# The test schema tests/qapi/qapi-schema-test.json goes to
# $(BUILD)/tests/qapi/schema/ (prefix test-, built-ins taken from libqapi.a)
# and is linked into the tests/qapi/test-* programs.
QAPI_GEN := scripts/qapi-gen
QAPI_ENGINE_SCHEMA := $(filter-out qapi/qapi-schema.json,$(wildcard qapi/*.json))
QAPI_SCHEMA := $(wildcard qapi/*.json qapi/host/*.json)
QAPI_STAMP := $(BUILD)/qapi/engine-qapi-gen.stamp
QAPI_HOST_STAMP := $(BUILD)/qapi/qapi-gen.stamp
QAPI_GEN_H := $(QAPI_GEN_C:.c=.h)
QAPI_HOST_H := $(QAPI_HOST_C:.c=.h)
LIBQAPI := $(BUILD)/libqapi.a

QAPI_TEST_SCHEMA := $(wildcard tests/qapi/*.json tests/qapi/include/*.json)
QAPI_TEST_DIR := $(BUILD)/tests/qapi/schema
QAPI_TEST_STAMP := $(QAPI_TEST_DIR)/test-qapi-gen.stamp
QAPI_TEST_MODS := qapi-types qapi-visit qapi-commands qapi-events \
	qapi-introspect
QAPI_TEST_C := $(QAPI_TEST_MODS:%=$(QAPI_TEST_DIR)/test-%.c)
QAPI_TEST_H := $(QAPI_TEST_MODS:%=$(QAPI_TEST_DIR)/test-%.h)
QAPI_TEST_OBJS := $(QAPI_TEST_C:.c=.o)
QAPI_TEST_BINS := $(filter $(BUILD)/tests/qapi/%,$(TEST_BINS))

.PHONY: all check check-unit check-asan check-long bench fuzz clean distclean install

all: $(LIBXBLK) $(LIBQAPI) $(SHLIB) $(PUB_STATIC) $(TOOLS) $(TEST_BINS) \
	$(HELPER_BINS) $(BENCH_BINS) $(FUZZ_REPLAY_BINS)

# Order-only: the generated headers exist before anything that may include
# them compiles (the .d files track the real dependencies afterwards).
$(BUILD)/%.o: %.c $(BUILD)/config.mak | $(QAPI_STAMP) $(QAPI_HOST_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The generator rewrites only files whose text changed, then the stamp.
$(QAPI_STAMP): $(QAPI_ENGINE_SCHEMA) $(QAPI_GEN)
	@mkdir -p $(dir $@)
	python3 $(QAPI_GEN) -o $(BUILD)/qapi -p engine- qapi/engine-schema.json
$(QAPI_GEN_C) $(QAPI_GEN_H): $(QAPI_STAMP) ;

$(QAPI_HOST_STAMP): $(QAPI_SCHEMA) $(QAPI_GEN)
	@mkdir -p $(dir $@)
	python3 $(QAPI_GEN) -o $(BUILD)/qapi --extern qapi/engine-schema.json \
		--extern-prefix engine- qapi/qapi-schema.json
$(QAPI_HOST_C) $(QAPI_HOST_H): $(QAPI_HOST_STAMP) ;

$(BUILD)/qapi/%.o: $(BUILD)/qapi/%.c $(BUILD)/config.mak | $(QAPI_STAMP) \
		$(QAPI_HOST_STAMP)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBQAPI): $(QAPI_OBJS) $(MON_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(QAPI_TEST_STAMP): $(QAPI_TEST_SCHEMA) $(QAPI_GEN)
	@mkdir -p $(dir $@)
	python3 $(QAPI_GEN) -o $(QAPI_TEST_DIR) -p test- -B \
		tests/qapi/qapi-schema-test.json
$(QAPI_TEST_C) $(QAPI_TEST_H): $(QAPI_TEST_STAMP) ;

$(QAPI_TEST_DIR)/%.o: $(QAPI_TEST_DIR)/%.c $(BUILD)/config.mak | $(QAPI_STAMP)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(QAPI_TEST_BINS:%=%.o): | $(QAPI_TEST_STAMP)

# The whole schema's introspection text (qapi_introspect_json()) is one
# object with no references, linked without the rest of the host part.
$(QAPI_TEST_BINS): $(BUILD)/tests/qapi/%: $(BUILD)/tests/qapi/%.o \
		$(QAPI_TEST_OBJS) $(BUILD)/qapi/qapi-introspect.o $(LIBQAPI) \
		$(LIBXBLK)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(LIBXBLK): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(SHLIB): $(PUB_OBJS) api/libxblk.map
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -shared -Wl,-soname,libxblk.so.0 \
		-Wl,--version-script=api/libxblk.map $(SHLIB_NO_UNDEF) \
		-o $@ $(PUB_OBJS) $(LIBS)
	ln -sf libxblk.so.$(XBLK_VERSION) $(PUB_LIBDIR)/libxblk.so.0
	ln -sf libxblk.so.0 $(PUB_LIBDIR)/libxblk.so

$(PUB_STATIC): $(PUB_OBJS)
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^

# The API's tests see the library as a host does: <xblk/xblk.h> and
# libxblk.so only (GLib for GTest itself).
$(BUILD)/tests/api/%: $(BUILD)/tests/api/%.o $(SHLIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $< -L$(PUB_LIBDIR) -lxblk \
		-Wl,-rpath,$(abspath $(PUB_LIBDIR)) $(LIBS)

$(LIBSYS): $(SYS_OBJS)
	@rm -f $@
	ar rcs $@ $^

# A group: the generated marshallers call into monitor files that nothing
# else references.  The machine reaches the engine through libxblk's API
# too, so the public archive (PUB_STATIC) joins the group.
$(BUILD)/xblk-system: $(BUILD)/tools/xblk-system.o $(LIBSYS) $(PUB_STATIC) \
		$(LIBQAPI) $(LIBXBLK)
	$(CC) $(ALL_LDFLAGS) -o $@ $< -Wl,--start-group $(LIBSYS) $(PUB_STATIC) \
		$(LIBQAPI) $(LIBXBLK) -Wl,--end-group $(LIBS) $(HW_LIBS) $(UI_LIBS)

$(BUILD)/xblk-%: $(BUILD)/tools/xblk-%.o $(LIBXBLK)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIBXBLK)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# Hardware tests link the machine layer (and through it Unicorn).
$(BUILD)/tests/hw/%: $(BUILD)/tests/hw/%.o $(LIBSYS) $(PUB_STATIC) $(LIBQAPI) \
		$(LIBXBLK)
	$(CC) $(ALL_LDFLAGS) -o $@ $< -Wl,--start-group $(LIBSYS) $(PUB_STATIC) \
		$(LIBQAPI) $(LIBXBLK) -Wl,--end-group $(LIBS) $(HW_LIBS)

# Front-end tests link the machine layer and the UI.
$(BUILD)/tests/ui/%: $(BUILD)/tests/ui/%.o $(LIBSYS) $(PUB_STATIC) $(LIBQAPI) \
		$(LIBXBLK)
	$(CC) $(ALL_LDFLAGS) -o $@ $< -Wl,--start-group $(LIBSYS) $(PUB_STATIC) \
		$(LIBQAPI) $(LIBXBLK) -Wl,--end-group $(LIBS) $(HW_LIBS) $(UI_LIBS)

# Save-state tests run the real device tables (hw/), so they link the same.
$(BUILD)/tests/migration/%: $(BUILD)/tests/migration/%.o $(LIBSYS) \
		$(PUB_STATIC) $(LIBQAPI) $(LIBXBLK)
	$(CC) $(ALL_LDFLAGS) -o $@ $< -Wl,--start-group $(LIBSYS) $(PUB_STATIC) \
		$(LIBQAPI) $(LIBXBLK) -Wl,--end-group $(LIBS) $(HW_LIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIBXBLK)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

check: all
	@python3 scripts/run-tests --build $(BUILD) -j 2

# The long soaks run for hours (10,000 crash-torture kills), hence the
# runner's per-file limit of 3 h instead of 20 min.
check-long: all
	@XBLK_LONG=1 python3 scripts/run-tests --build $(BUILD) -j 2 \
		--timeout 10800

check-asan:
	@test -f build/asan/config.mak || ./configure --enable-sanitizers --builddir=build/asan
	$(MAKE) BUILD=build/asan CFLAGS="-O1 -g" check

bench: all
	@python3 bench/run-bench --build $(BUILD)
	@python3 bench/run-txn-bench --build $(BUILD)
	@python3 bench/run-machine-bench --build $(BUILD)
	@python3 bench/run-savestate-bench --build $(BUILD)
	@python3 bench/run-embed-bench --build $(BUILD)
	@python3 bench/run-domsnap-bench --build $(BUILD)
	@python3 bench/run-ui-bench --build $(BUILD)
	@python3 bench/run-qmp-bench --build $(BUILD)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include/xblk \
		$(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/xblk/*.h $(DESTDIR)$(PREFIX)/include/xblk
	install -m 755 $(SHLIB) $(DESTDIR)$(PREFIX)/lib
	ln -sf libxblk.so.$(XBLK_VERSION) $(DESTDIR)$(PREFIX)/lib/libxblk.so.0
	ln -sf libxblk.so.0 $(DESTDIR)$(PREFIX)/lib/libxblk.so
	install -m 644 $(PUB_STATIC) $(DESTDIR)$(PREFIX)/lib
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(XBLK_VERSION)|' \
		-e 's|@LIBS_PRIVATE@|$(LIB_LIBS) -lpthread -lm -ldl|' \
		-e 's|@REQUIRES_PRIVATE@|$(LIB_PKGS)|' api/xblk.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/xblk.pc

clean:
	rm -rf $(BUILD)/util $(BUILD)/block $(BUILD)/tools $(BUILD)/tests \
	       $(BUILD)/bench $(BUILD)/qapi $(BUILD)/monitor $(BUILD)/hw \
	       $(BUILD)/guest $(BUILD)/api $(BUILD)/lib $(BUILD)/snapshot \
	       $(BUILD)/migration $(BUILD)/ui \
	       $(BUILD)/*.a $(TOOLS)

distclean:
	rm -rf build

# The reference guest (freestanding, -m32) and its disc: GUEST_TARGETS.
include hw/xbox/guest/guest.mk
# Small test programs for the vCPU tests: TEST_GUEST_TARGETS.
include tests/hw/xbox/guests.mk
# The benchmark guests (cpubench, dmabench, ramfill): BENCH_GUEST_TARGETS.
include bench/guests/guests.mk
all: $(GUEST_TARGETS) $(TEST_GUEST_TARGETS) $(BENCH_GUEST_TARGETS)

-include $(LIB_OBJS:.o=.d) $(TEST_BINS:%=%.d) $(HELPER_BINS:%=%.d) \
	$(BENCH_BINS:%=%.d) $(TOOLS:$(BUILD)/%=$(BUILD)/tools/%.d) \
	$(QAPI_OBJS:.o=.d) $(QAPI_TEST_OBJS:.o=.d) $(SYS_OBJS:.o=.d) \
	$(MON_OBJS:.o=.d) $(API_OBJS:.o=.d)
