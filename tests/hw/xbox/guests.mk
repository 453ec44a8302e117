# guests.mk - included by the top Makefile: the small i386 programs the
# vCPU and machine tests run (tests/hw/xbox/guests/*.S, with the shared
# guests/lib.inc and libcode.inc), built as ELF executables linked at
# 0x100000 into $(BUILD)/tests/hw/xbox/guests/NAME.elf and as flat
# binaries NAME.bin for the flat-binary loader.  Sets TEST_GUEST_TARGETS.
TEST_GUEST_DIR := tests/hw/xbox/guests
TEST_GUEST_OUT := $(BUILD)/tests/hw/xbox/guests
TEST_GUEST_SRCS := $(wildcard $(TEST_GUEST_DIR)/*.S)
TEST_GUEST_ELFS := $(TEST_GUEST_SRCS:$(TEST_GUEST_DIR)/%.S=$(TEST_GUEST_OUT)/%.elf)
TEST_GUEST_TARGETS := $(TEST_GUEST_ELFS) $(TEST_GUEST_ELFS:.elf=.bin)
TEST_GUEST_FLAGS := -m32 -ffreestanding -nostdlib -static \
	-Wl,-Ttext=0x100000 -Wl,--build-id=none

$(TEST_GUEST_OUT)/%.elf: $(TEST_GUEST_DIR)/%.S $(wildcard $(TEST_GUEST_DIR)/*.inc)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_GUEST_FLAGS) -I$(TEST_GUEST_DIR) -o $@ $<

$(TEST_GUEST_OUT)/%.bin: $(TEST_GUEST_OUT)/%.elf
	objcopy -O binary $< $@
