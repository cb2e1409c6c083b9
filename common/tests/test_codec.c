#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/codec.h"
#include "cascade/names.h"
#include "cx_testenv.h"

#define UID "0123456789abcdef0123456789abcdef"
#define SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static int known(void *ctx, const char *ckpt, const char *cls) {
    (void)ctx;
    static const char *names[] = {"normal", "effusion", "nodule", "cardiomegaly"};
    if (strcmp(ckpt, "ref-cxr-v0") != 0) return 0;
    for (size_t i = 0; i < 4; i++)
        if (strcmp(cls, names[i]) == 0) return 1;
    return 0;
}

static Cascade__V1__GenerationParams params;
static cx_unit_t unit;

static void init_unit(void) {
    cascade__v1__generation_params__init(&params);
    params.checkpoint = "ref-cxr-v0";
    params.sampler = CASCADE__V1__SAMPLER__SAMPLER_DDIM;
    params.steps = 50;
    params.guidance_scale = 1.0;
    params.width = params.height = 512;
    params.bit_depth = 16;
    cascade__v1__work_unit__init(&unit);
    unit.job_id = "cxr-demo";
    unit.unit_id = UID;
    unit.class_name = "normal";
    unit.sample_count = 32;
    unit.params = &params;
}

typedef struct {
    uint8_t *buf;
    size_t len;
} packed_t;

static packed_t pack(const void *msg) {
    packed_t p;
    cx_err_t err = {0};
    p.buf = cx_pack(msg, &p.len, &err);
    ck_assert_ptr_nonnull(p.buf);
    return p;
}

/* ---- one valid message of every type ---- */

enum { T_JOB, T_UNIT, T_ASSIGN, T_STAGED, T_VERDICT, T_COMMIT, T_PROGRESS, T_EVENT, T_DEAD, NT };
static const char *tnames[NT] = {"JobSpec", "WorkUnit", "Assignment", "StagedBatch", "Verdict",
                                 "CommitRecord", "Progress", "JobEvent", "DeadLetter"};

static packed_t pack_valid(int t) {
    init_unit();
    switch (t) {
    case T_JOB: {
        cx_jobspec_t s;
        cascade__v1__job_spec__init(&s);
        Cascade__V1__ClassTarget c;
        cascade__v1__class_target__init(&c);
        c.name = "normal";
        c.proportion = 1.0;
        Cascade__V1__ClassTarget *cs[] = {&c};
        s.job_id = "cxr-demo";
        s.total_count = 10;
        s.n_classes = 1;
        s.classes = cs;
        return pack(&s);
    }
    case T_UNIT: return pack(&unit);
    case T_ASSIGN: {
        cx_assignment_t a;
        cascade__v1__assignment__init(&a);
        a.unit = &unit;
        a.worker_id = "gpu-0";
        a.attempt = 1;
        a.epoch = 7;
        return pack(&a);
    }
    case T_STAGED: {
        cx_staged_t b;
        cascade__v1__staged_batch__init(&b);
        Cascade__V1__StagedSample s;
        cascade__v1__staged_sample__init(&s);
        s.index = 3;
        s.key = "cxr-demo/staging/" UID "/1/3.png";
        Cascade__V1__StagedSample *ss[] = {&s};
        b.unit = &unit;
        b.worker_id = "gpu-0";
        b.n_samples = 1;
        b.samples = ss;
        return pack(&b);
    }
    case T_VERDICT: {
        cx_verdict_t v;
        cascade__v1__verdict__init(&v);
        Cascade__V1__SampleVerdict s;
        cascade__v1__sample_verdict__init(&s);
        s.key = "k";
        s.pass = 1;
        s.sha256 = SHA;
        Cascade__V1__SampleVerdict *ss[] = {&s};
        v.unit = &unit;
        v.worker_id = "gpu-0";
        v.n_samples = 1;
        v.samples = ss;
        v.passed = 1;
        return pack(&v);
    }
    case T_COMMIT: {
        cx_commit_t c;
        cascade__v1__commit_record__init(&c);
        c.job_id = "cxr-demo";
        c.unit_id = UID;
        c.class_name = "normal";
        c.manifest_key = "cxr-demo/manifests/" UID ".json";
        c.planned = c.generated = 32;
        c.passed = 31;
        c.committed = 30;
        return pack(&c);
    }
    case T_PROGRESS: {
        cx_progress_t p;
        cascade__v1__progress__init(&p);
        Cascade__V1__ClassProgress cp;
        cascade__v1__class_progress__init(&cp);
        cp.name = "normal";
        cp.quota = 10;
        Cascade__V1__ClassProgress *cps[] = {&cp};
        p.job_id = "cxr-demo";
        p.n_classes = 1;
        p.classes = cps;
        return pack(&p);
    }
    case T_EVENT: {
        cx_jobevent_t e;
        cascade__v1__job_event__init(&e);
        e.job_id = "cxr-demo";
        e.type = CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_ACCEPTED;
        return pack(&e);
    }
    default: {
        cx_deadletter_t d;
        cascade__v1__dead_letter__init(&d);
        d.source_topic = "cascade.units";
        d.reason = "bad";
        d.payload.data = (uint8_t *)"\x01\x02";
        d.payload.len = 2;
        return pack(&d);
    }
    }
}

