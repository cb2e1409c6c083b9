/* cxdev tail's lines: what a developer reads and what test scripts grep. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cascade/codec.h"
#include "cxdev.h"

/* The line cxdev_format prints for m; caller frees. */
static char *format_line(const cx_msg_t *m, int value_only)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    cxdev_format(f, m, value_only);
    fclose(f);
    return buf;
}

START_TEST(test_raw_message_is_escaped_on_one_line)
{
    const char val[] = "a\"b\\c\nd\x01";
    cx_msg_t m = {.topic = "cascade.units", .partition = 3, .offset = 42,
                  .key = "job-1", .key_len = 5, .payload = val,
                  .len = sizeof val - 1};
    char *line = format_line(&m, 0);
    ck_assert_str_eq(line, "partition=3 offset=42 key=job-1 "
                           "value=a\\\"b\\\\c\\nd\\x01\n");
    free(line);
    line = format_line(&m, 1);
    ck_assert_str_eq(line, "a\\\"b\\\\c\\nd\\x01\n");
    free(line);
}
END_TEST

START_TEST(test_deadletter_is_decoded)
{
    Cascade__V1__DeadLetter d = CASCADE__V1__DEAD_LETTER__INIT;
    d.source_topic = "cascade.staged";
    d.partition = 2;
    d.offset = 17;
    d.service = "validator";
    d.reason = "missing \"unit_id\"";
    d.job_id = "job-9";
    size_t len;
    uint8_t *bytes = cx_pack((const ProtobufCMessage *)&d, &len, NULL);
    ck_assert_ptr_nonnull(bytes);
    cx_msg_t m = {.topic = CX_TOPIC_DEADLETTER, .partition = 0, .offset = 5,
                  .payload = bytes, .len = len};
    char *line = format_line(&m, 0);
    ck_assert_str_eq(line, "source=cascade.staged partition=2 offset=17 "
                           "service=validator "
                           "reason=\"missing \\\"unit_id\\\"\" job=job-9\n");
    free(line);
    free(bytes);
}
END_TEST

START_TEST(test_jobevent_is_decoded)
{
    Cascade__V1__JobEvent ev = CASCADE__V1__JOB_EVENT__INIT;
    ev.job_id = "job-7";
    ev.type = CASCADE__V1__JOB_EVENT_TYPE__JOB_EVENT_REJECTED;
    ev.message = "classes: proportions sum to 0.9";
    size_t len;
    uint8_t *bytes = cx_pack((const ProtobufCMessage *)&ev, &len, NULL);
    ck_assert_ptr_nonnull(bytes);
    cx_msg_t m = {.topic = CX_TOPIC_JOB_EVENTS, .payload = bytes, .len = len};
    char *line = format_line(&m, 0);
    ck_assert_str_eq(line, "type=REJECTED job=job-7 "
                           "message=\"classes: proportions sum to 0.9\"\n");
    free(line);
    free(bytes);
}
END_TEST

START_TEST(test_garbage_on_deadletter_topic_says_so)
{
    const unsigned char junk[] = {0xff, 0xff, 0xff, 0xff};
    cx_msg_t m = {.topic = CX_TOPIC_DEADLETTER, .partition = 1, .offset = 9,
                  .payload = junk, .len = sizeof junk};
    char *line = format_line(&m, 0);
    ck_assert_msg(!strncmp(line, "undecodable partition=1 offset=9 error=\"",
                           40), "got: %s", line);
    ck_assert_int_eq(line[strlen(line) - 1], '\n');
    free(line);
}
END_TEST

START_TEST(test_topic_list_sizes)
{
    int dispatch = 0;
    for (size_t i = 0; i < cxdev_ntopics; i++) {
        if (!strcmp(cxdev_topics[i].name, CX_TOPIC_DISPATCH))
            dispatch = cxdev_topics[i].partitions;
        else
            ck_assert_int_eq(cxdev_topics[i].partitions, 4);
    }
    ck_assert_int_eq(dispatch, 16);
    ck_assert_uint_eq(cxdev_ntopics, 9);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cxdev_format");
    TCase *tc = tcase_create("format");
    tcase_add_test(tc, test_raw_message_is_escaped_on_one_line);
    tcase_add_test(tc, test_deadletter_is_decoded);
    tcase_add_test(tc, test_jobevent_is_decoded);
    tcase_add_test(tc, test_garbage_on_deadletter_topic_says_so);
    tcase_add_test(tc, test_topic_list_sizes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
