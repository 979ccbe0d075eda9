// CPU tests for llmc/dataloader.h and llmc/zero_shard.h.
// Writes synthetic shards whose token ids are their global position (unique across all shards), so every
// window read back identifies exactly which (shard, sample) it came from and can be checked token by token.
#define _POSIX_C_SOURCE 200809L  // mkdtemp, fork, pipe under -std=c99
#include "../llmc/dataloader.h"
#include "../llmc/zero_shard.h"
#include <sys/wait.h>
#define TEST_CHECK_SEP ": "
#include "test_check.h"
#include "test_shards.h"

// ---------------------------------------------------------------------------------------------------
// Synthetic shards.

static char g_dir[256];  // mkdtemp root

// The good data set: shard i holds tokens base[i] .. base[i]+len[i]-1. Sizes mix large shards, ragged
// remainders and shards too small to hold a global batch for larger nranks.
#define NSHARDS 6
static const uint64_t g_len[NSHARDS] = {1000, 777, 2050, 129, 50, 1601};
static uint64_t g_base[NSHARDS];
static const ShardSet g_set = {NSHARDS, g_len, g_base};
static char g_pattern[512];

static void make_good_dataset(void) {
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/good", g_dir);
    mkdir_p_or_die(dir);
    shards_init_base(&g_set);
    shards_write(&g_set, dir);
    snprintf(g_pattern, sizeof(g_pattern), "%s/shard_*.bin", dir);
}

// ---------------------------------------------------------------------------------------------------
// Stream tests.

static void test_natural_order(int B, int T, int nranks) {
    uint64_t G = (uint64_t)B * nranks, batches = 0;
    for (int s = 0; s < NSHARDS; s++) { batches += shard_samples(&g_set, s, T) / G; }
    int ok = 1;
    for (int r = 0; r < nranks; r++) {
        DataLoader dl;
        dataloader_init(&dl, g_pattern, B, T, r, nranks, 0, 1234, 65536);
        ok &= dataloader_num_batches(&dl) == batches;
        for (int epoch = 0; epoch < 2; epoch++) {
            for (int s = 0; s < NSHARDS; s++) {
                for (uint64_t k = 0; k < shard_samples(&g_set, s, T) / G; k++) {
                    dataloader_next_batch(&dl);
                    for (int b = 0; b < B; b++) {
                        uint64_t start = g_base[s] + (k * G + (uint64_t)r * B + b) * (uint64_t)T;
                        for (int t = 0; t < T; t++) {
                            ok &= dl.inputs[b * T + t] == (int)(start + t);
                            ok &= dl.targets[b * T + t] == (int)(start + t + 1);
                        }
                    }
                }
            }
            DataLoaderState st = dataloader_get_state(&dl);
            ok &= st.epoch == (uint64_t)epoch + 1 && st.sample_pos == 0;
        }
        dataloader_free(&dl);
    }
    check(ok, "natural order stream exact (B=%d T=%d nranks=%d, 2 epochs, %llu batches/epoch)",
          B, T, nranks, (unsigned long long)batches);
}

// nranks loaders in one process: over several shuffled epochs, every global batch is read disjointly by
// the ranks from one shard, and each epoch reads floor(samples/G)*G distinct windows of every shard.
static void test_coverage(int B, int T, int nranks, int epochs) {
    DataLoader* dl = (DataLoader*)malloc_or_die((size_t)nranks * sizeof(DataLoader), "loaders");
    for (int r = 0; r < nranks; r++) { dataloader_init(&dl[r], g_pattern, B, T, r, nranks, 1, 42, 65536); }
    uint64_t G = (uint64_t)B * nranks, nb = dataloader_num_batches(&dl[0]);
    int64_t* seen = (int64_t*)malloc_or_die(nb * G * sizeof(int64_t), "seen windows");
    int ok = 1;
    for (int e = 0; e < epochs; e++) {
        uint64_t per_shard[NSHARDS] = {0};
        for (uint64_t k = 0; k < nb; k++) {
            int batch_shard = -1;
            for (int r = 0; r < nranks; r++) {
                dataloader_next_batch(&dl[r]);
                for (int b = 0; b < B; b++) {
                    int s = -1;
                    int64_t id = window_id(&g_set, &dl[r], b, &s);
                    ok &= id >= 0;
                    if (id < 0) { continue; }
                    if (batch_shard < 0) { batch_shard = s; }
                    ok &= s == batch_shard;  // a global batch stays inside one shard
                    per_shard[s]++;
                    seen[k * G + (uint64_t)r * B + b] = id;
                }
            }
        }
        ok &= epoch_windows_ok(&g_set, seen, nb * G, per_shard, T, G);
        for (int r = 0; r < nranks; r++) {
            DataLoaderState st = dataloader_get_state(&dl[r]);
            ok &= st.epoch == (uint64_t)e + 1 && st.sample_pos == 0;
        }
    }
    check(ok, "shuffled coverage: nranks=%d B=%d T=%d, %d epochs x %llu global batches, disjoint, exactly once per epoch",
          nranks, B, T, epochs, (unsigned long long)nb);
    free(seen);
    for (int r = 0; r < nranks; r++) { dataloader_free(&dl[r]); }
    free(dl);
}

