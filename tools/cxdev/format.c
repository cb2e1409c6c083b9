/* How cxdev tail prints a message: decoded for the topics people read by
 * eye (dead letters, job events), escaped bytes for the rest. */
#include <stdio.h>
#include <string.h>

#include "cascade/codec.h"
#include "cxdev.h"

void cxdev_escape(FILE *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = p[i];
        switch (ch) {
        case '\\': fputs("\\\\", out); break;
        case '"': fputs("\\\"", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (ch >= 0x20 && ch < 0x7f)
                fputc(ch, out);
            else
                fprintf(out, "\\x%02x", ch);
        }
    }
}

static void escape_str(FILE *out, const char *s)
{
    cxdev_escape(out, s, s ? strlen(s) : 0);
}

static void print_deadletter(FILE *out, const cx_deadletter_t *d)
{
    fputs("source=", out);
    escape_str(out, d->source_topic);
    fprintf(out, " partition=%d offset=%lld service=", (int)d->partition,
            (long long)d->offset);
    escape_str(out, d->service);
    fputs(" reason=\"", out);
    escape_str(out, d->reason);
    fputc('"', out);
    if (d->job_id && *d->job_id) {
        fputs(" job=", out);
        escape_str(out, d->job_id);
    }
    if (d->unit_id && *d->unit_id) {
        fputs(" unit=", out);
        escape_str(out, d->unit_id);
    }
    fputc('\n', out);
}

static void print_jobevent(FILE *out, const cx_jobevent_t *ev)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
        &cascade__v1__job_event_type__descriptor, (int)ev->type);
    const char *type = v ? v->name : "UNKNOWN";
    if (!strncmp(type, "JOB_EVENT_", 10))
        type += 10;
    fprintf(out, "type=%s job=", type);
    escape_str(out, ev->job_id);
    fputs(" message=\"", out);
    escape_str(out, ev->message);
    fputc('"', out);
    if (ev->unit_id && *ev->unit_id) {
        fputs(" unit=", out);
        escape_str(out, ev->unit_id);
    }
    fputc('\n', out);
}

void cxdev_format(FILE *out, const cx_msg_t *m, int value_only)
{
    int is_dl = m->topic && !strcmp(m->topic, CX_TOPIC_DEADLETTER);
    int is_ev = m->topic && !strcmp(m->topic, CX_TOPIC_JOB_EVENTS);
    if (!value_only && (is_dl || is_ev)) {
        cx_err_t err = {0};
        if (is_dl) {
            cx_deadletter_t *d = cx_decode_deadletter(m->payload, m->len, &err);
            if (d) {
                print_deadletter(out, d);
                cascade__v1__dead_letter__free_unpacked(d, NULL);
                return;
            }
        } else {
            cx_jobevent_t *ev = cx_decode_jobevent(m->payload, m->len, &err);
            if (ev) {
                print_jobevent(out, ev);
                cascade__v1__job_event__free_unpacked(ev, NULL);
                return;
            }
        }
        fprintf(out, "undecodable partition=%d offset=%lld error=\"",
                (int)m->partition, (long long)m->offset);
        escape_str(out, err.msg);
        fputs("\"\n", out);
        return;
    }
    if (!value_only) {
        fprintf(out, "partition=%d offset=%lld key=", (int)m->partition,
                (long long)m->offset);
        cxdev_escape(out, m->key, m->key_len);
        fputs(" value=", out);
    }
    cxdev_escape(out, m->payload, m->len);
    fputc('\n', out);
}