static void *decode_as(int t, const void *d, size_t n, cx_err_t *err) {
    switch (t) {
    case T_JOB: return cx_decode_jobspec(d, n, err);
    case T_UNIT: return cx_decode_unit(d, n, err);
    case T_ASSIGN: return cx_decode_assignment(d, n, err);
    case T_STAGED: return cx_decode_staged(d, n, err);
    case T_VERDICT: return cx_decode_verdict(d, n, err);
    case T_COMMIT: return cx_decode_commit(d, n, err);
    case T_PROGRESS: return cx_decode_progress(d, n, err);
    case T_EVENT: return cx_decode_jobevent(d, n, err);
    default: return cx_decode_deadletter(d, n, err);
    }
}

START_TEST(test_decode_roundtrip_and_wrong_type) {
    for (int t = 0; t < NT; t++) {
        packed_t p = pack_valid(t);
        for (int as = 0; as < NT; as++) {
            cx_err_t err = {0};
            ProtobufCMessage *m = decode_as(as, p.buf, p.len, &err);
            if (as == t) {
                ck_assert_msg(m != NULL, "%s: %s", tnames[t], err.msg);
                /* Packing the decoded value gives the same bytes back. */
                packed_t q = pack(m);
                ck_assert_uint_eq(q.len, p.len);
                ck_assert_int_eq(memcmp(q.buf, p.buf, p.len), 0);
                free(q.buf);
                protobuf_c_message_free_unpacked(m, NULL);
            } else {
                ck_assert_msg(m == NULL, "%s decoded as %s", tnames[t], tnames[as]);
                ck_assert_int_eq(err.code, CX_EDECODE);
                ck_assert_msg(strstr(err.msg, tnames[as]), "%s", err.msg);
            }
        }
        free(p.buf);
    }
    /* The cases named in the issue, with their messages. */
    packed_t p = pack_valid(T_COMMIT);
    cx_err_t err = {0};
    ck_assert_ptr_null(cx_decode_jobspec(p.buf, p.len, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "missing classes"));
    ck_assert_ptr_null(cx_decode_unit(p.buf, p.len, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "missing job_id"));
    free(p.buf);
}
END_TEST

