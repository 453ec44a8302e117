# guest.mk - included by the top Makefile: builds the reference guest
# (hw/xbox/guest/) for i386 and its disc image into $(BUILD)/guest/.
# Sets GUEST_TARGETS.  The guest is freestanding and never takes the
# host's flags ($(ALL_CFLAGS), $(SAN_FLAGS)): the asan build makes the
# same plain guest under its own $(BUILD).

GUEST_SRC := hw/xbox/guest
GUEST_OUT := $(BUILD)/guest
OBJCOPY ?= objcopy

GUEST_CFLAGS := -m32 -march=i686 -ffreestanding -fno-pic -fno-stack-protector \
	-fno-builtin -nostdlib -O2 -Wall -Wextra -std=gnu11 -fno-strict-aliasing \
	-fno-asynchronous-unwind-tables -MMD -MP
GUEST_LDFLAGS := -m32 -march=i686 -nostdlib -static -no-pie \
	-T $(GUEST_SRC)/guest.ld -Wl,--build-id=none

GUEST_OBJS := $(patsubst $(GUEST_SRC)/%.S,$(GUEST_OUT)/%.o,$(wildcard $(GUEST_SRC)/*.S)) \
	$(patsubst $(GUEST_SRC)/%.c,$(GUEST_OUT)/%.o,$(wildcard $(GUEST_SRC)/*.c))

GUEST_TARGETS := $(GUEST_OUT)/xboxguest.elf $(GUEST_OUT)/xboxguest.bin \
	$(GUEST_OUT)/disc.iso

$(GUEST_OUT)/%.o: $(GUEST_SRC)/%.c $(GUEST_SRC)/guest.mk
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -c -o $@ $<

$(GUEST_OUT)/%.o: $(GUEST_SRC)/%.S $(GUEST_SRC)/guest.mk
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -c -o $@ $<

$(GUEST_OUT)/xboxguest.elf: $(GUEST_OBJS) $(GUEST_SRC)/guest.ld
	$(CC) $(GUEST_LDFLAGS) -o $@ $(GUEST_OBJS) -lgcc

$(GUEST_OUT)/xboxguest.bin: $(GUEST_OUT)/xboxguest.elf
	$(OBJCOPY) -O binary $< $@

$(GUEST_OUT)/disc.iso: $(GUEST_SRC)/mkdisc.py
	@mkdir -p $(dir $@)
	python3 $(GUEST_SRC)/mkdisc.py -o $@

-include $(GUEST_OBJS:.o=.d)
