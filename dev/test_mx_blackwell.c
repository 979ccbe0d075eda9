// CPU tests of llmc/mx_blackwell.h, cuBLASLt's tiled layout of block scale factors (the scales
// of Blackwell's MXFP8/NVFP4 GEMMs, llmc/mx_gemm_cublaslt.cuh). Against references written
// here from NVIDIA's documentation (cuBLAS "1D Block Scaling Factors Layout", nvmath-python's
// block-scale helpers), not from the header's formulas:
//  - documented examples: NVFP4 M = K = 128, (5, 2) -> 82 and (5, 5) -> 593; the cuBLAS guide's
//    offset -> (outer, inner) formula over a whole tile; its tile starts
//    (sf_inner + sf_outer * sf_inner_dim) * 128
//  - the memory order of the guide's figures as nested loops: tiles row-major, inside a tile
//    32 lines of 16 bytes, line j holding rows j, j+32, j+64, j+96 with 4 blocks each
//  - nvmath-python's MXFP8 offset in element coordinates (K tiles of 128 values fastest)
//  - the map is a bijection from the padded (rows, blocks) range onto the padded array, and
//    mx_sf_position is its inverse, for ragged shapes and GPT-2's; each aligned 4-byte word
//    holds 4 blocks of one row (what the device kernel's 4-byte stores rely on)
//  - the padded size, and the host swizzle of whole arrays: every value where the offset says,
//    every other byte the padding value 0
// Self-checks make sure wrong layouts (K tiles slowest, inner strides swapped, the 32-row
// interleave dropped) would be caught.
// NVFP4 weights (16x16 tiles, llmc/mx.h's host quantization) as the GEMMs' operands: the tile
// scales expanded to per-16 row scales of W (fprop) and W^T (dgrad), against the tiles walked
// one by one and against W^T quantized on its own; the transposed packed codes with W^T's
// expanded scales, read as cuBLASLt reads a K-major FP4 row, dequantize to W's dequantization
// transposed, bit for bit. A self-check makes sure W's expansion used for W^T would be caught.
// Prints PASS/FAIL lines and ends with `N passed, N failed`.
// Build: gcc -O2 -Wall -Wextra -o dev/test_mx_blackwell dev/test_mx_blackwell.c -lm
#include <stdlib.h>
#include "../llmc/mx_blackwell.h"
#include "../llmc/rand.h"
#include "test_check.h"

static Rng rng;

// A layout under test: byte offset of (r, kb) in the swizzled scales of an (R, KB) operand.
typedef long (*OffsetFn)(long r, long kb, long R, long KB);

static long offset_under_test(long r, long kb, long R, long KB) { (void)R; return mx_sf_offset(r, kb, KB); }

// wrong on purpose (self-checks): tiles ordered column-major (all row tiles of the first K tile first)
static long offset_kb_tiles_slowest(long r, long kb, long R, long KB) {
    (void)KB;
    long tile = (kb / 4) * mx_sf_row_tiles(R) + r / 128, t = r % 128;
    return tile * 512 + (t % 32) * 16 + (t / 32) * 4 + kb % 4;
}
// wrong on purpose: the row-group and block strides inside a 16-byte line swapped
static long offset_inner_swapped(long r, long kb, long R, long KB) {
    (void)R;
    long t = r % 128;
    return ((r / 128) * mx_sf_kb_tiles(KB) + kb / 4) * 512 + (t % 32) * 16 + (t / 32) + (kb % 4) * 4;
}
// wrong on purpose: rows t and t + 32 share a slot (the 32-row interleave forgotten)
static long offset_no_interleave(long r, long kb, long R, long KB) {
    (void)R;
    long t = r % 128;
    return ((r / 128) * mx_sf_kb_tiles(KB) + kb / 4) * 512 + (t % 32) * 16 + kb % 4;
}

static long pad_rows(long R) { return (R + 127) / 128 * 128; }
static long pad_kb(long KB) { return (KB + 3) / 4 * 4; }

// (R, KB): ragged ones, then GPT-2's. KB = K/32 (MXFP8) or K/16 (NVFP4); rows are tokens
// (B*T), weight rows (3C, 4C, C, the padded vocabulary 50304) or, for wgrad, C / 4C.
static const long shapes[][2] = {
    {1, 1}, {1, 5}, {31, 3}, {127, 4}, {128, 4}, {129, 4}, {128, 5}, {200, 7}, {257, 9}, {384, 12},
    {768, 24}, {2304, 48}, {3072, 96}, {1600, 50}, {6400, 100}, {50304, 24}, {4096, 128}, {8192, 96},
};
#define NSHAPES ((int)(sizeof(shapes) / sizeof(shapes[0])))