START_TEST(test_decode_malformed) {
    cx_err_t err = {0};
    for (int t = 0; t < NT; t++) {
        ck_assert_ptr_null(decode_as(t, "", 0, &err));
        ck_assert_int_eq(err.code, CX_EDECODE);
        ck_assert_ptr_nonnull(strstr(err.msg, "empty message"));
        ck_assert_ptr_null(decode_as(t, NULL, 0, &err));
        ck_assert_ptr_null(decode_as(t, "\xff\xff\xff\xff", 4, &err));
        ck_assert_ptr_nonnull(strstr(err.msg, "not a valid cascade.v1."));
        ck_assert_ptr_nonnull(strstr(err.msg, tnames[t]));
        /* A valid message cut short. */
        packed_t p = pack_valid(t);
        ck_assert_ptr_null(decode_as(t, p.buf, p.len - 1, &err));
        ck_assert_int_eq(err.code, CX_EDECODE);
        free(p.buf);
    }
    /* Random bytes never crash a decoder. */
    uint8_t junk[256];
    uint32_t x = 12345;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)((x = x * 1103515245 + 12345) >> 16);
        for (int t = 0; t < NT; t++) {
            ProtobufCMessage *m = decode_as(t, junk, 1 + round % sizeof junk, &err);
            if (m) protobuf_c_message_free_unpacked(m, NULL);
        }
    }
}
END_TEST

static void unit_fails(const char *expect) {
    packed_t p = pack(&unit);
    cx_err_t err = {0};
    cx_unit_t *u = cx_decode_unit(p.buf, p.len, &err);
    free(p.buf);
    if (u) cascade__v1__work_unit__free_unpacked(u, NULL);
    ck_assert_msg(u == NULL, "accepted; wanted '%s'", expect);
    ck_assert_msg(strstr(err.msg, expect), "'%s' lacks '%s'", err.msg, expect);
}

START_TEST(test_decode_unit_fields) {
    init_unit();
    unit.unit_id = "0123456789ABCDEF0123456789ABCDEF";
    unit_fails("unit_id '0123456789ABCDEF0123456789ABCDEF' is not 32 lowercase hex");
    init_unit();
    unit.unit_id = "0123456789abcdef";
    unit_fails("is not 32 lowercase hex");
    init_unit();
    unit.unit_id = "";
    unit_fails("missing unit_id");
    init_unit();
    unit.sample_count = 0;
    unit_fails("sample_count 0 is outside [1, 1024]");
    init_unit();
    unit.sample_count = 1025;
    unit_fails("sample_count 1025 is outside");
    init_unit();
    unit.job_id = "../x";
    unit_fails("job_id '../x' contains '/'");
    init_unit();
    unit.class_name = "a/b";
    unit_fails("class_name 'a/b' contains '/'");
    init_unit();
    unit.condition = "..";
    unit_fails("condition '..' is '..'");
    init_unit();
    unit.params = NULL;
    unit_fails("missing params");
    init_unit();
    params.width = 4;
    unit_fails("params.width 4 is outside [8, 4096]");
    init_unit();
    params.sampler = 9;
    unit_fails("params.sampler 9");
}
END_TEST

