/*
 * test-qapi-visit.c - unit tests of the code scripts/qapi-gen generates.
 *
 * Compiles against the test schema (tests/qapi/qapi-schema-test.json,
 * generated into build/tests/qapi/schema/ with prefix test-) and the real
 * schema (libqapi.a).  Values go JSON -> C -> JSON and must come back
 * unchanged: every built-in type at its limits (64-bit integers included),
 * optional members, lists, flat and simple unions, alternates.  Every input
 * error is checked for QEMU's message text and the dotted path of the bad
 * member.  The test also implements the monitor's side of the seam
 * (qmp_register_command, qapi_event_emit) to drive the generated
 * marshallers and event emitters, and parses the introspection data.
 */
#include "tests/qapi/schema/test-qapi-commands.h"
#include "tests/qapi/schema/test-qapi-events.h"
#include "tests/qapi/schema/test-qapi-introspect.h"
#include "tests/qapi/schema/test-qapi-types.h"
#include "tests/qapi/schema/test-qapi-visit.h"
#include "qapi/qapi-visit.h"
#include "qapi/qapi-introspect.h"
#include "util/error.h"
#include <glib.h>
#include <string.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC(json_t, json_decref)

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);

    if (!j) {
        g_error("bad test JSON at %d: %s: %s", jerr.position, jerr.text,
                text);
    }
    return j;
}

static void assert_json_equal(json_t *got, json_t *want)
{
    if (!json_equal(got, want)) {
        g_autofree char *g = json_dumps(got, JSON_SORT_KEYS | JSON_ENCODE_ANY);
        g_autofree char *w = json_dumps(want,
                                        JSON_SORT_KEYS | JSON_ENCODE_ANY);
        g_error("JSON differs:\n got  %s\n want %s", g, w);
    }
}

/* JSON text -> T -> JSON must give the same JSON back; the C value is
 * left in *out_ (caller frees). */
#define ROUNDTRIP_KEEP(T, text, out_)                                       \
    do {                                                                    \
        g_autoptr(json_t) in_ = parse(text);                                \
        T *v_ = NULL;                                                       \
        GError *err_ = NULL;                                                \
        if (!visit_##T##_from_json(in_, NULL, &v_, &err_)) {                \
            g_error("%s: %s", text, err_->message);                         \
        }                                                                   \
        g_autoptr(json_t) back_ = visit_##T##_to_json(v_);                  \
        assert_json_equal(back_, in_);                                      \
        *(out_) = v_;                                                       \
    } while (0)

#define ROUNDTRIP(T, text)                                                  \
    do {                                                                    \
        T *tmp_ = NULL;                                                     \
        ROUNDTRIP_KEEP(T, text, &tmp_);                                     \
        qapi_free_##T(tmp_);                                                \
    } while (0)

/* JSON text must fail to convert to T with exactly the message msg. */
#define CHECK_ERROR(T, text, msg)                                           \
    do {                                                                    \
        g_autoptr(json_t) in_ = parse(text);                                \
        T *v_ = (T *)&v_;                                                   \
        GError *err_ = NULL;                                                \
        g_assert_false(visit_##T##_from_json(in_, NULL, &v_, &err_));       \
        g_assert_null(v_);                                                  \
        g_assert_error(err_, XBLK_ERROR, ERROR_CLASS_GENERIC_ERROR);        \
        g_assert_cmpstr(err_->message, ==, msg);                            \
        g_error_free(err_);                                                 \
    } while (0)

/* A deep copy through JSON. */
#define CLONE(T, v)                                                         \
    ({                                                                      \
        json_t *j_ = visit_##T##_to_json(v);                                \
        T *c_ = NULL;                                                       \
        g_assert_true(visit_##T##_from_json(j_, NULL, &c_, NULL));          \
        json_decref(j_);                                                    \
        c_;                                                                 \
    })

/* ---- the monitor's side of the seam ---- */

struct QmpCommandList {
    GHashTable *fns;        /* name -> QmpCommandFunc * */
    GHashTable *opts;       /* name -> QmpCommandOptions */
};

void qmp_register_command(QmpCommandList *cmds, const char *name,
                          QmpCommandFunc *fn, QmpCommandOptions opts)
{
    g_assert_false(g_hash_table_contains(cmds->fns, name));
    g_hash_table_insert(cmds->fns, g_strdup(name), (gpointer)fn);
    g_hash_table_insert(cmds->opts, g_strdup(name), GINT_TO_POINTER(opts));
}

static char *last_event;
static json_t *last_event_data;
static int events_emitted;

void qapi_event_emit(const char *event_name, json_t *data)
{
    g_free(last_event);
    json_decref(last_event_data);
    last_event = g_strdup(event_name);
    last_event_data = data;
    events_emitted++;
}

/* ---- the commands of the test schema ---- */

static int cmd0_calls;
static int64_t last_integer;
static char *last_string;

void qmp_sub_cmd(SubStruct *s, GError **errp)
{
    last_integer = s->x;
}

void qmp_user_def_cmd0(GError **errp)
{
    cmd0_calls++;
}

void qmp_user_def_cmd1(UserDefOne *ud1a, GError **errp)
{
    last_integer = ud1a->integer;
    g_free(last_string);
    last_string = g_strdup(ud1a->string);
}

UserDefOne *qmp_user_def_cmd2(UserDefOne *ud1a, bool has_ud1b,
                              UserDefOne *ud1b, bool has_s, const char *s,
                              bool has_i, int64_t i, bool has_e, EnumOne e,
                              bool has_l, intList *l, bool has_q_default,
                              bool q_default, GError **errp)
{
    UserDefOne *ret;

    if (has_s && !strcmp(s, "fail")) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "failed as asked");
        return NULL;
    }
    ret = g_new0(UserDefOne, 1);
    ret->string = g_strdup(has_s ? s : "none");
    ret->integer = ud1a->integer + (has_i ? i : 0) +
        (has_ud1b ? ud1b->integer : 0);
    for (; has_l && l; l = l->next) {
        ret->integer += l->value;
    }
    ret->has_enum1 = has_e;
    ret->enum1 = e;
    if (has_q_default) {
        ret->has_q_default = true;
        ret->q_default = g_strdup(q_default ? "yes" : "no");
    }
    return ret;
}

UserDefOneList *qmp_cmd_named_args(const char *string, bool has_enum1,
                                   EnumOne enum1, int64_t integer,
                                   bool has_q_default, const char *q_default,
                                   bool has_q_case, int64_t q_case,
                                   bool has___org_example_ext,
                                   const char *__org_example_ext,
                                   GError **errp)
{
    UserDefOneList *head = NULL;

    for (int n = 0; n < 2; n++) {
        UserDefOneList *e = g_new0(UserDefOneList, 1);

        e->value = g_new0(UserDefOne, 1);
        e->value->string = g_strdup(string);
        e->value->integer = integer + n;
        e->value->has_q_case = has_q_case;
        e->value->q_case = q_case;
        e->next = head;
        head = e;
    }
    return head;
}

void qmp_cmd_boxed_struct(UserDefOne *arg, GError **errp)
{
    last_integer = arg->integer;
}

