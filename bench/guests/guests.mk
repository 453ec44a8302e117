# guests.mk - builds the benchmark guests of bench/run-machine-bench
# (bench/guests/: cpubench, dmabench) into $(BUILD)/bench/guests/NAME.elf.
# Sets BENCH_GUEST_TARGETS.  They are freestanding i386 programs built
# exactly as the reference guest (hw/xbox/guest/guest.mk: same flags,
# same start-up and linker script) and reuse its drivers, compiled from
# hw/xbox/guest/ into $(BUILD)/bench/guests/ref/ (the sources are only
# read).  Like the reference guest, they never take the host's flags.
#
# Included by the top Makefile; until then:
#   make -f Makefile -f bench/guests/guests.mk build/bench/guests/cpubench.elf

BENCH_GUEST_SRC := bench/guests
BENCH_GUEST_REF := hw/xbox/guest
BENCH_GUEST_OUT := $(BUILD)/bench/guests

BENCH_GUEST_CFLAGS := -m32 -march=i686 -ffreestanding -fno-pic \
	-fno-stack-protector -fno-builtin -nostdlib -O2 -Wall -Wextra \
	-std=gnu11 -fno-strict-aliasing -fno-asynchronous-unwind-tables \
	-MMD -MP -I$(BENCH_GUEST_REF)
BENCH_GUEST_LDFLAGS := -m32 -march=i686 -nostdlib -static -no-pie \
	-T $(BENCH_GUEST_REF)/guest.ld -Wl,--build-id=none

# What each program links: its own objects, and the reference guest's
# start-up and drivers.
BENCH_GUEST_REF_BASE := start console idt pic sysctl lib
BENCH_GUEST_cpubench_OWN := cpubench benchlib
BENCH_GUEST_cpubench_REF := $(BENCH_GUEST_REF_BASE)
BENCH_GUEST_dmabench_OWN := dmabench benchlib
BENCH_GUEST_dmabench_REF := $(BENCH_GUEST_REF_BASE) ata ide gpu
# The RAM-filling guest of bench/run-savestate-bench: ramfill for the
# xblk machine, ramfill-mb (Multiboot v1 ELF, own entry, no xbox device)
# for qemu-system-x86_64 -kernel.
BENCH_GUEST_ramfill_OWN := ramfill ramfill-fill benchlib
BENCH_GUEST_ramfill_REF := $(BENCH_GUEST_REF_BASE)
BENCH_GUEST_ramfill-mb_OWN := ramfill-mbentry ramfill-mb ramfill-fill
BENCH_GUEST_ramfill-mb_REF := console lib

BENCH_GUEST_NAMES := cpubench dmabench
BENCH_GUEST_NAMES += ramfill ramfill-mb
BENCH_GUEST_TARGETS := $(BENCH_GUEST_NAMES:%=$(BENCH_GUEST_OUT)/%.elf)

bench_guest_objs = $(BENCH_GUEST_$(1)_OWN:%=$(BENCH_GUEST_OUT)/%.o) \
	$(BENCH_GUEST_$(1)_REF:%=$(BENCH_GUEST_OUT)/ref/%.o)
BENCH_GUEST_ALL_OBJS := $(sort $(foreach n,$(BENCH_GUEST_NAMES),\
	$(call bench_guest_objs,$(n))))

$(BENCH_GUEST_OUT)/%.o: $(BENCH_GUEST_SRC)/%.c $(BENCH_GUEST_SRC)/guests.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_GUEST_CFLAGS) -c -o $@ $<

$(BENCH_GUEST_OUT)/%.o: $(BENCH_GUEST_SRC)/%.S $(BENCH_GUEST_SRC)/guests.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_GUEST_CFLAGS) -c -o $@ $<

$(BENCH_GUEST_OUT)/ref/%.o: $(BENCH_GUEST_REF)/%.c $(BENCH_GUEST_SRC)/guests.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_GUEST_CFLAGS) -c -o $@ $<

$(BENCH_GUEST_OUT)/ref/%.o: $(BENCH_GUEST_REF)/%.S $(BENCH_GUEST_SRC)/guests.mk
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_GUEST_CFLAGS) -c -o $@ $<

# One link rule per program.
define bench_guest_link
$(BENCH_GUEST_OUT)/$(1).elf: $(call bench_guest_objs,$(1)) \
		$(BENCH_GUEST_REF)/guest.ld
	$$(CC) $$(BENCH_GUEST_LDFLAGS) -o $$@ $$(filter %.o,$$^) -lgcc
endef
$(foreach n,$(BENCH_GUEST_NAMES),$(eval $(call bench_guest_link,$(n))))

-include $(BENCH_GUEST_ALL_OBJS:.o=.d)