static int streams_equal(const int64_t* a, const int64_t* b, uint64_t n) {
    return memcmp(a, b, n * sizeof(int64_t)) == 0;
}

static void test_determinism(void) {
    int B = 4, T = 16;
    DataLoader a, b, c;
    dataloader_init(&a, g_pattern, B, T, 0, 1, 1, 7, 65536);
    dataloader_init(&b, g_pattern, B, T, 0, 1, 1, 7, 65536);
    dataloader_init(&c, g_pattern, B, T, 0, 1, 1, 8, 65536);
    uint64_t nb = dataloader_num_batches(&a), n = 3 * nb * B;
    int64_t* sa = (int64_t*)malloc_or_die(n * sizeof(int64_t), "stream");
    int64_t* sb = (int64_t*)malloc_or_die(n * sizeof(int64_t), "stream");
    int64_t* sc = (int64_t*)malloc_or_die(n * sizeof(int64_t), "stream");
    record(&g_set, &a, 3 * nb, sa);
    record(&g_set, &b, 3 * nb, sb);
    record(&g_set, &c, 3 * nb, sc);
    check(streams_equal(sa, sb, n), "same seed -> identical stream over 3 epochs");
    check(!streams_equal(sa, sc, n), "different seed -> different stream");
    uint64_t e = nb * B;
    check(!streams_equal(sa, sa + e, e) && !streams_equal(sa + e, sa + 2 * e, e), "consecutive epochs have different orders");
    int sorted = 1;
    for (uint64_t i = 1; i < e; i++) { sorted &= sa[i] > sa[i - 1]; }
    check(!sorted, "shuffled epoch is not in natural order");
    dataloader_reset(&a);
    record(&g_set, &a, nb + 2, sb);
    check(streams_equal(sa, sb, (nb + 2) * B), "reset replays the stream from epoch 0");
    free(sa); free(sb); free(sc);
    dataloader_free(&a); dataloader_free(&b); dataloader_free(&c);
}

// With a single shard the mapped shard never changes across epochs: its sample order must still be
// reshuffled each epoch, and a different remainder skipped (256 samples, B=3: one skipped per epoch).
static void test_single_shard_epochs(void) {
    char pat[600];
    snprintf(pat, sizeof(pat), "%s/good/shard_02.bin", g_dir);
    DataLoader dl;
    dataloader_init(&dl, pat, 3, 8, 0, 1, 1, 5, 65536);
    uint64_t nb = dataloader_num_batches(&dl), n = nb * 3;
    int64_t* s = (int64_t*)malloc_or_die(2 * n * sizeof(int64_t), "stream");
    record(&g_set, &dl, 2 * nb, s);
    int differ = !streams_equal(s, s + n, n);
    qsort(s, n, sizeof(int64_t), cmp_i64);
    qsort(s + n, n, sizeof(int64_t), cmp_i64);
    check(nb == 85 && differ && !streams_equal(s, s + n, n),
          "single shard: each epoch reshuffled, a different remainder skipped");
    free(s);
    dataloader_free(&dl);
}