FlatUnion *qmp_cmd_boxed_union(FlatUnion *arg, GError **errp)
{
    return CLONE(FlatUnion, arg);
}

int64_t qmp_test_int_ret(GError **errp)
{
    return INT64_MIN;
}

char *qmp_test_str_ret(const char *s, GError **errp)
{
    return g_strdup_printf("<%s>", s);
}

json_t *qmp_test_any_ret(bool has_a, json_t *a, GError **errp)
{
    return has_a ? json_incref(a) : json_string("no a");
}

intList *qmp_test_list_ret(uint64_t n, GError **errp)
{
    intList *head = NULL;

    while (n--) {
        intList *e = g_new0(intList, 1);

        e->value = n;
        e->next = head;
        head = e;
    }
    return head;
}

void qmp_cmd_flags(GError **errp)
{
}

WithAlternates *qmp_cmd_alternates(WithAlternates *w, GError **errp)
{
    return CLONE(WithAlternates, w);
}

void qmp_cmd_unions(FlatUnion *f, bool has_s, SimpleUnion *s, bool has_n,
                    FlatUnionNamedBase *n, GError **errp)
{
    last_integer = f->kind == UNION_KIND_ONE ? f->u.one.x : -1;
}

Scalars *qmp_cmd_scalars(Scalars *sc, bool has_lists, UserDefLists *lists,
                         bool has_odd, OddValues odd, bool has_pfx,
                         PrefixedEnum pfx, bool has_us,
                         UnderscoreStruct *us, GError **errp)
{
    return CLONE(Scalars, sc);
}

/* ---- enums ---- */

static void test_enums(void)
{
    g_assert_cmpint(ENUM_ONE_VALUE_ONE, ==, 0);
    g_assert_cmpint(ENUM_ONE_VALUE_THREE, ==, 2);
    g_assert_cmpint(ENUM_ONE__MAX, ==, 3);
    g_assert_cmpstr(EnumOne_str[ENUM_ONE_VALUE2], ==, "value2");
    g_assert_cmpint(EnumOne_parse("value-three"), ==, ENUM_ONE_VALUE_THREE);
    g_assert_cmpint(EnumOne_parse("value_three"), ==, -1);
    g_assert_cmpint(EnumOne_parse(NULL), ==, -1);

    /* 'prefix', '-' and '.' */
    g_assert_cmpint(PFX_C_D, ==, 1);
    g_assert_cmpint(PFX__MAX, ==, 3);
    g_assert_cmpstr(PrefixedEnum_str[PFX_C_D], ==, "c.d");
    g_assert_cmpint(PrefixedEnum_parse("a-b"), ==, PFX_A_B);

    /* digits and C keywords are fine in constants */
    g_assert_cmpint(ODD_VALUES_1, ==, 0);
    g_assert_cmpint(ODD_VALUES_DEFAULT, ==, 2);

    /* the implicit enum of a simple union, and QType */
    g_assert_cmpstr(SimpleUnionKind_str[SIMPLE_UNION_KIND_INTS], ==, "ints");
    g_assert_cmpint(QTYPE_NONE, ==, 0);
    g_assert_cmpstr(QType_str[QTYPE_QDICT], ==, "qdict");
    g_assert_cmpint(QTYPE__MAX, ==, 7);

    /* enums on their own */
    EnumOne e = ENUM_ONE_VALUE_ONE;
    g_autoptr(json_t) j = json_string("value2");
    g_assert_true(visit_EnumOne_from_json(j, "x", &e, NULL));
    g_assert_cmpint(e, ==, ENUM_ONE_VALUE2);
    g_autoptr(json_t) back = visit_EnumOne_to_json(e);
    assert_json_equal(back, j);
    g_autoptr(json_t) bad = visit_EnumOne_to_json((EnumOne)42);
    g_assert_true(json_is_null(bad));
}

/* ---- structs ---- */

static void test_struct_roundtrip(void)
{
    UserDefOne *v = NULL;

    ROUNDTRIP_KEEP(UserDefOne,
                   "{\"string\": \"s\", \"enum1\": \"value-three\", "
                   "\"integer\": -7, \"default\": \"d\", \"case\": 3, "
                   "\"__org.example_ext\": \"x\"}", &v);
    g_assert_cmpstr(v->string, ==, "s");
    g_assert_true(v->has_enum1);
    g_assert_cmpint(v->enum1, ==, ENUM_ONE_VALUE_THREE);
    g_assert_cmpint(v->integer, ==, -7);
    g_assert_true(v->has_q_default);
    g_assert_cmpstr(v->q_default, ==, "d");
    g_assert_true(v->has_q_case);
    g_assert_cmpint(v->q_case, ==, 3);
    g_assert_true(v->has___org_example_ext);
    qapi_free_UserDefOne(v);

    /* optional members absent: has_ false, left out on the way back */
    ROUNDTRIP_KEEP(UserDefOne, "{\"string\": \"\", \"integer\": 0}", &v);
    g_assert_false(v->has_enum1);
    g_assert_false(v->has_q_default);
    g_assert_null(v->q_default);
    g_assert_false(v->has_q_case);
    qapi_free_UserDefOne(v);

    ROUNDTRIP(Empty, "{}");
    ROUNDTRIP(SubStruct, "{\"x\": 1}");
    ROUNDTRIP(UnderscoreStruct, "{\"under_score\": 1, \"CamelMember\": \"c\"}");

    /* C to JSON of a struct built by hand: has_ false hides the member */
    UserDefOne h = { .string = (char *)"h", .integer = 5,
                     .has_q_case = false, .q_case = 99 };
    g_autoptr(json_t) j = visit_UserDefOne_to_json(&h);
    g_autoptr(json_t) want = parse("{\"string\": \"h\", \"integer\": 5}");
    assert_json_equal(j, want);

    /* a NULL object is {} on the way out, a NULL str "" */
    g_autoptr(json_t) empty = visit_UserDefOne_to_json(NULL);
    g_assert_true(json_is_object(empty) && json_object_size(empty) == 0);
    UserDefOne nul = { 0 };
    g_autoptr(json_t) j2 = visit_UserDefOne_to_json(&nul);
    g_assert_cmpstr(json_string_value(json_object_get(j2, "string")), ==, "");
}