// ------------------------------------------------------------------------------------------
// documented examples

// problems of fn against nvmath's worked NVFP4 example and single offsets that follow from the
// cuBLAS guide's in-tile formula (row 1 at 16, row 32 at 4, the last slot of a tile)
static int documented_examples(OffsetFn fn, int verbose) {
    const struct { long r, kb, R, KB, off; } ex[] = {
        {5, 2, 128, 8, 82}, {5, 5, 128, 8, 593},        // nvmath get_block_scale_offset, NVFP4 M = K = 128
        {0, 0, 128, 4, 0}, {1, 0, 128, 4, 16}, {32, 0, 128, 4, 4}, {0, 3, 128, 4, 3}, {127, 3, 128, 4, 511},
        {33, 1, 128, 4, 21}, {128, 0, 256, 4, 512},     // second row tile after the first
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
        long got = fn(ex[i].r, ex[i].kb, ex[i].R, ex[i].KB);
        if (got != ex[i].off) {
            bad++;
            if (verbose) { printf("  (%ld, %ld) of (%ld, %ld): offset %ld, documented %ld\n", ex[i].r, ex[i].kb, ex[i].R, ex[i].KB, got, ex[i].off); }
        }
    }
    return bad;
}

static void test_documented(void) {
    check(documented_examples(offset_under_test, 1) == 0,
          "documented offsets: nvmath NVFP4 M=K=128 (5,2)->82, (5,5)->593; cuBLAS in-tile examples");

    // the cuBLAS guide's offset -> indices over every byte of a tile, both directions
    long bad = 0;
    for (long o = 0; o < 512; o++) {
        long outer = ((o % 16) / 4) * 32 + o / 16, inner = o % 4, r, kb;
        mx_sf_position(o, 4, &r, &kb);
        if (r != outer || kb != inner || mx_sf_offset(outer, inner, 4) != o) {
            if (bad++ < 3) { printf("  offset %ld: guide (%ld, %ld), position (%ld, %ld), offset back %ld\n", o, outer, inner, r, kb, mx_sf_offset(outer, inner, 4)); }
        }
    }
    check(bad == 0, "every byte of a tile: cuBLAS guide's offset->(outer, inner) and back (%ld bad)", bad);

    // tile starts: (sf_inner + sf_outer * sf_inner_dim) * 128, sf_outer in 128-row tiles
    bad = 0;
    for (int s = 0; s < NSHAPES; s++) {
        long R = shapes[s][0], KB = shapes[s][1];
        for (long to = 0; to * 128 < R; to++) {
            for (long ki = 0; ki < KB; ki += 4) {
                long want = (ki + to * pad_kb(KB)) * 128, got = mx_sf_offset(to * 128, ki, KB);
                if (got != want && bad++ < 3) { printf("  (%ld, %ld) tile (%ld, %ld): starts at %ld, guide %ld\n", R, KB, to, ki, got, want); }
            }
        }
    }
    check(bad == 0, "tile starts = cuBLAS guide's (sf_inner + sf_outer * sf_inner_dim) * 128, all shapes (%ld bad)", bad);
}

// ------------------------------------------------------------------------------------------
// the memory order as nested loops, and nvmath's MXFP8 formula

// problems of fn against the figures' order: counter c walks the padded array in memory order
static long figure_order_mismatches(OffsetFn fn, long R, long KB, int verbose) {
    long c = 0, bad = 0;
    for (long tr = 0; tr < pad_rows(R) / 128; tr++) {
        for (long tk = 0; tk < pad_kb(KB) / 4; tk++) {
            for (long j = 0; j < 32; j++) {             // a 16-byte line of the tile
                for (long i = 0; i < 4; i++) {          // rows j, j+32, j+64, j+96
                    for (long d = 0; d < 4; d++, c++) { // 4 blocks of one row
                        long r = tr * 128 + i * 32 + j, kb = tk * 4 + d, got = fn(r, kb, R, KB);
                        if (got != c && bad++ < 3 && verbose) { printf("  (%ld, %ld) of (%ld, %ld): offset %ld, memory order %ld\n", r, kb, R, KB, got, c); }
                    }
                }
            }
        }
    }
    return bad;
}