START_TEST(test_decode_nested_checks) {
    cx_err_t err = {0};
    init_unit();
    /* Assignment without its unit, and with a bad nested unit. */
    cx_assignment_t a;
    cascade__v1__assignment__init(&a);
    a.worker_id = "gpu-0";
    packed_t p = pack(&a);
    ck_assert_ptr_null(cx_decode_assignment(p.buf, p.len, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "missing unit"));
    free(p.buf);
    unit.unit_id = "xyz";
    a.unit = &unit;
    p = pack(&a);
    ck_assert_ptr_null(cx_decode_assignment(p.buf, p.len, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "unit.unit_id"));
    free(p.buf);
    init_unit();
    a.unit = &unit;
    a.worker_id = "";
    p = pack(&a);
    ck_assert_ptr_null(cx_decode_assignment(p.buf, p.len, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "missing worker_id"));
    free(p.buf);

    /* StagedBatch: index beyond the unit; no samples and no failure. */
    cx_staged_t b;
    cascade__v1__staged_batch__init(&b);
    Cascade__V1__StagedSample s;
    cascade__v1__staged_sample__init(&s);
    s.index = 32;
    s.key = "k";
    Cascade__V1__StagedSample *ss[] = {&s};
    b.unit = &unit;
    b.worker_id = "gpu-0";
    b.n_samples = 1;
    b.samples = ss;
    p = pack(&b);
    ck_assert_ptr_null(cx_decode_staged(p.buf, p.len, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "samples[0].index 32 is outside [0, 32)"));
    free(p.buf);
    b.n_samples = 0;
    p = pack(&b);
    ck_assert_ptr_null(cx_decode_staged(p.buf, p.len, &err));
    free(p.buf);
    b.failure = "CUDA out of memory";
    p = pack(&b);
    cx_staged_t *ok = cx_decode_staged(p.buf, p.len, &err);
    ck_assert_msg(ok != NULL, "%s", err.msg);
    ck_assert_str_eq(ok->failure, "CUDA out of memory");
    cascade__v1__staged_batch__free_unpacked(ok, NULL);
    free(p.buf);

    /* Verdict: a passing sample needs its content hash. */
    cx_verdict_t v;
    cascade__v1__verdict__init(&v);
    Cascade__V1__SampleVerdict sv;
    cascade__v1__sample_verdict__init(&sv);
    sv.key = "k";
    sv.pass = 1;
    sv.sha256 = "abc";
    Cascade__V1__SampleVerdict *svs[] = {&sv};
    v.unit = &unit;
    v.worker_id = "gpu-0";
    v.n_samples = 1;
    v.samples = svs;
    v.passed = 1;
    p = pack(&v);
    ck_assert_ptr_null(cx_decode_verdict(p.buf, p.len, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "samples[0].sha256"));
    free(p.buf);
    sv.sha256 = SHA;
    v.passed = 2;
    p = pack(&v);
    ck_assert_ptr_null(cx_decode_verdict(p.buf, p.len, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "passed 2 exceeds 1"));
    free(p.buf);

    /* CommitRecord counts; JobEvent type; DeadLetter reason. */
    cx_commit_t c;
    cascade__v1__commit_record__init(&c);
    c.job_id = "j";
    c.unit_id = UID;
    c.class_name = "normal";
    c.manifest_key = "m";
    c.generated = 5;
    c.passed = 6;
    p = pack(&c);
    ck_assert_ptr_null(cx_decode_commit(p.buf, p.len, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "counts out of order"));
    free(p.buf);
    cx_jobevent_t e;
    cascade__v1__job_event__init(&e);
    e.job_id = "j";
    p = pack(&e);
    ck_assert_ptr_null(cx_decode_jobevent(p.buf, p.len, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "type 0"));
    free(p.buf);
    cx_deadletter_t d;
    cascade__v1__dead_letter__init(&d);
    d.source_topic = "cascade.units";
    p = pack(&d);
    ck_assert_ptr_null(cx_decode_deadletter(p.buf, p.len, &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "missing reason"));
    free(p.buf);
}
END_TEST

/* ---- JobSpec validation ---- */

static Cascade__V1__ClassTarget cls[6];
static Cascade__V1__ClassTarget *clsp[6];
static Cascade__V1__GenerationParams gen;
static Cascade__V1__ValidationCriteria val;
static cx_jobspec_t spec;

/* normal 0.4, effusion 0.35, nodule count 750 of 3000, all defaults set. */
static void init_spec(void) {
    cascade__v1__job_spec__init(&spec);
    static const char *names[] = {"normal", "effusion", "nodule", "cardiomegaly", "e", "f"};
    for (int i = 0; i < 6; i++) {
        cascade__v1__class_target__init(&cls[i]);
        cls[i].name = (char *)names[i];
        clsp[i] = &cls[i];
    }
    cls[0].proportion = 0.4;
    cls[1].proportion = 0.35;
    cls[2].count = 750;
    spec.job_id = "cxr-demo";
    spec.tenant = "acme";
    spec.total_count = 3000;
    spec.n_classes = 3;
    spec.classes = clsp;
    cascade__v1__generation_params__init(&gen);
    gen.checkpoint = "ref-cxr-v0";
    gen.sampler = CASCADE__V1__SAMPLER__SAMPLER_DDIM;
    gen.steps = 50;
    gen.guidance_scale = 1;
    gen.width = gen.height = 512;
    gen.bit_depth = 16;
    spec.generation = &gen;
    cascade__v1__validation_criteria__init(&val);
    val.gate_profile = "default";
    spec.validation = &val;
    spec.unit_size = 32;
}