static void test_scalars_limits(void)
{
    Scalars *v = NULL;

    ROUNDTRIP_KEEP(Scalars,
                   "{\"i\": -9223372036854775808, \"i8\": -128, "
                   "\"i16\": -32768, \"i32\": -2147483648, "
                   "\"i64\": 9223372036854775807, \"u8\": 255, "
                   "\"u16\": 65535, \"u32\": 4294967295, \"u64\": -1, "
                   "\"sz\": 9223372036854775807, \"num\": -1.5, "
                   "\"b\": false, \"s\": \"caf\\u00e9\", \"n\": null, "
                   "\"a\": {\"deep\": [1, null, {\"x\": true}]}, "
                   "\"e\": \"value2\"}", &v);
    g_assert_cmpint(v->i, ==, INT64_MIN);
    g_assert_cmpint(v->i8, ==, -128);
    g_assert_cmpint(v->i16, ==, INT16_MIN);
    g_assert_cmpint(v->i32, ==, INT32_MIN);
    g_assert_cmpint(v->i64, ==, INT64_MAX);
    g_assert_cmpuint(v->u8, ==, 255);
    g_assert_cmpuint(v->u16, ==, UINT16_MAX);
    g_assert_cmpuint(v->u32, ==, UINT32_MAX);
    /* uint64 above INT64_MAX travels as the negative integer */
    g_assert_cmpuint(v->u64, ==, UINT64_MAX);
    g_assert_cmpuint(v->sz, ==, INT64_MAX);
    g_assert_cmpfloat(v->num, ==, -1.5);
    g_assert_cmpstr(v->s, ==, "caf\xc3\xa9");
    g_assert_true(v->has_n && v->n);
    g_assert_true(v->has_a && json_is_object(v->a));
    qapi_free_Scalars(v);

    ROUNDTRIP_KEEP(Scalars,
                   "{\"i\": 9223372036854775807, \"i8\": 127, "
                   "\"i16\": 32767, \"i32\": 2147483647, "
                   "\"i64\": -9223372036854775808, \"u8\": 0, "
                   "\"u16\": 0, \"u32\": 0, \"u64\": -9223372036854775808, "
                   "\"sz\": -2, \"num\": 1e300, \"b\": true, \"s\": \"\"}",
                   &v);
    g_assert_cmpint(v->i, ==, INT64_MAX);
    g_assert_cmpuint(v->u64, ==, 1ULL << 63);
    g_assert_cmpuint(v->sz, ==, UINT64_MAX - 1);
    g_assert_false(v->has_n || v->has_a || v->has_e);
    qapi_free_Scalars(v);

    /* C -> JSON -> C of the uint64 extremes is exact */
    Scalars c = { .u64 = UINT64_MAX, .sz = (1ULL << 63) + 12345,
                  .i = INT64_MIN, .i64 = INT64_MAX, .s = (char *)"x" };
    g_autoptr(json_t) j = visit_Scalars_to_json(&c);
    g_autoptr(Scalars) back = NULL;
    g_assert_true(visit_Scalars_from_json(j, NULL, &back, NULL));
    g_assert_cmpuint(back->u64, ==, UINT64_MAX);
    g_assert_cmpuint(back->sz, ==, (1ULL << 63) + 12345);
    g_assert_cmpint(back->i, ==, INT64_MIN);
    g_assert_cmpint(back->i64, ==, INT64_MAX);

    /* a reader that turns big integers into doubles: accepted for uint64 */
    uint64_t u = 0;
    g_autoptr(json_t) big = json_real(9223372036854775808.0);
    g_assert_true(visit_uint64_from_json(big, "u", &u, NULL));
    g_assert_cmpuint(u, ==, 1ULL << 63);
    g_autoptr(json_t) bigger = json_real(18446744073709549568.0);
    g_assert_true(visit_size_from_json(bigger, "u", &u, NULL));
    g_assert_cmpuint(u, ==, 18446744073709549568ULL);

    /* number accepts integers */
    double d = 0;
    g_autoptr(json_t) three = json_integer(3);
    g_assert_true(visit_number_from_json(three, "d", &d, NULL));
    g_assert_cmpfloat(d, ==, 3.0);

    /* strings that are not UTF-8 still become valid JSON */
    g_autoptr(json_t) s = visit_str_to_json("a\xff" "b");
    g_assert_nonnull(s);
    g_assert_true(g_utf8_validate(json_string_value(s), -1, NULL));
}

static void test_lists(void)
{
    UserDefLists *v = NULL;

    ROUNDTRIP_KEEP(UserDefLists,
                   "{\"ints\": [1, -2, 9223372036854775807], "
                   "\"u64s\": [0, -1], \"i8s\": [-128, 127], "
                   "\"strs\": [\"a\", \"\"], "
                   "\"enums\": [\"value2\", \"value-one\"], "
                   "\"objs\": [{\"string\": \"o\", \"integer\": 1}], "
                   "\"anys\": [1, \"two\", [3], {\"four\": null}], "
                   "\"nums\": [0.5], \"bools\": [true, false], "
                   "\"nested\": [{\"ints\": [], \"u64s\": [], \"i8s\": [], "
                   "\"strs\": [], \"enums\": [], \"objs\": []}]}", &v);
    g_assert_cmpint(v->ints->value, ==, 1);
    g_assert_cmpint(v->ints->next->next->value, ==, INT64_MAX);
    g_assert_null(v->ints->next->next->next);
    g_assert_cmpuint(v->u64s->next->value, ==, UINT64_MAX);
    g_assert_cmpstr(v->strs->value, ==, "a");
    g_assert_cmpint(v->enums->value, ==, ENUM_ONE_VALUE2);
    g_assert_cmpstr(v->objs->value->string, ==, "o");
    g_assert_true(json_is_integer(v->anys->value));
    g_assert_true(v->has_nested);
    /* [] is the NULL list */
    g_assert_null(v->nested->value->ints);
    qapi_free_UserDefLists(v);

    /* a list on its own */
    g_autoptr(json_t) in = parse("[3, 2, 1]");
    g_autoptr(intList) l = NULL;
    g_assert_true(visit_intList_from_json(in, NULL, &l, NULL));
    g_autoptr(json_t) out = visit_intList_to_json(l);
    assert_json_equal(out, in);
    g_autoptr(json_t) none = visit_intList_to_json(NULL);
    g_assert_true(json_is_array(none) && json_array_size(none) == 0);
}

/* ---- unions ---- */

static void test_flat_union(void)
{
    FlatUnion *v = NULL;

    ROUNDTRIP_KEEP(FlatUnion, "{\"kind\": \"one\", \"common\": 4, \"x\": 5, "
                   "\"y\": \"why\"}", &v);
    g_assert_cmpint(v->kind, ==, UNION_KIND_ONE);
    g_assert_true(v->has_common);
    g_assert_cmpint(v->u.one.x, ==, 5);
    g_assert_true(v->u.one.has_y);
    g_assert_cmpstr(v->u.one.y, ==, "why");
    qapi_free_FlatUnion(v);

    ROUNDTRIP_KEEP(FlatUnion, "{\"kind\": \"two\", \"list\": [\"a\"], "
                   "\"nested\": {\"string\": \"n\", \"integer\": 2}}", &v);
    g_assert_cmpint(v->kind, ==, UNION_KIND_TWO);
    g_assert_cmpstr(v->u.two.list->value, ==, "a");
    g_assert_cmpint(v->u.two.nested->integer, ==, 2);
    qapi_free_FlatUnion(v);

    /* a value of the tag without a branch: base members only */
    ROUNDTRIP(FlatUnion, "{\"kind\": \"none\"}");
    ROUNDTRIP(FlatUnion, "{\"kind\": \"none\", \"common\": -1}");

    /* named base, an empty branch and a missing one */
    FlatUnionNamedBase *n = NULL;
    ROUNDTRIP_KEEP(FlatUnionNamedBase, "{\"enum1\": \"value-one\", "
                   "\"string\": \"s\", \"x\": 1}", &n);
    g_assert_cmpint(n->u.value_one.x, ==, 1);
    qapi_free_FlatUnionNamedBase(n);
    ROUNDTRIP(FlatUnionNamedBase, "{\"enum1\": \"value2\"}");
    ROUNDTRIP(FlatUnionNamedBase, "{\"enum1\": \"value-three\"}");
}