// Saves the state after `skip` batches, then checks a fresh loader restored from it reproduces the
// next `follow` batches; `follow` is long enough to cross an epoch boundary.
static void test_restore(int B, int T, int rank, int nranks, uint64_t skip) {
    DataLoader a, b;
    dataloader_init(&a, g_pattern, B, T, rank, nranks, 1, 99, 65536);
    uint64_t nb = dataloader_num_batches(&a), follow = nb + 3;
    int64_t* sa = (int64_t*)malloc_or_die(follow * B * sizeof(int64_t), "stream");
    int64_t* sb = (int64_t*)malloc_or_die(follow * B * sizeof(int64_t), "stream");
    for (uint64_t k = 0; k < skip; k++) { dataloader_next_batch(&a); }
    DataLoaderState st = dataloader_get_state(&a);
    record(&g_set, &a, follow, sa);
    // b has already mapped some other shard and epoch, so the restore must replace all of that
    dataloader_init(&b, g_pattern, B, T, rank, nranks, 1, 99, 65536);
    for (uint64_t k = 0; k < nb / 2 + 1; k++) { dataloader_next_batch(&b); }
    dataloader_set_state(&b, &st);
    DataLoaderState st2 = dataloader_get_state(&b);
    record(&g_set, &b, follow, sb);
    int ok = streams_equal(sa, sb, follow * B) && memcmp(&st, &st2, sizeof(st)) == 0;
    check(ok, "state restore after %llu batches (epoch %llu, shard_pos %llu, sample_pos %llu) reproduces next %llu batches (rank %d/%d)",
          (unsigned long long)skip, (unsigned long long)st.epoch, (unsigned long long)st.shard_pos,
          (unsigned long long)st.sample_pos, (unsigned long long)follow, rank, nranks);
    free(sa); free(sb);
    dataloader_free(&a); dataloader_free(&b);
}

// A state saved by a 1-rank run resumes a 3-rank run at the same samples: the 3 ranks' first global batch
// is the 1-rank run's next 3 micro-batches (B equal, the shard at shard_pos 1 holds >= 12 samples).
static void test_restore_other_nranks(void) {
    int B = 4, T = 8;
    DataLoader one, three[3];
    dataloader_init(&one, g_pattern, B, T, 0, 1, 1, 99, 65536);
    dataloader_next_batch(&one);
    DataLoaderState st = dataloader_get_state(&one);
    int64_t want[12], got[12];
    record(&g_set, &one, 3, want);
    int ok = st.shard_pos == 1 && st.sample_pos == 0;
    for (int r = 0; r < 3; r++) {
        dataloader_init(&three[r], g_pattern, B, T, r, 3, 1, 99, 65536);
        dataloader_set_state(&three[r], &st);
        record(&g_set, &three[r], 1, got + r * B);
        dataloader_free(&three[r]);
    }
    dataloader_free(&one);
    check(ok && streams_equal(want, got, 12), "state saved with nranks=1 resumes the same samples with nranks=3");
}

static void test_num_batches(void) {
    int ok = 1;
    int Bs[] = {1, 2, 5}, Ts[] = {1, 8, 64, 100};
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 4; j++) {
            for (int n = 1; n <= 4; n++) {
                uint64_t G = (uint64_t)Bs[i] * n, want = 0, tokens = 0;
                for (int s = 0; s < NSHARDS; s++) { want += shard_samples(&g_set, s, Ts[j]) / G; tokens += g_len[s]; }
                DataLoader dl;
                dataloader_init(&dl, g_pattern, Bs[i], Ts[j], 0, n, 1, 0, 65536);
                ok &= dataloader_num_batches(&dl) == want;
                ok &= dataloader_num_shards(&dl) == NSHARDS && dataloader_total_tokens(&dl) == tokens;
                dataloader_free(&dl);
            }
        }
    }
    check(ok, "num_batches / num_shards / total_tokens for 48 (B, T, nranks) configurations");
}