// nvmath-python's get_mxfp8_scale_offset for element (m, k) of an (M, K) K-major operand,
// M and K multiples of 128: tile = (K / 128) * (m / 128) + k / 128, then the in-tile rule on
// (m % 128, (k % 128) / 32)
static long nvmath_mxfp8_offset(long m, long k, long K) {
    long tile = (K / 128) * (m / 128) + k / 128, mm = m % 128, kk = (k % 128) / 32;
    return tile * 512 + (mm % 32) * 16 + (mm / 32) * 4 + kk;
}

static long nvmath_mismatches(OffsetFn fn, long M, long K, int verbose) {
    long bad = 0;
    for (long m = 0; m < M; m++) {
        for (long k = 0; k < K; k++) {
            long want = nvmath_mxfp8_offset(m, k, K), got = fn(m, k / 32, M, K / 32);
            if (got != want && bad++ < 3 && verbose) { printf("  element (%ld, %ld) of (%ld, %ld): offset %ld, nvmath %ld\n", m, k, M, K, got, want); }
        }
    }
    return bad;
}

static void test_memory_order(void) {
    long bad = 0;
    for (int s = 0; s < NSHAPES; s++) { bad += figure_order_mismatches(offset_under_test, shapes[s][0], shapes[s][1], 1); }
    check(bad == 0, "memory order of the guide's figures (row-major tiles of 32 lines x 16 bytes), %d shapes (%ld bad)", NSHAPES, bad);
    const long mk[][2] = {{128, 128}, {256, 384}, {384, 256}, {512, 768}};
    bad = 0;
    for (int i = 0; i < 4; i++) { bad += nvmath_mismatches(offset_under_test, mk[i][0], mk[i][1], 1); }
    check(bad == 0, "nvmath-python's MXFP8 element offsets, (M,K) = (128,128) (256,384) (384,256) (512,768) (%ld bad)", bad);
}

// ------------------------------------------------------------------------------------------
// bijection, inverse, padded size

// problems of fn on (R, KB): offsets of the padded range outside the array, bytes hit other
// than once, and (for the real layout) mx_sf_position not inverting it
static long bijection_problems(OffsetFn fn, long R, long KB, int check_inverse, int verbose) {
    long n = mx_sf_bytes(R, KB), bad = 0;
    unsigned char* hits = (unsigned char*)calloc((size_t)n, 1);
    for (long r = 0; r < pad_rows(R); r++) {
        for (long kb = 0; kb < pad_kb(KB); kb++) {
            long o = fn(r, kb, R, KB);
            if (o < 0 || o >= n) {
                if (bad++ < 3 && verbose) { printf("  (%ld, %ld) of (%ld, %ld): offset %ld outside [0, %ld)\n", r, kb, R, KB, o, n); }
                continue;
            }
            if (hits[o] < 255) { hits[o]++; }
            long rr, kk;
            mx_sf_position(o, KB, &rr, &kk);
            if (check_inverse && (rr != r || kk != kb) && bad++ < 3 && verbose) {
                printf("  (%ld, %ld) of (%ld, %ld): offset %ld, position back (%ld, %ld)\n", r, kb, R, KB, o, rr, kk);
            }
        }
    }
    for (long o = 0; o < n; o++) {
        if (hits[o] != 1 && bad++ < 3 && verbose) { printf("  (%ld, %ld): byte %ld hit %d times\n", R, KB, o, hits[o]); }
    }
    free(hits);
    return bad;
}

static void test_bijection(void) {
    for (int s = 0; s < NSHAPES; s++) {
        long R = shapes[s][0], KB = shapes[s][1];
        long bad = bijection_problems(offset_under_test, R, KB, 1, 1);
        // the other direction: every byte's position lies in the padded range and maps back
        long back = 0;
        for (long o = 0; o < mx_sf_bytes(R, KB); o++) {
            long r, kb;
            mx_sf_position(o, KB, &r, &kb);
            if ((r >= pad_rows(R) || kb >= pad_kb(KB) || mx_sf_offset(r, kb, KB) != o) && back++ < 3) {
                printf("  (%ld, %ld): byte %ld at (%ld, %ld), offset back %ld\n", R, KB, o, r, kb, mx_sf_offset(r, kb, KB));
            }
        }
        check(bad == 0 && back == 0, "(R, KB) = (%ld, %ld): bijection of the padded (%ld, %ld) onto %ld bytes, mx_sf_position its inverse (%ld + %ld bad)",
              R, KB, pad_rows(R), pad_kb(KB), mx_sf_bytes(R, KB), bad, back);
    }
}