static void test_simple_union(void)
{
    SimpleUnion *v = NULL;

    ROUNDTRIP_KEEP(SimpleUnion, "{\"type\": \"integer\", \"data\": 42}", &v);
    g_assert_cmpint(v->type, ==, SIMPLE_UNION_KIND_INTEGER);
    g_assert_cmpint(v->u.integer.data, ==, 42);
    qapi_free_SimpleUnion(v);

    ROUNDTRIP_KEEP(SimpleUnion, "{\"type\": \"ints\", \"data\": [1, 2]}", &v);
    g_assert_cmpint(v->u.ints.data->next->value, ==, 2);
    qapi_free_SimpleUnion(v);

    ROUNDTRIP_KEEP(SimpleUnion, "{\"type\": \"enum\", \"data\": \"value2\"}",
                   &v);
    g_assert_cmpint(v->u.q_enum.data, ==, ENUM_ONE_VALUE2);
    qapi_free_SimpleUnion(v);

    ROUNDTRIP_KEEP(SimpleUnion, "{\"type\": \"sz\", \"data\": -1}", &v);
    g_assert_cmpuint(v->u.sz.data, ==, UINT64_MAX);
    qapi_free_SimpleUnion(v);

    ROUNDTRIP(SimpleUnion, "{\"type\": \"string\", \"data\": \"str\"}");
    ROUNDTRIP(SimpleUnion, "{\"type\": \"obj\", \"data\": "
              "{\"string\": \"s\", \"integer\": 1}}");
}

/* ---- alternates ---- */

static void test_alternates(void)
{
    WithAlternates *w = NULL;

    ROUNDTRIP_KEEP(WithAlternates,
                   "{\"alt1\": \"str\", \"alt2\": -128, \"alt3\": 2.5, "
                   "\"alt4\": -1, \"list\": [\"a\", "
                   "{\"string\": \"b\", \"integer\": 3}]}", &w);
    g_assert_cmpint(w->alt1->type, ==, QTYPE_QSTRING);
    g_assert_cmpstr(w->alt1->u.s, ==, "str");
    g_assert_cmpint(w->alt2->type, ==, QTYPE_QNUM);
    g_assert_cmpint(w->alt2->u.i, ==, -128);
    g_assert_cmpint(w->alt3->type, ==, QTYPE_QNUM);
    g_assert_cmpfloat(w->alt3->u.num, ==, 2.5);
    g_assert_cmpint(w->alt4->type, ==, QTYPE_QNUM);
    g_assert_cmpuint(w->alt4->u.u, ==, UINT64_MAX);
    g_assert_cmpint(w->list->next->value->type, ==, QTYPE_QDICT);
    g_assert_cmpint(w->list->next->value->u.o->integer, ==, 3);
    qapi_free_WithAlternates(w);

    AltMixed *m = NULL;
    ROUNDTRIP_KEEP(AltMixed, "true", &m);
    g_assert_cmpint(m->type, ==, QTYPE_QBOOL);
    g_assert_true(m->u.b);
    qapi_free_AltMixed(m);
    ROUNDTRIP_KEEP(AltMixed, "null", &m);
    g_assert_cmpint(m->type, ==, QTYPE_QNULL);
    qapi_free_AltMixed(m);
    ROUNDTRIP_KEEP(AltMixed, "\"value-three\"", &m);
    g_assert_cmpint(m->type, ==, QTYPE_QSTRING);
    g_assert_cmpint(m->u.e, ==, ENUM_ONE_VALUE_THREE);
    qapi_free_AltMixed(m);
    ROUNDTRIP_KEEP(AltMixed, "[1, 2]", &m);
    g_assert_cmpint(m->type, ==, QTYPE_QLIST);
    g_assert_cmpint(m->u.l->value, ==, 1);
    qapi_free_AltMixed(m);
    ROUNDTRIP_KEEP(AltMixed, "{\"kind\": \"one\", \"x\": 1}", &m);
    g_assert_cmpint(m->type, ==, QTYPE_QDICT);
    g_assert_cmpint(m->u.u->u.one.x, ==, 1);
    qapi_free_AltMixed(m);

    /* an integer goes to a 'number' branch as a double */
    AltNum *num = NULL;
    g_autoptr(json_t) seven = json_integer(7);
    g_assert_true(visit_AltNum_from_json(seven, NULL, &num, NULL));
    g_assert_cmpint(num->type, ==, QTYPE_QNUM);
    g_assert_cmpfloat(num->u.num, ==, 7.0);
    qapi_free_AltNum(num);
    ROUNDTRIP(AltNum, "\"seven\"");
    ROUNDTRIP(AltU64, "{}");

    /* an alternate value built in C */
    AltStrObj a = { .type = QTYPE_QSTRING, .u.s = (char *)"c" };
    g_autoptr(json_t) j = visit_AltStrObj_to_json(&a);
    g_assert_cmpstr(json_string_value(j), ==, "c");
}

/* ---- input errors ---- */

#define SCALARS_OK "\"i\": 0, \"i8\": 0, \"i16\": 0, \"i32\": 0, " \
    "\"i64\": 0, \"u8\": 0, \"u16\": 0, \"u32\": 0, \"u64\": 0, " \
    "\"sz\": 0, \"num\": 0, \"b\": true"