static void test_pattern_list(void) {
    char pat[1200];
    // shard 2 listed first, then all shards: list order kept, the duplicate read once
    snprintf(pat, sizeof(pat), "%s/good/shard_02.bin,%s", g_dir, g_pattern);
    DataLoader dl;
    dataloader_init(&dl, pat, 1, 64, 0, 1, 0, 0, 65536);
    int ok = dataloader_num_shards(&dl) == NSHARDS;
    dataloader_next_batch(&dl);
    ok &= dl.inputs[0] == (int)g_base[2];
    dataloader_free(&dl);
    check(ok, "comma-separated glob list keeps list order and reads duplicates once");
}

// ---------------------------------------------------------------------------------------------------
// ZeRO partition arithmetic.

static void test_zero_shards(void) {
    size_t totals[400];
    int nt = 0;
    for (size_t t = 0; t < 300; t++) { totals[nt++] = t; }
    size_t big[] = {124439808, 124475904, 354823168, 774030080, 1557611200, 1000003, 65537, 4095, 4096, 4097};
    for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) { totals[nt++] = big[i]; }
    size_t aligns[] = {1, 3, 16, 128};
    int ok = 1, cases = 0;
    for (int i = 0; i < nt; i++) {
        for (int n = 1; n <= 8; n++) {
            for (int a = 0; a < 4; a++) {
                size_t total = totals[i], align = aligns[a];
                size_t len = zero_shard_len(total, n, align);
                size_t per = (total + n - 1) / n;
                ok &= len % align == 0 && len >= per && len < per + align;  // aligned and minimal
                ok &= zero_padded_total(total, n, align) == (size_t)n * len && (size_t)n * len >= total;
                size_t next = 0;
                for (int r = 0; r < n; r++) {
                    size_t off, cnt;
                    zero_shard_range(total, n, r, align, &off, &cnt);
                    ok &= off == (size_t)r * len && cnt <= len && off % align == 0;
                    if (cnt > 0) { ok &= off == next; next = off + cnt; }   // contiguous, no overlap
                    if (cnt < len) { ok &= off + cnt >= total; }             // only the tail is padding
                }
                ok &= next == total;  // covered up to total, nothing beyond
                cases++;
            }
        }
    }
    check(ok, "ZeRO ranges: %d (total, nranks, align) cases cover [0,total) exactly once, equal aligned padded lengths", cases);
}

// ---------------------------------------------------------------------------------------------------
// Bad inputs: die() exits, so each runs in a forked child whose stderr is captured.

typedef struct {
    const char* pattern;
    int B, T, nranks, vocab;
    int set_bad_state;
} InitArgs;

static void child_body(const InitArgs* a) {
    DataLoader dl;
    dataloader_init(&dl, a->pattern, a->B, a->T, 0, a->nranks, 1, 0, a->vocab);
    if (a->set_bad_state) {
        DataLoaderState st = {0, 0, 1000000};
        dataloader_set_state(&dl, &st);
    }
}

static void expect_death(const char* what, const InitArgs* a, const char* must1, const char* must2) {
    int fds[2];
    if (pipe(fds) != 0) { die("pipe failed: %s", strerror(errno)); }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) { die("fork failed: %s", strerror(errno)); }
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        child_body(a);
        _exit(0);
    }
    close(fds[1]);
    char msg[4096];
    size_t n = 0;
    ssize_t got;
    while ((got = read(fds[0], msg + n, sizeof(msg) - 1 - n)) > 0) { n += (size_t)got; }
    msg[n] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    int exited_nonzero = WIFEXITED(status) && WEXITSTATUS(status) != 0;
    int named = strstr(msg, must1) != NULL && (must2 == NULL || strstr(msg, must2) != NULL);
    if (n && msg[n - 1] == '\n') { msg[n - 1] = '\0'; }
    check(exited_nonzero && named, "dies on %s: [%s]", what, msg);
}