// What the device kernel relies on (one thread per 4 output bytes): bytes 4w..4w+3 are
// (r, kb..kb+3) of one row, kb a multiple of 4.
static void test_words(void) {
    long bad = 0;
    for (int s = 0; s < NSHAPES; s++) {
        long KB = shapes[s][1];
        for (long w = 0; w < mx_sf_bytes(shapes[s][0], KB) / 4; w++) {
            long r0, kb0;
            mx_sf_position(4 * w, KB, &r0, &kb0);
            for (long j = 0; j < 4; j++) {
                long r, kb;
                mx_sf_position(4 * w + j, KB, &r, &kb);
                if ((r != r0 || kb != kb0 + j || kb0 % 4 != 0) && bad++ < 3) {
                    printf("  (%ld, %ld): byte %ld at (%ld, %ld), word start (%ld, %ld)\n", shapes[s][0], KB, 4 * w + j, r, kb, r0, kb0);
                }
            }
        }
    }
    check(bad == 0, "every aligned 4-byte word holds blocks kb..kb+3 (kb %% 4 == 0) of one row, %d shapes (%ld bad)", NSHAPES, bad);
}

static void test_padded_size(void) {
    long bad = 0;
    for (int s = 0; s < NSHAPES; s++) {
        long R = shapes[s][0], KB = shapes[s][1];
        if (mx_sf_bytes(R, KB) != pad_rows(R) * pad_kb(KB) && bad++ < 3) {
            printf("  (%ld, %ld): %ld bytes, want %ld\n", R, KB, mx_sf_bytes(R, KB), pad_rows(R) * pad_kb(KB));
        }
    }
    // by hand: one tile; a row or a block past it doubles; GPT-2 d12 tokens (no padding); d48's
    // K = 1600 in MXFP8 (50 -> 52 blocks) over 1600 rows (-> 1664)
    int ok = mx_sf_bytes(1, 1) == 512 && mx_sf_bytes(128, 4) == 512 && mx_sf_bytes(129, 4) == 1024 &&
             mx_sf_bytes(128, 5) == 1024 && mx_sf_bytes(4096, 24) == 4096 * 24 && mx_sf_bytes(1600, 50) == 1664 * 52;
    check(bad == 0 && ok, "padded size = ceil(R/128)*128 x ceil(KB/4)*4 over %d shapes, and by hand (%ld bad)", NSHAPES, bad);
}

// ------------------------------------------------------------------------------------------
// host swizzle of whole arrays

static void test_swizzle(void) {
    for (int s = 0; s < NSHAPES; s++) {
        long R = shapes[s][0], KB = shapes[s][1], n = mx_sf_bytes(R, KB);
        uint8_t* in = (uint8_t*)malloc((size_t)(R * KB));
        uint8_t* out = (uint8_t*)malloc((size_t)n);
        for (long i = 0; i < R * KB; i++) { in[i] = (uint8_t)(1 + rng_u64(&rng) % 255); }   // never the padding value
        memset(out, 0xA5, (size_t)n);   // stale bytes the swizzle must overwrite
        mx_sf_swizzle_host(out, in, R, KB);
        long misplaced = 0, pad_bad = 0, pads = 0;
        for (long r = 0; r < R; r++) {
            for (long kb = 0; kb < KB; kb++) {
                long o = mx_sf_offset(r, kb, KB);
                if (out[o] != in[r * KB + kb] && misplaced++ < 3) {
                    printf("  (%ld, %ld) of (%ld, %ld): byte %ld = 0x%02x, want 0x%02x\n", r, kb, R, KB, o, out[o], in[r * KB + kb]);
                }
            }
        }
        for (long o = 0; o < n; o++) {   // bytes of the padded range outside (R, KB)
            long r, kb;
            mx_sf_position(o, KB, &r, &kb);
            if (r < R && kb < KB) { continue; }
            pads++;
            if (out[o] != MX_SF_PAD && pad_bad++ < 3) { printf("  (%ld, %ld): padding byte %ld = 0x%02x\n", R, KB, o, out[o]); }
        }
        check(misplaced == 0 && pad_bad == 0 && pads == n - R * KB,
              "host swizzle (%ld, %ld): all %ld values where the offset says (%ld misplaced), %ld padding bytes 0 (%ld not)",
              R, KB, R * KB, misplaced, pads, pad_bad);
        free(in);
        free(out);
    }
}