static void test_errors_scalars(void)
{
    CHECK_ERROR(Scalars, "{" SCALARS_OK "}", "Parameter 's' is missing");
    CHECK_ERROR(Scalars, "{" SCALARS_OK ", \"s\": 1}",
                "Invalid parameter type for 's', expected: string");
    CHECK_ERROR(Scalars, "{\"i\": \"1\"}",
                "Invalid parameter type for 'i', expected: integer");
    CHECK_ERROR(Scalars, "{\"i\": 1.0}",
                "Invalid parameter type for 'i', expected: integer");
    CHECK_ERROR(Scalars, "{\"i\": 0, \"i8\": 128}",
                "Parameter 'i8' expects int8_t");
    CHECK_ERROR(Scalars, "{\"i\": 0, \"i8\": -129}",
                "Parameter 'i8' expects int8_t");
    CHECK_ERROR(Scalars, "{\"i\": 0, \"i8\": 0, \"i16\": 32768}",
                "Parameter 'i16' expects int16_t");
    CHECK_ERROR(Scalars, "{\"i\": 0, \"i8\": 0, \"i16\": 0, "
                "\"i32\": -2147483649}", "Parameter 'i32' expects int32_t");
    CHECK_ERROR(Scalars, "{\"i\": 0, \"i8\": 0, \"i16\": 0, \"i32\": 0, "
                "\"i64\": 0, \"u8\": 256}", "Parameter 'u8' expects uint8_t");
    CHECK_ERROR(Scalars, "{\"i\": 0, \"i8\": 0, \"i16\": 0, \"i32\": 0, "
                "\"i64\": 0, \"u8\": -1}", "Parameter 'u8' expects uint8_t");
    CHECK_ERROR(Scalars, "{\"i\": 0, \"i8\": 0, \"i16\": 0, \"i32\": 0, "
                "\"i64\": 0, \"u8\": 0, \"u16\": 65536}",
                "Parameter 'u16' expects uint16_t");
    CHECK_ERROR(Scalars, "{\"i\": 0, \"i8\": 0, \"i16\": 0, \"i32\": 0, "
                "\"i64\": 0, \"u8\": 0, \"u16\": 0, \"u32\": 4294967296}",
                "Parameter 'u32' expects uint32_t");
    CHECK_ERROR(Scalars, "{\"i\": 0, \"i8\": 0, \"i16\": 0, \"i32\": 0, "
                "\"i64\": 0, \"u8\": 0, \"u16\": 0, \"u32\": 0, "
                "\"u64\": 1e20}", "Parameter 'u64' expects uint64");
    CHECK_ERROR(Scalars, "{\"i\": 0, \"i8\": 0, \"i16\": 0, \"i32\": 0, "
                "\"i64\": 0, \"u8\": 0, \"u16\": 0, \"u32\": 0, "
                "\"u64\": 0.5}",
                "Invalid parameter type for 'u64', expected: integer");
    CHECK_ERROR(Scalars, "{" SCALARS_OK ", \"s\": \"\", \"num\": \"1\"}",
                "Invalid parameter type for 'num', expected: number");
    CHECK_ERROR(Scalars, "{\"i\": 0, \"i8\": 0, \"i16\": 0, \"i32\": 0, "
                "\"i64\": 0, \"u8\": 0, \"u16\": 0, \"u32\": 0, \"u64\": 0, "
                "\"sz\": 0, \"num\": 0, \"b\": 1}",
                "Invalid parameter type for 'b', expected: boolean");
    CHECK_ERROR(Scalars, "{" SCALARS_OK ", \"s\": \"\", \"n\": 0}",
                "Invalid parameter type for 'n', expected: null");
    CHECK_ERROR(Scalars, "{" SCALARS_OK ", \"s\": \"\", \"e\": \"nope\"}",
                "Parameter 'e' does not accept value 'nope'");
    CHECK_ERROR(Scalars, "{" SCALARS_OK ", \"s\": \"\", \"e\": 1}",
                "Invalid parameter type for 'e', expected: string");
    CHECK_ERROR(Scalars, "{" SCALARS_OK ", \"s\": \"\", \"extra\": 1}",
                "Parameter 'extra' is unexpected");
    /* an optional member given as null is a type error, as in QEMU */
    CHECK_ERROR(UserDefOne, "{\"string\": \"s\", \"integer\": 1, "
                "\"default\": null}",
                "Invalid parameter type for 'default', expected: string");
    /* the top level */
    CHECK_ERROR(Scalars, "[]",
                "Invalid parameter type for '<anonymous>', expected: object");
    CHECK_ERROR(intList, "{}",
                "Invalid parameter type for '<anonymous>', expected: array");
    CHECK_ERROR(intList, "[1, \"2\"]",
                "Invalid parameter type for '[1]', expected: integer");
}

static void test_errors_nested(void)
{
    /* members before the unexpected-member check, in schema order */
    CHECK_ERROR(UserDefOne, "{\"extra\": 1}", "Parameter 'string' is missing");
    CHECK_ERROR(UserDefLists, "{\"ints\": [], \"u64s\": [], \"i8s\": [], "
                "\"strs\": [], \"enums\": [], \"objs\": [1]}",
                "Invalid parameter type for 'objs[0]', expected: object");
    CHECK_ERROR(UserDefLists, "{\"ints\": [], \"u64s\": [], \"i8s\": [], "
                "\"strs\": [], \"enums\": [], \"objs\": [{\"string\": \"s\"}]}",
                "Parameter 'objs[0].integer' is missing");
    CHECK_ERROR(UserDefLists, "{\"ints\": {}}",
                "Invalid parameter type for 'ints', expected: array");
    CHECK_ERROR(UserDefLists, "{\"ints\": [], \"u64s\": [], \"i8s\": [1, 200]}",
                "Parameter 'i8s[1]' expects int8_t");
    CHECK_ERROR(UserDefLists, "{\"ints\": [], \"u64s\": [], \"i8s\": [], "
                "\"strs\": [], \"enums\": [\"value2\", \"x\"]}",
                "Parameter 'enums[1]' does not accept value 'x'");
    CHECK_ERROR(UserDefLists, "{\"ints\": [], \"u64s\": [], \"i8s\": [], "
                "\"strs\": [], \"enums\": [], \"objs\": [], \"nested\": "
                "[{\"ints\": [], \"u64s\": [], \"i8s\": [], \"strs\": [], "
                "\"enums\": [], \"objs\": [], \"bogus\": 0}]}",
                "Parameter 'nested[0].bogus' is unexpected");
    CHECK_ERROR(WithAlternates, "{\"alt1\": \"a\", \"list\": [\"a\", "
                "{\"string\": \"b\"}]}",
                "Parameter 'list[1].integer' is missing");
}

static void test_errors_unions(void)
{
    CHECK_ERROR(FlatUnion, "{\"x\": 1}", "Parameter 'kind' is missing");
    CHECK_ERROR(FlatUnion, "{\"kind\": \"three\"}",
                "Parameter 'kind' does not accept value 'three'");
    CHECK_ERROR(FlatUnion, "{\"kind\": \"one\"}", "Parameter 'x' is missing");
    CHECK_ERROR(FlatUnion, "{\"kind\": \"one\", \"x\": 1, \"list\": []}",
                "Parameter 'list' is unexpected");
    CHECK_ERROR(FlatUnion, "{\"kind\": \"none\", \"x\": 1}",
                "Parameter 'x' is unexpected");
    CHECK_ERROR(FlatUnion, "{\"kind\": \"two\", \"list\": [\"a\"], "
                "\"nested\": {\"string\": \"s\", \"integer\": 1, "
                "\"more\": 2}}", "Parameter 'nested.more' is unexpected");
    CHECK_ERROR(FlatUnionNamedBase, "{\"enum1\": \"value2\", \"x\": 1}",
                "Parameter 'x' is unexpected");
    CHECK_ERROR(SimpleUnion, "{\"type\": \"integer\"}",
                "Parameter 'data' is missing");
    CHECK_ERROR(SimpleUnion, "{\"type\": \"integer\", \"data\": \"1\"}",
                "Invalid parameter type for 'data', expected: integer");
    CHECK_ERROR(SimpleUnion, "{\"type\": \"obj\", \"data\": {\"string\": "
                "\"s\"}}", "Parameter 'data.integer' is missing");
    CHECK_ERROR(SimpleUnion, "{\"type\": \"zzz\", \"data\": 1}",
                "Parameter 'type' does not accept value 'zzz'");
}

