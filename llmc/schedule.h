// Learning-rate schedules with linear warmup: cosine, linear, constant and WSD
// (warmup-stable-decay). All decay to lr * final_frac at the last step.
#ifndef LLMC_SCHEDULE_H
#define LLMC_SCHEDULE_H

#include <math.h>
#include <string.h>

typedef enum { SCHED_COSINE, SCHED_LINEAR, SCHED_CONSTANT, SCHED_WSD } ScheduleKind;

typedef struct {
    ScheduleKind kind;
    float lr;            // peak learning rate
    int warmup;          // steps of linear warmup
    int max_steps;       // total optimizer steps
    float final_frac;    // final lr as a fraction of the peak
    float decay_frac;    // WSD: fraction of the steps spent decaying at the end
} Schedule;

// Returns 1 and sets *k when name is a known schedule.
static inline int schedule_kind_from_name(const char* name, ScheduleKind* k) {
    if (strcmp(name, "cosine") == 0) { *k = SCHED_COSINE; return 1; }
    if (strcmp(name, "linear") == 0) { *k = SCHED_LINEAR; return 1; }
    if (strcmp(name, "constant") == 0) { *k = SCHED_CONSTANT; return 1; }
    if (strcmp(name, "wsd") == 0) { *k = SCHED_WSD; return 1; }
    return 0;
}

// Learning rate of optimizer step `step` (0-based).
static inline float schedule_lr(const Schedule* s, int step) {
    if (step < s->warmup) { return s->lr * (float)(step + 1) / (float)s->warmup; }
    float lr_min = s->lr * s->final_frac;
    int span = s->max_steps - s->warmup;
    float progress = span > 0 ? (float)(step - s->warmup) / (float)span : 1.0f;
    if (progress > 1.0f) { progress = 1.0f; }
    switch (s->kind) {
    case SCHED_COSINE: return lr_min + 0.5f * (1.0f + cosf((float)M_PI * progress)) * (s->lr - lr_min);
    case SCHED_LINEAR: return s->lr - (s->lr - lr_min) * progress;
    case SCHED_CONSTANT: return s->lr;
    case SCHED_WSD: {
        int decay_start = s->max_steps - (int)(s->decay_frac * s->max_steps);
        if (decay_start < s->warmup) { decay_start = s->warmup; }
        if (step < decay_start) { return s->lr; }
        int dspan = s->max_steps - decay_start;
        float p = dspan > 0 ? (float)(step - decay_start) / (float)dspan : 1.0f;
        return s->lr - (s->lr - lr_min) * (p > 1.0f ? 1.0f : p);
    }
    }
    return s->lr;
}

#endif // LLMC_SCHEDULE_H