// ------------------------------------------------------------------------------------------
// self-checks: the references above catch wrong layouts

static void test_self_checks(void) {
    long a = figure_order_mismatches(offset_kb_tiles_slowest, 256, 8, 0) + nvmath_mismatches(offset_kb_tiles_slowest, 256, 256, 0);
    check(a > 0 && documented_examples(offset_kb_tiles_slowest, 0) == 0,
          "self-check: K tiles slowest is caught by the figure order and nvmath (%ld mismatches), not by the single-row-tile examples", a);
    long b = figure_order_mismatches(offset_inner_swapped, 128, 4, 0);
    check(b > 0 && documented_examples(offset_inner_swapped, 0) > 0,
          "self-check: swapped inner strides are caught by the examples and the figure order (%ld mismatches)", b);
    long c = bijection_problems(offset_no_interleave, 128, 4, 0, 0);
    check(c > 0, "self-check: a layout without the 32-row interleave is caught as no bijection (%ld problems)", c);
}

// ------------------------------------------------------------------------------------------
// NVFP4 weights: 16x16 tile scales expanded to the GEMMs' row scales

// W (R,C) with a different magnitude per tile (2^-4 .. 2^4), so that tile scales differ and a
// scale taken from the wrong tile shows in the dequantization
static float* tiled_weight(int R, int C) {
    float* x = (float*)malloc((size_t)R * C * sizeof(float));
    for (int r = 0; r < R; r++) {
        for (int c = 0; c < C; c++) { x[(long)r * C + c] = (float)(rng_normal(&rng) * ldexp(1.0, (r / 16 + 3 * (c / 16)) % 9 - 4)); }
    }
    return x;
}

static void test_tile_expansion_examples(void) {
    // W (48,96): tiles (3,6). Row 17, block 4 of W's rows -> tile (1,4); row 40, block 2 of
    // W^T's (96,3) rows -> tile (2, 40/16 = 2)
    int ok = mx_nvfp4_tile_scale_src(17, 4, 96, 0) == 1 * 6 + 4 && mx_nvfp4_tile_scale_src(40, 2, 96, 1) == 2 * 6 + 2 &&
             mx_nvfp4_tile_scale_src(15, 0, 96, 0) == 0 && mx_nvfp4_tile_scale_src(16, 0, 96, 0) == 6 &&
             mx_nvfp4_tile_scale_src(95, 0, 96, 1) == 5 && mx_nvfp4_tile_scale_src(0, 2, 96, 1) == 12;
    check(ok, "tile scale of expanded (row, block) by hand, W (48,96): rows (17,4)->(1,4), (15,0)->(0,0), (16,0)->(1,0); "
              "W^T rows (40,2)->(2,2), (95,0)->(0,5), (0,2)->(2,0)");
}