static void test_errors_alternates(void)
{
    CHECK_ERROR(WithAlternates, "{\"alt1\": 1}",
                "Invalid parameter type for 'alt1', expected: AltStrObj");
    CHECK_ERROR(WithAlternates, "{\"alt1\": \"\", \"alt2\": 1.5}",
                "Invalid parameter type for 'alt2', expected: AltMixed");
    CHECK_ERROR(WithAlternates, "{\"alt1\": \"\", \"alt2\": 300}",
                "Parameter 'alt2' expects int8_t");
    CHECK_ERROR(WithAlternates, "{\"alt1\": \"\", \"alt2\": \"nope\"}",
                "Parameter 'alt2' does not accept value 'nope'");
    CHECK_ERROR(WithAlternates, "{\"alt1\": \"\", \"alt2\": {\"kind\": "
                "\"one\"}}", "Parameter 'alt2.x' is missing");
    CHECK_ERROR(WithAlternates, "{\"alt1\": \"\", \"alt3\": true}",
                "Invalid parameter type for 'alt3', expected: AltNum");
    CHECK_ERROR(WithAlternates, "{\"alt1\": \"\", \"list\": [null]}",
                "Invalid parameter type for 'list[0]', expected: AltStrObj");
    CHECK_ERROR(AltU64, "{\"a\": 1}", "Parameter 'a' is unexpected");
}

/* The real schema (libqapi.a): errors QEMU 7.2 gives word for word. */
static void test_errors_real_schema(void)
{
    CHECK_ERROR(q_obj_transaction_arg,
                "{\"actions\": [{\"type\": \"blockdev-snapshot-sync\", "
                "\"data\": {}}]}",
                "Parameter 'actions[0].data.snapshot-file' is missing");
    CHECK_ERROR(q_obj_transaction_arg,
                "{\"actions\": [{\"type\": \"abort\", \"data\": {}, "
                "\"x\": 1}]}", "Parameter 'actions[0].x' is unexpected");
    CHECK_ERROR(q_obj_transaction_arg,
                "{\"actions\": [{\"type\": \"abort\"}]}",
                "Parameter 'actions[0].data' is missing");
    CHECK_ERROR(q_obj_transaction_arg, "{\"actions\": {}}",
                "Invalid parameter type for 'actions', expected: array");
    CHECK_ERROR(BlockdevOptions,
                "{\"driver\": \"raw\", \"file\": {\"driver\": \"file\"}}",
                "Parameter 'file.filename' is missing");
    CHECK_ERROR(BlockdevOptions, "{\"driver\": \"raw\", \"file\": 1}",
                "Invalid parameter type for 'file', expected: BlockdevRef");
    CHECK_ERROR(BlockdevOptions, "{\"driver\": \"qcow2\", \"file\": \"x\", "
                "\"backing\": null, \"overlap-check\": 5}",
                "Invalid parameter type for 'overlap-check', expected: "
                "Qcow2OverlapChecks");
    CHECK_ERROR(BlockdevOptions, "{\"driver\": \"raw\", \"file\": \"x\", "
                "\"cache\": {\"direct\": \"yes\"}}",
                "Invalid parameter type for 'cache.direct', expected: "
                "boolean");
    CHECK_ERROR(BlockdevOptions, "{\"driver\": \"nbd\"}",
                "Parameter 'driver' does not accept value 'nbd'");
    CHECK_ERROR(q_obj_block_resize_arg, "{\"device\": \"x\"}",
                "Parameter 'size' is missing");
    CHECK_ERROR(q_obj_block_resize_arg, "{\"device\": 1, \"size\": 1}",
                "Invalid parameter type for 'device', expected: string");
    CHECK_ERROR(q_obj_block_resize_arg,
                "{\"device\": \"x\", \"size\": 1, \"foo\": 1}",
                "Parameter 'foo' is unexpected");

    /* a full blockdev-add tree round-trips */
    BlockdevOptions *o = NULL;
    ROUNDTRIP_KEEP(BlockdevOptions,
                   "{\"driver\": \"qcow2\", \"node-name\": \"disk0\", "
                   "\"cache\": {\"direct\": true}, \"backing\": null, "
                   "\"overlap-check\": {\"template\": \"all\"}, "
                   "\"file\": {\"driver\": \"blkdebug\", "
                   "\"image\": {\"driver\": \"file\", \"filename\": \"f\"}, "
                   "\"inject\": [{\"op\": \"write\", \"nth\": 3, "
                   "\"errno\": 28}]}}", &o);
    g_assert_cmpint(o->driver, ==, BLOCKDEV_DRIVER_QCOW2);
    g_assert_cmpint(o->u.qcow2.backing->type, ==, QTYPE_QNULL);
    g_assert_cmpint(o->u.qcow2.file->type, ==, QTYPE_QDICT);
    BlockdevOptions *f = o->u.qcow2.file->u.definition;
    g_assert_cmpint(f->driver, ==, BLOCKDEV_DRIVER_BLKDEBUG);
    g_assert_cmpint(f->u.blkdebug.inject->value->op, ==,
                    BLKDEBUG_INJECT_OP_WRITE);
    g_assert_cmpint(f->u.blkdebug.inject->value->q_errno, ==, 28);
    g_assert_cmpstr(f->u.blkdebug.image->u.definition->u.file.filename, ==,
                    "f");
    qapi_free_BlockdevOptions(o);
}

/* ---- commands ---- */

static QmpCommandList *new_cmds(void)
{
    QmpCommandList *c = g_new0(QmpCommandList, 1);

    c->fns = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    c->opts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    test_qmp_init_marshal(c);
    return c;
}

static void free_cmds(QmpCommandList *c)
{
    g_hash_table_destroy(c->fns);
    g_hash_table_destroy(c->opts);
    g_free(c);
}

/* Runs command name with JSON args (NULL: none); returns the reply or NULL
 * with *errp set. */
static json_t *run(QmpCommandList *c, const char *name, const char *args,
                   GError **errp)
{
    QmpCommandFunc *fn = g_hash_table_lookup(c->fns, name);
    g_autoptr(json_t) a = args ? parse(args) : NULL;
    json_t *ret = NULL;

    g_assert_nonnull(fn);
    fn(a, &ret, errp);
    g_assert_true((ret == NULL) == (errp && *errp != NULL));
    return ret;
}

static void check_reply(QmpCommandList *c, const char *name,
                        const char *args, const char *want)
{
    GError *err = NULL;
    g_autoptr(json_t) ret = run(c, name, args, &err);
    g_autoptr(json_t) w = parse(want);

    g_assert_no_error(err);
    assert_json_equal(ret, w);
}

static void check_fails(QmpCommandList *c, const char *name,
                        const char *args, int code, const char *msg)
{
    GError *err = NULL;
    g_autoptr(json_t) ret = run(c, name, args, &err);

    g_assert_null(ret);
    g_assert_error(err, XBLK_ERROR, code);
    g_assert_cmpstr(err->message, ==, msg);
    g_error_free(err);
}

