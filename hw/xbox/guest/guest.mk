# guest.mk - included by the top Makefile: builds the reference guest
# (hw/xbox/guest/) for i386 and its disc image into $(BUILD)/guest/.
# Sets GUEST_TARGETS.
GUEST_TARGETS :=