// wrong_t: use W's row expansion for W^T (self-check), which only fits square weights
static long tile_expansion_problems(int R, int C, int wrong_t, int verbose) {
    long n = (long)R * C, TR = R / 16, TC = C / 16, bad = 0;
    float* x = tiled_weight(R, C);                               // (R,C)
    float* xt = (float*)malloc((size_t)n * sizeof(float));      // (C,R)
    for (long r = 0; r < R; r++) { for (long c = 0; c < C; c++) { xt[c * R + r] = x[r * C + c]; } }
    float st = mx_nvfp4_tensor_scale(mx_absmax(x, (int)n));
    uint8_t *q = (uint8_t*)malloc(n), *qt = (uint8_t*)malloc(n);                       // (R,C), (C,R): a code per byte
    uint8_t *p = (uint8_t*)malloc(n / 2), *pt = (uint8_t*)malloc(n / 2);               // (R,C/2), (C,R/2): packed
    uint8_t *tiles = (uint8_t*)malloc(TR * TC), *tiles_t = (uint8_t*)malloc(TR * TC);  // (R/16,C/16), (C/16,R/16)
    uint8_t *er = (uint8_t*)malloc(n / 16);                                            // (R,C/16)
    uint8_t *et = (uint8_t*)malloc(n / 16), *et2 = (uint8_t*)malloc(n / 16);           // (C,R/16)
    mx_nvfp4_quantize_tiles(q, tiles, x, R, C, st);
    mx_nvfp4_quantize_tiles(qt, tiles_t, xt, C, R, st);   // W^T on its own
    mx_nvfp4_tile_scales_expand_host(er, tiles, R, C, 0);   // W's rows (R, C/16)
    mx_nvfp4_tile_scales_expand_host(et, tiles, R, C, !wrong_t);   // W^T's rows (C, R/16)
    mx_nvfp4_tile_scales_expand_host(et2, tiles_t, C, R, 0);
    // the tiles one by one: tile (bi, bj) is block bj of W's rows 16bi.., block bi of W^T's rows 16bj..
    for (long bi = 0; bi < TR; bi++) {
        for (long bj = 0; bj < TC; bj++) {
            uint8_t sc = tiles[bi * TC + bj];
            for (long i = 0; i < 16; i++) {
                int e = er[(bi * 16 + i) * TC + bj] != sc, f = et[(bj * 16 + i) * TR + bi] != sc;
                if ((e || f) && bad++ < 3 && verbose) { printf("  (%d,%d) tile (%ld,%ld) line %ld: W rows %d, W^T rows %d wrong\n", R, C, bi, bj, i, e, f); }
            }
        }
    }
    // W^T quantized on its own: the transposed codes, and its row expansion equals W's transposed one
    for (long r = 0; r < R; r++) {
        for (long c = 0; c < C; c++) {
            if (qt[c * R + r] != q[r * C + c] && bad++ < 3 && verbose) { printf("  (%d,%d): W^T's code (%ld,%ld) differs\n", R, C, c, r); }
        }
    }
    for (long i = 0; i < n / 16; i++) {
        if (et2[i] != et[i] && bad++ < 3 && verbose) { printf("  (%d,%d): W^T's own expanded scale %ld differs\n", R, C, i); }
    }
    // the operands as the GEMMs read them: W's packed rows with er (fprop), W^T's with et
    // (dgrad): element k of row j in the low (k even) or high nibble of byte (j*K + k)/2
    mx_e2m1_pack(p, q, n);
    mx_e2m1_pack(pt, qt, n);
    for (long r = 0; r < R; r++) {
        for (long c = 0; c < C; c++) {
            float want = mx_nvfp4_dequant(q[r * C + c], tiles[(r / 16) * TC + c / 16], st);   // W's tile dequantization
            uint8_t a = (p[(r * C + c) / 2] >> (4 * (c & 1))) & 0xF, b = (pt[(c * R + r) / 2] >> (4 * (r & 1))) & 0xF;
            float fw = mx_nvfp4_dequant(a, er[r * TC + c / 16], st), fwt = mx_nvfp4_dequant(b, et[c * TR + r / 16], st);
            if ((fp8_float_bits(fw) != fp8_float_bits(want) || fp8_float_bits(fwt) != fp8_float_bits(want)) && bad++ < 3 && verbose) {
                printf("  (%d,%d): W (%ld,%ld) = %g, from W's rows %g, from W^T's rows %g\n", R, C, r, c, want, fw, fwt);
            }
        }
    }
    free(x); free(xt); free(q); free(qt); free(p); free(pt); free(tiles); free(tiles_t); free(er); free(et); free(et2);
    return bad;
}

static void test_tile_expansion(void) {
    test_tile_expansion_examples();
    // (OC, IC): square, non-square both ways, GPT-2 d12's qkv, fc and fcproj
    const int shapes_w[][2] = {{16, 16}, {48, 96}, {96, 48}, {32, 160}, {64, 64}, {2304, 768}, {3072, 768}, {768, 3072}};
    for (size_t i = 0; i < sizeof(shapes_w) / sizeof(shapes_w[0]); i++) {
        int R = shapes_w[i][0], C = shapes_w[i][1];
        long bad = tile_expansion_problems(R, C, 0, 1);
        check(bad == 0, "NVFP4 weight (%d,%d): tile scales expanded to W's rows (%d,%d) and W^T's (%d,%d) = the tiles one by one and "
              "W^T's own quantization; packed W and W^T codes with them dequantize to W's dequantization, bit for bit (%ld bad)",
              R, C, R, C / 16, C, R / 16, bad);
    }
    long w = tile_expansion_problems(64, 64, 1, 0);
    check(w > 0, "self-check: W's row expansion used for W^T (64,64) is caught (%ld problems)", w);
}

int main(void) {
    rng_seed(&rng, 0xb1ac3e11ull);
    test_documented();
    test_memory_order();
    test_bijection();
    test_words();
    test_padded_size();
    test_swizzle();
    test_self_checks();
    test_tile_expansion();
    return check_summary();
}
