/* Test helpers: where the real stack started by tests/harness lives.
 * ctest runs integration suites with CASCADE_TEST_ENV naming the stack's env
 * file (KEY=VALUE lines: CASCADE_KAFKA_BROKERS, CASCADE_REDIS_URL, ...). */
#ifndef CX_TESTENV_H
#define CX_TESTENV_H

/* The value of key from the process environment, else from the env file;
 * NULL when neither has it. The string lives until exit. */
const char *cx_testenv(const char *key);
/* A fresh directory under $TMPDIR (or /tmp) for one test; caller frees. */
char *cx_testenv_tmpdir(const char *tag);

#endif