static void bad_shard_case(const char* what, const char* name, int32_t magic, int32_t version, int32_t header_ntok,
                           size_t ntok, size_t trailing, uint16_t bad_token_at, int B, int T, const char* must2) {
    char dir[300], path[400];
    snprintf(dir, sizeof(dir), "%s/%s", g_dir, name);
    mkdir_p_or_die(dir);
    uint16_t* tok = (uint16_t*)malloc_or_die(ntok * sizeof(uint16_t), "test tokens");
    for (size_t i = 0; i < ntok; i++) { tok[i] = (uint16_t)(i % 1000); }
    // a good shard sorted first, so the failure must be reported for the right file
    snprintf(path, sizeof(path), "%s/a_good.bin", dir);
    write_raw_shard(path, 20240520, 1, (int32_t)ntok, tok, ntok, 0);
    if (bad_token_at) { tok[bad_token_at] = 50257; }
    snprintf(path, sizeof(path), "%s/b_bad.bin", dir);
    write_raw_shard(path, magic, version, header_ntok, tok, ntok, trailing);
    free(tok);
    char pattern[400];
    snprintf(pattern, sizeof(pattern), "%s/*.bin", dir);
    InitArgs a = {pattern, B, T, 1, 50257, 0};
    expect_death(what, &a, path, must2);
}

static void test_bad_inputs(void) {
    char pattern[400], path[400];
    snprintf(pattern, sizeof(pattern), "%s/nothing_here_*.bin", g_dir);
    InitArgs a = {pattern, 2, 8, 1, 65536, 0};
    expect_death("pattern matching no file", &a, pattern, NULL);

    bad_shard_case("wrong magic", "magic", 20240521, 1, 100, 100, 0, 0, 1, 8, "magic");
    bad_shard_case("wrong version", "version", 20240520, 2, 100, 100, 0, 0, 1, 8, "version");
    bad_shard_case("truncated shard", "trunc", 20240520, 1, 101, 100, 0, 0, 1, 8, "truncated");
    bad_shard_case("trailing bytes", "trail", 20240520, 1, 100, 100, 3, 0, 1, 8, "trailing");
    bad_shard_case("token id >= vocab", "vocab", 20240520, 1, 100, 100, 0, 77, 1, 8, "index 77 has id 50257");

    snprintf(path, sizeof(path), "%s/short", g_dir);
    mkdir_p_or_die(path);
    snprintf(path, sizeof(path), "%s/short/x.bin", g_dir);
    FILE* f = fopen_or_die(path, "wb");
    fwrite_or_die("abc", 1, 3, f, path);
    fclose_or_die(f, path);
    InitArgs s = {path, 1, 8, 1, 65536, 0};
    expect_death("file shorter than the header", &s, path, "header");

    // the largest good shard has 2050 tokens = 256 samples of T=8, one short of 8 ranks x B=33
    InitArgs big = {g_pattern, 33, 8, 8, 65536, 0};
    snprintf(path, sizeof(path), "%s/good/shard_02.bin", g_dir);
    expect_death("shard too small for nranks*B*T", &big, path, "nranks=8 x B=33");

    InitArgs st = {g_pattern, 2, 8, 1, 65536, 1};
    expect_death("invalid saved state", &st, "sample_pos 1000000", NULL);
}

// ---------------------------------------------------------------------------------------------------

int main(void) {
    snprintf(g_dir, sizeof(g_dir), "/tmp/test_dataloader_XXXXXX");
    if (mkdtemp(g_dir) == NULL) { die("mkdtemp failed: %s", strerror(errno)); }
    make_good_dataset();

    test_natural_order(3, 8, 1);
    test_natural_order(2, 16, 3);
    test_natural_order(1, 1, 1);
    for (int n = 1; n <= 8; n++) { test_coverage(2, 8, n, 3); }
    test_coverage(3, 5, 7, 4);
    test_determinism();
    test_single_shard_epochs();
    uint64_t nb;
    {
        DataLoader dl;
        dataloader_init(&dl, g_pattern, 4, 8, 0, 1, 1, 99, 65536);
        nb = dataloader_num_batches(&dl);
        dataloader_free(&dl);
    }
    uint64_t skips[] = {0, 1, 17, nb - 1, nb, nb + 40};
    for (int i = 0; i < 6; i++) { test_restore(4, 8, 0, 1, skips[i]); }
    test_restore(2, 8, 2, 3, 11);
    test_restore(2, 8, 1, 3, 0);
    test_restore_other_nranks();
    test_num_batches();
    test_pattern_list();
    test_zero_shards();
    test_bad_inputs();

    remove_tree(g_dir);
    return check_summary();
}