static void invalid(const char *expect) {
    cx_err_t err = {0};
    ck_assert_msg(cx_jobspec_validate(&spec, known, NULL, &err) == -1,
                  "accepted; wanted '%s'", expect);
    ck_assert_int_eq(err.code, CX_EINVAL);
    ck_assert_msg(strstr(err.msg, expect), "'%s' lacks '%s'", err.msg, expect);
}

START_TEST(test_validate_good) {
    cx_err_t err = {0};
    init_spec();
    ck_assert_msg(cx_jobspec_validate(&spec, known, NULL, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(cx_jobspec_validate(&spec, NULL, NULL, &err), 0);
    /* counts only */
    cls[0].proportion = 0, cls[0].count = 1000;
    cls[1].proportion = 0, cls[1].count = 1250;
    ck_assert_msg(cx_jobspec_validate(&spec, known, NULL, &err) == 0, "%s", err.msg);
    /* proportions only, summing to 1 within rounding */
    init_spec();
    cls[0].proportion = 0.1, cls[1].proportion = 0.2, cls[2].count = 0, cls[2].proportion = 0.7;
    ck_assert_msg(cx_jobspec_validate(&spec, known, NULL, &err) == 0, "%s", err.msg);
    /* cancel needs only the job id */
    cx_jobspec_t c;
    cascade__v1__job_spec__init(&c);
    c.action = CASCADE__V1__JOB_ACTION__JOB_ACTION_CANCEL;
    c.job_id = "cxr-demo";
    ck_assert_int_eq(cx_jobspec_validate(&c, known, NULL, &err), 0);
    c.job_id = "a/b";
    ck_assert_int_eq(cx_jobspec_validate(&c, known, NULL, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "job_id 'a/b' contains '/'"));
}
END_TEST

START_TEST(test_validate_rules) {
    init_spec(); cls[1].proportion = 1.2;
    invalid("classes[1] 'effusion': proportion 1.2 is outside (0, 1]");
    init_spec(); cls[1].proportion = -0.35;
    invalid("proportion -0.35 is outside (0, 1]");
    init_spec(); cls[1].proportion = NAN;
    invalid("is outside (0, 1]");
    init_spec(); cls[2].count = 0, cls[2].proportion = 0.15;
    invalid("proportions sum to 0.9, not 1");
    init_spec(); cls[2].count = 600;
    invalid("together 0.95, not 1");
    init_spec(); cls[0].proportion = 0, cls[0].count = 1000, cls[1].proportion = 0, cls[1].count = 1000;
    invalid("class counts sum to 2750, not total_count 3000");
    init_spec(); cls[1].count = 5;
    invalid("classes[1] 'effusion': give a count or a proportion, not both");
    init_spec(); cls[1].proportion = 0;
    invalid("classes[1] 'effusion': needs a count > 0 or a proportion in (0, 1]");
    init_spec(); spec.total_count = 0;
    invalid("total_count is 0");
    init_spec(); spec.total_count = CX_MAX_TOTAL + 1;
    invalid("total_count 1000000001 exceeds 1000000000");
    init_spec(); cls[2].count = 3001;
    invalid("more than total_count 3000");
    init_spec(); gen.width = 100000;
    invalid("width 100000 is outside [8, 4096]");
    init_spec(); gen.height = 7;
    invalid("height 7 is outside [8, 4096]");
    init_spec(); gen.bit_depth = 12;
    invalid("bit_depth 12 is not 8 or 16");
    init_spec(); gen.steps = 0;
    invalid("steps 0 is outside [1, 1000]");
    init_spec(); gen.steps = 1001;
    invalid("steps 1001 is outside");
    init_spec(); gen.sampler = 17;
    invalid("sampler 17 is not ddim, euler or heun");
    init_spec(); gen.guidance_scale = -1;
    invalid("guidance_scale -1 is outside");
    init_spec(); gen.eta = 1.5;
    invalid("eta 1.5 is outside [0, 1]");
    init_spec(); spec.unit_size = 2000;
    invalid("unit_size 2000 is outside [1, 1024]");
    init_spec(); spec.unit_size = 0;
    invalid("unit_size 0");
    init_spec(); cls[3].name = "foo", cls[3].proportion = 0.0001, cls[0].proportion = 0.3999, spec.n_classes = 4;
    invalid("unknown class 'foo' for checkpoint 'ref-cxr-v0'");
    init_spec(); cls[1].name = "normal";
    invalid("duplicate class 'normal'");
    init_spec(); cls[1].name = "a/b";
    invalid("classes[1].name 'a/b' contains '/'");
    init_spec(); cls[1].name = "..";
    invalid("classes[1].name '..' is '..'");
    init_spec(); cls[1].name = "ef\x01";
    invalid("contains a control character");
    init_spec(); cls[1].name = "";
    invalid("missing classes[1].name");
    init_spec(); cls[1].condition = "x/y";
    invalid("classes[1].condition 'x/y' contains '/'");
    init_spec(); spec.job_id = "";
    invalid("missing job_id");
    init_spec(); spec.tenant = "ac me";
    invalid("tenant 'ac me'");
    init_spec(); spec.n_classes = 0;
    invalid("classes: at least one");
    init_spec(); spec.generation = NULL;
    invalid("missing generation");
    init_spec(); gen.checkpoint = "";
    invalid("missing generation.checkpoint");
    init_spec(); gen.checkpoint = "other";
    invalid("unknown class 'normal' for checkpoint 'other'");
    init_spec();
    Cascade__V1__Threshold th;
    cascade__v1__threshold__init(&th);
    th.gate = "clip_fraction";
    th.value = INFINITY;
    Cascade__V1__Threshold *ths[] = {&th};
    val.n_thresholds = 1;
    val.thresholds = ths;
    invalid("thresholds 'clip_fraction' is not finite");
    init_spec(); val.privacy_budget = -1;
    invalid("privacy_budget -1");
    init_spec(); spec.deadline_unix_ms = -5;
    invalid("deadline -5 is negative");
}
END_TEST

START_TEST(test_quotas) {
    uint64_t q[64];
    init_spec();
    ck_assert_uint_eq(cx_jobspec_quotas(&spec, q), 3000);
    ck_assert_uint_eq(q[0], 1200);
    ck_assert_uint_eq(q[1], 1050);
    ck_assert_uint_eq(q[2], 750);
    /* Thirds of 10: the remainder goes to the first class. */
    init_spec();
    cls[0].proportion = cls[1].proportion = cls[2].proportion = 1.0 / 3;
    cls[2].count = 0;
    spec.total_count = 10;
    ck_assert_int_eq(cx_jobspec_validate(&spec, known, NULL, NULL), 0);
    ck_assert_uint_eq(cx_jobspec_quotas(&spec, q), 10);
    ck_assert_uint_eq(q[0], 4);
    ck_assert_uint_eq(q[1], 3);
    ck_assert_uint_eq(q[2], 3);
    /* Largest remainder wins over order: 0.15/0.85 of 10 -> 1.5 / 8.5: tie,
     * first class; 0.14/0.86 -> 1.4/8.6 -> 1 and 9. */
    cls[0].proportion = 0.14, cls[1].proportion = 0.86, spec.n_classes = 2;
    cx_jobspec_quotas(&spec, q);
    ck_assert_uint_eq(q[0], 1);
    ck_assert_uint_eq(q[1], 9);
    /* Always sums to the total exactly. */
    uint32_t x = 99;
    for (int round = 0; round < 500; round++) {
        size_t n = 1 + round % 6;
        double w[6], sum = 0;
        for (size_t i = 0; i < n; i++) {
            x = x * 1664525 + 1013904223;
            w[i] = 1 + (x >> 8) % 1000;
            sum += w[i];
        }
        for (size_t i = 0; i < n; i++) cls[i].count = 0, cls[i].proportion = w[i] / sum;
        spec.n_classes = n;
        spec.total_count = 1 + (x >> 4) % 100000;
        ck_assert_uint_eq(cx_jobspec_quotas(&spec, q), spec.total_count);
        uint64_t tot = 0;
        for (size_t i = 0; i < n; i++) {
            tot += q[i];
            double ideal = cls[i].proportion * (double)spec.total_count;
            ck_assert(fabs((double)q[i] - ideal) < 1.0 + 1e-6);
        }
        ck_assert_uint_eq(tot, spec.total_count);
    }
}
END_TEST

START_TEST(test_apply_defaults) {
    /* On a decoded spec: defaults must be freeable by protobuf-c. */
    cx_jobspec_t s;
    cascade__v1__job_spec__init(&s);
    Cascade__V1__ClassTarget a, b;
    cascade__v1__class_target__init(&a);
    cascade__v1__class_target__init(&b);
    a.name = "normal", a.count = 7;
    b.name = "nodule", b.count = 3;
    Cascade__V1__ClassTarget *cs[] = {&a, &b};
    s.n_classes = 2;
    s.classes = cs;
    packed_t p = pack(&s);
    cx_err_t err = {0};
    cx_jobspec_t *d = cx_decode_jobspec(p.buf, p.len, &err);
    free(p.buf);
    ck_assert_msg(d != NULL, "%s", err.msg);
    ck_assert_int_eq(cx_jobspec_apply_defaults(d, &err), 0);
    ck_assert_uint_eq(d->total_count, 10);
    ck_assert_uint_eq(d->unit_size, 32);
    ck_assert_str_eq(d->generation->checkpoint, "ref-cxr-v0");
    ck_assert_int_eq(d->generation->sampler, CASCADE__V1__SAMPLER__SAMPLER_DDIM);
    ck_assert_uint_eq(d->generation->steps, 50);
    ck_assert_uint_eq(d->generation->width, 512);
    ck_assert_uint_eq(d->generation->height, 512);
    ck_assert_uint_eq(d->generation->bit_depth, 16);
    ck_assert(d->generation->guidance_scale == 1.0);
    ck_assert_str_eq(d->validation->gate_profile, "default");
    ck_assert_int_eq(cx_name_check("job_id", d->job_id, NULL), 0);
    ck_assert_int_eq(strncmp(d->job_id, "job-", 4), 0);
    ck_assert_msg(cx_jobspec_validate(d, known, NULL, &err) == 0, "%s", err.msg);
    /* Applying twice changes nothing. */
    char *id = strdup(d->job_id);
    ck_assert_int_eq(cx_jobspec_apply_defaults(d, &err), 0);
    ck_assert_str_eq(d->job_id, id);
    free(id);
    cascade__v1__job_spec__free_unpacked(d, NULL);

    /* Set values stay; a proportion keeps total at 0 (validation says so). */
    init_spec();
    gen.steps = 20;
    gen.width = 256;
    spec.total_count = 0;
    spec.unit_size = 8;
    ck_assert_int_eq(cx_jobspec_apply_defaults(&spec, &err), 0);
    ck_assert_uint_eq(gen.steps, 20);
    ck_assert_uint_eq(gen.width, 256);
    ck_assert_uint_eq(spec.unit_size, 8);
    ck_assert_uint_eq(spec.total_count, 0);
    invalid("total_count is 0: proportions need a total");
}
END_TEST

int main(void) {
    Suite *s = suite_create("codec");
    TCase *tc = tcase_create("decode");
    tcase_add_test(tc, test_decode_roundtrip_and_wrong_type);
    tcase_add_test(tc, test_decode_malformed);
    tcase_add_test(tc, test_decode_unit_fields);
    tcase_add_test(tc, test_decode_nested_checks);
    suite_add_tcase(s, tc);
    TCase *tv = tcase_create("jobspec");
    tcase_add_test(tv, test_validate_good);
    tcase_add_test(tv, test_validate_rules);
    tcase_add_test(tv, test_quotas);
    tcase_add_test(tv, test_apply_defaults);
    suite_add_tcase(s, tv);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
