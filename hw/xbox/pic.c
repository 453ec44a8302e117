/*
 * pic.c - the 8259A pair; see pic.h for what is modelled.
 *
 * Priority: `lowest` is the input with the lowest priority (7 after
 * initialization); the input after it has the highest.  rank(ir) is 0 for
 * the highest priority and 7 for the lowest.  A request wins when it is
 * unmasked and ranks above every in-service input that blocks it (fully
 * nested mode: an in-service input blocks itself and everything below).
 *
 * Invariants: irr, isr and imr are 8-bit masks; init_step is 0 (ready) or
 * the number of the ICW expected next on the odd port (2, 3 or 4); the
 * master's IRR bit 2 mirrors the slave's INT output after every change.
 */
#include "hw/xbox/pic.h"
#include <glib.h>

typedef struct Pic8259 {
    uint8_t irr, isr, imr;
    uint8_t lines;          /* input levels, for edge detection */
    uint8_t vector_base;    /* ICW2, low three bits clear */
    uint8_t lowest;         /* input with the lowest priority */
    uint8_t init_step;
    bool need_icw4, single, level_mode;
    bool aeoi, sfnm, rotate_aeoi;
    bool special_mask, read_isr, poll;
} Pic8259;

struct PicPair {
    Pic8259 chip[2];        /* 0 master, 1 slave */
};

static int rank(const Pic8259 *c, int ir)
{
    return (ir - c->lowest - 1) & 7;
}

/* The highest-priority input in mask, or -1. */
static int highest(const Pic8259 *c, uint8_t mask)
{
    for (int r = 0; r < 8; r++) {
        int ir = (c->lowest + 1 + r) & 7;
        if (mask & (1u << ir)) {
            return ir;
        }
    }
    return -1;
}

/* The input this chip would present on INT, or -1. */
static int chip_candidate(const Pic8259 *c, bool is_master)
{
    int req = highest(c, c->irr & ~c->imr);
    if (req < 0) {
        return -1;
    }
    uint8_t blocking = c->isr;
    if (c->special_mask) {
        blocking &= ~c->imr;
    }
    if (is_master && c->sfnm) {
        /* A slave in service does not block its own higher requests. */
        blocking &= ~(1u << PIC_CASCADE_IRQ);
    }
    int svc = highest(c, blocking);
    if (svc >= 0 && rank(c, svc) <= rank(c, req)) {
        return -1;
    }
    return req;
}

static void update_cascade(PicPair *p)
{
    Pic8259 *m = &p->chip[0];
    bool out = chip_candidate(&p->chip[1], false) >= 0;
    if (out) {
        m->irr |= 1u << PIC_CASCADE_IRQ;
        m->lines |= 1u << PIC_CASCADE_IRQ;
    } else {
        m->irr &= ~(1u << PIC_CASCADE_IRQ);
        m->lines &= ~(1u << PIC_CASCADE_IRQ);
    }
}

static void chip_reset(Pic8259 *c)
{
    *c = (Pic8259){ .imr = 0xFF, .lowest = 7 };
}

PicPair *pic_new(void)
{
    PicPair *p = g_new0(PicPair, 1);
    pic_reset(p);
    return p;
}

void pic_free(PicPair *pic)
{
    g_free(pic);
}

void pic_reset(PicPair *pic)
{
    chip_reset(&pic->chip[0]);
    chip_reset(&pic->chip[1]);
}

void pic_set_irq(PicPair *pic, int irq, bool level)
{
    g_assert(irq >= 0 && irq < 16);
    Pic8259 *c = &pic->chip[irq >> 3];
    uint8_t bit = 1u << (irq & 7);
    if (irq == PIC_CASCADE_IRQ) {
        return;             /* the slave drives it */
    }
    if (level && (!(c->lines & bit) || c->level_mode)) {
        c->irr |= bit;
    } else if (!level) {
        c->irr &= ~bit;     /* request withdrawn before INTA */
    }
    c->lines = level ? (c->lines | bit) : (c->lines & ~bit);
    update_cascade(pic);
}

