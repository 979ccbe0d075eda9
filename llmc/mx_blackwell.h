// cuBLASLt's layout of block scale factors, for the native block-scaled GEMMs of Blackwell
// (issue 7: llmc/mx_gemm_cublaslt.cuh; CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0 for MXFP8,
// VEC16_UE4M3 for NVFP4). Plain C99 and nvcc, host and device, like llmc/mx.h.
//
// Our quantized operands keep their scales row-major: an operand (R, K) with blocks along K
// (the GEMM's reduction axis) has scales (R, KB), KB = K / 32 (MXFP8) or K / 16 (NVFP4).
// cuBLASLt wants them in a tiled layout instead. Source: NVIDIA cuBLAS documentation, section
// "1D Block Scaling Factors Layout" (3.1.4.4.2 in the cuBLAS 13 guide,
// https://docs.nvidia.com/cuda/cublas/index.html#d-block-scaling-factors-layout). It says:
//  - scales are grouped in tiles of 128 rows ("outer" index: M for A, N for B; i.e. the rows of
//    each operand in its K-major form) x 4 blocks along K ("inner"), 512 bytes per tile;
//  - inside a tile, (outer, inner) sits at (outer % 32) * 16 + (outer / 32) * 4 + inner, and
//    back: outer = ((offset % 16) / 4) * 32 + offset / 16, inner = offset % 4;
//  - tiles are "arranged in the row-major manner": all K tiles of rows 0..127 first, then those
//    of rows 128..255, ... (its pseudocode, offset = (sf_inner + sf_outer * sf_inner_dim) * 128,
//    gives the same thing when sf_outer counts 128-row tiles, sf_inner is the first block of a
//    tile and sf_inner_dim the padded number of blocks per row);
//  - when the dimensions are not multiples of the tile, whole tiles are still allocated and the
//    out-of-bounds entries filled with zeros; the layout does not change when an operand is
//    transposed; the array must start 16-byte aligned.
// The per-block offset is the same for VEC32 and VEC16 (a tile covers 128 x 128 MXFP8 values or
// 128 x 64 NVFP4 values), as nvmath-python's get_block_scale_offset documentation also says;
// its worked NVFP4 example (M = K = 128) gives (5, 2) -> 82 and (5, 5) -> 593, and its earlier
// get_mxfp8_scale_offset orders tiles as above (K tiles fastest). dev/test_mx_blackwell checks
// these and that the map is a bijection onto the padded array.
//
// Padding: filled with 0, the value the documentation asks for. No stored output should depend
// on it: padded rows belong to outputs outside C, padded K blocks to K positions past the end.
// Also here: NVFP4 weights' 16x16 tile scales as the per-16 row scales the GEMM takes (below).
#ifndef LLMC_MX_BLACKWELL_H
#define LLMC_MX_BLACKWELL_H

#include "mx.h"   // MX_HD, MXFP8_BLOCK, NVFP4_BLOCK (string.h, stdint.h through fp8.h)

#define MX_SF_TILE_ROWS 128   // rows (outer) per tile
#define MX_SF_TILE_KB 4       // K blocks (inner) per tile
#define MX_SF_TILE_BYTES (MX_SF_TILE_ROWS * MX_SF_TILE_KB)
#define MX_SF_PAD 0           // value of the padding entries

static inline MX_HD long mx_sf_row_tiles(long R) { return (R + MX_SF_TILE_ROWS - 1) / MX_SF_TILE_ROWS; }
static inline MX_HD long mx_sf_kb_tiles(long KB) { return (KB + MX_SF_TILE_KB - 1) / MX_SF_TILE_KB; }

// bytes of the swizzled scales of an operand with R rows and KB blocks per row, padding included
static inline MX_HD long mx_sf_bytes(long R, long KB) { return mx_sf_row_tiles(R) * mx_sf_kb_tiles(KB) * MX_SF_TILE_BYTES; }

