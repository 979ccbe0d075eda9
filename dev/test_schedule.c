// CPU test of the learning-rate schedules (llmc/schedule.h): warmup, the four decays, their
// end points, and monotonicity. PASS/FAIL lines, then "N passed, N failed".
#include <math.h>
#include "../llmc/schedule.h"
#include "test_check.h"

static int close_to(double a, double b) { return fabs(a - b) <= 1e-6 * fmax(1.0, fabs(b)); }

int main(void) {
    Schedule s = {SCHED_COSINE, 6e-4f, 100, 1000, 0.1f, 0.2f};
    check(close_to(schedule_lr(&s, 0), 6e-6), "warmup starts at lr/warmup");
    check(close_to(schedule_lr(&s, 49), 3e-4), "warmup is linear (step 49 of 100 -> lr/2)");
    check(close_to(schedule_lr(&s, 100), 6e-4), "the peak right after warmup");
    check(close_to(schedule_lr(&s, 550), 6e-5 + 0.5 * (6e-4 - 6e-5)), "cosine: halfway is the midpoint");
    check(close_to(schedule_lr(&s, 1000), 6e-5), "cosine ends at lr * final_frac");
    int mono = 1;
    for (int k = 101; k <= 1000; k++) { mono &= schedule_lr(&s, k) <= schedule_lr(&s, k - 1); }
    check(mono, "cosine decreases after warmup");

    s.kind = SCHED_LINEAR;
    check(close_to(schedule_lr(&s, 550), 6e-4 - 0.5 * (6e-4 - 6e-5)), "linear: halfway");
    check(close_to(schedule_lr(&s, 1000), 6e-5), "linear ends at lr * final_frac");

    s.kind = SCHED_CONSTANT;
    check(close_to(schedule_lr(&s, 700), 6e-4), "constant after warmup");
    check(close_to(schedule_lr(&s, 10), 6.6e-5), "constant still warms up");

    s.kind = SCHED_WSD;   // decay over the last 20%: steps 800..1000
    check(close_to(schedule_lr(&s, 799), 6e-4), "wsd: stable before the decay");
    check(close_to(schedule_lr(&s, 900), 6e-4 - 0.5 * (6e-4 - 6e-5)), "wsd: halfway through the decay");
    check(close_to(schedule_lr(&s, 1000), 6e-5), "wsd ends at lr * final_frac");

    Schedule none = {SCHED_COSINE, 1e-3f, 0, 10, 1.0f, 0.2f};
    check(close_to(schedule_lr(&none, 0), 1e-3), "no warmup: the peak at step 0");
    check(close_to(schedule_lr(&none, 9), 1e-3), "final_frac 1: no decay");

    ScheduleKind k;
    check(schedule_kind_from_name("wsd", &k) && k == SCHED_WSD && !schedule_kind_from_name("cosin", &k),
          "schedule names");
    return check_summary();
}
