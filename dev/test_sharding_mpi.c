// MPI test of data-parallel sharding: every rank runs its own loader in its own process; rank 0 gathers
// which windows each rank read and verifies that each global batch was split disjointly and completely
// across ranks, and that the processes agree with an in-process simulation of all ranks. Also checks the
// ZeRO-1 partition with a real reduce-scatter + all-gather round trip.
// Token ids are their global position across the synthetic shards, so a window identifies its origin.
#include "../llmc/dataloader.h"
#include "../llmc/zero_shard.h"
#include <mpi.h>
#define TEST_CHECK_SEP ": "
#include "test_check.h"
#include "test_shards.h"

static int g_rank, g_size;

// Collective: the check passes only if it passed on every rank; rank 0 prints it.
static void check_all(int local_ok, const char* fmt, ...) {
    int ok = 0;
    MPI_Allreduce(&local_ok, &ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    check_tally(ok);
    if (g_rank != 0) { return; }
    char tail[32];
    snprintf(tail, sizeof(tail), " [np=%d]", g_size);
    va_list ap;
    va_start(ap, fmt);
    check_vprint(ok, fmt, ap, tail);
    va_end(ap);
    fflush(stdout);
}

#define NSHARDS 5
static const uint64_t g_len[NSHARDS] = {1000, 777, 2050, 300, 1601};
static uint64_t g_base[NSHARDS];
static const ShardSet g_set = {NSHARDS, g_len, g_base};
static char g_dir[256], g_pattern[512];

static void make_dataset(void) {
    shards_init_base(&g_set);
    if (g_rank == 0) {
        snprintf(g_dir, sizeof(g_dir), "/tmp/test_sharding_mpi_XXXXXX");
        if (mkdtemp(g_dir) == NULL) { die("mkdtemp failed: %s", strerror(errno)); }
        shards_write(&g_set, g_dir);
    }
    MPI_Bcast(g_dir, sizeof(g_dir), MPI_CHAR, 0, MPI_COMM_WORLD);  // /tmp is shared: one host
    snprintf(g_pattern, sizeof(g_pattern), "%s/shard_*.bin", g_dir);
}

// ids[r][e*nb*B + k*B + b]: window read by rank r as row b of batch k of epoch e.
static int verify_epochs(const int64_t* ids, int nranks, int B, int T, uint64_t nb, int epochs) {
    uint64_t G = (uint64_t)nranks * B, per_rank = (uint64_t)epochs * nb * B;
    int64_t* epoch_ids = (int64_t*)malloc_or_die(nb * G * sizeof(int64_t), "epoch windows");
    int ok = 1;
    for (int e = 0; e < epochs; e++) {
        uint64_t per_shard[NSHARDS] = {0};
        for (uint64_t k = 0; k < nb; k++) {
            int batch_shard = -2;
            for (int r = 0; r < nranks; r++) {
                for (int b = 0; b < B; b++) {
                    int64_t id = ids[r * per_rank + (uint64_t)e * nb * B + k * B + b];
                    int s = id < 0 ? -1 : shard_of(&g_set, id);
                    ok &= s >= 0;
                    if (s < 0) { continue; }
                    if (batch_shard == -2) { batch_shard = s; }
                    ok &= s == batch_shard;  // a global batch stays in one shard
                    per_shard[s]++;
                    epoch_ids[k * G + (uint64_t)r * B + b] = id;
                }
            }
        }
        ok &= epoch_windows_ok(&g_set, epoch_ids, nb * G, per_shard, T, G);
    }
    free(epoch_ids);
    return ok;
}

static void test_coverage(int B, int T, int shuffle, int epochs) {
    DataLoader dl;
    dataloader_init(&dl, g_pattern, B, T, g_rank, g_size, shuffle, 42, 65536);
    uint64_t nb = dataloader_num_batches(&dl), n = (uint64_t)epochs * nb * B;
    int64_t* mine = (int64_t*)malloc_or_die(n * sizeof(int64_t), "windows");
    record(&g_set, &dl, (uint64_t)epochs * nb, mine);
    DataLoaderState st = dataloader_get_state(&dl);
    uint64_t st3[3] = {st.epoch, st.shard_pos, st.sample_pos};
    uint64_t* all_st = NULL;
    int64_t* all = NULL;
    if (g_rank == 0) {
        all = (int64_t*)malloc_or_die((size_t)g_size * n * sizeof(int64_t), "gathered windows");
        all_st = (uint64_t*)malloc_or_die((size_t)g_size * 3 * sizeof(uint64_t), "gathered states");
    }
    MPI_Gather(mine, (int)n, MPI_INT64_T, all, (int)n, MPI_INT64_T, 0, MPI_COMM_WORLD);
    MPI_Gather(st3, 3, MPI_UINT64_T, all_st, 3, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    int cover_ok = 1, sim_ok = 1, state_ok = 1;
    if (g_rank == 0) {
        cover_ok = verify_epochs(all, g_size, B, T, nb, epochs);
        for (int r = 0; r < g_size; r++) {
            state_ok &= all_st[3 * r] == (uint64_t)epochs && memcmp(all_st, all_st + 3 * r, 3 * sizeof(uint64_t)) == 0;
        }
        // all ranks simulated in this process must read exactly what the separate processes read
        int64_t* sim = (int64_t*)malloc_or_die(n * sizeof(int64_t), "simulated windows");
        for (int r = 0; r < g_size; r++) {
            DataLoader d;
            dataloader_init(&d, g_pattern, B, T, r, g_size, shuffle, 42, 65536);
            record(&g_set, &d, (uint64_t)epochs * nb, sim);
            sim_ok &= memcmp(sim, all + (size_t)r * n, n * sizeof(int64_t)) == 0;
            dataloader_free(&d);
        }
        free(sim);
        free(all);
        free(all_st);
    }
    check_all(cover_ok, "B=%d T=%d shuffle=%d: %d epochs x %llu global batches, each window of each global batch read by exactly one rank",
              B, T, shuffle, epochs, (unsigned long long)nb);
    check_all(sim_ok, "B=%d T=%d shuffle=%d: per-process streams equal the in-process simulation of all ranks", B, T, shuffle);
    check_all(state_ok, "B=%d T=%d shuffle=%d: all ranks end in the same DataLoaderState", B, T, shuffle);
    free(mine);
    dataloader_free(&dl);
}

static void test_zero_ranges(void) {
    size_t totals[] = {0, 1, 7, 15, 16, 17, 100, 1023, 4097, 65537, 1000003, 124439808, 124475904, 1557611200};
    size_t aligns[] = {1, 16, 128};
    int ok = 1, cases = 0;
    uint64_t* ranges = (uint64_t*)malloc_or_die((size_t)g_size * 2 * sizeof(uint64_t), "ranges");
    for (size_t i = 0; i < sizeof(totals) / sizeof(totals[0]); i++) {
        for (int a = 0; a < 3; a++) {
            size_t total = totals[i], align = aligns[a], off, cnt;
            size_t len = zero_shard_len(total, g_size, align);
            zero_shard_range(total, g_size, g_rank, align, &off, &cnt);
            uint64_t mine[2] = {off, cnt};
            MPI_Allgather(mine, 2, MPI_UINT64_T, ranges, 2, MPI_UINT64_T, MPI_COMM_WORLD);
            uint64_t next = 0;
            for (int r = 0; r < g_size; r++) {
                uint64_t o = ranges[2 * r], c = ranges[2 * r + 1];
                ok &= o == (uint64_t)r * len && c <= len && o % align == 0;
                if (c > 0) { ok &= o == next; next = o + c; }
                if (c < len) { ok &= o + c >= total; }
            }
            ok &= next == total && len % align == 0 && (size_t)g_size * len >= total;
            cases++;
        }
    }
    free(ranges);
    check_all(ok, "ZeRO ranges all-gathered: %d (total, align) cases cover [0,total) exactly once", cases);
}

// The protocol described in zero_shard.h, with floats whose sums are exact: reduce-scatter gradients
// into slices, update each slice on its owner, all-gather the parameters back.
static void test_zero_roundtrip(void) {
    size_t total = 12345, align = 16, off, cnt;
    size_t L = zero_shard_len(total, g_size, align), padded = zero_padded_total(total, g_size, align);
    zero_shard_range(total, g_size, g_rank, align, &off, &cnt);
    float* params = (float*)calloc_or_die(padded, sizeof(float), "params");
    float* grads = (float*)calloc_or_die(padded, sizeof(float), "grads");
    float* slice = (float*)malloc_or_die(L * sizeof(float), "grad slice");
    for (size_t i = 0; i < total; i++) {
        params[i] = (float)(i % 1000);
        grads[i] = (float)((g_rank + 1) * (int)(i % 7));
    }
    float rank_sum = (float)(g_size * (g_size + 1) / 2);  // sum over ranks of (rank+1)
    MPI_Reduce_scatter_block(grads, slice, (int)L, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    int ok = 1;
    for (size_t i = 0; i < L; i++) {
        float want = off + i < total ? rank_sum * (float)((off + i) % 7) : 0.0f;
        ok &= slice[i] == want;
    }
    for (size_t i = 0; i < L; i++) { params[off + i] -= slice[i]; }  // whole slice: padding stays 0
    MPI_Allgather(MPI_IN_PLACE, 0, MPI_FLOAT, params, (int)L, MPI_FLOAT, MPI_COMM_WORLD);
    for (size_t i = 0; i < padded; i++) {
        float want = i < total ? (float)(i % 1000) - rank_sum * (float)(i % 7) : 0.0f;
        ok &= params[i] == want;
    }
    check_all(ok, "ZeRO round trip: reduce-scatter of %zu grads into slices of %zu, slice update, all-gather of params", total, L);
    free(params); free(grads); free(slice);
}

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    make_dataset();

    test_coverage(2, 8, 1, 3);
    test_coverage(3, 5, 1, 3);
    test_coverage(1, 64, 1, 3);
    test_coverage(2, 16, 0, 3);
    test_zero_ranges();
    test_zero_roundtrip();

    MPI_Barrier(MPI_COMM_WORLD);  // nobody still reads the shards
    if (g_rank == 0) {
        remove_tree(g_dir);
        printf("%d passed, %d failed\n", n_passed, n_failed);
    }
    MPI_Finalize();
    return n_failed ? 1 : 0;
}
