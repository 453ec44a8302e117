# fuzz.mk - the libFuzzer targets of tests/fuzz/ (docs/fuzzing.md),
# included by the top Makefile.  Owns two builds of each target
# tests/fuzz/fuzz-<target>.c:
#
#   - the replay build, $(BUILD)/tests/fuzz/replay-<target>: the target
#     with tests/fuzz/replay-main.c, compiled by $(CC) with the normal
#     flags and linked like the machine's tests (so under `make
#     check-asan` it is an ASan/UBSan build).  `make all` builds them and
#     tests/fuzz/test-fuzz-corpus.py replays every seed and regression;
#   - the fuzzing build, $(BUILD)/fuzz/fuzz-<target>: everything the
#     target needs compiled again by $(CLANG) with
#     -fsanitize=fuzzer,address,undefined into $(BUILD)/fuzz/obj/ (never
#     the gcc objects), built and run by `make fuzz` for $(FUZZ_SECONDS)
#     each over a scratch copy of its corpus ($(BUILD)/fuzz/corpus/).
#
# Invariant: nothing here writes into the source tree; new inputs and
# crash artifacts land under $(BUILD)/fuzz/.

FUZZ_TARGETS := qcow2 qmp domainsnapshot savestream ide config
FUZZ_SECONDS ?= 60
CLANG ?= clang

FUZZ_REPLAY_BINS += $(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz/replay-%)
FUZZ_REPLAY_MAIN := $(BUILD)/tests/fuzz/replay-main.o
# Spelled out: the top Makefile defines these names after including us.
FUZZ_LIBQAPI := $(BUILD)/libqapi.a
FUZZ_QAPI_STAMPS := $(BUILD)/qapi/engine-qapi-gen.stamp \
	$(BUILD)/qapi/qapi-gen.stamp

# Every target links the machine layer too (IDE, the save-state sections,
# the front end's settings); archives pull in only what is used.
$(BUILD)/tests/fuzz/replay-%: $(BUILD)/tests/fuzz/fuzz-%.o \
		$(FUZZ_REPLAY_MAIN) $(LIBSYS) $(PUB_STATIC) $(FUZZ_LIBQAPI) $(LIBXBLK)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(FUZZ_REPLAY_MAIN) -Wl,--start-group \
		$(LIBSYS) $(PUB_STATIC) $(LIBQAPI) $(LIBXBLK) -Wl,--end-group \
		$(LIBS) $(HW_LIBS) $(UI_LIBS)

# ---- the libFuzzer build (clang) ----

FUZZ_DIR := $(BUILD)/fuzz
FUZZ_OBJ := $(FUZZ_DIR)/obj
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
FUZZ_CFLAGS = -std=gnu11 -O1 -g $(WARN) -Wno-unknown-warning-option \
	-D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I. -Iinclude -I$(BUILD) \
	$(LIB_CFLAGS) $(UI_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
	-MMD -MP

# The engine, its monitor and generated QAPI code, the public API glue
# and the machine layer without the SDL window.
FUZZ_LIB_SRCS := $(LIB_SRCS) $(MON_SRCS) $(API_SRCS) \
	$(filter-out ui/sdl/%,$(SYS_SRCS))
FUZZ_LIB_OBJS := $(FUZZ_LIB_SRCS:%.c=$(FUZZ_OBJ)/%.o) \
	$(patsubst $(BUILD)/%.c,$(FUZZ_OBJ)/gen/%.o,$(QAPI_GEN_C) $(QAPI_HOST_C))
FUZZ_LIB := $(FUZZ_DIR)/libfuzz-xblk.a
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz-%)

$(FUZZ_OBJ)/%.o: %.c $(BUILD)/config.mak | $(FUZZ_QAPI_STAMPS)
	@mkdir -p $(dir $@)
	@echo "  CLANG   $<"
	@$(CLANG) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_OBJ)/gen/%.o: $(BUILD)/%.c $(BUILD)/config.mak | $(FUZZ_QAPI_STAMPS)
	@mkdir -p $(dir $@)
	@echo "  CLANG   $<"
	@$(CLANG) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_DIR)/fuzz-%: $(FUZZ_OBJ)/tests/fuzz/fuzz-%.o $(FUZZ_LIB)
	$(CLANG) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< -Wl,--start-group \
		$(FUZZ_LIB) -Wl,--end-group $(LIBS) $(HW_LIBS) $(UI_LIBS)

# FUZZ_TARGETS=... picks some; FUZZ_SECONDS=5 for a quick run.  clang
# (and its libFuzzer) is installed first if missing, as the README's
# commands install what they need.
fuzz:
	@sh scripts/install-deps fuzz
	@$(MAKE) --no-print-directory fuzz-run

fuzz-run: $(FUZZ_BINS)
	@python3 tests/fuzz/run-fuzz --build $(BUILD) \
		--seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

.PHONY: fuzz-run

-include $(FUZZ_REPLAY_BINS:$(BUILD)/tests/fuzz/replay-%=$(BUILD)/tests/fuzz/fuzz-%.d) \
	$(FUZZ_REPLAY_MAIN:.o=.d) $(FUZZ_LIB_OBJS:.o=.d) \
	$(FUZZ_TARGETS:%=$(FUZZ_OBJ)/tests/fuzz/fuzz-%.d)

# Keep the targets' objects (make would delete them as intermediates).
.SECONDARY: $(FUZZ_TARGETS:%=$(FUZZ_OBJ)/tests/fuzz/fuzz-%.o) \
	$(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz/fuzz-%.o)