bool pic_has_interrupt(const PicPair *pic)
{
    return chip_candidate(&pic->chip[0], true) >= 0;
}

/* INTA on one chip for input ir. */
static void chip_ack(Pic8259 *c, int ir)
{
    uint8_t bit = 1u << ir;
    c->irr &= ~bit;
    if (c->level_mode && (c->lines & bit)) {
        c->irr |= bit;      /* still requesting; ISR holds it off */
    }
    if (!c->aeoi) {
        c->isr |= bit;
    } else if (c->rotate_aeoi) {
        c->lowest = ir;
    }
}

uint8_t pic_acknowledge(PicPair *pic)
{
    Pic8259 *m = &pic->chip[0], *s = &pic->chip[1];
    int ir = chip_candidate(m, true);
    if (ir < 0) {
        return m->vector_base | 7;
    }
    if (ir != PIC_CASCADE_IRQ) {
        chip_ack(m, ir);
        update_cascade(pic);
        return m->vector_base | ir;
    }
    int sir = chip_candidate(s, false);
    chip_ack(m, ir);
    uint8_t vec = s->vector_base | 7;
    if (sir >= 0) {
        chip_ack(s, sir);
        vec = s->vector_base | sir;
    }
    update_cascade(pic);
    return vec;
}

static Pic8259 *chip_of(PicPair *pic, uint32_t port, bool *odd)
{
    *odd = port & 1;
    return &pic->chip[(port & ~1u) == PIC_SLAVE_PORT];
}

/* The poll command: a read that acts as INTA on this chip only. */
static uint8_t chip_poll(Pic8259 *c, bool is_master)
{
    c->poll = false;
    int ir = chip_candidate(c, is_master);
    if (ir < 0) {
        return 0;
    }
    chip_ack(c, ir);
    return 0x80 | ir;
}

uint32_t pic_ioport_read(void *opaque, uint32_t port, unsigned size)
{
    PicPair *pic = opaque;
    bool odd;
    Pic8259 *c = chip_of(pic, port, &odd);
    uint8_t v;
    if (c->poll) {
        v = chip_poll(c, c == &pic->chip[0]);
        update_cascade(pic);
    } else if (odd) {
        v = c->imr;
    } else {
        v = c->read_isr ? c->isr : c->irr;
    }
    return v;
}

static void write_icw1(Pic8259 *c, uint8_t v)
{
    uint8_t lines = c->lines;
    chip_reset(c);
    c->imr = 0;             /* ICW1 clears the mask */
    c->lines = lines;       /* edge sense reset: needs a new rising edge */
    c->need_icw4 = v & 0x01;
    c->single = v & 0x02;
    c->level_mode = v & 0x08;
    c->init_step = 2;
}

static void eoi(Pic8259 *c, int ir, bool rotate)
{
    if (ir < 0) {
        return;
    }
    c->isr &= ~(1u << ir);
    if (rotate) {
        c->lowest = ir;
    }
}

static void write_ocw2(Pic8259 *c, uint8_t v)
{
    int level = v & 7;
    switch (v >> 5) {
    case 1:                 /* non-specific EOI */
        eoi(c, highest(c, c->isr), false);
        break;
    case 3:                 /* specific EOI */
        eoi(c, level, false);
        break;
    case 5:                 /* rotate on non-specific EOI */
        eoi(c, highest(c, c->isr), true);
        break;
    case 7:                 /* rotate on specific EOI */
        eoi(c, level, true);
        break;
    case 4:                 /* set rotate in automatic EOI mode */
        c->rotate_aeoi = true;
        break;
    case 0:                 /* clear rotate in automatic EOI mode */
        c->rotate_aeoi = false;
        break;
    case 6:                 /* set priority */
        c->lowest = level;
        break;
    default:                /* 2: no operation */
        break;
    }
}