static void test_commands(void)
{
    QmpCommandList *c = new_cmds();

    /* registration: every generated command, with its flags */
    g_assert_cmpuint(g_hash_table_size(c->fns), ==, 15);
    g_assert_false(g_hash_table_contains(c->fns, "cmd-no-gen"));
    g_assert_cmpint(GPOINTER_TO_INT(g_hash_table_lookup(c->opts,
                                                        "cmd-flags")), ==,
                    QCO_NO_SUCCESS_RESP | QCO_ALLOW_OOB |
                    QCO_ALLOW_PRECONFIG | QCO_COROUTINE);
    g_assert_cmpint(GPOINTER_TO_INT(g_hash_table_lookup(c->opts,
                                                        "user-def-cmd2")), ==,
                    QCO_NO_OPTIONS);

    /* no arguments: NULL or {} */
    cmd0_calls = 0;
    check_reply(c, "user_def_cmd0", NULL, "{}");
    check_reply(c, "user_def_cmd0", "{}", "{}");
    g_assert_cmpint(cmd0_calls, ==, 2);
    check_fails(c, "user_def_cmd0", "{\"x\": 1}", ERROR_CLASS_GENERIC_ERROR,
                "Parameter 'x' is unexpected");
    check_fails(c, "user_def_cmd0", "[]", ERROR_CLASS_GENERIC_ERROR,
                "Invalid parameter type for '<anonymous>', expected: object");
    g_assert_cmpint(cmd0_calls, ==, 2);

    check_reply(c, "sub-cmd", "{\"s\": {\"x\": 77}}", "{}");
    g_assert_cmpint(last_integer, ==, 77);
    check_reply(c, "user-def-cmd1",
                "{\"ud1a\": {\"string\": \"one\", \"integer\": 8}}", "{}");
    g_assert_cmpint(last_integer, ==, 8);
    g_assert_cmpstr(last_string, ==, "one");

    /* optional arguments, return value, errors from the command */
    check_reply(c, "user-def-cmd2",
                "{\"ud1a\": {\"string\": \"a\", \"integer\": 1}}",
                "{\"string\": \"none\", \"integer\": 1}");
    check_reply(c, "user-def-cmd2",
                "{\"ud1a\": {\"string\": \"a\", \"integer\": 1}, "
                "\"ud1b\": {\"string\": \"b\", \"integer\": 10}, "
                "\"s\": \"S\", \"i\": 100, \"e\": \"value2\", "
                "\"l\": [1000, 10000], \"default\": true}",
                "{\"string\": \"S\", \"integer\": 11111, "
                "\"enum1\": \"value2\", \"default\": \"yes\"}");
    check_fails(c, "user-def-cmd2",
                "{\"ud1a\": {\"string\": \"a\", \"integer\": 1}, "
                "\"s\": \"fail\"}", ERROR_CLASS_DEVICE_NOT_FOUND,
                "failed as asked");
    check_fails(c, "user-def-cmd2", NULL, ERROR_CLASS_GENERIC_ERROR,
                "Parameter 'ud1a' is missing");
    check_fails(c, "user-def-cmd2",
                "{\"ud1a\": {\"string\": \"a\", \"integer\": 1}, "
                "\"i\": 128}", ERROR_CLASS_GENERIC_ERROR,
                "Parameter 'i' expects int8_t");
    check_fails(c, "user-def-cmd2",
                "{\"ud1a\": {\"string\": \"a\", \"integer\": \"1\"}}",
                ERROR_CLASS_GENERIC_ERROR,
                "Invalid parameter type for 'ud1a.integer', expected: "
                "integer");

    /* arguments from a named struct with a base; list return */
    check_reply(c, "cmd-named-args",
                "{\"string\": \"n\", \"integer\": 5, \"case\": 2}",
                "[{\"string\": \"n\", \"integer\": 6, \"case\": 2}, "
                "{\"string\": \"n\", \"integer\": 5, \"case\": 2}]");

    /* boxed */
    check_reply(c, "cmd-boxed-struct",
                "{\"string\": \"n\", \"integer\": 12}", "{}");
    g_assert_cmpint(last_integer, ==, 12);
    check_reply(c, "cmd-boxed-union", "{\"kind\": \"one\", \"x\": 3}",
                "{\"kind\": \"one\", \"x\": 3}");
    check_fails(c, "cmd-boxed-union", "{\"kind\": \"one\"}",
                ERROR_CLASS_GENERIC_ERROR, "Parameter 'x' is missing");

    /* scalar, string, any and list returns */
    check_reply(c, "test-int-ret", NULL, "-9223372036854775808");
    check_reply(c, "test-str-ret", "{\"s\": \"x\"}", "\"<x>\"");
    check_reply(c, "test-any-ret", "{\"a\": [1, {\"b\": null}]}",
                "[1, {\"b\": null}]");
    check_reply(c, "test-any-ret", NULL, "\"no a\"");
    check_reply(c, "test-list-ret", "{\"n\": 3}", "[0, 1, 2]");
    check_reply(c, "test-list-ret", "{\"n\": 0}", "[]");
    check_fails(c, "test-list-ret", "{\"n\": 256}", ERROR_CLASS_GENERIC_ERROR,
                "Parameter 'n' expects uint8_t");

    /* nested unions and alternates through a command */
    check_reply(c, "cmd-unions", "{\"f\": {\"kind\": \"one\", \"x\": 9}, "
                "\"s\": {\"type\": \"string\", \"data\": \"d\"}, "
                "\"n\": {\"enum1\": \"value2\"}}", "{}");
    g_assert_cmpint(last_integer, ==, 9);
    check_fails(c, "cmd-unions", "{\"f\": {\"kind\": \"two\", "
                "\"list\": [1]}}", ERROR_CLASS_GENERIC_ERROR,
                "Invalid parameter type for 'f.list[0]', expected: string");
    check_reply(c, "cmd-alternates", "{\"w\": {\"alt1\": {\"string\": \"s\", "
                "\"integer\": 1}, \"alt2\": null}}",
                "{\"alt1\": {\"string\": \"s\", \"integer\": 1}, "
                "\"alt2\": null}");
    check_reply(c, "cmd-scalars",
                "{\"sc\": {\"i\": 1, \"i8\": 2, \"i16\": 3, \"i32\": 4, "
                "\"i64\": 5, \"u8\": 6, \"u16\": 7, \"u32\": 8, "
                "\"u64\": -1, \"sz\": 9, \"num\": 10, \"b\": true, "
                "\"s\": \"s\"}, \"odd\": \"default\", \"pfx\": \"c.d\", "
                "\"us\": {\"under_score\": 1}}",
                "{\"i\": 1, \"i8\": 2, \"i16\": 3, \"i32\": 4, "
                "\"i64\": 5, \"u8\": 6, \"u16\": 7, \"u32\": 8, "
                "\"u64\": -1, \"sz\": 9, \"num\": 10.0, \"b\": true, "
                "\"s\": \"s\"}");

    /* the caller may pass ret == NULL */
    QmpCommandFunc *fn = g_hash_table_lookup(c->fns, "test-int-ret");
    fn(NULL, NULL, NULL);

    free_cmds(c);
}

/* ---- events ---- */

static void check_event(const char *name, const char *data)
{
    g_assert_cmpstr(last_event, ==, name);
    if (!data) {
        g_assert_null(last_event_data);
    } else {
        g_autoptr(json_t) w = parse(data);
        assert_json_equal(last_event_data, w);
    }
}

