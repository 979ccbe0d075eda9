// Where a training step's GPU time goes (--profile 1): CUDA events recorded on the model's
// stream between the step's sections; the time from one mark to the next goes to the next
// mark's section (group, part), e.g. ("fc", "wgrad gemm"). Sums over every profiled step are
// printed as a table at the end of the run. Events cost ~1 us of GPU time each and hold back
// no kernel; with profiling off a mark is one branch.
#ifndef LLMC_PROFILE_H
#define LLMC_PROFILE_H

#include <stdio.h>
#include <string.h>
#include "cuda_common.h"
#include "utils.h"

#define PROF_MAX_SECTIONS 96

typedef struct {
    const char* group;   // "fc", "attention", ...
    const char* part;    // "wgrad gemm", "cast dy", ...
    double ms;           // summed over the profiled steps
    long calls;
} ProfSection;

typedef struct {
    int enabled;             // --profile 1
    int on;                  // recording the current step
    cudaStream_t stream;
    cudaEvent_t* events;     // (cap) events[0] opens the step, events[i] closes section_of[i]
    int* section_of;         // (cap)
    int n, cap;
    ProfSection sec[PROF_MAX_SECTIONS];
    int nsec;
    int steps;
} Profiler;

static inline int prof_section(Profiler* p, const char* group, const char* part) {
    for (int i = 0; i < p->nsec; i++) {
        if (strcmp(p->sec[i].group, group) == 0 && strcmp(p->sec[i].part, part) == 0) { return i; }
    }
    if (p->nsec == PROF_MAX_SECTIONS) { die("internal: more than %d profile sections", PROF_MAX_SECTIONS); }
    ProfSection* s = &p->sec[p->nsec];
    s->group = group; s->part = part; s->ms = 0.0; s->calls = 0;
    return p->nsec++;
}

static inline void prof_record(Profiler* p, int section) {
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 1024;
        p->events = (cudaEvent_t*)realloc(p->events, cap * sizeof(cudaEvent_t));
        p->section_of = (int*)realloc(p->section_of, cap * sizeof(int));
        if (p->events == NULL || p->section_of == NULL) { die("out of host memory for profile events"); }
        for (int i = p->cap; i < cap; i++) { cudaCheck(cudaEventCreate(&p->events[i])); }
        p->cap = cap;
    }
    p->section_of[p->n] = section;
    cudaCheck(cudaEventRecord(p->events[p->n], p->stream));
    p->n++;
}

// Starts recording a step whose work goes to stream s.
static inline void prof_step_begin(Profiler* p, cudaStream_t s) {
    if (p == NULL || !p->enabled) { return; }
    p->on = 1;
    p->stream = s;
    p->n = 0;
    prof_record(p, -1);
}

// The work queued on the stream since the previous mark was section (group, part).
static inline void prof_mark(Profiler* p, const char* group, const char* part) {
    if (p == NULL || !p->on) { return; }
    prof_record(p, prof_section(p, group, part));
}

// Ends the step: waits for its last event and adds each section's time (synchronizes).
static inline void prof_step_end(Profiler* p) {
    if (p == NULL || !p->on) { return; }
    p->on = 0;
    cudaCheck(cudaEventSynchronize(p->events[p->n - 1]));
    for (int i = 1; i < p->n; i++) {
        float ms;
        cudaCheck(cudaEventElapsedTime(&ms, p->events[i - 1], p->events[i]));
        p->sec[p->section_of[i]].ms += ms;
        p->sec[p->section_of[i]].calls++;
    }
    p->steps++;
}

static int prof_by_time(const void* a, const void* b) {
    double x = ((const ProfSection*)a)->ms, y = ((const ProfSection*)b)->ms;
    return x < y ? 1 : x > y ? -1 : 0;
}

// The table, per step, slowest first, with each group's total; one JSON line per section into
// log (NULL: none).
static inline void prof_report(const Profiler* p, FILE* out, FILE* log) {
    if (p->steps == 0) { return; }
    ProfSection s[PROF_MAX_SECTIONS];
    memcpy(s, p->sec, p->nsec * sizeof(ProfSection));
    qsort(s, p->nsec, sizeof(ProfSection), prof_by_time);
    double total = 0.0;
    for (int i = 0; i < p->nsec; i++) { total += s[i].ms; }
    total /= p->steps;
    fprintf(out, "GPU time per step over %d profiled steps: %.2f ms\n", p->steps, total);
    fprintf(out, "%-12s %-26s %9s %6s %7s %14s\n", "group", "part", "ms/step", "%", "calls", "group ms/step");
    for (int i = 0; i < p->nsec; i++) {
        double group = 0.0;
        for (int j = 0; j < p->nsec; j++) { if (strcmp(s[j].group, s[i].group) == 0) { group += s[j].ms; } }
        double ms = s[i].ms / p->steps;
        fprintf(out, "%-12s %-26s %9.3f %6.1f %7.1f %14.3f\n", s[i].group, s[i].part, ms, 100.0 * ms / total,
                (double)s[i].calls / p->steps, group / p->steps);
        if (log != NULL) {
            fprintf(log, "{\"profile_group\":\"%s\",\"part\":\"%s\",\"ms_per_step\":%.4f,\"calls_per_step\":%.2f}\n",
                    s[i].group, s[i].part, ms, (double)s[i].calls / p->steps);
        }
    }
    if (log != NULL) { fflush(log); }
}

static inline void prof_free(Profiler* p) {
    for (int i = 0; i < p->cap; i++) { cudaCheck(cudaEventDestroy(p->events[i])); }
    free(p->events); free(p->section_of);
    memset(p, 0, sizeof(*p));
}

#endif // LLMC_PROFILE_H