static void write_ocw3(Pic8259 *c, uint8_t v)
{
    if (v & 0x04) {
        c->poll = true;
    }
    if (v & 0x02) {
        c->read_isr = v & 0x01;
    }
    if (v & 0x40) {
        c->special_mask = v & 0x20;
    }
}

static void write_odd(Pic8259 *c, uint8_t v)
{
    switch (c->init_step) {
    case 2:
        c->vector_base = v & 0xF8;
        c->init_step = !c->single ? 3 : c->need_icw4 ? 4 : 0;
        break;
    case 3:                 /* ICW3: the wiring is fixed, nothing to keep */
        c->init_step = c->need_icw4 ? 4 : 0;
        break;
    case 4:
        c->aeoi = v & 0x02;
        c->sfnm = v & 0x10;
        c->init_step = 0;
        break;
    default:
        c->imr = v;         /* OCW1 */
        break;
    }
}

void pic_ioport_write(void *opaque, uint32_t port, uint32_t val,
                      unsigned size)
{
    PicPair *pic = opaque;
    bool odd;
    Pic8259 *c = chip_of(pic, port, &odd);
    uint8_t v = val;
    if (odd) {
        write_odd(c, v);
    } else if (v & 0x10) {
        write_icw1(c, v);
    } else if (v & 0x08) {
        write_ocw3(c, v);
    } else {
        write_ocw2(c, v);
    }
    update_cascade(pic);
}

/* ---- save states ---- */

/* A chip's state is all of Pic8259; nothing else (no timer, no line is
 * driven on load: the machine's own section carries the line levels). */
static bool pic_chip_check(const void *current, const void *scratch,
                           int version_id, XblkError **err)
{
    const Pic8259 *c = scratch;
    if (c->vector_base & 7) {
        xblk_error_set(err, XBLK_ERROR_INVALID,
                       "vector base 0x%02x is not a multiple of 8",
                       c->vector_base);
        return false;
    }
    if (c->init_step == 1) {
        xblk_error_set(err, XBLK_ERROR_INVALID,
                       "initialization step 1 does not exist");
        return false;
    }
    return true;
}

static const XblkDeviceDesc pic_chip_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "i8259",
    .version = 1,
    .minimum_version = 1,
    .struct_size = sizeof(Pic8259),
    .check = pic_chip_check,
    .fields = (const XblkField[]){
        XBLK_U8(Pic8259, irr),
        XBLK_U8(Pic8259, isr),
        XBLK_U8(Pic8259, imr),
        XBLK_U8(Pic8259, lines),
        XBLK_U8(Pic8259, vector_base),
        XBLK_U8(Pic8259, lowest, XBLK_MAX(7)),
        XBLK_U8(Pic8259, init_step, XBLK_MAX(4)),
        XBLK_BOOL(Pic8259, need_icw4),
        XBLK_BOOL(Pic8259, single),
        XBLK_BOOL(Pic8259, level_mode),
        XBLK_BOOL(Pic8259, aeoi),
        XBLK_BOOL(Pic8259, sfnm),
        XBLK_BOOL(Pic8259, rotate_aeoi),
        XBLK_BOOL(Pic8259, special_mask),
        XBLK_BOOL(Pic8259, read_isr),
        XBLK_BOOL(Pic8259, poll),
        XBLK_FIELDS_END
    },
};

/* Restores the cascade invariant (a no-op for a state saved here). */
static bool pic_post_load(void *opaque, int version_id, XblkError **err)
{
    update_cascade(opaque);
    return true;
}

static const XblkDeviceDesc pic_desc = {
    .size = sizeof(XblkDeviceDesc),
    .field_size = sizeof(XblkField),
    .name = "pic",
    .version = 1,
    .minimum_version = 1,
    .struct_size = sizeof(PicPair),
    .post_load = pic_post_load,
    .fields = (const XblkField[]){
        XBLK_STRUCT_ARRAY(PicPair, chip, 2, &pic_chip_desc, Pic8259),
        XBLK_FIELDS_END
    },
};

const XblkDeviceDesc *pic_vmstate(void)
{
    return &pic_desc;
}