static void test_events(void)
{
    int before = events_emitted;

    qapi_event_send_event_a();
    check_event("EVENT_A", NULL);

    qapi_event_send_event_b("a", false, 0, ENUM_ONE_VALUE_ONE, false, NULL);
    check_event("EVENT_B", "{\"a\": \"a\", \"e\": \"value-one\"}");

    UserDefOne o = { .string = (char *)"o", .integer = -1 };
    qapi_event_send_event_b("a", true, INT64_MAX, ENUM_ONE_VALUE2, true, &o);
    check_event("EVENT_B", "{\"a\": \"a\", \"b\": 9223372036854775807, "
                "\"e\": \"value2\", \"o\": {\"string\": \"o\", "
                "\"integer\": -1}}");

    qapi_event_send_event_c("s", true, ENUM_ONE_VALUE_THREE, 4, true, "d",
                            false, 0, false, NULL);
    check_event("EVENT_C", "{\"string\": \"s\", \"enum1\": \"value-three\", "
                "\"integer\": 4, \"default\": \"d\"}");

    FlatUnion u = { .kind = UNION_KIND_ONE, .u.one.x = 2 };
    qapi_event_send_event_d(&u);
    check_event("EVENT_D", "{\"kind\": \"one\", \"x\": 2}");

    g_assert_cmpint(events_emitted - before, ==, 5);
}

/* ---- introspection ---- */

static json_t *find_entity(json_t *info, const char *name)
{
    size_t i;
    json_t *e;

    json_array_foreach(info, i, e) {
        if (!strcmp(json_string_value(json_object_get(e, "name")), name)) {
            return e;
        }
    }
    return NULL;
}

static void check_type_ref(json_t *info, const char *ref)
{
    if (!find_entity(info, ref)) {
        g_error("introspection: type '%s' is referenced but not listed", ref);
    }
}

static void check_introspection(const char *text, bool test_schema)
{
    json_error_t jerr;
    g_autoptr(json_t) info = json_loads(text, 0, &jerr);
    size_t i;
    json_t *e;
    GHashTable *names = g_hash_table_new(g_str_hash, g_str_equal);

    g_assert_nonnull(info);
    g_assert_true(json_is_array(info));
    json_array_foreach(info, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *meta = json_string_value(json_object_get(e, "meta-type"));

        g_assert_nonnull(name);
        g_assert_nonnull(meta);
        g_assert_false(g_hash_table_contains(names, name));
        g_hash_table_add(names, (gpointer)name);
        if (!strcmp(meta, "command")) {
            check_type_ref(info, json_string_value(
                               json_object_get(e, "arg-type")));
            check_type_ref(info, json_string_value(
                               json_object_get(e, "ret-type")));
        } else if (!strcmp(meta, "event")) {
            check_type_ref(info, json_string_value(
                               json_object_get(e, "arg-type")));
        } else if (!strcmp(meta, "builtin")) {
            /* all integer types are shown as 'int' */
            g_assert_true(!strcmp(name, "int") || !strcmp(name, "str") ||
                          !strcmp(name, "number") || !strcmp(name, "bool") ||
                          !strcmp(name, "null") || !strcmp(name, "any"));
        } else if (!strcmp(meta, "array")) {
            check_type_ref(info, json_string_value(
                               json_object_get(e, "element-type")));
        } else {
            /* masked names */
            g_assert_true(g_ascii_isdigit(name[0]));
            if (!strcmp(meta, "object")) {
                size_t k;
                json_t *m;
                json_t *v = json_object_get(e, "variants");

                json_array_foreach(json_object_get(e, "members"), k, m) {
                    check_type_ref(info, json_string_value(
                                       json_object_get(m, "type")));
                }
                json_array_foreach(v, k, m) {
                    check_type_ref(info, json_string_value(
                                       json_object_get(m, "type")));
                }
            }
        }
    }
    g_hash_table_destroy(names);

    if (test_schema) {
        json_t *c = find_entity(info, "cmd-flags");

        g_assert_true(json_is_true(json_object_get(c, "allow-oob")));
        g_assert_cmpstr(json_string_value(json_array_get(
            json_object_get(c, "features"), 0)), ==, "deprecated");
        g_assert_nonnull(find_entity(info, "cmd-no-gen"));
        g_assert_null(json_object_get(find_entity(info, "user-def-cmd2"),
                                      "allow-oob"));
        /* no-arg commands and events share the empty object type */
        json_t *empty = find_entity(info, json_string_value(
            json_object_get(find_entity(info, "user_def_cmd0"), "arg-type")));
        g_assert_cmpuint(json_array_size(json_object_get(empty, "members")),
                         ==, 0);
        g_assert_cmpstr(json_string_value(json_object_get(
            find_entity(info, "EVENT_A"), "arg-type")), ==,
            json_string_value(json_object_get(empty, "name")));
    } else {
        g_assert_nonnull(find_entity(info, "query-qmp-schema"));
        g_assert_nonnull(find_entity(info, "transaction"));
        g_assert_nonnull(find_entity(info, "SHUTDOWN"));
    }
}

static void test_introspection(void)
{
    check_introspection(test_qapi_introspect_json(), true);
    check_introspection(qapi_introspect_json(), false);
}

/* ---- free functions ---- */

static void test_free(void)
{
    qapi_free_UserDefOne(NULL);
    qapi_free_FlatUnion(NULL);
    qapi_free_SimpleUnion(NULL);
    qapi_free_AltMixed(NULL);
    qapi_free_UserDefOneList(NULL);
    qapi_free_strList(NULL);
    qapi_free_anyList(NULL);

    g_autoptr(UserDefLists) l = NULL;
    g_autoptr(json_t) j = parse("{\"ints\": [1], \"u64s\": [], \"i8s\": [], "
                                "\"strs\": [\"x\"], \"enums\": [], "
                                "\"objs\": [{\"string\": \"s\", "
                                "\"integer\": 1}], \"anys\": [{}]}");
    g_assert_true(visit_UserDefLists_from_json(j, NULL, &l, NULL));
    g_autoptr(AltMixed) m = NULL;
    g_autoptr(json_t) mj = parse("{\"kind\": \"two\", \"list\": [\"a\"], "
                                 "\"nested\": {\"string\": \"n\", "
                                 "\"integer\": 2}}");
    g_assert_true(visit_AltMixed_from_json(mj, NULL, &m, NULL));
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qapi/enums", test_enums);
    g_test_add_func("/qapi/struct/roundtrip", test_struct_roundtrip);
    g_test_add_func("/qapi/struct/scalar-limits", test_scalars_limits);
    g_test_add_func("/qapi/lists", test_lists);
    g_test_add_func("/qapi/union/flat", test_flat_union);
    g_test_add_func("/qapi/union/simple", test_simple_union);
    g_test_add_func("/qapi/alternates", test_alternates);
    g_test_add_func("/qapi/errors/scalars", test_errors_scalars);
    g_test_add_func("/qapi/errors/nested", test_errors_nested);
    g_test_add_func("/qapi/errors/unions", test_errors_unions);
    g_test_add_func("/qapi/errors/alternates", test_errors_alternates);
    g_test_add_func("/qapi/errors/real-schema", test_errors_real_schema);
    g_test_add_func("/qapi/commands", test_commands);
    g_test_add_func("/qapi/events", test_events);
    g_test_add_func("/qapi/introspection", test_introspection);
    g_test_add_func("/qapi/free", test_free);
    ret = g_test_run();
    g_free(last_event);
    json_decref(last_event_data);
    g_free(last_string);
    return ret;
}