// Byte offset of the scale of (row r, K block kb) in the swizzled array of an operand with KB
// blocks per row (the row count does not enter: tiles of later rows only come after). Defined
// over the padded range r < 128 * mx_sf_row_tiles(R), kb < 4 * mx_sf_kb_tiles(KB).
static inline MX_HD long mx_sf_offset(long r, long kb, long KB) {
    long tile = (r / MX_SF_TILE_ROWS) * mx_sf_kb_tiles(KB) + kb / MX_SF_TILE_KB;
    long t = r % MX_SF_TILE_ROWS;
    return tile * MX_SF_TILE_BYTES + (t % 32) * 16 + (t / 32) * 4 + kb % MX_SF_TILE_KB;
}

// The inverse: (row, K block) of the byte at offset off (padding included). Four consecutive
// offsets starting at a multiple of 4 are (r, kb..kb+3) with kb a multiple of 4.
static inline MX_HD void mx_sf_position(long off, long KB, long* r, long* kb) {
    long kt = mx_sf_kb_tiles(KB), tile = off / MX_SF_TILE_BYTES, o = off % MX_SF_TILE_BYTES;
    *r = (tile / kt) * MX_SF_TILE_ROWS + ((o % 16) / 4) * 32 + o / 16;
    *kb = (tile % kt) * MX_SF_TILE_KB + o % 4;
}

// Host reference: out (mx_sf_bytes(R, KB)) <- in (R, KB) row-major, padding MX_SF_PAD.
// (The device does the same in mx_sf_swizzle, llmc/mx_gemm_cublaslt.cuh.)
static inline void mx_sf_swizzle_host(uint8_t* out, const uint8_t* in, long R, long KB) {
    memset(out, MX_SF_PAD, (size_t)mx_sf_bytes(R, KB));
    for (long r = 0; r < R; r++) {
        for (long kb = 0; kb < KB; kb++) { out[mx_sf_offset(r, kb, KB)] = in[r * KB + kb]; }
    }
}

// ------------------------------------------------------------------------------------------
// NVFP4 weights: 16x16 tile scales as per-16 row scales
// A weight W (R,C) quantized in 16x16 tiles (mx_nvfp4_quantize_tiles) has scales (R/16, C/16);
// VEC16_UE4M3 has one scale per 16 values of a K-major row, so the GEMMs take them expanded:
//   fprop, W's rows (R, K = C):    scales (R, C/16), row r, block kb -> tile (r/16, kb)
//   dgrad, W^T's rows (C, K = R):  scales (C, R/16), row c, block kb -> tile (kb, c/16)
// with W^T's codes the transposed tile codes (the tiles quantize W and W^T alike, so both
// GEMMs see the same weight, as on the dequantized path).

// the index in W (R,C)'s tile scales (R/16, C/16) of the scale of (row, block kb) of W's rows,
// or with t of W^T's rows
static inline MX_HD long mx_nvfp4_tile_scale_src(long row, long kb, long C, int t) {
    long tc = C / NVFP4_BLOCK;
    return t ? kb * tc + row / NVFP4_BLOCK : (row / NVFP4_BLOCK) * tc + kb;
}

// Host reference: out (R, C/16), or with t (C, R/16), from tiles (R/16, C/16); R, C multiples
// of 16. (The device does the same in nvfp4_tile_scales_expand, llmc/mx_gemm_cublaslt.cuh.)
static inline void mx_nvfp4_tile_scales_expand_host(uint8_t* out, const uint8_t* tiles, long R, long C, int t) {
    long rows = t ? C : R, kbs = (t ? R : C) / NVFP4_BLOCK;
    for (long r = 0; r < rows; r++) {
        for (long kb = 0; kb < kbs; kb++) { out[r * kbs + kb] = tiles[mx_nvfp4_tile_scale_src(r, kb, C, t)]; }
    }
}

#endif // LLMC_MX_BLACKWELL_H
