// PASS/FAIL checks and their counters, shared by the CPU test programs in dev/ (plain C).
//   check(ok, fmt, ...)   prints `PASS <message>` or `FAIL <message>` and counts it
//   check_tally(ok)       counts a check that printed its own line
//   check_summary()       prints `N passed, N failed`; returns the exit status (0 all passed, 1 not)
// TEST_CHECK_SEP, defined before the include, is what follows PASS/FAIL (default " ").
#ifndef DEV_TEST_CHECK_H
#define DEV_TEST_CHECK_H

#include <stdio.h>
#include <stdarg.h>

#ifndef TEST_CHECK_SEP
#define TEST_CHECK_SEP " "
#endif

static int n_passed = 0, n_failed = 0;

static inline void check_tally(int ok) {
    if (ok) { n_passed++; } else { n_failed++; }
}

// prints one check line: PASS/FAIL, the message, then tail (without counting)
static inline void check_vprint(int ok, const char* fmt, va_list ap, const char* tail) {
    printf("%s" TEST_CHECK_SEP, ok ? "PASS" : "FAIL");
    vprintf(fmt, ap);
    printf("%s\n", tail);
}

static inline void check(int ok, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    check_vprint(ok, fmt, ap, "");
    va_end(ap);
    check_tally(ok);
}

static inline int check_summary(void) {
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed == 0 ? 0 : 1;
}

#endif // DEV_TEST_CHECK_H
