/* mmspcl.h - MM-SPCL multimodal emotion recognition in conversation, in one C header.
   Public domain / MIT dual licence (see LICENSE at the end of this file).

   WHAT
     Inference for MM-SPCL (RoBERTa text encoder + SPCL prompt, CLIP-ViT image tower, cross-modal
     pruning, fusion heads, MSVE voting, prototype classification) on plain CPUs and embedded
     boards, and speech features from WAV files (Kaldi fbank / MFCC, Praat-style F0, eGeMAPS:
     section 14). libc (with POSIX threads where there are) and libm only; OpenMP optional
     (-fopenmp; mmspcl_train.h's loops, or the kernels' threads where there is no pthreads). The training side lives in
     mmspcl_train.h.

   HOW TO INCLUDE
     Everywhere you need the declarations:      #include "mmspcl.h"
     In exactly one C or C++ file:              #define MMSPCL_IMPLEMENTATION
                                                #include "mmspcl.h"

   CONTENTS
     Every numbered title heads its section twice: over the declarations (in the include guard)
     and over the implementation (after IMPLEMENTATION), in the same order; a search for
     "6. Kernels" finds both. Subsections (N.M) divide long sections; where the declarations
     group the same way they carry the same subsection titles ("10.4 PNG": the format's notes
     over the declarations and its decoder), the others are in the implementation only.
      1. Status and errors
      2. Whole files and mmspcl_free
      3. Data types and tensors
           3.1 Half precision and bfloat16; 3.2 Data types, panels and quantization blocks
      4. Arena
      5. Weight files
           5.1 Reader; 5.2 Writer
      6. Kernels (the table of code paths per operation is over the declarations)
           6.1 Definitions; 6.2 SIMD layout and x86 CPU features;
           6.3 x86 AVX-512: linear, f32 / f16 / bf16 weights; 6.4 x86 AVX-512: linear, f32 panels;
           6.5 x86: linear, q8_0 / q4_0 weights; 6.6 x86 AVX2: linear, float weights;
           6.7 x86: elementwise functions and attention; 6.8 ARM NEON: linear;
           6.9 The public kernels: choice of path
      7. Byte-level BPE tokenizer
           7.1 Unicode; 7.2 Hashing; 7.3 Loading; 7.4 Encoding; 7.5 Decoding and lookups
      8. RoBERTa encoder
      9. SPCL prompt and text embedding z_t
     10. Images
           10.1 PPM / PGM; 10.2 BMP; 10.3 Inflate; 10.4 PNG; 10.5 Format detection and loading;
           10.6 Pillow-exact bicubic resampling; 10.7 CLIP preprocessing
     11. CLIP vision tower
           11.1 Loading; 11.2 Forward; 11.3 Images
     12. MM-SPCL heads
           12.1 Small layers; 12.2 SPCL score; 12.3 Cross-modal pruning; 12.4 Fusion (a);
           12.5 Fusion (b) MulT and (c) MBT; 12.6 MSVE; 12.7 Prototypes and metrics; 12.8 Loading;
           12.9 Sequence MulT
     13. Classifier
           13.1 Labels and the n-gram view; 13.2 The classifier file; 13.3 Views; 13.4 Heads;
           13.5 Dialogues as text; 13.6 Media heads
     14. Audio
           14.1 WAV files; 14.2 Resampling; 14.3 Kaldi filterbank and MFCC; 14.4 F0 and voicing;
           14.5 eGeMAPS; 14.6 Encoding a WAV stream
     15. Threads (the library's thread pool; mmspcl_set_threads)
     Between the declarations and the implementation: INTERNALS SHARED BY BOTH IMPLEMENTATIONS
     (OpenMP and allocator macros), which mmspcl_train.h's implementation uses too.

   CONFIG MACROS (define before the implementation include)
     MMSPCL_MALLOC(sz), MMSPCL_REALLOC(p,sz), MMSPCL_FREE(p)   allocator (default: libc)
     MMSPCL_NO_SIMD       scalar kernels only (the definition every SIMD path is tested against)
     MMSPCL_NO_MMAP       never mmap; mmspcl_weights_open reads the file into one buffer
     MMSPCL_NO_STDIO      no file access at all (firmware): only mmspcl_weights_from_memory
     MMSPCL_ASSERT(x)     internal invariant checks (default: none). Bad input never asserts.
     MMSPCL_NO_THREADS    no thread pool: every kernel on the calling thread (OpenMP if -fopenmp)
     MMSPCL_SPIN          pause instructions an idle pool thread spins before sleeping (4000)

   ERRORS
     Every call that can fail returns mmspcl_status (MMSPCL_OK == 0) and, when given a non-NULL
     mmspcl_error *, writes a message naming the file, tensor and byte offset that was wrong.
     The library never prints, exits or aborts. There is no global mutable state but one cache:
     on x86, the CPU's features, read on first use and kept (see 6.2); and the thread pool with
     its thread count (15).

   API IN BRIEF
     Weight files (format: docs/FORMAT.md)
       mmspcl_weights_open(&w, path, &err)          mmap (POSIX) or read into one buffer
       mmspcl_weights_read(&w, path, &err)          always read into one buffer
       mmspcl_weights_from_memory(&w, buf, n, &err) use bytes in memory in place (zero copy)
       mmspcl_weights_find(w, "encoder.layer.0.attention.self.query.weight") -> tensor view
       mmspcl_weights_get_int / _get_float / _get_str / _get_str_array   hyper-parameters
       mmspcl_weights_free(w)
       mmspcl_writer_*                              build and save a weight file (atomic rename)
     Tensors and numbers
       mmspcl_tensor (dtype, ndim, ne[4], data), mmspcl_dtype_row_size, mmspcl_quantize_row,
       mmspcl_dequantize_row, mmspcl_fp16_to_fp32 / fp32_to_fp16, bf16 likewise
       Linear weights: 2-D [out, in] of any dtype, or f32 in panels of 16 rows {out/16, in, 16}
       (mmspcl_tensor_is_panels, mmspcl_matrix_rows / _cols / _row, mmspcl_pack_panels,
       mmspcl_weights_expect_matrix): the same results, faster AVX-512 kernels for few rows
       mmspcl_arena: one block for activations, sized once
     (model sections below list their own API)

   CHANGELOG
     0.1  weight file format v1, tensors, quantization blocks, arena, reader and writer
     0.2  f32 Linear weights in panels of 16 rows (mmspcl-convert --panels; format unchanged:
          a 3-D f32 tensor), read in place by an AVX-512 kernel that broadcasts rows of x
     0.3  bf16 weights compute bf16 x bf16 -> f32 (AVX512-BF16 vdpbf16ps, its emulation on AVX2,
          the scalar definition); mmspcl-convert --type bf16
     0.4  the integer path quantizes activations with power-of-two block scales (6.1: d_x * d_w is
          exact, so the AVX512-VNNI kernel forms it with an integer add); that kernel puts the
          outputs in the lanes; mmspcl_tensor_pack / mmspcl_tensor.packed: Linear weights repacked
          once at load (the RoBERTa and CLIP loaders do it), the file format unchanged
*/
#ifndef MMSPCL_H
#define MMSPCL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MMSPCL_VERSION "0.2.0"

/* ---------------------------------------------------------------------------------------------
   1. Status and errors
   ------------------------------------------------------------------------------------------ */
typedef enum mmspcl_status {
    MMSPCL_OK = 0,
    MMSPCL_ERR_IO,          /* file could not be opened, read or written */
    MMSPCL_ERR_FORMAT,      /* bytes do not follow the format */
    MMSPCL_ERR_NOMEM,       /* an allocation failed */
    MMSPCL_ERR_ARG,         /* the caller passed an invalid argument */
    MMSPCL_ERR_UNSUPPORTED, /* valid input this build cannot handle */
    MMSPCL_ERR_NOT_FOUND    /* a named tensor or key is missing */
} mmspcl_status;

typedef struct mmspcl_error {
    mmspcl_status status;
    char msg[256];
} mmspcl_error;

const char *mmspcl_status_name(mmspcl_status st);
/* Fills err (when not NULL) with st and a printf-style message; returns st. For code built on
   the library (mmspcl_train.h, tools) that reports errors the same way. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
mmspcl_status mmspcl_error_set(mmspcl_error *err, mmspcl_status st, const char *fmt, ...);

/* ---------------------------------------------------------------------------------------------
   2. Whole files and mmspcl_free
   ------------------------------------------------------------------------------------------ */
/* Reads a whole file (path "-": standard input) into a new buffer with a NUL after the last
   byte (text parsers may rely on it); *size is the byte count without it. Files over max_bytes
   are refused before anything is allocated (MMSPCL_ERR_UNSUPPORTED); a folder, a missing file or
   a short read is MMSPCL_ERR_IO naming the path. Free the buffer with mmspcl_free. Not in
   MMSPCL_NO_STDIO builds. */
mmspcl_status mmspcl_read_file(const char *path, size_t max_bytes, unsigned char **out, size_t *size,
                               mmspcl_error *err);
/* Frees memory the library allocated for the caller (mmspcl_read_file, mmspcl_spcl_clean, ...)
   with the library's allocator (MMSPCL_FREE). */
void mmspcl_free(void *p);

/* ---------------------------------------------------------------------------------------------
   3. Data types and tensors
   Quantized types hold blocks of 32 consecutive values along the innermost dimension
   (layout: docs/FORMAT.md, after ggml's q8_0 / q4_0):
     q8_0: { uint16 f16 scale d; int8 q[32] }            34 bytes, x = d * q
     q4_0: { uint16 f16 scale d; uint8 q[16] }           18 bytes, x = d * (nibble - 8);
           byte j holds value j in its low nibble and value j+16 in its high nibble.
   k-types, super-blocks of 256 values = 8 sub-blocks of 32, each with its own scale and zero point
   (docs/FORMAT.md "k-types"): x = f16 d * sc[j] * (q - z[j]) for a value of sub-block j, sc a
   6-bit code; q4_k 140 bytes (4.375 bits per value), q5_k 173 bytes (5.41 bits per value).
   ------------------------------------------------------------------------------------------ */
typedef enum mmspcl_dtype {
    MMSPCL_F32 = 0,
    MMSPCL_F16 = 1,
    MMSPCL_BF16 = 2,
    MMSPCL_Q8_0 = 3,
    MMSPCL_Q4_0 = 4,
    MMSPCL_I32 = 5,
    MMSPCL_Q4_K = 6,
    MMSPCL_Q5_K = 7,
    MMSPCL_DTYPE_COUNT
} mmspcl_dtype;

#define MMSPCL_QBLOCK 32
#define MMSPCL_KBLOCK 256     /* values per k-type super-block */
#define MMSPCL_Q4_K_BYTES 140
#define MMSPCL_Q5_K_BYTES 173
#define MMSPCL_MAX_DIMS 4

typedef struct mmspcl_block_q8_0 { uint16_t d; int8_t q[MMSPCL_QBLOCK]; } mmspcl_block_q8_0;
typedef struct mmspcl_block_q4_0 { uint16_t d; uint8_t q[MMSPCL_QBLOCK / 2]; } mmspcl_block_q4_0;

/* A tensor is a contiguous row-major view: ne[0] is the OUTERMOST dimension, ne[ndim-1] the
   innermost (PyTorch order). A Linear weight [out, in] has ne = {out, in}. */
typedef struct mmspcl_tensor {
    const char *name;
    mmspcl_dtype dtype;
    int ndim;
    int64_t ne[MMSPCL_MAX_DIMS];
    const void *data;
    size_t nbytes;
    /* NULL, or this weight repacked once for the running CPU's integer kernel (mmspcl_tensor_pack:
       q8_0 / q4_0 / q4_k / q5_k Linear weights on AVX512-VNNI); the kernels then read it instead
       of data, with the same results. A copy of the struct shares it. */
    const void *packed;
} mmspcl_tensor;

const char *mmspcl_dtype_name(mmspcl_dtype t);
int mmspcl_dtype_from_name(const char *name, mmspcl_dtype *out); /* "f32","q8_0",...: 0 ok */
/* Bytes used by n consecutive values (n must be a multiple of 32 for quantized types);
   0 when n is not valid for the type. */
size_t mmspcl_dtype_row_size(mmspcl_dtype t, int64_t n);
int64_t mmspcl_tensor_nelements(const mmspcl_tensor *t);

float mmspcl_fp16_to_fp32(uint16_t h);
uint16_t mmspcl_fp32_to_fp16(float f);      /* round to nearest even, as PyTorch's .half() */
float mmspcl_bf16_to_fp32(uint16_t h);
uint16_t mmspcl_fp32_to_bf16(float f);      /* round to nearest even, as PyTorch's .bfloat16() */

/* A Linear weight [out, in] (the matrices mmspcl_linear multiplies) is a 2-D tensor of any
   dtype, or an f32 weight stored in PANELS of 16 rows: a 3-D f32 tensor {out / 16, in, 16} whose
   element [p][k][j] is W[16 p + j][k] (mmspcl-convert --panels). The 16 outputs of a panel at one
   k are then one vector, which the SIMD kernels read in place with any number of rows at full
   width; results are the same bits as with the 2-D form. Everything that takes a Linear weight
   (mmspcl_linear, the model loaders) takes either form. */
#define MMSPCL_PANEL 16
int mmspcl_tensor_is_panels(const mmspcl_tensor *t);
int64_t mmspcl_matrix_rows(const mmspcl_tensor *W);   /* out (ne[0], or ne[0] * 16 for panels) */
int64_t mmspcl_matrix_cols(const mmspcl_tensor *W);   /* in (ne[1]) */
/* Row r (output r) of a matrix of either form as floats: cols values. */
mmspcl_status mmspcl_matrix_row(const mmspcl_tensor *W, int64_t r, float *dst);
/* rows x cols row-major floats (rows a multiple of 16) into panels (rows * cols floats). */
mmspcl_status mmspcl_pack_panels(const float *src, int64_t rows, int64_t cols, float *dst);

/* Convert n floats to dtype t (n a multiple of 32 for quantized types). */
mmspcl_status mmspcl_quantize_row(mmspcl_dtype t, const float *src, void *dst, int64_t n);
/* Convert n values of dtype t to floats. */
mmspcl_status mmspcl_dequantize_row(mmspcl_dtype t, const void *src, float *dst, int64_t n);

/* ---------------------------------------------------------------------------------------------
   4. Arena
   One block of memory, carved into 64-byte aligned pieces; reset between forwards.
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_arena {
    unsigned char *base;
    size_t size, used, peak;
} mmspcl_arena;

mmspcl_status mmspcl_arena_init(mmspcl_arena *a, size_t size, mmspcl_error *err);
void *mmspcl_arena_alloc(mmspcl_arena *a, size_t bytes); /* NULL when full */
void mmspcl_arena_reset(mmspcl_arena *a);
void mmspcl_arena_free(mmspcl_arena *a);

/* ---------------------------------------------------------------------------------------------
   5. Weight files
   The format: docs/FORMAT.md.
   ------------------------------------------------------------------------------------------ */
/* ---- 5.1 Reader -------------------------------------------------------------------------- */
typedef enum mmspcl_kv_type {
    MMSPCL_KV_INT = 1,       /* int64 */
    MMSPCL_KV_FLOAT = 2,     /* float64 */
    MMSPCL_KV_STR = 3,       /* UTF-8 bytes */
    MMSPCL_KV_STR_ARRAY = 4  /* list of UTF-8 strings (tokenizer vocab, merges) */
} mmspcl_kv_type;

typedef struct mmspcl_kv {
    const char *key;
    mmspcl_kv_type type;
    int64_t i;
    double f;
    const char *str;          /* STR: NUL-terminated copy */
    size_t str_len;
    int64_t count;            /* STR_ARRAY: number of strings */
    const char *const *strs;  /* STR_ARRAY: NUL-terminated copies */
    const uint32_t *lens;     /* STR_ARRAY: byte lengths */
} mmspcl_kv;

typedef struct mmspcl_weights {
    const unsigned char *bytes;   /* the whole file */
    size_t size;
    int64_t n_kv, n_tensors;
    mmspcl_kv *kv;
    mmspcl_tensor *tensors;
    uint32_t version;
    /* private */
    int storage;                  /* 0 caller's memory, 1 malloc'd copy, 2 mmap */
    void *meta;                   /* copied names and strings */
    void *raw;                    /* storage 1: the allocation (bytes is 64-byte aligned in it) */
} mmspcl_weights;

/* Limits checked while parsing (a file past them is refused, never trusted). */
#define MMSPCL_MAX_TENSORS (1 << 20)
#define MMSPCL_MAX_KV (1 << 16)
#define MMSPCL_MAX_NAME 1024
#define MMSPCL_MAX_TENSOR_BYTES ((uint64_t)1 << 40)

mmspcl_status mmspcl_weights_open(mmspcl_weights **out, const char *path, mmspcl_error *err);
mmspcl_status mmspcl_weights_read(mmspcl_weights **out, const char *path, mmspcl_error *err);
mmspcl_status mmspcl_weights_from_memory(mmspcl_weights **out, const void *bytes, size_t size,
                                         mmspcl_error *err);
void mmspcl_weights_free(mmspcl_weights *w);

const mmspcl_tensor *mmspcl_weights_find(const mmspcl_weights *w, const char *name);
const mmspcl_kv *mmspcl_weights_get(const mmspcl_weights *w, const char *key);
/* These return 1 when the key exists with that type (and set *out), 0 otherwise. */
int mmspcl_weights_get_int(const mmspcl_weights *w, const char *key, int64_t *out);
int mmspcl_weights_get_float(const mmspcl_weights *w, const char *key, double *out);
int mmspcl_weights_get_str(const mmspcl_weights *w, const char *key, const char **out);
/* Fetch a tensor with the expected dtype-independent shape; fills err naming the tensor. */
mmspcl_status mmspcl_weights_expect(const mmspcl_weights *w, const char *name, int ndim,
                                    const int64_t *ne, const mmspcl_tensor **out,
                                    mmspcl_error *err);
/* A Linear weight [rows, cols]: 2-D of a dtype that can hold rows of cols values, or panels. */
mmspcl_status mmspcl_weights_expect_matrix(const mmspcl_weights *w, const char *name, int64_t rows,
                                           int64_t cols, const mmspcl_tensor **out, mmspcl_error *err);

/* ---- 5.2 Writer -------------------------------------------------------------------------- */
typedef struct mmspcl_writer mmspcl_writer;
typedef void (*mmspcl_progress_fn)(void *user, uint64_t done, uint64_t total);

mmspcl_writer *mmspcl_writer_create(void);  /* NULL when out of memory */
void mmspcl_writer_free(mmspcl_writer *w);
/* Keys and strings are copied. Setting a key twice replaces its value. */
mmspcl_status mmspcl_writer_set_int(mmspcl_writer *w, const char *key, int64_t v);
mmspcl_status mmspcl_writer_set_float(mmspcl_writer *w, const char *key, double v);
mmspcl_status mmspcl_writer_set_str(mmspcl_writer *w, const char *key, const char *s);
mmspcl_status mmspcl_writer_set_str_array(mmspcl_writer *w, const char *key,
                                          const char *const *strs, const uint32_t *lens,
                                          int64_t count); /* lens NULL: strlen */
/* The tensor's data is NOT copied: it must stay valid until mmspcl_writer_save returns.
   shape is PyTorch order (outermost first); nbytes must match dtype and shape. */
mmspcl_status mmspcl_writer_add_tensor(mmspcl_writer *w, const char *name, mmspcl_dtype dtype,
                                       int ndim, const int64_t *shape, const void *data,
                                       size_t nbytes, mmspcl_error *err);
/* Writes path.tmp, then renames it to path; on any failure the temporary file is removed and
   nothing named path is created or changed. A path that exists and is not a regular file (a
   device, a folder) is refused (POSIX builds). progress may be NULL. */
mmspcl_status mmspcl_writer_save(mmspcl_writer *w, const char *path, mmspcl_progress_fn progress,
                                 void *user, mmspcl_error *err);
/* The same bytes into a buffer the caller frees with MMSPCL_FREE (tests, firmware images). */
mmspcl_status mmspcl_writer_save_to_memory(mmspcl_writer *w, unsigned char **out, size_t *size,
                                           mmspcl_error *err);

/* ---------------------------------------------------------------------------------------------
   6. Kernels
   The numeric building blocks of every model. Rows are contiguous; a "weight" is a PyTorch
   Linear weight [out, in] in any dtype (f32, f16, bf16, q8_0, q4_0).
   Results do not depend on the number of OpenMP threads: work is split over independent
   outputs, each computed by the same sequential loop.

   Code paths of each operation, by column of mmspcl_kernel_path ("def": the scalar definition,
   6.1; "-": no code of its own, the definition runs; "= P": the code of path P; letters: notes
   below). x86 paths are chosen at run time from the CPU's features (GCC or clang builds), ARM
   paths at compile time; MMSPCL_NO_SIMD keeps the definitions only. mmspcl_linear_path takes a
   path from the caller; everything else always runs the best one available (AUTO), so its
   row tells what runs on a CPU whose best path is that column.

     operation          scalar  AVX2        AVX-512         AVX-VNNI  NEON      NEON dotprod
     linear f32         def     tiles (a)   row lanes (b)   = AVX2    rows (b)  = NEON
     linear f16         def (c) tiles (c)   row lanes (c)   = AVX2    rows (c)  = NEON
     linear bf16        def (j) tiles (j)   vdpbf16ps (k)   = AVX2    -         -
     linear f32 panels  def (c) in place    panels (d)      = AVX2    rows (c)  = NEON
     linear q8_0, q4_0  def     maddubs     VNNI-512 (e)    vpdpbusd  vmull     sdot
     gemm f32           def     tiles (l)   = AVX2          = AVX2    -         -
     dot_f32            def     -           -               -         -         -
     layernorm          def     -           yes (f)         -         -         -
     gelu, quick_gelu   def     yes (g)     = AVX2          = AVX2    -         -
     softmax            def     yes         = AVX2          = AVX2    -         -
     attention          def (h) -           yes (i)         -         -         -
   (a) W packed per call into panels of 16 outputs (the panel layout), x broadcast from blocks
       of 6 rows: tiles of 6 rows x 16 outputs.
   (b) rows of x in the vector lanes (x^T packed once per call), weights broadcast in place.
   (c) rows widened to f32 first (AVX-512: 16 at a time, F16C or shifts), then the f32 code.
   (d) the panel kernel: rows of x broadcast, 16 outputs of a panel per vector, read in place.
   (e) outputs in the lanes, 6 rows x 32 outputs, W packed once (mmspcl_tensor_pack) or per call
       (6.5); needs AVX512-VNNI: with AVX-512 F/BW/VL alone, AUTO takes AVX-VNNI or AVX2 for q8_0 /
       q4_0 and the AVX512 path returns MMSPCL_ERR_UNSUPPORTED.
   (f) mean and variance summed in 8 double lanes.
   (g) erf / exp by polynomials, 8 values at a time; the last n % 8 by the definition.
   (h) its softmax is mmspcl_softmax: the AVX2 one where the CPU has AVX2.
   (i) 6 queries at a time on the f32 micro-kernels, AVX2 softmax rows; needs head_dim a multiple
       of 16 (otherwise, or when memory runs out, the definition runs).
   (j) bf16 x bf16 -> f32: x rounded to bf16, one fma chain per output in vdpbf16ps's order (6.1);
       AVX2 runs it on the f32 tiles with x and the panels packed in that order (same bits).
   (k) needs AVX512-BF16 (and an even n_in, else the AVX2 code): x^T in bf16 pairs, W read in
       place, 6 outputs x 4 vectors of rows; same bits as the definition. With AVX-512 F/BW/VL
       alone, AUTO takes AVX2 for bf16 and the AVX512 path returns MMSPCL_ERR_UNSUPPORTED.
       ARM: the definition (no BFDOT code yet).
   (l) op(A) and op(B) packed per call in cache blocks, tiles with fused multiply-adds
       (mmspcl_gemm_f32: training's backward products): AVX-512 12 rows x 32 columns (k 256,
       rows 144), AVX2 6 x 16 (k 512, rows 72); the same bits on both.
   AUTO on x86: f32 / f16 weights AVX-512 > AVX2; bf16 AVX512-BF16 > AVX2; q8_0 / q4_0
   AVX512-VNNI > AVX-VNNI > AVX2; then the definition. On ARM: NEON, with sdot when built with the dot product (-march=armv8.2-a+dotprod).
   The AVX-VNNI path needs a compiler that knows it (GCC 11, clang 12) and a CPU with AVX-VNNI,
   for float weights too.
   ------------------------------------------------------------------------------------------ */

/* out[r][o] = bias[o] + sum_i x[r][i] * W[o][i] for r < rows; W is [n_out, n_in] (2-D, or f32
   panels: see mmspcl_tensor_is_panels); bias may be NULL. Returns MMSPCL_ERR_ARG when W is not a
   matrix with n_in columns. */
mmspcl_status mmspcl_linear(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                            const float *bias);
/* q8_0 / q4_0 weights take the integer path: each row of x is quantized on the fly to int8
   blocks of 32 (a power-of-two scale per block), dot products are exact int32 sums per block, and blocks
   are accumulated in float in a fixed order (the definition is in the implementation section); every
   SIMD integer path gives the same bits as the scalar one. bf16 weights compute bf16 x bf16 ->
   f32 (x rounded to bf16; every x86 path gives the definition's bits). f32 and f16 weights keep
   x in f32; their SIMD paths agree with the scalar one to about 1e-6 relative.
   The same with a chosen code path (tests compare every path with the scalar definition).
   MMSPCL_ERR_UNSUPPORTED when this CPU or build lacks the path:
     AVX2      AVX2 + FMA (integer: maddubs)        AVX512   AVX-512 F/BW/VL (integer: AVX512-VNNI,
                                                             bf16: AVX512-BF16)
     AVXVNNI   AVX2 f32 / AVX-VNNI integer          NEON     ARM NEON (integer without dot product)
     NEON_DOTPROD  NEON with the ARMv8.2 dot product (sdot), compile-time (-march=armv8.2-a+dotprod)
   AUTO picks the best this CPU (x86: at run time) or build (ARM) has. */
typedef enum mmspcl_kernel_path {
    MMSPCL_PATH_AUTO = 0, MMSPCL_PATH_SCALAR, MMSPCL_PATH_AVX2, MMSPCL_PATH_AVX512, MMSPCL_PATH_NEON,
    MMSPCL_PATH_AVXVNNI, MMSPCL_PATH_NEON_DOTPROD, MMSPCL_PATH_COUNT
} mmspcl_kernel_path;
mmspcl_status mmspcl_linear_path(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                                 const float *bias, mmspcl_kernel_path path);
/* Repacks an integer Linear weight W (2-D q8_0, q4_0, q4_k, q5_k) once into the layout of this
   CPU's integer kernel and sets W->packed (x86 with AVX512-VNNI: 32 outputs a group, 4 bytes of
   each interleaved, scales beside them; docs/PERFORMANCE.md), so that mmspcl_linear does not
   repack it on every call. The results are the same bits. Where no kernel uses a packed form
   (other CPUs, float weights, MMSPCL_NO_SIMD) W is left as it is and MMSPCL_OK returned.
   MMSPCL_ERR_NOMEM when the copy (about the size of the weight) cannot be allocated. Free it with
   mmspcl_tensor_pack_free(W) (sets W->packed to NULL) before W's data goes away. The model
   loaders (mmspcl_roberta_load, mmspcl_clip_load) pack their own copies of their Linear weights. */
mmspcl_status mmspcl_tensor_pack(mmspcl_tensor *W);
void mmspcl_tensor_pack_free(mmspcl_tensor *W);
/* General matrix product, f32, row-major with leading dimensions (the backward passes of
   training: dX = dY W, dW = dY^T X, attention's products):
     C[i][j] (i < M, j < N, row stride ldc) = (accumulate ? C[i][j] : 0) + sum_k op(A)[i][k] op(B)[k][j]
     op(A)[i][k] = trans_a ? A[k * lda + i] : A[i * lda + k]        (M x K)
     op(B)[k][j] = trans_b ? B[j * ldb + k] : B[k * ldb + j]        (K x N)
   Each output is one float chain: it starts at C (accumulate) or 0 and adds its K products in
   k order; the scalar definition multiplies then adds, the AVX2 path fuses (within a few ulp
   times K of each other). Work is split over threads by columns, so any thread count gives the
   same bits; called inside a parallel region (or for small products) it stays on the calling
   thread. The SIMD paths pack blocks of A and B per call (cache blocking; AVX-512: 12 x 32
   tiles, AVX2: 6 x 16; the same bits). MMSPCL_ERR_ARG for negative sizes or leading dimensions shorter
   than a row; MMSPCL_ERR_NOMEM when the packing buffers cannot be allocated. */
mmspcl_status mmspcl_gemm_f32(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                              const float *B, int ldb, float *C, int ldc, int accumulate);
/* The same with the caller's packing buffer (no allocation): work holds work_floats floats, at
   least mmspcl_gemm_f32_work(M, N, K, threads) for the threads the call may use (1 inside a
   parallel region); NULL or a shorter buffer: the call allocates its own. */
mmspcl_status mmspcl_gemm_f32_ws(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                                 const float *B, int ldb, float *C, int ldc, int accumulate, float *work,
                                 size_t work_floats);
size_t mmspcl_gemm_f32_work(int M, int N, int K, int threads);
/* The same with a chosen path: SCALAR (the definition), AVX2, AVX512, AUTO; others UNSUPPORTED. */
mmspcl_status mmspcl_gemm_f32_path(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                                   const float *B, int ldb, float *C, int ldc, int accumulate,
                                   mmspcl_kernel_path path);
/* Dot product of n floats, in the fixed summation order every path uses. */
float mmspcl_dot_f32(const float *a, const float *b, int n);
/* y[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta, per row of dim values (in place ok). */
void mmspcl_layernorm(float *y, const float *x, const float *gamma, const float *beta, int rows,
                      int dim, float eps);
void mmspcl_gelu(float *x, size_t n);        /* x * 0.5 * (1 + erf(x / sqrt(2))) */
/* d[i] *= GELU'(x[i]) = 0.5 (1 + erf(x / sqrt(2))) + x exp(-x^2 / 2) / sqrt(2 pi) (training's
   backward; the same polynomials as mmspcl_gelu on x86 with AVX2) */
void mmspcl_gelu_grad(float *d, const float *x, size_t n);
void mmspcl_quick_gelu(float *x, size_t n);  /* x * sigmoid(1.702 x), CLIP's activation */
void mmspcl_softmax(float *x, int n);        /* in place, max-subtracted */
/* Multi-head scaled dot-product attention. q: [n_q][ld_q], k, v: [n_k][ld_kv]; head h uses
   columns h*head_dim .. +head_dim of each row. key_valid[j] == 0 masks key j (NULL: none).
   out: [n_q][ld_out]. scratch: n_threads * n_k floats (mmspcl_attention_scratch). */
void mmspcl_attention(float *out, int ld_out, const float *q, int ld_q, const float *k,
                      const float *v, int ld_kv, int n_q, int n_k, int n_heads, int head_dim,
                      const unsigned char *key_valid, float *scratch);
size_t mmspcl_attention_scratch(int n_k);    /* floats needed by mmspcl_attention's scratch */

/* ---------------------------------------------------------------------------------------------
   7. Byte-level BPE tokenizer
   RoBERTa's (GPT-2's), identical to Hugging Face's tokenizers library (`RobertaTokenizerFast`,
   tokenizer.json with the ByteLevel pre-tokenizer, add_prefix_space false).

     mmspcl_bpe *tok;
     mmspcl_bpe_from_weights(&tok, w, &err);             keys tokenizer.vocab, tokenizer.merges
     int32_t ids[256];
     int n = mmspcl_bpe_encode(tok, "Hello world!", 12, ids, 256);   31414 232 328
     if (n > 256) ... call again with n slots (n is always the full count)
     char text[1024];
     size_t len = mmspcl_bpe_decode(tok, ids, n, text, sizeof text);  "Hello world!"
     mmspcl_bpe_free(tok);

   What encode does, in order (the same steps as Hugging Face's tokenizer(text, add_special_tokens=False)):
   1. Special tokens <s> </s> <pad> <unk> <mask> (those present in the vocabulary) are found in
      the text and become their ids; the text between them is encoded on its own. <mask> has
      lstrip: the whitespace right before it is absorbed (" <mask>" -> 50264 alone), as in
      RoBERTa's tokenizer.json; the others strip nothing. Flag MMSPCL_BPE_NO_SPECIAL_SPLIT
      treats them as plain text instead (Hugging Face's split_special_tokens=True).
   2. Pre-tokenisation with GPT-2's pattern, implemented by hand with leftmost-first semantics:
        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
      Contractions are case-sensitive (as in GPT-2 and Hugging Face). \p{L} and \p{N} come from a
      generated range table (tools/reference/gen_bpe_unicode.mjs; Unicode 17). \s is the set that
      Hugging Face's regex engine (Oniguruma, via the onig crate) matches: U+0009..U+000D, U+0085,
      and the categories Zs, Zl, Zp -- i.e. the Unicode White_Space property, which is also what
      Rust's char::is_whitespace (used for lstrip) means. Python's re would add U+001C..U+001F,
      JavaScript's \s adds U+FEFF and lacks U+0085; neither is used.
   3. Each piece is mapped through GPT-2's byte-to-unicode table and merged by rank with the same
      priority-queue algorithm as Hugging Face (lowest rank first, leftmost on ties).
   Invalid UTF-8: any byte that does not start a well-formed UTF-8 sequence (Unicode Table 3-7:
   no overlongs, no surrogates, nothing above U+10FFFF, no truncated sequences) is taken as a
   one-byte character that is neither letter, number nor space (so it groups with punctuation)
   and still goes through the byte table, so every byte string encodes and decodes back to the
   same bytes. Hugging Face cannot receive such input (Python str / Rust &str are valid UTF-8),
   so there is nothing to match there. The library never crashes on any input.

   Decoding maps ids back to token strings and those through the reverse byte table; special
   tokens come out as their text ("<s>"). Unlike Hugging Face's decode (which applies
   from_utf8_lossy), the raw bytes are returned, so decode(encode(x)) == x for every byte string x.
   An encoder is immutable after loading: one mmspcl_bpe may be used from many threads at once.
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_bpe mmspcl_bpe;

/* Flags of mmspcl_bpe_encode_ex. */
#define MMSPCL_BPE_ADD_SPECIAL 1       /* wrap as <s> ... </s>, as tokenizer(text)["input_ids"] */
#define MMSPCL_BPE_NO_SPECIAL_SPLIT 2  /* "<s>", "<mask>", ... in the text are plain text */

/* ---- 7.3 Loading ------------------------------------------------------------------------- */
/* From a weight file: STR_ARRAY "tokenizer.vocab" (token strings indexed by id; empty strings
   are holes) and STR_ARRAY "tokenizer.merges" ("left right" in rank order). The strings are
   copied: w may be freed afterwards. */
mmspcl_status mmspcl_bpe_from_weights(mmspcl_bpe **out, const mmspcl_weights *w, mmspcl_error *err);
/* From caller arrays (copied). vocab[i] is the token with id i (vocab_lens NULL: strlen);
   merges[r] is "left right" with rank r (merge_lens NULL: strlen). A first merge line starting
   with "#version" (merges.txt's header) is skipped. Like Hugging Face, a merge whose parts or
   result are not in the vocabulary is an error (MMSPCL_ERR_FORMAT naming the merge). */
mmspcl_status mmspcl_bpe_from_arrays(mmspcl_bpe **out, const char *const *vocab,
                                     const uint32_t *vocab_lens, int64_t n_vocab,
                                     const char *const *merges, const uint32_t *merge_lens,
                                     int64_t n_merges, mmspcl_error *err);
/* Flag of mmspcl_bpe_from_arrays_ex: what a RoBERTa tokenizer file must also satisfy. Every id
   has a token (no holes), no token has two ids, and the vocabulary holds all five special tokens
   <s> <pad> </s> <unk> <mask> (the message names the missing ones). */
#define MMSPCL_BPE_STRICT 4
/* mmspcl_bpe_from_arrays with flags (0 or MMSPCL_BPE_STRICT). out may be NULL: then the arrays
   are only checked (MMSPCL_OK exactly when they load) and nothing is kept. *bad_merge (when not
   NULL) receives the index of the refused merge, -1 when the refusal is not about a merge. One
   validation for every writer and reader of tokenizer files: mmspcl-convert runs it before it
   writes tokenizer.vocab / tokenizer.merges, mmspcl tokenize --vocab --merges before it
   encodes. Messages quote tokens and merges with control and invalid UTF-8 bytes as \xNN. */
mmspcl_status mmspcl_bpe_from_arrays_ex(mmspcl_bpe **out, const char *const *vocab,
                                        const uint32_t *vocab_lens, int64_t n_vocab,
                                        const char *const *merges, const uint32_t *merge_lens,
                                        int64_t n_merges, int flags, int64_t *bad_merge,
                                        mmspcl_error *err);
void mmspcl_bpe_free(mmspcl_bpe *bpe);

/* ---- 7.4 Encoding ------------------------------------------------------------------------ */
/* Encodes len bytes of text (any bytes; NUL is an ordinary byte) without <s> </s>. Writes at
   most max_ids ids (ids may be NULL when max_ids is 0) and returns the number of ids the whole
   text needs, which may exceed max_ids: call again with a bigger buffer. Returns -1 when bpe is
   NULL, text is NULL with len > 0, len > INT_MAX / 2, or scratch memory cannot be allocated
   (only inputs with a single piece longer than 256 bytes need any). */
int mmspcl_bpe_encode(const mmspcl_bpe *bpe, const char *text, size_t len, int32_t *ids,
                      int max_ids);
/* The same with flags MMSPCL_BPE_ADD_SPECIAL / MMSPCL_BPE_NO_SPECIAL_SPLIT. */
int mmspcl_bpe_encode_ex(const mmspcl_bpe *bpe, const char *text, size_t len, int32_t *ids,
                         int max_ids, int flags);
/* ---- 7.5 Decoding and lookups ------------------------------------------------------------ */
/* Decodes n ids into out (cap bytes, snprintf-style: at most cap - 1 bytes and a NUL when
   cap > 0). Returns the full length in bytes (without the NUL): the text is complete when the
   result is < cap. Ids outside the vocabulary and holes are skipped. The text may contain NUL
   bytes when the ids encode them: use the returned length. */
size_t mmspcl_bpe_decode(const mmspcl_bpe *bpe, const int32_t *ids, int n, char *out, size_t cap);

/* Id of a token given as its vocabulary string (e.g. "Ġthe", "<mask>"), -1 if absent. */
int32_t mmspcl_bpe_token_id(const mmspcl_bpe *bpe, const char *token);
/* Vocabulary string of id (NUL-terminated; *len its bytes when len != NULL), NULL if absent. */
const char *mmspcl_bpe_token_str(const mmspcl_bpe *bpe, int32_t id, size_t *len);
int64_t mmspcl_bpe_vocab_size(const mmspcl_bpe *bpe);  /* largest id + 1 */
/* Special ids, found by name in the vocabulary; -1 when the vocabulary lacks them.
   RoBERTa: <s> 0, <pad> 1, </s> 2, <unk> 3, <mask> 50264. */
int32_t mmspcl_bpe_bos_id(const mmspcl_bpe *bpe);   /* <s>    */
int32_t mmspcl_bpe_pad_id(const mmspcl_bpe *bpe);   /* <pad>  */
int32_t mmspcl_bpe_eos_id(const mmspcl_bpe *bpe);   /* </s>   */
int32_t mmspcl_bpe_unk_id(const mmspcl_bpe *bpe);   /* <unk>  */
int32_t mmspcl_bpe_mask_id(const mmspcl_bpe *bpe);  /* <mask> */

/* ---------------------------------------------------------------------------------------------
   8. RoBERTa encoder
   Hugging Face's RobertaModel (post-LN).

     mmspcl_roberta *m;
     mmspcl_roberta_load(&m, weights, max_batch, max_seq, &err);   one arena, sized here
     mmspcl_roberta_forward(m, ids, lengths, batch, seq, hidden, &err);
     mmspcl_roberta_forward_rows(m, ids, lengths, batch, seq, rows, out, &err);   one row each
     mmspcl_roberta_free(m);

   ids is [batch][seq] (row b holds lengths[b] real tokens, the rest is ignored); hidden is
   [batch][seq][hidden_size], rows past lengths[b] are set to 0. The batch is packed: the tokens
   of all sequences are one matrix through every Linear, LayerNorm and GELU, attention runs per
   sequence, so padding costs nothing and a sequence's rows have the same bits alone or in any
   batch. For many prompts (a dataset), pass them sorted by length in batches of a few thousand
   tokens; _rows keeps one row per sequence and skips the rest of the last layer. Position ids follow Hugging Face: pad_id + 1, pad_id + 2, ... over tokens that
   are not pad_id (a pad id inside a sequence keeps position pad_id), token type 0.
   Needs the tensors embeddings.* and encoder.layer.N.* (see docs/CONVERT.md), any weight dtype.
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_roberta_config {
    int vocab_size, hidden_size, num_layers, num_heads, intermediate_size;
    int max_positions, type_vocab_size, pad_id;
    float layer_norm_eps;
    int gelu_tanh;        /* hidden_act "gelu_new"/"gelu_pytorch_tanh": not supported, always 0 */
} mmspcl_roberta_config;

typedef struct mmspcl_roberta mmspcl_roberta;

mmspcl_status mmspcl_roberta_load(mmspcl_roberta **out, const mmspcl_weights *w, int max_batch,
                                  int max_seq, mmspcl_error *err);
/* The hyper-parameters alone, each checked as mmspcl_roberta_load checks them before it looks at
   a tensor (general.architecture "roberta"; the integer keys inside the ranges of
   docs/ROBUSTNESS.md; pad_token_id < vocab_size and at least one position after it;
   layer_norm_eps finite, in [1e-30, 1] (default 1e-5); hidden_act gelu; hidden_size a multiple
   of num_attention_heads; a key of the wrong type is refused, never defaulted). The error names
   the key. mmspcl-convert runs it on the metadata it is about to write: a file it writes always
   passes. */
mmspcl_status mmspcl_roberta_read_config(const mmspcl_weights *w, mmspcl_roberta_config *cfg,
                                         mmspcl_error *err);
mmspcl_status mmspcl_roberta_forward(mmspcl_roberta *m, const int32_t *ids, const int *lengths,
                                     int batch, int seq, float *hidden, mmspcl_error *err);
/* The final hidden state of one token per sequence (the SPCL <mask>, a [CLS] row): out
   [batch][hidden_size] gets row rows[b] (0 <= rows[b] < lengths[b]) of sequence b, the same bits
   as mmspcl_roberta_forward's hidden[b][rows[b]]. The last layer runs its keys and values over every
   token and everything else for those rows alone: a RoBERTa-large forward costs about 3.5% less. */
mmspcl_status mmspcl_roberta_forward_rows(mmspcl_roberta *m, const int32_t *ids, const int *lengths, int batch,
                                          int seq, const int *rows, float *out, mmspcl_error *err);
const mmspcl_roberta_config *mmspcl_roberta_get_config(const mmspcl_roberta *m);
/* Bytes of the activation arena (fixed at load from max_batch * max_seq tokens). */
size_t mmspcl_roberta_arena_bytes(const mmspcl_roberta *m);
void mmspcl_roberta_free(mmspcl_roberta *m);

/* ---------------------------------------------------------------------------------------------
   9. SPCL prompt and text embedding z_t

   The prompt for turn t of a dialogue, as token ids, exactly as the original SPCL code builds it
   (caskcsg/SPCL data_process.py, MELD setting, max_len 256):

     text_j  = utterance j with U+2019 (’) replaced by ' and every " removed
     u_j     = bpe(speaker_j + ":" + text_j) + [</s>]          each turn tokenised on its own
     l       = the first l in 0..t-1 with len(u_l..u_t) + 8 + len(u_t) <= max_len
               (t-1 when none fits, 0 when t == 0), then l = max(l, t - 8)
     ids     = [<s>] + u_l + ... + u_t                         context: up to 8 past turns and t
             + bpe("For utterance:") + u_t                     the current turn again
             + bpe(speaker_t + " feels <mask>") + [</s>]
     if longer than max_len, only the LAST max_len ids are kept (SPCL's pad_to_len).

   z_t is the encoder's last hidden state at the first <mask> (position 0 if truncation removed
   it, as SPCL's argmax does).
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_turn {
    const char *speaker;   /* UTF-8, e.g. "Rachel" */
    const char *text;      /* UTF-8 utterance */
} mmspcl_turn;

#define MMSPCL_SPCL_MAX_LEN 256
#define MMSPCL_SPCL_MAX_CONTEXT 8

/* Prompts for every turn of a dialogue: ids is [n_turns][max_len], lengths[t] and mask_pos[t]
   are filled for each turn. max_len >= 16. */
mmspcl_status mmspcl_spcl_prompts(const mmspcl_bpe *tok, const mmspcl_turn *turns, int n_turns,
                                  int max_len, int32_t *ids, int *lengths, int *mask_pos,
                                  mmspcl_error *err);
/* The same with the turn asked about chosen per prompt: prompt t keeps turn t's context
   (u_l..u_t and the rule for l above) and asks about turn q = query[t] instead of t:
     ids = [<s>] + u_l + ... + u_t + bpe("For utterance:") + u_q + bpe(speaker_q + " feels <mask>")
         + [</s>], the last max_len kept.
   SPCL's training adds such a prompt for turns t > 3 with probability 0.2, q drawn from l..t-1
   (data_process.py:74-83). query NULL, or query[t] == t: mmspcl_spcl_prompts; 0 <= query[t] <= t.
   first (may be NULL) receives l for every prompt. */
mmspcl_status mmspcl_spcl_prompts_query(const mmspcl_bpe *tok, const mmspcl_turn *turns, int n_turns,
                                        const int *query, int max_len, int32_t *ids, int *lengths,
                                        int *mask_pos, int *first, mmspcl_error *err);
/* speaker + sep + text with SPCL's MELD cleaning (U+2019 -> ', every " dropped), as one
   NUL-terminated string the caller frees with MMSPCL_FREE; NULL when out of memory. */
char *mmspcl_spcl_clean(const char *speaker, const char *sep, const char *text);
/* z_t for every turn of a dialogue: z is [n_turns][hidden_size]. Runs the encoder in batches of
   at most the max_batch it was loaded with (load it with max_seq >= max_len), keeping the <mask>
   rows alone (mmspcl_roberta_forward_rows). */
mmspcl_status mmspcl_spcl_embed_dialogue(mmspcl_roberta *m, const mmspcl_bpe *tok,
                                         const mmspcl_turn *turns, int n_turns, int max_len,
                                         float *z, mmspcl_error *err);

/* ---------------------------------------------------------------------------------------------
   10. Images
   Decoding without libraries, and CLIP preprocessing exactly as Hugging Face's
   CLIPImageProcessor does it with Pillow.

   Decoding (mmspcl_image_decode / mmspcl_image_load) always gives 8-bit RGB, row-major, no
   padding (width*height*3 bytes). Alpha is dropped (Pillow's convert("RGB"), which is what
   CLIPImageProcessor applies to RGBA input); grey is replicated to R=G=B; palettes are expanded.
     10.4 PNG (its zlib stream: 10.3 Inflate)
           colour types grey, grey+alpha, RGB, RGBA (bit depth 8; 16 is read by keeping the high
           byte of each sample, as Pillow does for RGB/RGBA/LA; Pillow clips 16-bit grey instead)
           and grey / palette at 1, 2, 4 and 8 bits; non-interlaced and Adam7 interlaced; all
           five filter types; every chunk's CRC-32 is checked; the zlib stream is inflated by
           this code (stored, fixed and dynamic Huffman blocks), its Adler-32 checked, and its
           output must be exactly the size IHDR implies. IEND is required. Unknown critical
           chunks are refused; ancillary chunks (tRNS, gAMA, iCCP, text, ...) are skipped.
     10.2 BMP
           uncompressed (BI_RGB) 1/4/8-bit palette, 24-bit and 32-bit (BGRX); BI_BITFIELDS
           32-bit with one-byte masks (any byte order); bottom-up and top-down rows; headers of
           12 (OS/2), 40, 52, 56, 64, 108 and 124 bytes. RLE, 16-bit and JPEG/PNG-in-BMP refused.
     10.1 PPM / PGM
           binary P6 / P5, comments in the header, maxval 1..65535 (two-byte big-endian samples
           above 255); samples are scaled as Pillow does: min(255, round(v / maxval * 255)).
   Anything else (JPEG, GIF, WebP, TIFF, plain-text PNM, ...) fails with MMSPCL_ERR_UNSUPPORTED and
   a message naming the format. Malformed input fails with MMSPCL_ERR_FORMAT naming what and
   where (byte offset); nothing is read outside the buffer and nothing leaks.

   10.7 CLIP preprocessing (CLIPImageProcessor with size={"shortest_edge": S}, crop_size C):
     1. resize so the shorter side is S; the longer becomes floor(S * long / short) (Hugging Face's
        get_resize_output_image_size with default_to_square=False: int(S * long / short));
     2. bicubic resampling exactly as Pillow's Image.resize(BICUBIC) (libImaging/Resample.c; 10.6):
        separable, horizontal pass then vertical pass, a = -0.5, support 2 widened by the
        downscale factor (antialiasing), coefficients normalised and rounded to 22 fraction bits,
        each pass rounded and clipped to uint8. The result is bit-identical to Pillow's;
     3. centre crop C x C: top = floor((h - C) / 2), left = floor((w - C) / 2), zero padding
        where the resized image is smaller than C (as Hugging Face's center_crop);
     4. x = (float)(v * (1/255.0)), then (x - mean[c]) / std[c] in float32;
     5. channels first: out[c][y][x], 3*C*C floats.
   Only the rows and columns that survive the crop are computed (a 1 x 16384 image costs what a
   small one does).
   ------------------------------------------------------------------------------------------ */

#define MMSPCL_IMAGE_MAX_SIDE 16384                   /* width and height, each */
#define MMSPCL_IMAGE_MAX_PIXELS ((int64_t)1 << 28)    /* width * height */
#define MMSPCL_IMAGE_MAX_FILE_BYTES ((int64_t)1 << 31) /* mmspcl_image_load */
#define MMSPCL_CLIP_MAX_SIZE 65536                    /* shortest_edge and crop, each */

/* OpenAI CLIP's normalisation (initialisers: static const float m[3] = MMSPCL_CLIP_MEAN;) */
#define MMSPCL_CLIP_MEAN {0.48145466f, 0.4578275f, 0.40821073f}
#define MMSPCL_CLIP_STD {0.26862954f, 0.26130258f, 0.27577711f}

typedef struct mmspcl_image {
    int width, height;
    unsigned char *rgb; /* width*height*3, row-major, allocated with MMSPCL_MALLOC */
} mmspcl_image;

/* ---- 10.5 Format detection and loading --------------------------------------------------- */
/* Decode PNG, BMP or binary PPM/PGM bytes (format found from the first bytes). On failure *out is
   left empty (rgb NULL, sizes 0). */
mmspcl_status mmspcl_image_decode(const void *bytes, size_t size, mmspcl_image *out,
                                  mmspcl_error *err);
/* Read a whole file and decode it (not available with MMSPCL_NO_STDIO). */
mmspcl_status mmspcl_image_load(const char *path, mmspcl_image *out, mmspcl_error *err);
/* Frees img->rgb and empties *img; NULL and empty images are fine. */
void mmspcl_image_free(mmspcl_image *img);

/* ---- 10.6 Pillow-exact bicubic resampling ------------------------------------------------ */
/* Pillow-exact bicubic resize of packed RGB (w*h*3 bytes) into dst (dw*dh*3 bytes).
   MMSPCL_ERR_ARG for a bad size or NULL, MMSPCL_ERR_NOMEM when scratch memory fails. */
mmspcl_status mmspcl_image_resize_bicubic(const unsigned char *src, int w, int h,
                                          unsigned char *dst, int dw, int dh);

/* ---- 10.7 CLIP preprocessing ------------------------------------------------------------- */
/* The size Hugging Face resizes a w x h image to for shortest_edge S (step 1 above). */
mmspcl_status mmspcl_clip_resize_size(int w, int h, int shortest_edge, int *out_w, int *out_h);

/* Steps 1-3 only: the uint8 RGB crop (crop*crop*3 bytes), Pillow-exact. rgb has `stride` bytes
   per row (>= width*3). */
mmspcl_status mmspcl_clip_resize_crop(const unsigned char *rgb, int width, int height,
                                      size_t stride, int shortest_edge, int crop,
                                      unsigned char *out, mmspcl_error *err);

/* Steps 1-5 from a decoded image: out receives 3*crop*crop floats, channels first. */
mmspcl_status mmspcl_clip_preprocess(const mmspcl_image *img, int shortest_edge, int crop,
                                     const float mean[3], const float stdev[3], float *out,
                                     mmspcl_error *err);
/* The same from the caller's RGB buffer (`stride` bytes per row, >= width*3). */
mmspcl_status mmspcl_clip_preprocess_rgb(const unsigned char *rgb, int width, int height,
                                         size_t stride, int shortest_edge, int crop,
                                         const float mean[3], const float stdev[3], float *out,
                                         mmspcl_error *err);

/* ---------------------------------------------------------------------------------------------
   11. CLIP vision tower
   CLIPVisionModelWithProjection: image -> embedding, for MM-SPCL's video side.

   Weight file: what build/mmspcl-convert writes from a Hugging Face CLIP checkpoint (vision-only
   or full CLIPModel; only the vision tower is kept). Hugging Face's tensor names:
     vision_model.embeddings.class_embedding                [W]
     vision_model.embeddings.patch_embedding.weight         [W, C, P, P]   (conv, no bias)
     vision_model.embeddings.position_embedding.weight      [1 + (S/P)^2, W]
     vision_model.pre_layrnorm.{weight,bias}                [W]            (sic: "layrnorm")
     vision_model.encoder.layers.L.layer_norm1.{weight,bias}                [W]
     vision_model.encoder.layers.L.self_attn.{q,k,v,out}_proj.weight        [W, W]
     vision_model.encoder.layers.L.self_attn.{q,k,v,out}_proj.bias          [W]
     vision_model.encoder.layers.L.layer_norm2.{weight,bias}                [W]
     vision_model.encoder.layers.L.mlp.fc1.weight [I, W], .bias [I]; mlp.fc2.weight [W, I], .bias [W]
     vision_model.post_layernorm.{weight,bias}              [W]
     visual_projection.weight                               [proj, W]      (no bias; optional:
                                                                            absent = no embeds)
   Matrices (patch embedding, projections, MLP, visual projection) may be f32, f16, bf16, q8_0 or
   q4_0 and are used in place (zero copy). Vectors and the class/position embeddings should be
   f32 (used in place); other float types are widened once at load into memory the model owns.
   Metadata: general.architecture = "clip_vision"; ints clip.image_size, clip.patch_size,
   clip.num_channels, clip.hidden_size, clip.num_hidden_layers, clip.num_attention_heads,
   clip.intermediate_size, clip.projection_dim; float clip.layer_norm_eps (default 1e-5);
   str clip.hidden_act ("quick_gelu" (default) or "gelu"); preprocessing: floats
   clip.image_mean.0/1/2 and clip.image_std.0/1/2 (default OpenAI CLIP's), ints
   clip.resize_shortest_edge and clip.crop_size (default image_size). Every tensor's shape is
   checked against these at load; a mismatch fails naming the tensor.

   The forward (mmspcl_clip_forward), per image of S x S pixels, g = S / P, T = 1 + g*g tokens:
     x[0]     = class_embedding + pos[0]
     x[1+i]   = conv_P(pixels) at patch i (row-major: i = py * g + px) + pos[1+i]
     x        = pre_layrnorm(x)
     per layer:  x += out_proj(attention(layer_norm1(x)))
                 x += fc2(act(fc1(layer_norm2(x))))        act = quick_gelu or gelu
     pooled   = post_layernorm(x[0])            (Hugging Face's pooler_output)
     embeds   = visual_projection(pooled)       (image_embeds; NOT L2-normalised)

   Usage
     mmspcl_weights *w; mmspcl_clip *m; mmspcl_error err;
     mmspcl_weights_open(&w, "clip.mmspcl", &err);
     mmspcl_clip_load(&m, w, 8, &err);               8 = images per forward (max_batch)
     mmspcl_clip_embed_image(m, &img, embed, &err);  embed: mmspcl_clip_get_config(m)->projection_dim
     or: mmspcl_clip_preprocess_image(m, &img, pixels, &err) for each image, then
         mmspcl_clip_forward(m, pixels, n, embeds, pooled, &err)
     mmspcl_clip_free(m); mmspcl_weights_free(w);    (w must outlive m)

   Memory: all activations live in one arena sized at load for max_batch images and the number
   of OpenMP threads then (mmspcl_clip_arena_bytes); a forward of more images runs in chunks of
   max_batch with the same results. The arena is re-sized once if the thread count later grows.
   A model runs one forward at a time (it owns its arena): use one mmspcl_clip per calling thread
   (they can share the weights). Results do not depend on the batch size or the thread count.
   ------------------------------------------------------------------------------------------ */

typedef enum mmspcl_clip_act { MMSPCL_CLIP_QUICK_GELU = 0, MMSPCL_CLIP_GELU = 1 } mmspcl_clip_act;

typedef struct mmspcl_clip_config {
    int image_size;          /* S: input side in pixels (square) */
    int patch_size;          /* P */
    int num_channels;        /* C (3) */
    int hidden_size;         /* W */
    int num_layers;
    int num_heads;
    int intermediate_size;   /* I */
    int projection_dim;      /* 0 when the file has no visual_projection */
    int num_patches;         /* (S / P)^2 */
    int num_tokens;          /* 1 + num_patches */
    float layer_norm_eps;
    mmspcl_clip_act act;
    /* preprocessing (CLIPImageProcessor): resize shortest edge, centre crop, normalise */
    int resize_shortest_edge;
    int crop_size;
    float image_mean[3], image_std[3];
} mmspcl_clip_config;

typedef struct mmspcl_clip mmspcl_clip;   /* opaque; owns its arena, points into the weights */

/* ---- 11.1 Loading ------------------------------------------------------------------------ */
/* Reads the config, checks every tensor and sizes the arena for max_batch images (>= 1). */
mmspcl_status mmspcl_clip_load(mmspcl_clip **out, const mmspcl_weights *w, int max_batch,
                               mmspcl_error *err);
/* The config alone, each key checked as mmspcl_clip_load checks it before it looks at a tensor
   (general.architecture "clip_vision"; the integer keys inside the ranges of docs/ROBUSTNESS.md;
   image_size a multiple of patch_size; crop_size equal to image_size; layer_norm_eps in
   [1e-30, 1]; image_mean.N in [-1000, 1000], image_std.N in [1e-6, 1000]; every float finite; a
   key of the wrong type refused, never defaulted). The error names the key. mmspcl-convert runs
   it on the metadata it is about to write. */
mmspcl_status mmspcl_clip_read_config(const mmspcl_weights *w, mmspcl_clip_config *cfg,
                                      mmspcl_error *err);
void mmspcl_clip_free(mmspcl_clip *m);
const mmspcl_clip_config *mmspcl_clip_get_config(const mmspcl_clip *m);
size_t mmspcl_clip_arena_bytes(const mmspcl_clip *m);

/* ---- 11.2 Forward ------------------------------------------------------------------------ */
/* pixels: batch x C x S x S floats (already normalised, channels first, as Hugging Face's
   pixel_values). embeds: batch x projection_dim, pooled: batch x hidden_size; either may be NULL. */
mmspcl_status mmspcl_clip_forward(mmspcl_clip *m, const float *pixels, int batch, float *embeds,
                                  float *pooled, mmspcl_error *err);
/* The last hidden state (before post_layernorm) of the last chunk of the last forward:
   [n][num_tokens][hidden_size] for images k*max_batch .. batch-1, k = (batch-1) / max_batch
   (all of them when batch <= max_batch). Valid until the next forward; NULL before any. */
const float *mmspcl_clip_last_hidden(const mmspcl_clip *m);

/* ---- 11.3 Images ------------------------------------------------------------------------- */
/* CLIP preprocessing with the model's own sizes, mean and std: out gets 3 x S x S floats. */
mmspcl_status mmspcl_clip_preprocess_image(const mmspcl_clip *m, const mmspcl_image *img,
                                           float *out, mmspcl_error *err);
/* Preprocess + forward of one image: embed gets projection_dim floats (not normalised). */
mmspcl_status mmspcl_clip_embed_image(mmspcl_clip *m, const mmspcl_image *img, float *embed,
                                      mmspcl_error *err);

/* ---------------------------------------------------------------------------------------------
   12. MM-SPCL heads
   Inference: the forward halves of everything mmspcl_train.h trains.

   Row-major, PyTorch layout (a Linear weight is [out][in]); Linear weights in any dtype the
   kernels take, the rest f32. Linear layers, layer norms, GELU and attention run on the kernels
   (mmspcl_linear, mmspcl_layernorm, mmspcl_gelu, mmspcl_attention). A head struct holds pointers
   into a loaded weight file (zero copy) or into the caller's own arrays; it owns only the small
   arrays of sub-structs that the _load functions allocate (free with _free). mmspcl_train.h
   trains every head in double precision and saves it in the names these loaders read.

   Small layers (float in, float out; n = rows)
     mmspcl_head_linear_forward   y = x W^T + b
     mmspcl_head_ln_forward       layer norm over the last dimension
     mmspcl_head_mlp_forward      fc2(act(fc1 x)), act = GELU (erf) or ReLU
     mmspcl_head_block_forward    pre-LN transformer layer, self- or cross-attention, key mask
   Method parts
     mmspcl_score                 G(a,b) = (1 + cos(a,b)) / 2 + 1e-8      (SPCL's score)
     mmspcl_prune_apply / _forward cross-modal pruning (heads of size K)
     mmspcl_xprune_forward        pruning as a layer: two pruning modalities, common projection
     mmspcl_fuse_linear_forward   fusion (a): Linear over the concatenation
     mmspcl_mult_forward          fusion (b): pairwise cross-modal attention (MulT)
     mmspcl_mbt_forward           fusion (c): attention bottlenecks (MBT)
     mmspcl_mbt_forward_seq       MBT over sequences with a padding mask (lengths per modality)
     mmspcl_mult_seq_forward      fusion (b) over sequences, MulT as its code does it (12.9)
     mmspcl_msve_forward          MSVE: sum of the enabled combinations' logits
     mmspcl_proto_classify        nearest prototype by G
   Metrics
     mmspcl_confusion, mmspcl_metrics_from_confusion (accuracy, per-class P/R/F1, weighted F1
     exactly as scikit-learn's average='weighted', zero_division=0)
   Loading what mmspcl_train.h saved
     mmspcl_msve_load, mmspcl_mult_load, mmspcl_mbt_load, mmspcl_mult_seq_load, mmspcl_fuse_linear_load,
     mmspcl_xprune_load,
     mmspcl_head_linear_load (SPCL's linear classifier), mmspcl_protos_load
     (each with a name prefix; tensor names are listed in mmspcl_train.h)
   ------------------------------------------------------------------------------------------ */

/* Modalities and their combinations. A combination is a bit mask over {t, a, v}; its input is
   the concatenation of its modalities in the order t, a, v. A SET of combinations is a bit mask
   over combination masks 1..7: bit c stands for combination c. */
#define MMSPCL_MOD_T 1
#define MMSPCL_MOD_A 2
#define MMSPCL_MOD_V 4
#define MMSPCL_COMBO(c) (1u << (c))
#define MMSPCL_COMBOS_ALL 0xFEu /* t, a, ta, v, tv, av, tav */
#define MMSPCL_MAX_CLASSES 64

typedef enum mmspcl_act { MMSPCL_ACT_GELU = 0, MMSPCL_ACT_RELU = 1 } mmspcl_act;

/* ---- 12.1 Small layers ------------------------------------------------------------------- */
/* A Linear layer: w is a [out][in] weight view in any dtype mmspcl_linear takes (f32, f16, bf16,
   q8_0, q4_0); b is f32 [out] or NULL. mmspcl_head_linear_f32 wraps plain float arrays. */
typedef struct mmspcl_head_linear { mmspcl_tensor w; const float *b; int in, out; } mmspcl_head_linear;
typedef struct mmspcl_head_ln { const float *g, *b; int dim; float eps; } mmspcl_head_ln;
typedef struct mmspcl_head_mlp { mmspcl_head_linear fc1, fc2; mmspcl_act act; } mmspcl_head_mlp;
typedef struct mmspcl_head_mha { mmspcl_head_linear q, k, v, o; int n_heads; } mmspcl_head_mha;
/* Pre-LN transformer layer:  x += Wo Attn(Wq LN_q(x), Wk kv, Wv kv),  kv = cross ? LN_kv(src) : LN_q(x)
                              x += MLP(LN_ff(x))                                               */
typedef struct mmspcl_head_block {
    mmspcl_head_ln ln_q, ln_kv, ln_ff;
    mmspcl_head_mha attn;
    mmspcl_head_mlp ff;
    int cross;
} mmspcl_head_block;

mmspcl_head_linear mmspcl_head_linear_f32(const float *w, const float *b, int in, int out);
/* y[n][out] = x[n][in] W^T + b   (mmspcl_linear; MMSPCL_ERR_NOMEM is its only failure) */
mmspcl_status mmspcl_head_linear_forward(const mmspcl_head_linear *l, const float *x, float *y, int n);
void mmspcl_head_ln_forward(const mmspcl_head_ln *l, const float *x, float *y, int n);
/* hidden: n * fc1.out floats of scratch */
mmspcl_status mmspcl_head_mlp_forward(const mmspcl_head_mlp *m, const float *x, float *y, int n,
                                      float *hidden);
/* Floats of scratch mmspcl_head_block_forward needs for nb sequences of tq (and tk) tokens. */
size_t mmspcl_head_block_scratch(const mmspcl_head_block *b, int nb, int tq, int tk);
/* nb sequences at once: x [nb][tq][D] is updated in place; src [nb][tk][D] (cross layers only);
   kmask [nb][tk] for cross layers, [nb][tq] for self layers (1 = attend; NULL = all). A query
   whose keys are all masked gets a zero attention output. */
mmspcl_status mmspcl_head_block_forward(const mmspcl_head_block *b, float *x, int nb, int tq,
                                        const float *src, int tk, const unsigned char *kmask,
                                        float *scratch);

/* ---- 12.2 SPCL score --------------------------------------------------------------------- */
/* SPCL score, on float vectors of length d. Zero vectors have cosine 0. */
float mmspcl_score(const float *a, const float *b, int d);

/* ---- 12.3 Cross-modal pruning ------------------------------------------------------------ */
/* Cross-modal pruning for n samples. base [n][db], prune [n][dp]; both are cut into heads of K
   values (K is 16, 32 or 64 in the paper; any K > 0 works). db must be a multiple of K; the last
   pruning head is shorter when K does not divide dp, and is then compared with the first values
   of each base head. For every base head, the pruning head with the highest cosine similarity
   (ties: the lowest index; a zero vector has cosine 0) is zeroed. A pruning head can be chosen by
   several base heads; at most db/K heads are zeroed.
   mmspcl_prune_apply: pruned [n][dp] = prune with the chosen heads zeroed.
   mmspcl_prune_forward: out [n][db + dp] = base ++ pruned (the concatenation the heads fuse).
   kept (optional) [n][ceil(dp/K)] receives 1 for kept pruning heads, 0 for zeroed ones. */
mmspcl_status mmspcl_prune_apply(const float *base, int db, const float *prune, int dp, int K,
                                 int n, float *pruned, unsigned char *kept, mmspcl_error *err);
mmspcl_status mmspcl_prune_forward(const float *base, int db, const float *prune, int dp, int K,
                                   int n, float *out, unsigned char *kept, mmspcl_error *err);
/* Threshold variant (the paper's section 8.3 proposal): a pruning head is zeroed when its cosine
   with at least one base head is >= tau, so none, some or all heads may go (the arg-max rule
   zeroes the best match of every base head whatever its cosine). Same heads and cosine as
   above; pruned [n][dp], kept (optional) [n][ceil(dp/K)]. Several pruning modalities: call it
   once per modality against the same base. */
mmspcl_status mmspcl_prune_threshold_apply(const float *base, int db, const float *prune, int dp, int K,
                                           double tau, int n, float *pruned, unsigned char *kept,
                                           mmspcl_error *err);

/* Cross-modal pruning as a layer (Table 4's {tav} and the paper's section 8.3 proposals):
   a base modality (t in the paper) and one or two pruning modalities (a, v), each cut into
   heads of K values after an optional common projection, so that:
     u_m  = proj_dim > 0 ? W_m x_m + b_m (every present modality into one proj_dim-wide space,
            the common projection before the split) : x_m
     rule MMSPCL_PRUNE_ARGMAX: every base head zeroes the pruning head with the highest cosine;
          two pruning modalities either each on their own (joint 0: its best head in a AND its
          best head in v) or as one pool (joint 1: its best head among a's and v's, t, a, v
          order, ties to the first)
     rule MMSPCL_PRUNE_THRESHOLD: a pruning head goes when its cosine with at least one base head
          is >= tau (joint does not matter)
     y_m  = u_m with its zeroed heads; the base and any modality outside `mods` pass unchanged.
   Heads and cosine as mmspcl_prune_apply above (a short last head meets the first values of each
   base head; cosine in double). The outputs y[m] [n][width[m]] feed any fusion head.
   mmspcl_train.h trains it (mmspcl_xprune_train) and saves it under the names
   mmspcl_xprune_load reads. */
#define MMSPCL_PRUNE_ARGMAX 0
#define MMSPCL_PRUNE_THRESHOLD 1
typedef struct mmspcl_xprune_cfg {
    int dims[3];           /* input widths of t, a, v (0 = absent) */
    int base;              /* modality index of the base (0 = t) */
    unsigned mods;         /* pruning modalities, MMSPCL_MOD_* bits; 0: every present one but the base */
    int K;                 /* head size; divides the base's width (after the projection) */
    int rule;              /* MMSPCL_PRUNE_ARGMAX or MMSPCL_PRUNE_THRESHOLD */
    double tau;            /* the threshold (threshold rule) */
    int joint;             /* arg-max rule: 0 each pruning modality on its own, 1 one pool */
    int proj_dim;          /* 0: no projection; > 0: the common projection's width */
} mmspcl_xprune_cfg;
/* what a configuration implies: the pruning set, widths after the projection, heads per
   modality and where each modality's kept flags start in a sample's n_kept flags */
typedef struct mmspcl_xprune_layout { unsigned mods; int width[3], np[3], koff[3], n_kept; } mmspcl_xprune_layout;
typedef struct mmspcl_xprune {
    mmspcl_xprune_cfg cfg;
    mmspcl_xprune_layout lay;
    mmspcl_head_linear proj[3];      /* proj_dim > 0: [proj_dim][dims[m]] */
} mmspcl_xprune;
/* checks a configuration (MMSPCL_ERR_ARG naming what is wrong) and fills its layout */
mmspcl_status mmspcl_xprune_plan(const mmspcl_xprune_cfg *c, mmspcl_xprune_layout *l, mmspcl_error *err);
/* the choice of heads for ONE sample from its (projected) rows u[m] [width[m]], in double;
   kept [n_kept]. Shared by mmspcl_xprune_forward and the training twin. */
void mmspcl_xprune_select(const mmspcl_xprune_cfg *c, const mmspcl_xprune_layout *l, const double *const u[3],
                          unsigned char *kept);
/* the same over the pruning modalities in `mods` only (a subset of l->mods; the others' heads
   are kept and their rows not read) */
void mmspcl_xprune_select_some(const mmspcl_xprune_cfg *c, const mmspcl_xprune_layout *l, const double *const u[3],
                               unsigned mods, unsigned char *kept);
/* x[m] [n][dims[m]] -> y[m] [n][width[m]] (present modalities; y may not alias x); kept
   (optional) [n][n_kept] */
mmspcl_status mmspcl_xprune_forward(const mmspcl_xprune *p, const float *const x[3], int n, float *const y[3],
                                    unsigned char *kept, mmspcl_error *err);
/* Pruning over sequences: x[m] [n][T[m]][dims[m]], lens[m] [n] real steps (1..T[m]; lens or an
   entry NULL: all). Every step s is one row of the rule above: the base's step s prunes step s
   of each pruning modality in which that step is real (the joint pool and the threshold see only
   those); a step past the base's length keeps all its heads (there is no base step to compare
   it with). y[m] [n][T[m]][width[m]]: pruned real steps, padded steps ZERO whatever x holds
   there (they are never compared). kept (optional) [n][max T][n_kept], 1 for heads kept or not
   compared. T[m] = 1 and lens NULL is mmspcl_xprune_forward. */
mmspcl_status mmspcl_xprune_forward_seq(const mmspcl_xprune *p, const float *const x[3], const int T[3],
                                        const int *const lens[3], int n, float *const y[3], unsigned char *kept,
                                        mmspcl_error *err);
/* keys P.dim.{t,a,v} P.base P.mods P.K P.rule P.joint P.proj_dim (ints), P.tau (float);
   tensors P.proj.{t,a,v}.weight/.bias when proj_dim > 0 */
mmspcl_status mmspcl_xprune_load(mmspcl_xprune *p, const mmspcl_weights *w, const char *prefix, mmspcl_error *err);

/* ---- 12.4 Fusion (a) --------------------------------------------------------------------- */
/* Fusion (a): y = W [x_t ; x_a ; x_v] + b over the modalities with dims[m] > 0. */
typedef struct mmspcl_fuse_linear { int dims[3]; mmspcl_head_linear proj; } mmspcl_fuse_linear;
mmspcl_status mmspcl_fuse_linear_forward(const mmspcl_fuse_linear *f, const float *const x[3], int n,
                                         float *y, mmspcl_error *err);

/* ---- 12.5 Fusion (b) MulT and (c) MBT ---------------------------------------------------- */
/* Sequence heads: modality m is a sequence of seq[m] tokens of tok[m] floats per sample
   (for example a 1024-d text vector as 64 tokens of 16), m over the modalities with seq[m] > 0.
   Each token is projected to d_model and a learned position embedding is added. */

/* Fusion (b), MulT: one transformer per ordered pair (i, j), i != j: n_cross cross-attention
   layers (queries from i, keys/values from j's embedded tokens) then n_self self-attention
   layers, a final layer norm and a mean over i's tokens; the pair outputs are concatenated
   and projected to out_dim. Pairs are ordered i-major over present modalities. */
typedef struct mmspcl_mult {
    int seq[3], tok[3];
    int d_model, n_heads, n_cross, n_self, ff_mult, out_dim, n_pairs;
    mmspcl_act act;
    mmspcl_head_linear in_proj[3];
    const float *pos[3];             /* [seq[m]][d_model] */
    mmspcl_head_block *blocks;       /* [n_pairs][n_cross + n_self] (owned) */
    mmspcl_head_ln *final_ln;        /* [n_pairs] (owned) */
    mmspcl_head_linear out_proj;     /* n_pairs * d_model -> out_dim */
} mmspcl_mult;
mmspcl_status mmspcl_mult_forward(const mmspcl_mult *m, const float *const x[3], int n, float *y,
                                  mmspcl_error *err);
void mmspcl_mult_free(mmspcl_mult *m);

/* Fusion (c), attention bottlenecks (Nagrani et al. 2021): one transformer per modality of
   n_layers layers; layers before fusion_start see only their own tokens; from fusion_start on
   each modality's layer sees its tokens followed by the bottleneck (fusion) tokens it shares, and
   each bottleneck set is then replaced by the mean of what its modalities' layers made of it.
   Output: each modality's tokens through a final layer norm, mean-pooled, concatenated,
   projected to out_dim. Two ways to share (bottleneck):
     MMSPCL_BOTTLENECK_MODALITY  one set of n_fusion tokens shared by every modality, averaged
                                 over all of them (scenic's MBT, per modality: m's layer sees
                                 [z_m ; B], then B = mean over m of its part of the outputs)
     MMSPCL_BOTTLENECK_PAIR      one set B_ij per pair of present modalities, pairs (t,a), (t,v),
                                 (a,v) in that order (the paper's equations 8-9 as they read):
                                 m's layer sees [z_m ; B_ij for each pair holding m, in pair
                                 order], then B_ij = mean of the i and j outputs of its tokens.
   With two modalities both are the same model. fusion_tokens holds the sets one after another.
   Sequences with a padding mask (mmspcl_mbt_forward_seq): sample i of modality m has lens[m][i]
   real tokens (1..seq[m], right padding); a padded token is never a key (of its modality's
   layers; the bottleneck tokens are always keys) and never enters the readout, so whatever the
   padding holds changes nothing. Two readouts (readout):
     MMSPCL_READOUT_MODALITY  ours: per modality final_ln[m], the mean over its real tokens; the
                              n_mod means concatenated; out_proj [out_dim][n_mod d_model]
     MMSPCL_READOUT_JOINT     scenic's ('gap'): ONE layer norm final_ln[0] (encoder_norm) on every
                              modality's tokens, the mean over all real tokens of all modalities
                              together; out_proj [out_dim][d_model] */
#define MMSPCL_BOTTLENECK_MODALITY 0
#define MMSPCL_BOTTLENECK_PAIR 1
#define MMSPCL_READOUT_MODALITY 0
#define MMSPCL_READOUT_JOINT 1
typedef struct mmspcl_mbt {
    int seq[3], tok[3];
    int d_model, n_heads, n_layers, fusion_start, n_fusion, ff_mult, out_dim, n_mod;
    int bottleneck, n_sets;          /* MMSPCL_BOTTLENECK_*; 1, or n_mod (n_mod - 1) / 2 pairs */
    int readout;                     /* MMSPCL_READOUT_* */
    mmspcl_act act;
    mmspcl_head_linear in_proj[3];
    const float *pos[3];
    const float *fusion_tokens;      /* [n_sets * n_fusion][d_model] */
    mmspcl_head_block *blocks;       /* [n_mod][n_layers] over present modalities (owned) */
    mmspcl_head_ln final_ln[3];      /* READOUT_JOINT: final_ln[0] only */
    mmspcl_head_linear out_proj;     /* n_mod * d_model (JOINT: d_model) -> out_dim */
} mmspcl_mbt;
/* every token real (mmspcl_mbt_forward_seq with lens NULL) */
mmspcl_status mmspcl_mbt_forward(const mmspcl_mbt *m, const float *const x[3], int n, float *y,
                                 mmspcl_error *err);
/* x[m] [n][seq[m]][tok[m]]; lens[m] [n] in 1..seq[m] (lens or an entry NULL: every token real);
   a length outside 1..seq[m] is refused naming the sample */
mmspcl_status mmspcl_mbt_forward_seq(const mmspcl_mbt *m, const float *const x[3], const int *const lens[3], int n,
                                     float *y, mmspcl_error *err);
void mmspcl_mbt_free(mmspcl_mbt *m);

/* ---- 12.6 MSVE --------------------------------------------------------------------------- */
/* MSVE: one network per enabled combination c (index = combination mask 1..7) of depth[c]
   Linear layers, act between them (no act after the last):
     depth 1   logits = fc1 x                              (in -> classes)
     depth 2   logits = fc2 act(fc1 x)                     (in -> hidden -> classes)
     depth 3   logits = fc3 act(fc2 act(fc1 x))            (in -> hidden -> hidden -> classes)
   The input of each modality is first standardised, (x - mean) / std, when mean/std are given.
   The paper's mix (MMSPCL_MSVE_PAPER_DEPTHS): single linear layers for every combination but
   tv (2 layers) and tav (3 layers); at dims 1024/88/512, 7 classes, hidden 100: 351,101
   parameters (the paper: "about 350K"; which two combinations are deeper is our choice, see
   docs/FUSION.md). Files written before depths existed have no depth keys: depth 2. */
#define MMSPCL_MSVE_MAX_DEPTH 3
typedef struct mmspcl_msve {
    int n_classes;
    int dims[3];
    unsigned combos;                 /* enabled set (MMSPCL_COMBO bits) */
    int hidden;                      /* width of the hidden layers */
    mmspcl_act act;
    int depth[8];                    /* Linear layers of combination c (1..3; 0 when disabled) */
    mmspcl_head_linear fc[8][MMSPCL_MSVE_MAX_DEPTH];
    const float *mean[3], *std[3];
} mmspcl_msve;
/* the paper's depths, indexed by combination mask: t 1, a 1, ta 1, v 1, tv 2, av 1, tav 3 */
#define MMSPCL_MSVE_PAPER_DEPTHS { 0, 1, 1, 1, 1, 2, 1, 3 }
/* logits [n][n_classes] = sum over the combinations in `combos` (0: all enabled) of their
   networks' logits. x[m] is [n][dims[m]] (unused modalities may be NULL). */
mmspcl_status mmspcl_msve_forward(const mmspcl_msve *m, const float *const x[3], int n,
                                  unsigned combos, float *logits, mmspcl_error *err);
/* Name of combination mask c (1..7): "t", "a", "ta", "v", "tv", "av", "tav"; "" otherwise. */
const char *mmspcl_combo_name(int c);
/* A list of combinations, "t,ta,tv,tav" (commas; each name any order of distinct letters t, a,
   v, so "at" is ta; "all" is every combination), as a set of MMSPCL_COMBO bits. Refused with a
   message naming the entry: an empty list or entry, an unknown letter, a letter twice, a
   combination twice. */
mmspcl_status mmspcl_combos_parse(const char *s, unsigned *set, mmspcl_error *err);
/* Depths per combination, "tv=2,tav=3" (entries as in mmspcl_combos_parse, depth 1..3), over
   depth[8]: the entries named are set, the others left as they are. "paper" sets the paper's
   mix, "N" (one number) sets every combination to N. */
mmspcl_status mmspcl_depths_parse(const char *s, int depth[8], mmspcl_error *err);

/* ---- 12.7 Prototypes and metrics --------------------------------------------------------- */
/* Nearest prototype by G: pred[i] = argmax_c G(z_i, protos_c); scores [n][C] optional. */
void mmspcl_proto_classify(const float *z, int n, int dim, const float *protos, int n_classes,
                           int *pred, float *scores);
/* argmax over each row of [n][C] (ties: the lowest index) */
void mmspcl_argmax_rows(const float *x, int n, int C, int *out);

/* Metrics. cm[t * C + p] counts samples of true class t predicted as p (labels outside
   0..C-1 are skipped). */
typedef struct mmspcl_class_metrics { double precision, recall, f1; int64_t support; } mmspcl_class_metrics;
typedef struct mmspcl_metrics {
    int64_t n;
    double accuracy, macro_f1, weighted_f1, weighted_precision, weighted_recall;
} mmspcl_metrics;
void mmspcl_confusion(const int *y_true, const int *y_pred, int n, int n_classes, int64_t *cm);
/* per_class may be NULL. Precision/recall/F1 of a class with no predictions / no support is 0
   (scikit-learn's zero_division=0). weighted = sum_c support_c * score_c / sum_c support_c. */
void mmspcl_metrics_from_confusion(const int64_t *cm, int n_classes, mmspcl_class_metrics *per_class,
                                   mmspcl_metrics *out);

/* ---- 12.8 Loading ------------------------------------------------------------------------ */
/* Loading heads saved by mmspcl_train.h (zero copy: w must outlive the head). Linear weights may
   be in any dtype mmspcl_linear takes (a converter may quantize them); everything else is f32.
   mmspcl_head_linear_load reads NAME.weight [out][in] and NAME.bias [out] (in, out from the file). */
mmspcl_status mmspcl_head_linear_load(mmspcl_head_linear *l, const mmspcl_weights *w, const char *name,
                                      mmspcl_error *err);
mmspcl_status mmspcl_msve_load(mmspcl_msve *m, const mmspcl_weights *w, const char *prefix,
                               mmspcl_error *err);
mmspcl_status mmspcl_mult_load(mmspcl_mult *m, const mmspcl_weights *w, const char *prefix,
                               mmspcl_error *err);
mmspcl_status mmspcl_mbt_load(mmspcl_mbt *m, const mmspcl_weights *w, const char *prefix,
                              mmspcl_error *err);
mmspcl_status mmspcl_fuse_linear_load(mmspcl_fuse_linear *f, const mmspcl_weights *w,
                                      const char *prefix, mmspcl_error *err);
/* prefix.protos [C][dim] (SPCL class means), pointer into w */
mmspcl_status mmspcl_protos_load(const float **protos, int *n_classes, int *dim,
                                 const mmspcl_weights *w, const char *prefix, mmspcl_error *err);

/* ---- 12.9 Sequence MulT: MulT as its code does it ----------------------------------------- */
/* Fusion (b) over sequences, structured as yaohungt/Multimodal-Transformer (src/models.py,
   modules/transformer.py): modality m is a sequence of T[m] steps of dims[m] features per
   sample, lens[m][i] real steps (right padding; a single vector is T = 1).
     e_m    = sqrt(d) * Conv1d_k1(x_m) + pos_d            (1-D conv of kernel 1 = a Linear with
                                                           no bias; pos_d: fairseq sinusoids)
     pair (a <- b), for each target a and source b != a:
       h = e_a; n_layers times h = Layer(h, kv = e_b); h_ab = LN(h)
     target a: c_a = [h_ab over b in t, a, v order], Dm = (n_mod - 1) d wide,
       g = sqrt(Dm) * c_a + pos_Dm; n_mem_layers times g = Layer(g, self); g = LN(g)
       last_a = g at step lens[a][i] - 1 (MulT's h[-1]), or the mean over real steps (pool MEAN)
     z = [last_a over targets]; z += proj2(ReLU(proj1 z)); y = out(z)
   Layer(x, kv): x += Wo Attn(Wq LN0(x), Wk LN0(kv), Wv LN0(kv)) with ONE layer norm LN0 for
   queries and keys/values (MulT's layer_norms[0]); x += fc2(ReLU(fc1(LN1(x)))), fc1 4x wide.
   Sinusoids: step t (0-based) gets fairseq's position t + 1: column j < D/2 is
   sin((t+1) w_j), column D/2 + j is cos((t+1) w_j), w_j = exp(-j ln(10000) / (D/2 - 1)); an odd
   D has a last zero column. Departures from the original, all documented in docs/FUSION.md: a
   key padding mask (MulT has none; padded steps never reach an output, so full lengths give
   MulT exactly), the last REAL step, the projection even when dims[m] == d (MulT then skips
   it), no embedding / attention / residual dropout (training has ReLU and output dropout). */
#define MMSPCL_POOL_LAST 0
#define MMSPCL_POOL_MEAN 1
typedef struct mmspcl_mult_seq_cfg {
    int dims[3];           /* features per step of t, a, v (0 = absent; at least two present) */
    int d;                 /* width of each modality inside (MulT: d_l = d_a = d_v = 30); >= 4 */
    int n_heads;           /* divides d */
    int n_layers;          /* cross-modal layers per pair (MulT: --nlevels 5), >= 1 */
    int n_mem_layers;      /* self-attention layers per target (MulT: max(nlevels, 3)), >= 0 */
    int out_dim;           /* output width (classes) */
    int pool;              /* MMSPCL_POOL_LAST (MulT) or MMSPCL_POOL_MEAN */
} mmspcl_mult_seq_cfg;
typedef struct mmspcl_mult_seq {
    mmspcl_mult_seq_cfg cfg;
    int n_mod, mods[3], n_pairs, pa[6], pb[6];   /* pair p: target pa[p], source pb[p], target-major */
    mmspcl_head_linear in_proj[3];               /* [d][dims[m]], bias 0 */
    mmspcl_head_block *cross;                    /* [n_pairs][n_layers] (owned) */
    mmspcl_head_ln cross_ln[6];
    mmspcl_head_block *mem;                      /* [n_mod][n_mem_layers] (owned) */
    mmspcl_head_ln mem_ln[3];
    mmspcl_head_mlp res;                         /* proj1, proj2: n_mod Dm wide */
    mmspcl_head_linear out;
} mmspcl_mult_seq;
/* x[m] [n][T[m]][dims[m]] (absent modalities: NULL); lens[m] [n] in 1..T[m] or NULL (all T[m]);
   y [n][out_dim]. */
mmspcl_status mmspcl_mult_seq_forward(const mmspcl_mult_seq *m, const float *const x[3], const int T[3],
                                      const int *const lens[3], int n, float *y, mmspcl_error *err);
/* keys P.dim.{t,a,v} P.d P.n_heads P.n_layers P.n_mem_layers P.out_dim P.pool; tensors
   P.proj.{m} P.{a}_{b}.layer.{l}.{ln_q,attn.{q,k,v,o},ln_ff,ff.fc1,ff.fc2} P.{a}_{b}.ln
   P.{a}_mem.layer.{l}.* P.{a}_mem.ln P.res.fc{1,2} P.out (each .weight/.bias) */
mmspcl_status mmspcl_mult_seq_load(mmspcl_mult_seq *m, const mmspcl_weights *w, const char *prefix,
                                   mmspcl_error *err);
void mmspcl_mult_seq_free(mmspcl_mult_seq *m);
/* The sinusoids above, pos [T][D] (double: the training twin shares them) */
void mmspcl_sinusoids(double *pos, int T, int D);

/* ---------------------------------------------------------------------------------------------
   13. Classifier
   The main job: turns of a dialogue in, each turn's emotion and sentiment out.

     mmspcl_classifier m;
     mmspcl_classifier_load(&m, "weights/meld-text-q8_0.mmw", &err);   or _from_memory (firmware)
     mmspcl_turn turns[2] = {{"Rachel", "Guess what?"}, {"Ross", "What?"}};
     float emo[2 * MMSPCL_NUM_EMOTIONS], sent[2 * MMSPCL_NUM_SENTIMENTS];
     mmspcl_classifier_classify(&m, turns, 2, NULL, emo, sent, &err);   probabilities per turn
     mmspcl_emotion_names[argmax of emo row t] is turn t's emotion
     mmspcl_classifier_free(&m);

   A classifier file holds a RoBERTa-layout text encoder with its tokenizer (roberta.*,
   tokenizer.*), and under the key prefix "meld." (the name of format v1's classifier namespace,
   kept so shipped files load): max_len (int, required) and any of these parts:
     ngram_bits (int), idf [2^bits], lr.{emotion,sentiment}.{weight,bias}   the n-gram view
     protos [7][hidden]           class means of t: the SPCL prototype classifier
     linear.{emotion,sentiment}.{weight [C][hidden], bias [C]}   linear heads on t
     emotion.*, sentiment.*       MSVE heads (mmspcl_msve_load); view.{t,a,v}.*  single views
     default_head, default_sentiment_head (str)   the heads to use when the caller names none
     view_t (str)                 "scores": the MSVE heads take the score view of t (below)
                                  instead of t itself (needs protos and both linear heads)
     log.{mlm,spcl,heads}         the training log
   A file needs at least one emotion head; an MSVE head that takes the view a needs the n-gram
   view. A file fine-tuned with SPCL (mmspcl train --init) holds protos and linear heads.
   Every turn has three views (the MSVE "modalities" of the text):
     t  the encoder's hidden state at the SPCL prompt's <mask>            [hidden]
     a  the n-gram view: log-probabilities of the two logistic regressions (7 emotions, then 3
        sentiments) on the hashed TF-IDF of the utterance (mmspcl_ngram_sparse)   [10]
     v  the mean of the encoder's hidden states over the whole prompt      [hidden]
   The score view of t (mmspcl_classifier_scores, [17]): cos(t, protos_c) for the 7 classes, the
   linear emotion head's 7 logits and the linear sentiment head's 3 on t. Unlike t, it means
   the same thing in every encoder fine-tuned the same way, so heads can learn it from
   out-of-fold encoders (mmspcl heads) and run it on the final one. With view_t "scores" every
   MSVE head (emotion, sentiment, view.*) takes it as its t input; mmspcl_classifier_features
   still returns t itself, mmspcl_classifier_heads derives the scores.
   Heads: "emotion" (MSVE ensemble over t, a, v), "lr" (the n-gram regression alone), "protos"
   (nearest class mean of t by G, as SPCL infers; softmax of G / 0.08 as probabilities),
   "linear" (the linear head on t), "view.t" / "view.a" / "view.v" (single-view heads);
   sentiment: "sentiment" (MSVE), "lr", "linear". The default (head NULL, see
   mmspcl_classifier_default_head) is the file's default_head when it names one, else, per
   task, the one of the MSVE ensemble and the n-gram regression with the higher dev weighted F1
   in the training log, else linear, else protos. A file without any sentiment head gives no
   sentiment (classify with sent NULL; asking for it is MMSPCL_ERR_NOT_FOUND). Every head's
   class count and width are checked against the task and the model at load or first use.
   A classifier is not thread-safe (the encoder owns its arena): one per thread.
   Media heads (13.6, optional): meld.media.emotion.* and meld.media.sentiment.* are MSVE heads
   over the real modalities of MM-SPCL: t the <mask> view above [hidden], a a per-turn audio
   vector [dims.a] (mmspcl classify computes the 88 eGeMAPS of the turn's WAV, 14.5), v a
   per-turn video vector [dims.v] (the CLIP image embedding of the clip's middle frame, 11.3);
   meld.media.audio (str) names the audio features ("egemaps"). A turn's vote is the sum of
   the head's combinations whose modalities the turn has (MSVE's voting over any subset); a
   turn with none of them, and the task without a media head, take the default text head.
   The joint head (optional; mmspcl train --init --fusion writes it): meld.joint.kind (0 linear,
   1 MulT, 2 MBT), meld.joint.fusion.* (the fusion head, mmspcl_fuse_linear_load /
   _mult_load / _mbt_load), meld.joint.prune.* (optional, mmspcl_xprune_load), meld.joint.protos
   [7][D] (class means of z), meld.joint.linear.{emotion,sentiment}.{weight,bias} (linear
   heads on z, optional), meld.joint.audio (str, as meld.media.audio). z = fusion(prune(t, a,
   v)) with t the <mask> view; emotion by nearest class mean of z (softmax of G / 0.08, as
   "protos"), sentiment by the linear sentiment head on z where there is one. A turn without
   a vector the joint head takes gets zeros there (as the training did for rows without one).
   The joint head decides every turn where the file has it (after any media head).
   ------------------------------------------------------------------------------------------ */
#define MMSPCL_NUM_EMOTIONS 7
#define MMSPCL_NUM_SENTIMENTS 3
extern const char *const mmspcl_emotion_names[MMSPCL_NUM_EMOTIONS];     /* neutral joy sadness surprise fear disgust anger */
extern const char *const mmspcl_sentiment_names[MMSPCL_NUM_SENTIMENTS]; /* neutral positive negative */
int mmspcl_emotion_id(const char *name);   /* -1 if unknown (case-insensitive) */
int mmspcl_sentiment_id(const char *name);

typedef struct mmspcl_classifier {
    mmspcl_weights *w;               /* the file (owned) */
    mmspcl_roberta *enc;             /* the text encoder */
    mmspcl_bpe *tok;
    mmspcl_msve emotion, sentiment;  /* the MSVE heads */
    int has_sentiment;               /* 1: an MSVE sentiment head */
    int has_ngram, has_msve;         /* 1: the n-gram view; an MSVE emotion head */
    const mmspcl_tensor *lin_w[2];   /* linear heads on t (any dtype; NULL: none): emotion [7][hidden], sentiment [3][hidden] */
    const float *lin_b[2];
    const char *default_head[2];     /* emotion, sentiment (NULL: the task has no head) */
    const float *idf, *protos;       /* into w; protos may be NULL */
    float *lr_w[2];                  /* n-gram regressions, dequantized: emotion [7][2^bits], sentiment [3][2^bits] */
    const float *lr_b[2];
    int hidden, max_len, ngram_bits, max_batch;
    int emo_lr, sent_lr;             /* 1: the default head of the task is the n-gram regression (as default_head) */
    int t_scores;                    /* 1: meld.view_t "scores": the MSVE heads take mmspcl_classifier_scores of t */
    double dev_f1[2][2];             /* [emotion, sentiment][MSVE, regression] dev weighted F1 (-1: not logged) */
    mmspcl_msve media[2];            /* media heads (13.6): emotion, sentiment */
    int has_media[2];                /* 1: meld.media.emotion / meld.media.sentiment present */
    int audio_dim, video_dim;        /* widths of a and v the media heads take (0: none takes it) */
    const char *audio_features;      /* meld.media.audio ("egemaps"; NULL: not named) */
    /* the joint head (13.6, meld.joint.*): z = fusion(prune(t, a, v)) of a fine-tuning with a
       fusion head (mmspcl train --init --fusion) */
    int has_joint, joint_kind, joint_prune, joint_dim;   /* fusion kind (0 linear, 1 MulT, 2 MBT), pruned, width of z */
    int joint_in[3];                 /* widths of t, a, v it takes (0: not a or v) */
    mmspcl_xprune joint_xp;
    mmspcl_fuse_linear joint_lin;
    mmspcl_mult joint_mult;
    mmspcl_mbt joint_mbt;
    const float *joint_protos;       /* [7][joint_dim]: class means of z */
    mmspcl_head_linear joint_head[2];/* linear heads on z: emotion, sentiment */
    int joint_has_head[2];
} mmspcl_classifier;

mmspcl_status mmspcl_classifier_load(mmspcl_classifier *m, const char *path, mmspcl_error *err);
/* From a file image in memory, used in place (it must outlive m): firmware, embedded arrays. */
mmspcl_status mmspcl_classifier_from_memory(mmspcl_classifier *m, const void *bytes, size_t size,
                                            mmspcl_error *err);
void mmspcl_classifier_free(mmspcl_classifier *m);
/* The head used for task 0 (emotion) or 1 (sentiment) when the caller names none; NULL when
   the file has no head for the task. */
const char *mmspcl_classifier_default_head(const mmspcl_classifier *m, int task);
/* 1 when the file has head `name` (one of the heads above) for task 0 (emotion) / 1
   (sentiment), else 0 (also for a name that is no head of the task). */
int mmspcl_classifier_has_head(const mmspcl_classifier *m, int task, const char *name);
/* Class probabilities for every turn of ONE dialogue (the context of a turn is the turns before
   it): emo [n][7], sent [n][3] (either may be NULL). head: NULL or a head named above. */
mmspcl_status mmspcl_classifier_classify(mmspcl_classifier *m, const mmspcl_turn *turns, int n,
                                         const char *head, float *emo, float *sent, mmspcl_error *err);
/* The two steps of classify, for callers that score several heads on one computation of the
   views (mmspcl eval --all-heads): views t, v [n][hidden], a [n][10] (any may be NULL) ... */
mmspcl_status mmspcl_classifier_features(mmspcl_classifier *m, const mmspcl_turn *turns, int n,
                                         float *t, float *a, float *v, mmspcl_error *err);
/* ... then the heads on them: head as above (emo may be NULL), sent_head NULL (default),
   "sentiment" (MSVE) or "lr". */
mmspcl_status mmspcl_classifier_heads(mmspcl_classifier *m, const float *t, const float *a, const float *v,
                                      int n, const char *head, const char *sent_head, float *emo, float *sent,
                                      mmspcl_error *err);

/* Like classify, with each turn's audio [n][audio_dim] and video [n][video_dim] vectors
   (either NULL: no turn has it) and mods [n] (NULL: every turn has what audio / video give;
   else MMSPCL_MOD_A | MMSPCL_MOD_V bits: what turn i has; t it always has). Emotion and sentiment come from the media
   heads where the model has them (a turn they cannot vote on, and a task without one, from the
   default text head). MMSPCL_ERR_NOT_FOUND when the model has no media head at all. */
mmspcl_status mmspcl_classifier_classify_media(mmspcl_classifier *m, const mmspcl_turn *turns, int n,
                                               const float *audio, const float *video, const unsigned char *mods,
                                               float *emo, float *sent, mmspcl_error *err);

/* The score view of t [n][hidden]: s [n][MMSPCL_SCORES_DIM] = cos(t, protos_c) (7), the linear
   emotion head's logits (7), the linear sentiment head's logits (3). MMSPCL_ERR_NOT_FOUND when
   the file lacks meld.protos or a linear head. */
#define MMSPCL_SCORES_DIM (2 * MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS)
mmspcl_status mmspcl_classifier_scores(const mmspcl_classifier *m, const float *t, int n, float *s, mmspcl_error *err);

/* The n-gram view's features: sparse hashed TF-IDF of a text: word uni+bigrams (lower-cased;
   ’ is '; letter/digit/' runs, other characters alone) and character 2..5-grams of each
   space-padded word, each block (1 + log tf) * idf and l2-normalised, buckets mod 2^nbits.
   Writes at most cap (index, value) pairs sorted by index; returns the full count (-1: out of
   memory). idf NULL: 1. */
int mmspcl_ngram_sparse(const char *text, int nbits, const float *idf, int32_t *idx, float *val, int cap);
/* out[c] = log softmax_c(b[c] + sum_j W[c][idx[j]] val[j]): a linear model W [C][F] (C <=
   MMSPCL_MAX_CLASSES) on one sparse row. */
void mmspcl_sparse_log_softmax(const float *W, const float *b, int C, int64_t F, const int32_t *idx,
                               const float *val, int nnz, float *out);

/* Dialogues as text: one "Speaker: utterance" per line (a line without "Speaker: " within its
   first 41 bytes gets the speaker "Speaker"), a blank line starts a new dialogue, lines starting
   with # are comments, CR LF or LF. turns point into text (owned). */
typedef struct mmspcl_dialogues {
    mmspcl_turn *turns;
    int n_turns;
    int *start;                      /* dialogue d is turns[start[d] .. start[d+1]) */
    int n_dialogues;
    char *text;                      /* private: the strings */
} mmspcl_dialogues;
mmspcl_status mmspcl_dialogues_parse(const char *bytes, size_t size, mmspcl_dialogues *out, mmspcl_error *err);
void mmspcl_dialogues_free(mmspcl_dialogues *d);

/* ---------------------------------------------------------------------------------------------
   14. Audio
   Speech in, without openSMILE: WAV files read in blocks (files of any length in bounded
   memory), resampling to 16 kHz, Kaldi-compatible log-mel filterbanks and MFCCs, F0 with
   voicing after Praat's autocorrelation method, and eGeMAPS-style functionals. Every
   definition, tolerance and measured accuracy: docs/AUDIO.md.

     mmspcl_wav_reader r;
     float block[4096];
     int got;
     mmspcl_wav_open(&r, "speech.wav", &err);            or mmspcl_wav_open_memory
     while (!(st = mmspcl_wav_read(&r, block, 4096, &got, &err)) && got > 0)
         ... got mono samples in [-1, 1) at r.info.sample_rate ...
     mmspcl_wav_close(&r);

   14.1 WAV files
     RIFF/WAVE: a "fmt " chunk, then a "data" chunk; other chunks are skipped (an odd size is
     followed by one pad byte, per RIFF); nothing after the data chunk is read. Formats: 1 (PCM:
     8-bit unsigned, 16/24/32-bit signed little-endian, or any bit count 1..32 left-justified in a
     container of 1..4 bytes), 3 (IEEE float, 32 or 64 bit) and 0xFFFE (WAVE_FORMAT_EXTENSIBLE
     whose sub-format GUID is PCM or float). Any channel count 1..65535, mixed to mono by
     averaging; any rate 1..MMSPCL_WAV_MAX_RATE. Samples come out as floats: integers divided by
     2^(8 x container bytes - 1) (8-bit: (u - 128) / 128), floats as stored.
     Refused (MMSPCL_ERR_FORMAT, naming the byte offset): a truncated header, a chunk whose size
     runs past the end of the RIFF or the file, a data chunk before the fmt chunk or none, 0
     channels, a rate of 0 or over the maximum, a block size other than channels x container
     bytes, a data size that is not a whole number of frames, no frames, and (when read) a NaN or
     infinite float sample or a file that ends inside the data chunk. The reader holds one block
     of bytes (64 KiB, or one frame when larger): a 10-hour file is never loaded whole.
   ------------------------------------------------------------------------------------------ */
#define MMSPCL_WAV_MAX_RATE 1000000
#define MMSPCL_WAV_PCM 1
#define MMSPCL_WAV_FLOAT 3
#define MMSPCL_WAV_EXTENSIBLE 0xFFFE

typedef struct mmspcl_wav_info {
    int format;             /* MMSPCL_WAV_PCM or MMSPCL_WAV_FLOAT (an extensible file's sub-format) */
    int extensible;         /* 1: the fmt chunk said WAVE_FORMAT_EXTENSIBLE */
    int channels, sample_rate;
    int bits;               /* bits per sample as the fmt chunk states them */
    int container;          /* bytes per sample as stored: 1..4, or 8 (64-bit float) */
    int64_t frames;         /* sample frames (one sample per channel) in the data chunk */
    int64_t data_offset;    /* byte offset of the first sample */
} mmspcl_wav_info;

typedef struct mmspcl_wav_reader {
    mmspcl_wav_info info;
    /* private */
    void *file;                      /* FILE *, or NULL when reading memory */
    int own_file, seekable;
    const unsigned char *mem;
    size_t mem_size;
    int64_t file_size;               /* -1: unknown (a pipe) */
    int64_t frames_read;
    unsigned char *buf;
    size_t buf_cap;
    char name[96];
} mmspcl_wav_reader;

/* A file ("-": standard input, which is read forward only). Not in MMSPCL_NO_STDIO builds. */
mmspcl_status mmspcl_wav_open(mmspcl_wav_reader *r, const char *path, mmspcl_error *err);
/* Bytes in memory, read in place (they must outlive r). */
mmspcl_status mmspcl_wav_open_memory(mmspcl_wav_reader *r, const void *bytes, size_t size, mmspcl_error *err);
/* Up to max frames, mixed to mono, into mono[0..*got); *got == 0 at the end of the data. */
mmspcl_status mmspcl_wav_read(mmspcl_wav_reader *r, float *mono, int max, int *got, mmspcl_error *err);
/* Back to the first sample (memory, regular files; standard input: MMSPCL_ERR_UNSUPPORTED). */
mmspcl_status mmspcl_wav_rewind(mmspcl_wav_reader *r, mmspcl_error *err);
/* All (remaining) frames as one mono buffer (free with mmspcl_free); over max_frames frames:
   MMSPCL_ERR_UNSUPPORTED before anything is read. */
mmspcl_status mmspcl_wav_read_all(mmspcl_wav_reader *r, int64_t max_frames, float **mono, int64_t *n, mmspcl_error *err);
void mmspcl_wav_close(mmspcl_wav_reader *r);

/* ---- 14.2 Resampling ------------------------------------------------------------------------
     Band-limited interpolation with a Kaiser-windowed sinc (beta 9, 48 zero crossings of the
     lower rate on each side, cutoff 0.46875 of the lower rate: 7.5 kHz when one side is 16 kHz).
     Output sample k is at input time k * in_rate / out_rate exactly (rational arithmetic);
     samples before the first and after the last are zero. Exact polyphase coefficients when
     out_rate / gcd(in_rate, out_rate) <= 1024 (every common rate), otherwise 1024 phases and
     linear interpolation between the two nearest. Measured by tests/test_audio.c on a stepped
     sine sweep (docs/AUDIO.md): passband ripple +-0.0003 dB to 7 kHz, stopband >= 91 dB from
     8 kHz (to 16 kHz), images >= 100 dB down (from 8 kHz).
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_resampler {
    int in_rate, out_rate;
    /* private */
    int64_t p, q;                    /* in_rate / g, out_rate / g */
    int half, taps, fine;            /* taps per side (input samples), 2 * half, 1: 1024 interpolated phases */
    double fc, width;                /* cutoff (cycles per input sample), window half-width (input samples) */
    float *table;                    /* [q][taps] exact, or the fine kernel table */
    int table_n;
    float *hist;                     /* input samples [hist_base, hist_base + hist_len) */
    int64_t hist_base;
    int hist_len, hist_cap;
    int64_t n_in, k;                 /* inputs taken; the next output's index */
    int done;
} mmspcl_resampler;

mmspcl_status mmspcl_resampler_init(mmspcl_resampler *r, int in_rate, int out_rate, mmspcl_error *err);
/* Room that always suffices for the outputs of one mmspcl_resample call with n inputs (last
   included), whatever came before: a buffer of mmspcl_resample_bound(r, 4096) floats takes
   every call of up to 4096 inputs. */
int64_t mmspcl_resample_bound(const mmspcl_resampler *r, int64_t n);
/* Takes in[0..n) and writes the outputs now complete (cap too small for them: MMSPCL_ERR_ARG,
   nothing taken); last = 1 with the final input flushes the rest: ceil(total * out / in)
   outputs in all. */
mmspcl_status mmspcl_resample(mmspcl_resampler *r, const float *in, int n, int last, float *out, int cap, int *n_out,
                              mmspcl_error *err);
/* Output count for n inputs in all: ceil(n * out_rate / in_rate). */
int64_t mmspcl_resample_count(int in_rate, int out_rate, int64_t n);
/* Back to the state after init (a new stream, the same rates), keeping the coefficients. */
void mmspcl_resampler_reset(mmspcl_resampler *r);
void mmspcl_resampler_free(mmspcl_resampler *r);

/* ---- 14.3 Kaldi filterbank and MFCC ---------------------------------------------------------
     Equal to torchaudio.compliance.kaldi.fbank (num_mel_bins 80) and .mfcc (23 bins, 13
     cepstra, lifter 22, use_energy) with dither 0 and the other options at their defaults, on
     the samples x 32768 (the int16 scale Kaldi reads WAV files in): frames of 25 ms every 10 ms
     (snip_edges: 1 + (n - len) / shift frames), DC offset removed, pre-emphasis 0.97, Povey
     window, FFT of the next power of two, power spectrum, triangular mel bins from 20 Hz to the
     Nyquist frequency, log(max(e, FLT_EPSILON)); MFCC: orthonormal DCT-II (c0 with sqrt(1/23)),
     lifter 1 + 11 sin(pi i / 22), c0 replaced by the log energy of the frame after DC removal
     (floor 0 = log 1). Double precision throughout; measured against torchaudio: docs/AUDIO.md.
   ------------------------------------------------------------------------------------------ */
#define MMSPCL_FBANK 0   /* 80 log mel energies a frame */
#define MMSPCL_MFCC 1    /* 13 cepstra a frame (c0: log energy) */

typedef struct mmspcl_fbank {
    int kind, rate, dim;             /* dim: 80 or 13 */
    int win, shift, nfft;            /* samples */
    /* private */
    int n_mel;
    double *window, *mel_w, *dct, *lifter, *work, *twc, *tws;
    int *mel_lo, *mel_n, *rev;
    float *buf;                      /* samples [buf_base, buf_base + buf_len) */
    int64_t buf_base, next_frame;
    int buf_len, buf_cap;
} mmspcl_fbank;

mmspcl_status mmspcl_fbank_init(mmspcl_fbank *f, int kind, int sample_rate, mmspcl_error *err);
/* Frames for n samples in all: 1 + (n - win) / shift, 0 when n < win. */
int64_t mmspcl_fbank_frames(const mmspcl_fbank *f, int64_t n);
/* Takes x[0..n) and writes the frames now complete, dim floats each, at most cap frames
   (cap below what n completes: MMSPCL_ERR_ARG; (n + shift - 1) / shift + 1 always suffices). */
mmspcl_status mmspcl_fbank_push(mmspcl_fbank *f, const float *x, int n, float *out, int cap, int *n_frames,
                                mmspcl_error *err);
void mmspcl_fbank_free(mmspcl_fbank *f);
/* One call for samples in memory: out holds mmspcl_fbank_frames(n) x dim floats. */
mmspcl_status mmspcl_fbank_compute(int kind, int sample_rate, const float *x, int64_t n, float *out, mmspcl_error *err);

/* ---- 14.4 F0 and voicing --------------------------------------------------------------------
     Praat's "To Pitch (ac)" (Boersma 1993) with its standard settings: time step 10 ms, floor
     75 Hz, ceiling 600 Hz, 15 candidates, Hanning window of 3 periods of the floor (40 ms),
     silence threshold 0.03, voicing threshold 0.45, octave cost 0.01, octave-jump cost 0.35,
     voiced/unvoiced cost 0.14. Frames are Praat's: as many 40 ms windows as fit, centred in the
     sound, frame i at time t0 + 0.01 i (mmspcl_pitch_time). Per frame: local mean removed, the
     autocorrelation divided by the window's, maxima refined by sinc interpolation (Brent); then
     the Viterbi path over all frames. Output: F0 in Hz, 0 when unvoiced. The path is decided
     as the survivors of the Viterbi search merge (a forced decision after decide_lag =
     MMSPCL_PITCH_MAX_LAG frames without a merge), so memory stays bounded. The silence
     threshold is relative to the sound's absolute peak (after its mean is removed): pass it in
     (a first pass over the file: mmspcl_audio_peak), or 0 to use the peak of what was pushed
     before the first frame completed (not Praat's). Measured against Praat: docs/AUDIO.md.
   ------------------------------------------------------------------------------------------ */
#define MMSPCL_PITCH_MAX_CAND 15
#define MMSPCL_PITCH_MAX_LAG 2000

/* The peak of |x - mean(x)| over a whole sound, from running sums (streams: call on each block). */
typedef struct mmspcl_audio_peak { double sum, lo, hi; int64_t n; } mmspcl_audio_peak;
void mmspcl_audio_peak_add(mmspcl_audio_peak *p, const float *x, int64_t n);   /* zero p first */
double mmspcl_audio_peak_value(const mmspcl_audio_peak *p);

typedef struct mmspcl_pitch_frame {   /* one frame's candidates (private) */
    float freq[MMSPCL_PITCH_MAX_CAND], strength[MMSPCL_PITCH_MAX_CAND];
    unsigned char psi[MMSPCL_PITCH_MAX_CAND], n;
    float intensity;
} mmspcl_pitch_frame;

typedef struct mmspcl_pitch {
    int rate;
    int64_t n_samples, n_frames;     /* the whole sound's, given at init */
    double t0, dt;                   /* time of frame 0 (s), time step */
    int decide_lag;                  /* frames without a merge before a forced decision (init:
                                        MMSPCL_PITCH_MAX_LAG; may be set before the first push;
                                        at least 2) */
    /* private */
    double global_peak;
    mmspcl_audio_peak run;           /* of the samples pushed (global_peak <= 0) */
    int nwin, half, nper, halfper, nfft, ixmax, max_lag;
    double *window, *windowR, *work, *spec, *R, *twc, *tws, delta[MMSPCL_PITCH_MAX_CAND];
    int *rev;
    float *buf;
    int64_t buf_base, next_frame, frames_out, q_base;
    int buf_len, buf_cap;
    mmspcl_pitch_frame *q;           /* frames [q_base, next_frame) not yet decided */
    int q_cap;
    float *ready;                    /* decided (F0, strength) pairs not yet taken */
    int ready_len, ready_cap;
} mmspcl_pitch;

/* n_samples: the sound's length in samples (frames depend on it); global_peak as above. */
mmspcl_status mmspcl_pitch_init(mmspcl_pitch *p, int sample_rate, int64_t n_samples, double global_peak,
                                mmspcl_error *err);
/* Takes x[0..n) (at most n_samples in all); decided F0 values queue up for mmspcl_pitch_take. */
mmspcl_status mmspcl_pitch_push(mmspcl_pitch *p, const float *x, int n, mmspcl_error *err);
/* After the last push: decides the remaining frames. */
mmspcl_status mmspcl_pitch_finish(mmspcl_pitch *p, mmspcl_error *err);
/* Moves up to cap decided frames (in order) out: F0 (Hz, 0 unvoiced) to f0 and, when strength is
   not NULL, the chosen candidate's strength (its normalised autocorrelation; 0 unvoiced).
   Returns the count. */
int mmspcl_pitch_take(mmspcl_pitch *p, float *f0, float *strength, int cap);
double mmspcl_pitch_time(const mmspcl_pitch *p, int64_t frame);
void mmspcl_pitch_free(mmspcl_pitch *p);
/* One call for a sound in memory: f0 holds mmspcl_pitch_frames(rate, n) floats. */
int64_t mmspcl_pitch_frames(int sample_rate, int64_t n_samples);
mmspcl_status mmspcl_pitch_compute(int sample_rate, const float *x, int64_t n, float *f0, mmspcl_error *err);

/* ---- 14.5 eGeMAPS ----------------------------------------------------------------------------
     The 88 functionals of eGeMAPS v02 (Eyben et al. 2016), named as openSMILE's eGeMAPSv02 CSV
     header (mmspcl_egemaps_names), over low-level descriptors (LLDs) computed here on the
     16 kHz sound every 10 ms on the frames of 14.4. Each LLD and functional is defined in
     docs/AUDIO.md; they follow the paper's definitions, NOT openSMILE's code: values are of the
     same kind and order of magnitude, not openSMILE's numbers (docs/AUDIO.md says where they
     differ). The F0 is 14.4's (Praat), formants are Praat's Burg method, HNR comes from the
     pitch candidate's autocorrelation.
     LLD rows (mmspcl_egemaps_take_lld), MMSPCL_EGEMAPS_LLD floats a frame, 0 where a voiced-only
     LLD is undefined: F0 (Hz), loudness, spectral flux, MFCC 1-4, jitter (local, fraction),
     shimmer (local, dB), HNR (dB), H1-H2 (dB), H1-A3 (dB), F1, F1 bandwidth, F1 amplitude
     relative to H1 (dB), the same for F2 and F3, alpha ratio (dB), Hammarberg index (dB),
     spectral slope 0-500 Hz and 500-1500 Hz (dB/Hz), frame power (mean square).
     Memory: bounded but for 8 bytes a frame (the F0 and loudness values the percentiles sort).
   ------------------------------------------------------------------------------------------ */
#define MMSPCL_EGEMAPS_N 88
#define MMSPCL_EGEMAPS_LLD 26
extern const char *const mmspcl_egemaps_names[MMSPCL_EGEMAPS_N];
typedef struct mmspcl_egemaps mmspcl_egemaps;
/* n_samples and global_peak as for mmspcl_pitch_init, at 16 kHz; keep_lld: queue LLD rows. */
mmspcl_status mmspcl_egemaps_new(mmspcl_egemaps **out, int64_t n_samples, double global_peak, int keep_lld,
                                 mmspcl_error *err);
mmspcl_status mmspcl_egemaps_push(mmspcl_egemaps *g, const float *x, int n, mmspcl_error *err);
/* After the last push: the 88 values into out. */
mmspcl_status mmspcl_egemaps_finish(mmspcl_egemaps *g, float *out, mmspcl_error *err);
/* Up to cap LLD rows (frames in order) of a keep_lld extractor; returns the count. */
int mmspcl_egemaps_take_lld(mmspcl_egemaps *g, float *rows, int cap);
void mmspcl_egemaps_free(mmspcl_egemaps *g);
/* One call for a 16 kHz sound in memory. */
mmspcl_status mmspcl_egemaps_compute(const float *x, int64_t n, float *out, mmspcl_error *err);

/* ---- 14.6 Encoding a WAV stream --------------------------------------------------------------
     The command line's path: a WAV reader's samples, resampled to MMSPCL_AUDIO_RATE (16 kHz)
     unless already at it, into one feature; rows go to a callback as they complete, so memory
     stays bounded for any length. F0 (and eGeMAPS) need the sound's peak (14.4): from a first
     pass over the file when the reader can rewind (files, memory), otherwise (standard input)
     the running peak. The reader is read from where it stands to its end.
   ------------------------------------------------------------------------------------------ */
#define MMSPCL_AUDIO_RATE 16000
#define MMSPCL_F0 2                  /* 1 value a 10 ms frame (Praat's grid): Hz, 0 unvoiced */
#define MMSPCL_EGEMAPS 3             /* 88 values for the whole sound (14.5) */
/* Floats a row: 80, 13, 1 or 88; 0 for an unknown feature. */
int mmspcl_audio_dim(int feature);
/* Called with n_rows rows of dim floats each; a status other than MMSPCL_OK stops the encoding. */
typedef mmspcl_status (*mmspcl_audio_rows_fn)(void *user, const float *rows, int n_rows, int dim, mmspcl_error *err);
mmspcl_status mmspcl_audio_encode(mmspcl_wav_reader *r, int feature, mmspcl_audio_rows_fn fn, void *user, mmspcl_error *err);

/* ---------------------------------------------------------------------------------------------
   15. Threads
   The kernels (linear layers, attention, layer norm, ...) split their work over a pool of
   threads the library owns (POSIX threads; none with MMSPCL_NO_THREADS, or where there are no
   POSIX threads: there, OpenMP when the build has -fopenmp, else the calling thread). Defaults:
   MMSPCL_NUM_THREADS from the environment, else OMP_NUM_THREADS, else the cores this process
   may use (its CPU affinity, capped by a cgroup CPU quota where /sys/fs/cgroup shows one).
   The pool is built not to collapse on a busy machine: work is handed out one item at a time
   to whichever thread is running, a thread that gets no CPU takes none, and idle threads spin
   only briefly (MMSPCL_SPIN pause instructions, default 4000, a few tens of microseconds) before
   they sleep. With the default count, the pool's own threads (all but the caller) run at idle
   priority (Linux SCHED_IDLE): they use cores nothing else wants, so a job never takes a core
   from another process or another job, and jobs sharing a machine each keep at least the
   calling thread's full share. A count asked for (mmspcl_set_threads(N >= 1), --threads N,
   MMSPCL_NUM_THREADS, OMP_NUM_THREADS) keeps every thread at normal priority. Several jobs on
   one machine: see docs/PERFORMANCE.md ("Threads"); one thread per job (mmspcl_set_threads(1),
   --threads 1) is the most throughput for many independent jobs.
   Results never depend on the thread count: every output is computed by the same sequence of
   operations whichever thread computes it (tests/test_kernels.c and tests/test_threads.c
   compare 1 and 2 threads bit for bit).
   mmspcl_train.h's loops use OpenMP (with -fopenmp); mmspcl_set_threads sets its thread count
   too (omp_set_num_threads, on the calling thread).
   Set the count before loading models or between calls, not while another thread of the
   program is inside the library: per-thread scratch of a loaded model (CLIP's arena) grows on
   its next forward, RoBERTa's attention uses at most the threads its arena was sized for.
   ------------------------------------------------------------------------------------------ */
/* Threads every later call may use: n >= 1, or n <= 0 for the default above. Returns the count
   now in effect. The pool's threads start on first use and stop at exit. */
int mmspcl_set_threads(int n);
int mmspcl_threads(void);            /* the count in effect (the default until set) */
int mmspcl_default_threads(void);    /* the default: environment, else the usable cores */

#ifdef __cplusplus
}
#endif

#endif /* MMSPCL_H */

/* =============================================================================================
   INTERNALS SHARED BY BOTH IMPLEMENTATIONS (mmspcl.h's and mmspcl_train.h's; outside the
   include guard, so that whichever implementation a translation unit asks for gets them)
   ========================================================================================== */
#if (defined(MMSPCL_IMPLEMENTATION) || defined(MMSPCL_TRAIN_IMPLEMENTATION)) && !defined(MMSPCL__SHARED_DONE)
#define MMSPCL__SHARED_DONE
#include <stdlib.h>
/* OpenMP, for mmspcl_train.h's loops (mmspcl.h's kernels use the library's pool, 15. Threads):
   MMSPCL__OMP_FOR in front of a for loop splits it statically over the threads;
   MMSPCL__OMP_FOR_IF(c) does so only when c is true (small loops stay on the calling thread).
   Without -fopenmp they are nothing (and -Wall sees no unknown pragma). */
#define MMSPCL__PRAGMA(x) _Pragma(#x)
#ifdef _OPENMP
#include <omp.h>
#define MMSPCL__OMP_FOR _Pragma("omp parallel for schedule(static)")
#define MMSPCL__OMP_FOR_IF(c) MMSPCL__PRAGMA(omp parallel for schedule(static) if(c))
#define MMSPCL__MAX_THREADS() omp_get_max_threads()
#define MMSPCL__THREAD_ID() omp_get_thread_num()
#else
#define MMSPCL__OMP_FOR
#define MMSPCL__OMP_FOR_IF(c)
#define MMSPCL__MAX_THREADS() 1
#define MMSPCL__THREAD_ID() 0
#endif

#ifndef MMSPCL_MALLOC
#define MMSPCL_MALLOC(sz) malloc(sz)
#define MMSPCL_REALLOC(p, sz) realloc(p, sz)
#define MMSPCL_FREE(p) free(p)
#endif
#endif /* MMSPCL__SHARED_DONE */

/* =============================================================================================
   IMPLEMENTATION
   ========================================================================================== */
#ifdef MMSPCL_IMPLEMENTATION
#ifndef MMSPCL_IMPLEMENTATION_DONE
#define MMSPCL_IMPLEMENTATION_DONE

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#if !defined(MMSPCL_NO_MMAP) && !defined(MMSPCL_NO_STDIO) && (defined(__unix__) || defined(__APPLE__))
#define MMSPCL__HAVE_MMAP 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#if !defined(MMSPCL_NO_THREADS) && (defined(__unix__) || defined(__APPLE__)) && (defined(__GNUC__) || defined(__clang__))
#define MMSPCL__POOL 1   /* the library's own threads (15. Threads) */
#include <pthread.h>
#include <unistd.h>
#endif
#ifndef MMSPCL_ASSERT
#define MMSPCL_ASSERT(x) ((void)0)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* 15. Threads, used by the kernels: mmspcl__parallel(n, team, fn, ctx) runs fn(ctx, i, tid) for
   every i < n on at most `team` threads (tid < team: the index of per-thread scratch; the caller
   is 0). Items are claimed one at a time, in no fixed order: each must be computed the same way
   whichever thread runs it. mmspcl__team() is the team a call may size its scratch for. */
typedef void (*mmspcl__task_fn)(void *ctx, int item, int tid);
static int mmspcl__team(void);
static void mmspcl__parallel(int n, int team, mmspcl__task_fn fn, void *ctx);

/* ---------------------------------------------------------------------------------------------
   1. Status and errors
   ------------------------------------------------------------------------------------------ */
#define mmspcl__fail mmspcl_error_set
mmspcl_status mmspcl_error_set(mmspcl_error *err, mmspcl_status st, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = st;
    }
    return st;
}

const char *mmspcl_status_name(mmspcl_status st) {
    switch (st) {
    case MMSPCL_OK: return "ok";
    case MMSPCL_ERR_IO: return "i/o error";
    case MMSPCL_ERR_FORMAT: return "bad format";
    case MMSPCL_ERR_NOMEM: return "out of memory";
    case MMSPCL_ERR_ARG: return "invalid argument";
    case MMSPCL_ERR_UNSUPPORTED: return "unsupported";
    case MMSPCL_ERR_NOT_FOUND: return "not found";
    }
    return "unknown status";
}

/* ---------------------------------------------------------------------------------------------
   2. Whole files and mmspcl_free
   ------------------------------------------------------------------------------------------ */
void mmspcl_free(void *p) { MMSPCL_FREE(p); }

#ifndef MMSPCL_NO_STDIO
/* The one whole-file reader: *raw is the allocation (free it), *data = raw advanced to an
   `align`-byte boundary (1: none), followed by a NUL. Regular files are sized first and refused
   over max_bytes before any allocation; pipes and standard input ("-") grow a buffer. */
static mmspcl_status mmspcl__read_whole(const char *path, size_t max_bytes, size_t align, unsigned char **raw,
                                        unsigned char **data, size_t *size, mmspcl_error *err) {
    const int is_stdin = path[0] == '-' && !path[1];
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    size_t cap = 1 << 16, len = 0, got;
    long flen = -1;
    unsigned char *buf = NULL;
    *raw = *data = NULL;
    *size = 0;
    if (!f) return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!is_stdin && fseek(f, 0, SEEK_END) == 0 && (flen = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        /* a directory opens and may report a size of LONG_MAX: read one byte before trusting it */
        if (flen > 0 && (fgetc(f) == EOF || fseek(f, 0, SEEK_SET))) {
            fclose(f);
            return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot read (a directory?)", path);
        }
        if ((uint64_t)flen > (uint64_t)max_bytes) {
            fclose(f);
            return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: %ld bytes is over the limit of %zu bytes", path, flen, max_bytes);
        }
        cap = (size_t)flen;
    }
    for (;;) {
        unsigned char *p;
        if (cap > max_bytes) cap = max_bytes;
        if (!(p = (unsigned char *)MMSPCL_REALLOC(buf, cap + align + 1))) {
            MMSPCL_FREE(buf);
            if (!is_stdin) fclose(f);
            return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, cap);
        }
        buf = p;
        got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap || cap == max_bytes || flen >= 0) break;   /* a sized file is read in one go */
        cap *= 2;
    }
    if (ferror(f) || (!is_stdin && flen >= 0 && len != (size_t)flen)) {
        MMSPCL_FREE(buf);
        if (!is_stdin) fclose(f);
        return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: short read", path);
    }
    if (len == max_bytes && fgetc(f) != EOF) {
        MMSPCL_FREE(buf);
        if (!is_stdin) fclose(f);
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: over the limit of %zu bytes", path, max_bytes);
    }
    if (!is_stdin) fclose(f);
    /* the bytes were read at buf; move them to the aligned start */
    *data = buf + ((align - (uintptr_t)buf % align) % align);
    if (*data != buf) memmove(*data, buf, len);
    (*data)[len] = 0;
    *raw = buf;
    *size = len;
    return MMSPCL_OK;
}

mmspcl_status mmspcl_read_file(const char *path, size_t max_bytes, unsigned char **out, size_t *size,
                               mmspcl_error *err) {
    unsigned char *raw, *data;
    mmspcl_status st;
    if (!path || !out || !size) return mmspcl__fail(err, MMSPCL_ERR_ARG, "read_file: NULL argument");
    st = mmspcl__read_whole(path, max_bytes, 1, &raw, &data, size, err);
    *out = data;
    return st;
}
#endif

/* ---------------------------------------------------------------------------------------------
   3. Data types and tensors
   ------------------------------------------------------------------------------------------ */
/* ---- 3.1 Half precision and bfloat16 ----------------------------------------------------- */
static uint32_t mmspcl__f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float mmspcl__bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float mmspcl_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return mmspcl__bits_f32(sign | 0x7f800000u | (man << 13)); /* inf, nan */
    if (exp == 0) {                                     /* zero and subnormals: man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return mmspcl__bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t mmspcl_fp32_to_fp16(float f) {
    uint32_t u = mmspcl__f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000, abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0));
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);  /* rounds to >= 65520: inf */
    if (abs < 0x38800000u) {                                     /* result is subnormal or 0 */
        /* value / 2^-24 rounded to nearest even; float arithmetic is exact enough here
           because the magic addition rounds in the FPU's nearest-even mode. */
        float v = mmspcl__bits_f32(abs) + 0.5f;  /* 0.5 = 2^-1: puts 2^-24 units in the low bits */
        return (uint16_t)(sign | (mmspcl__f32_bits(v) - 0x3f000000u));
    }
    {
        uint32_t mant_odd = (abs >> 13) & 1;
        abs += 0xc8000fffu + mant_odd;   /* rebias exponent (-112 << 23) and round to even */
        return (uint16_t)(sign | (abs >> 13));
    }
}

float mmspcl_bf16_to_fp32(uint16_t h) { return mmspcl__bits_f32((uint32_t)h << 16); }

uint16_t mmspcl_fp32_to_bf16(float f) {
    uint32_t u = mmspcl__f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet nan */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* ---- 3.2 Data types, panels and quantization blocks -------------------------------------- */
/* The type table: name, values per block (1 for plain numbers), bytes per block, and whether
   Linear weights of the type take the integer path (int8 values and a scale per 32). */
static const struct mmspcl__type_traits { const char *name; int block, bytes, integer; }
    mmspcl__types[MMSPCL_DTYPE_COUNT] = {
        {"f32", 1, 4, 0},         {"f16", 1, 2, 0},  {"bf16", 1, 2, 0},
        {"q8_0", MMSPCL_QBLOCK, (int)sizeof(mmspcl_block_q8_0), 1}, {"q4_0", MMSPCL_QBLOCK, (int)sizeof(mmspcl_block_q4_0), 1},
        {"i32", 1, 4, 0},         {"q4_k", MMSPCL_KBLOCK, MMSPCL_Q4_K_BYTES, 1}, {"q5_k", MMSPCL_KBLOCK, MMSPCL_Q5_K_BYTES, 1}};

const char *mmspcl_dtype_name(mmspcl_dtype t) {
    return (unsigned)t < MMSPCL_DTYPE_COUNT ? mmspcl__types[t].name : "?";
}

int mmspcl_dtype_from_name(const char *name, mmspcl_dtype *out) {
    int i;
    for (i = 0; i < MMSPCL_DTYPE_COUNT; i++)
        if (strcmp(name, mmspcl__types[i].name) == 0) { *out = (mmspcl_dtype)i; return 0; }
    return -1;
}

size_t mmspcl_dtype_row_size(mmspcl_dtype t, int64_t n) {
    if (n < 0 || (unsigned)t >= MMSPCL_DTYPE_COUNT || n % mmspcl__types[t].block) return 0;
    return (size_t)(n / mmspcl__types[t].block) * (size_t)mmspcl__types[t].bytes;
}

/* Weights of this type take the integer path (q8_0, q4_0, q4_k, q5_k). */
static int mmspcl__dtype_integer(mmspcl_dtype t) { return (unsigned)t < MMSPCL_DTYPE_COUNT && mmspcl__types[t].integer; }

int64_t mmspcl_tensor_nelements(const mmspcl_tensor *t) {
    int64_t n = 1;
    int i;
    for (i = 0; i < t->ndim; i++) n *= t->ne[i];
    return n;
}

/* Panel p of a panel weight, at column k: 16 floats, the outputs 16 p .. 16 p + 15. */
static const float *mmspcl__panel(const mmspcl_tensor *W, int64_t p, int64_t k) {
    return (const float *)W->data + ((size_t)p * (size_t)W->ne[1] + (size_t)k) * MMSPCL_PANEL;
}

int mmspcl_tensor_is_panels(const mmspcl_tensor *t) {
    return t && t->dtype == MMSPCL_F32 && t->ndim == 3 && t->ne[2] == MMSPCL_PANEL && t->ne[0] >= 0 && t->ne[1] >= 0;
}
int64_t mmspcl_matrix_rows(const mmspcl_tensor *W) { return mmspcl_tensor_is_panels(W) ? W->ne[0] * MMSPCL_PANEL : W->ne[0]; }
int64_t mmspcl_matrix_cols(const mmspcl_tensor *W) { return W->ne[1]; }

mmspcl_status mmspcl_matrix_row(const mmspcl_tensor *W, int64_t r, float *dst) {
    if (!W || r < 0 || r >= mmspcl_matrix_rows(W)) return MMSPCL_ERR_ARG;
    if (mmspcl_tensor_is_panels(W)) {
        const float *p = mmspcl__panel(W, r / MMSPCL_PANEL, 0) + r % MMSPCL_PANEL;
        int64_t k;
        for (k = 0; k < W->ne[1]; k++) dst[k] = p[k * MMSPCL_PANEL];
        return MMSPCL_OK;
    }
    if (W->ndim != 2) return MMSPCL_ERR_ARG;
    return mmspcl_dequantize_row(W->dtype, (const unsigned char *)W->data + (size_t)r * mmspcl_dtype_row_size(W->dtype, W->ne[1]),
                                 dst, W->ne[1]);
}

mmspcl_status mmspcl_pack_panels(const float *src, int64_t rows, int64_t cols, float *dst) {
    int64_t r, k;
    if (rows < 0 || cols < 0 || rows % MMSPCL_PANEL) return MMSPCL_ERR_ARG;
    for (r = 0; r < rows; r++)
        for (k = 0; k < cols; k++)
            dst[((r / MMSPCL_PANEL) * cols + k) * MMSPCL_PANEL + r % MMSPCL_PANEL] = src[r * cols + k];
    return MMSPCL_OK;
}

/* q8_0: d = max|x| / 127, q = round(x / d). */
static void mmspcl__quantize_q8_0(const float *x, mmspcl_block_q8_0 *b, int64_t nblocks) {
    int64_t i;
    int j;
    for (i = 0; i < nblocks; i++, x += MMSPCL_QBLOCK) {
        float amax = 0.0f, d, id;
        for (j = 0; j < MMSPCL_QBLOCK; j++) amax = fmaxf(amax, fabsf(x[j]));
        d = amax / 127.0f;
        id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = mmspcl_fp32_to_fp16(d);
        for (j = 0; j < MMSPCL_QBLOCK; j++) b[i].q[j] = (int8_t)lroundf(x[j] * id);
    }
}

/* q4_0: the value of largest magnitude m maps to -8, so d = m / -8 and q = clamp(round(x/d)+8).
   Using the signed extreme (not |m| / 7) uses all 16 levels, as ggml's q4_0 does. */
static void mmspcl__quantize_q4_0(const float *x, mmspcl_block_q4_0 *b, int64_t nblocks) {
    int64_t i;
    int j;
    for (i = 0; i < nblocks; i++, x += MMSPCL_QBLOCK) {
        float amax = 0.0f, m = 0.0f, d, id;
        for (j = 0; j < MMSPCL_QBLOCK; j++)
            if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); m = x[j]; }
        d = m / -8.0f;
        id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = mmspcl_fp32_to_fp16(d);
        for (j = 0; j < MMSPCL_QBLOCK / 2; j++) {
            /* clamp before the conversion: (int) of nan/inf (a block with inf, or a tiny d whose
               1/d overflows) is undefined behaviour; finite results are unchanged */
            float vl = x[j] * id + 8.5f, vh = x[j + 16] * id + 8.5f;
            int lo = vl >= 15.0f ? 15 : vl > 0.0f ? (int)vl : 0, hi = vh >= 15.0f ? 15 : vh > 0.0f ? (int)vh : 0;
            b[i].q[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

/* k-types (q4_k, q5_k): super-blocks of 256 values = 8 sub-blocks of 32 (docs/FORMAT.md).
     bytes 0-1   d, f16: the unit of the sub-block scales
     bytes 2-7   sc[j], j = 0..7, 6 bits each: bits 6j .. 6j+5 of the little-endian 48-bit number in bytes 2-7
     q4_k: 8-11  z[j], 4 bits: byte 8 + j/2, low nibble for even j; 12-139 the values' 4 bits, sub-block
                 j in bytes 12 + 16j .. +15: byte i has value i in its low nibble, value i+16 in its high
     q5_k: 8-12  z[j], 5 bits: bits 5j .. 5j+4 of the little-endian 40-bit number in bytes 8-12;
                 13-140 the low 4 bits as q4_k's; 141-172 bit 4: of value i of sub-block j, bit i of the
                 little-endian 32-bit word at 141 + 4j
   value i of sub-block j = S[j] * (q - z[j]) with S[j] = f32(d) * sc[j] (exact in f32). */
static int mmspcl__kbits(mmspcl_dtype t) { return t == MMSPCL_Q5_K ? 5 : 4; }

static uint64_t mmspcl__le_bits(const unsigned char *p, int nbytes) {
    uint64_t v = 0;
    int i;
    for (i = nbytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* Scale S[j] and zero point z[j] of sub-block j of super-block blk. */
static float mmspcl__ksub(const unsigned char *blk, int bits, int j, int *z) {
    const int sc = (int)(mmspcl__le_bits(blk + 2, 6) >> (6 * j) & 63);
    uint16_t d;
    *z = bits == 4 ? (blk[8 + j / 2] >> (4 * (j & 1))) & 15 : (int)(mmspcl__le_bits(blk + 8, 5) >> (5 * j) & 31);
    d = (uint16_t)(blk[0] | blk[1] << 8);
    return mmspcl_fp16_to_fp32(d) * (float)sc;
}

/* Sub-block j of super-block blk as int8 values q - z[j] (v[32]); returns S[j]. */
static float mmspcl__ksub_values(const unsigned char *blk, int bits, int j, int8_t *v) {
    const unsigned char *lo = blk + (bits == 4 ? 12 : 13) + 16 * j;
    uint32_t hi = bits == 4 ? 0 : (uint32_t)mmspcl__le_bits(blk + 141 + 4 * j, 4);
    int z, i;
    const float S = mmspcl__ksub(blk, bits, j, &z);
    for (i = 0; i < 16; i++) {
        v[i] = (int8_t)((lo[i] & 15) + (int)((hi >> i & 1) << 4) - z);
        v[i + 16] = (int8_t)((lo[i] >> 4) + (int)((hi >> (i + 16) & 1) << 4) - z);
    }
    return S;
}

/* Codes of 32 values x with scale S: zero point z (0..L, the nearest to -min(x, 0) / S, or the
   neighbour that fits better) and q = clamp(round(x / S) + z, 0, L); returns the squared error. */
static float mmspcl__kfit(const float *x, float S, float mn, int L, int *zo, uint8_t *q) {
    const float iS = S > 0.0f ? 1.0f / S : 0.0f, zc = -mn * iS + 0.5f;
    const int z0 = zc >= (float)L ? L : zc > 0.0f ? (int)zc : 0;
    float best = INFINITY;
    int z, i;
    *zo = 0;
    for (z = z0 > 0 ? z0 - 1 : 0; z <= z0 + 1 && z <= L; z++) {
        float err = 0.0f;
        uint8_t c[MMSPCL_QBLOCK];
        for (i = 0; i < MMSPCL_QBLOCK; i++) {
            const float t = x[i] * iS + (float)z + 0.5f, e = S * (float)((c[i] = (uint8_t)(t >= (float)L ? L : t > 0.0f ? (int)t : 0)) - z) - x[i];
            err += e * e;
        }
        if (err < best) { best = err; *zo = z; memcpy(q, c, sizeof c); }
    }
    return best;
}

/* One super-block. Per sub-block the float scale (max(x, 0) - min(x, 0)) / L times the factor of
   0.84 .. 1.06 (steps of 0.02) with the least squared error; d = the largest of them / 63 as
   f16; sc[j] = round(scale / d) in 1..63 (0 for an all-zero sub-block); then z and q again with
   the stored S[j] (mmspcl__kfit). */
static void mmspcl__quantize_k(const float *x, unsigned char *blk, int bits) {
    const int L = (1 << bits) - 1;
    float s[8], mn[8], dd, dmax = 0.0f;
    uint64_t scw = 0, zw = 0;
    uint16_t d16;
    int j, i, f;
    memset(blk, 0, bits == 4 ? MMSPCL_Q4_K_BYTES : MMSPCL_Q5_K_BYTES);
    for (j = 0; j < 8; j++) {
        const float *xs = x + MMSPCL_QBLOCK * j;
        float lo = 0.0f, hi = 0.0f, best = INFINITY;
        uint8_t q[MMSPCL_QBLOCK];
        int z;
        for (i = 0; i < MMSPCL_QBLOCK; i++) { lo = fminf(lo, xs[i]); hi = fmaxf(hi, xs[i]); }
        mn[j] = lo;
        s[j] = 0.0f;
        if (hi - lo > 0.0f)
            for (f = 0; f < 12; f++) {
                const float cand = (hi - lo) / (float)L * ((float)(42 + f) / 50.0f);   /* f = 8: exactly 1 */
                const float err = mmspcl__kfit(xs, cand, lo, L, &z, q);
                if (err < best) { best = err; s[j] = cand; }
            }
        if (s[j] > dmax) dmax = s[j];
    }
    d16 = mmspcl_fp32_to_fp16(dmax / 63.0f);
    dd = mmspcl_fp16_to_fp32(d16);
    blk[0] = (unsigned char)(d16 & 255);
    blk[1] = (unsigned char)(d16 >> 8);
    for (j = 0; j < 8; j++) {
        const float r = dd > 0.0f ? s[j] / dd + 0.5f : 0.0f;
        const int sc = s[j] > 0.0f && dd > 0.0f ? (r >= 63.0f ? 63 : r >= 1.0f ? (int)r : 1) : 0;
        uint8_t q[MMSPCL_QBLOCK];
        unsigned char *lo = blk + (bits == 4 ? 12 : 13) + 16 * j;
        int z;
        uint32_t hb = 0;
        mmspcl__kfit(x + MMSPCL_QBLOCK * j, dd * (float)sc, mn[j], L, &z, q);
        if (sc == 0) { z = 0; memset(q, 0, sizeof q); }
        scw |= (uint64_t)sc << (6 * j);
        zw |= (uint64_t)z << (bits * j);
        for (i = 0; i < 16; i++) lo[i] = (unsigned char)((q[i] & 15) | (q[i + 16] & 15) << 4);
        for (i = 0; i < MMSPCL_QBLOCK; i++) hb |= (uint32_t)(q[i] >> 4 & 1) << i;
        if (bits == 5)
            for (i = 0; i < 4; i++) blk[141 + 4 * j + i] = (unsigned char)(hb >> (8 * i));
    }
    for (i = 0; i < 6; i++) blk[2 + i] = (unsigned char)(scw >> (8 * i));
    for (i = 0; i < (bits == 4 ? 4 : 5); i++) blk[8 + i] = (unsigned char)(zw >> (8 * i));
}

mmspcl_status mmspcl_quantize_row(mmspcl_dtype t, const float *src, void *dst, int64_t n) {
    int64_t i;
    if (n < 0 || (mmspcl_dtype_row_size(t, n) == 0 && n != 0)) return MMSPCL_ERR_ARG;
    switch (t) {
    case MMSPCL_F32: memmove(dst, src, (size_t)n * 4); break;
    case MMSPCL_F16: for (i = 0; i < n; i++) ((uint16_t *)dst)[i] = mmspcl_fp32_to_fp16(src[i]); break;
    case MMSPCL_BF16: for (i = 0; i < n; i++) ((uint16_t *)dst)[i] = mmspcl_fp32_to_bf16(src[i]); break;
    case MMSPCL_Q8_0: mmspcl__quantize_q8_0(src, (mmspcl_block_q8_0 *)dst, n / MMSPCL_QBLOCK); break;
    case MMSPCL_Q4_0: mmspcl__quantize_q4_0(src, (mmspcl_block_q4_0 *)dst, n / MMSPCL_QBLOCK); break;
    case MMSPCL_Q4_K: case MMSPCL_Q5_K:
        for (i = 0; i < n / MMSPCL_KBLOCK; i++)
            mmspcl__quantize_k(src + i * MMSPCL_KBLOCK, (unsigned char *)dst + (size_t)i * (size_t)mmspcl__types[t].bytes, mmspcl__kbits(t));
        break;
    default: return MMSPCL_ERR_UNSUPPORTED;
    }
    return MMSPCL_OK;
}

mmspcl_status mmspcl_dequantize_row(mmspcl_dtype t, const void *src, float *dst, int64_t n) {
    int64_t i;
    int j;
    if (n < 0 || (mmspcl_dtype_row_size(t, n) == 0 && n != 0)) return MMSPCL_ERR_ARG;
    switch (t) {
    case MMSPCL_F32: memmove(dst, src, (size_t)n * 4); break;
    case MMSPCL_I32: for (i = 0; i < n; i++) dst[i] = (float)((const int32_t *)src)[i]; break;
    case MMSPCL_F16: for (i = 0; i < n; i++) dst[i] = mmspcl_fp16_to_fp32(((const uint16_t *)src)[i]); break;
    case MMSPCL_BF16: for (i = 0; i < n; i++) dst[i] = mmspcl_bf16_to_fp32(((const uint16_t *)src)[i]); break;
    case MMSPCL_Q8_0: {
        const mmspcl_block_q8_0 *b = (const mmspcl_block_q8_0 *)src;
        for (i = 0; i < n / MMSPCL_QBLOCK; i++) {
            float d = mmspcl_fp16_to_fp32(b[i].d);
            for (j = 0; j < MMSPCL_QBLOCK; j++) dst[i * MMSPCL_QBLOCK + j] = d * (float)b[i].q[j];
        }
        break;
    }
    case MMSPCL_Q4_0: {
        const mmspcl_block_q4_0 *b = (const mmspcl_block_q4_0 *)src;
        for (i = 0; i < n / MMSPCL_QBLOCK; i++) {
            float d = mmspcl_fp16_to_fp32(b[i].d);
            float *y = dst + i * MMSPCL_QBLOCK;
            for (j = 0; j < MMSPCL_QBLOCK / 2; j++) {
                y[j] = d * (float)((b[i].q[j] & 15) - 8);
                y[j + 16] = d * (float)((b[i].q[j] >> 4) - 8);
            }
        }
        break;
    }
    case MMSPCL_Q4_K: case MMSPCL_Q5_K:
        for (i = 0; i < n / MMSPCL_QBLOCK; i++) {   /* sub-block i % 8 of super-block i / 8 */
            int8_t v[MMSPCL_QBLOCK];
            const float S = mmspcl__ksub_values((const unsigned char *)src + (size_t)(i / 8) * (size_t)mmspcl__types[t].bytes,
                                                mmspcl__kbits(t), (int)(i % 8), v);
            for (j = 0; j < MMSPCL_QBLOCK; j++) dst[i * MMSPCL_QBLOCK + j] = S * (float)v[j];
        }
        break;
    default: return MMSPCL_ERR_UNSUPPORTED;
    }
    return MMSPCL_OK;
}

/* ---------------------------------------------------------------------------------------------
   4. Arena
   ------------------------------------------------------------------------------------------ */
mmspcl_status mmspcl_arena_init(mmspcl_arena *a, size_t size, mmspcl_error *err) {
    memset(a, 0, sizeof *a);
    if (size == 0) return MMSPCL_OK;
    /* over-allocate so the first piece can be aligned whatever malloc returns */
    a->base = (unsigned char *)MMSPCL_MALLOC(size + 64);
    if (!a->base) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "arena: cannot allocate %zu bytes", size);
    a->size = size + 64;
    return MMSPCL_OK;
}

void *mmspcl_arena_alloc(mmspcl_arena *a, size_t bytes) {
    uintptr_t start = ((uintptr_t)a->base + a->used + 63) & ~(uintptr_t)63;
    size_t off = (size_t)(start - (uintptr_t)a->base);
    if (!a->base || off > a->size || bytes > a->size - off) return NULL;
    a->used = off + bytes;
    if (a->used > a->peak) a->peak = a->used;
    return (void *)start;
}

void mmspcl_arena_reset(mmspcl_arena *a) { a->used = 0; }

void mmspcl_arena_free(mmspcl_arena *a) {
    MMSPCL_FREE(a->base);
    memset(a, 0, sizeof *a);
}

/* ---------------------------------------------------------------------------------------------
   5. Weight files
   ------------------------------------------------------------------------------------------ */
/* ---- 5.1 Reader -----------------------------------------------------------------------------
   Layout (docs/FORMAT.md):
     header   64 bytes: "MMSPCLWF" u32 version u32 alignment u64 n_kv u64 n_tensors
                        u64 meta_size u64 data_offset u64 data_size u64 reserved
     metadata key/values, then tensor records
     padding  to data_offset (a multiple of alignment)
     data     tensors at data_offset + record.offset */
#define MMSPCL__MAGIC "MMSPCLWF"
#define MMSPCL__FORMAT_VERSION 1u
#define MMSPCL__HEADER_SIZE 64u
#define MMSPCL__ALIGN 64u

typedef struct mmspcl__cursor {
    const unsigned char *p;
    size_t size, pos;
    const char *label;
    mmspcl_error *err;
} mmspcl__cursor;

static uint64_t mmspcl__le(const unsigned char *p, int n) {
    uint64_t v = 0;
    int i;
    for (i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static mmspcl_status mmspcl__take(mmspcl__cursor *c, size_t n, const unsigned char **out,
                                  const char *what) {
    if (n > c->size - c->pos)
        return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT,
                            "%s: %s at byte %zu needs %zu bytes but the metadata ends at byte %zu",
                            c->label, what, c->pos, n, c->size);
    *out = c->p + c->pos;
    c->pos += n;
    return MMSPCL_OK;
}

static mmspcl_status mmspcl__read_uint(mmspcl__cursor *c, int n, uint64_t *v, const char *what) {
    const unsigned char *p = NULL;
    mmspcl_status st = mmspcl__take(c, (size_t)n, &p, what);
    *v = st == MMSPCL_OK ? mmspcl__le(p, n) : 0;
    return st;
}

/* Bump allocator for the copied names and strings (one block, freed at once). */
typedef struct mmspcl__strpool { char *base; size_t size, used; } mmspcl__strpool;

static char *mmspcl__pool_put(mmspcl__strpool *sp, const unsigned char *s, size_t n) {
    char *out;
    if (n + 1 > sp->size - sp->used) return NULL;
    out = sp->base + sp->used;
    memcpy(out, s, n);
    out[n] = 0;
    sp->used += n + 1;
    return out;
}

static void *mmspcl__pool_alloc(mmspcl__strpool *sp, size_t n) {
    size_t start = (sp->used + 7) & ~(size_t)7;
    if (start > sp->size || n > sp->size - start) return NULL;
    sp->used = start + n;
    return sp->base + start;
}

static mmspcl_status mmspcl__read_string(mmspcl__cursor *c, mmspcl__strpool *sp, int lenbytes,
                                         const char **out, size_t *len, const char *what) {
    uint64_t n;
    const unsigned char *p = NULL;
    mmspcl_status st = mmspcl__read_uint(c, lenbytes, &n, what);
    if (st) return st;
    if ((st = mmspcl__take(c, (size_t)n, &p, what))) return st;
    *out = mmspcl__pool_put(sp, p, (size_t)n);
    if (!*out) return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT, "%s: %s too long", c->label, what);
    if (len) *len = (size_t)n;
    return MMSPCL_OK;
}

static mmspcl_status mmspcl__parse_kv(mmspcl__cursor *c, mmspcl__strpool *sp, mmspcl_kv *kv) {
    uint64_t type, count, i;
    size_t key_at = c->pos;
    mmspcl_status st = mmspcl__read_string(c, sp, 2, &kv->key, NULL, "key name");
    if (st) return st;
    if ((st = mmspcl__read_uint(c, 1, &type, "key type"))) return st;
    kv->type = (mmspcl_kv_type)type;
    switch (type) {
    case MMSPCL_KV_INT: {
        uint64_t v;
        if ((st = mmspcl__read_uint(c, 8, &v, "int value"))) return st;
        kv->i = (int64_t)v;
        return MMSPCL_OK;
    }
    case MMSPCL_KV_FLOAT: {
        uint64_t v;
        if ((st = mmspcl__read_uint(c, 8, &v, "float value"))) return st;
        memcpy(&kv->f, &v, 8);
        return MMSPCL_OK;
    }
    case MMSPCL_KV_STR:
        return mmspcl__read_string(c, sp, 4, &kv->str, &kv->str_len, "string value");
    case MMSPCL_KV_STR_ARRAY: {
        const char **strs;
        uint32_t *lens;
        if ((st = mmspcl__read_uint(c, 8, &count, "string array count"))) return st;
        /* each string takes at least its 4 length bytes: bounds count by the bytes left */
        if (count > (c->size - c->pos) / 4)
            return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT,
                                "%s: key '%s' at byte %zu claims %llu strings, more than the file holds",
                                c->label, kv->key, key_at, (unsigned long long)count);
        strs = (const char **)mmspcl__pool_alloc(sp, (size_t)count * sizeof(char *));
        lens = (uint32_t *)mmspcl__pool_alloc(sp, (size_t)count * sizeof(uint32_t));
        if (!strs || !lens) return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT, "%s: key '%s' too large", c->label, kv->key);
        for (i = 0; i < count; i++) {
            size_t len;
            if ((st = mmspcl__read_string(c, sp, 4, &strs[i], &len, "string array item"))) return st;
            lens[i] = (uint32_t)len;
        }
        kv->count = (int64_t)count;
        kv->strs = strs;
        kv->lens = lens;
        return MMSPCL_OK;
    }
    default:
        return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT, "%s: key '%s' at byte %zu has unknown type %llu",
                            c->label, kv->key, key_at, (unsigned long long)type);
    }
}

static mmspcl_status mmspcl__parse_tensor(mmspcl__cursor *c, mmspcl__strpool *sp,
                                          uint64_t data_size, mmspcl_tensor *t, uint64_t *offset) {
    uint64_t dtype, ndim, v, nel = 1, nbytes;
    size_t rec_at = c->pos;
    int i;
    mmspcl_status st = mmspcl__read_string(c, sp, 2, &t->name, NULL, "tensor name");
    if (st) return st;
    if ((st = mmspcl__read_uint(c, 1, &dtype, "tensor dtype"))) return st;
    if ((st = mmspcl__read_uint(c, 1, &ndim, "tensor ndim"))) return st;
    if (dtype >= MMSPCL_DTYPE_COUNT)
        return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT, "%s: tensor '%s' (record at byte %zu) has unknown dtype %llu",
                            c->label, t->name, rec_at, (unsigned long long)dtype);
    if (ndim < 1 || ndim > MMSPCL_MAX_DIMS)
        return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT, "%s: tensor '%s' has %llu dimensions (1..%d allowed)",
                            c->label, t->name, (unsigned long long)ndim, MMSPCL_MAX_DIMS);
    t->dtype = (mmspcl_dtype)dtype;
    t->ndim = (int)ndim;
    for (i = 0; i < (int)ndim; i++) {
        if ((st = mmspcl__read_uint(c, 8, &v, "tensor dimension"))) return st;
        if (v == 0 || v > MMSPCL_MAX_TENSOR_BYTES || nel > MMSPCL_MAX_TENSOR_BYTES / v)
            return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT, "%s: tensor '%s' dimension %d = %llu is zero or overflows",
                                c->label, t->name, i, (unsigned long long)v);
        nel *= v;
        t->ne[i] = (int64_t)v;
    }
    for (; i < MMSPCL_MAX_DIMS; i++) t->ne[i] = 1;
    if ((st = mmspcl__read_uint(c, 8, offset, "tensor offset"))) return st;
    if ((st = mmspcl__read_uint(c, 8, &nbytes, "tensor size"))) return st;
    v = mmspcl_dtype_row_size(t->dtype, t->ne[t->ndim - 1]);
    if (v == 0)
        return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT, "%s: tensor '%s': innermost dimension %lld is not valid for %s",
                            c->label, t->name, (long long)t->ne[t->ndim - 1], mmspcl_dtype_name(t->dtype));
    if (v * (nel / (uint64_t)t->ne[t->ndim - 1]) != nbytes || nbytes > MMSPCL_MAX_TENSOR_BYTES)
        return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT, "%s: tensor '%s' records %llu bytes, its shape needs %llu",
                            c->label, t->name, (unsigned long long)nbytes,
                            (unsigned long long)(v * (nel / (uint64_t)t->ne[t->ndim - 1])));
    if (*offset % MMSPCL__ALIGN || *offset > data_size || nbytes > data_size - *offset)
        return mmspcl__fail(c->err, MMSPCL_ERR_FORMAT,
                            "%s: tensor '%s' data [%llu, +%llu) is misaligned or outside the data section (%llu bytes)",
                            c->label, t->name, (unsigned long long)*offset, (unsigned long long)nbytes,
                            (unsigned long long)data_size);
    t->nbytes = (size_t)nbytes;
    return MMSPCL_OK;
}

typedef struct mmspcl__span { uint64_t begin, end; const char *name; } mmspcl__span;

static int mmspcl__span_cmp(const void *a, const void *b) {
    const mmspcl__span *x = (const mmspcl__span *)a, *y = (const mmspcl__span *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int mmspcl__strptr_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The n strings at first, first + stride, ... (bytes) must differ: sorted copies, neighbours. */
static mmspcl_status mmspcl__unique_names(const char *const *first, size_t stride, size_t n,
                                          const char *what, const char *label, mmspcl_error *err) {
    const char **names;
    size_t i;
    mmspcl_status st = MMSPCL_OK;
    if (n < 2) return MMSPCL_OK;
    if (!(names = (const char **)MMSPCL_MALLOC(n * sizeof *names))) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: out of memory", label);
    for (i = 0; i < n; i++) names[i] = *(const char *const *)((const char *)first + i * stride);
    qsort(names, n, sizeof *names, mmspcl__strptr_cmp);
    for (i = 1; i < n && !st; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            st = mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %s '%s' appears twice", label, what, names[i]);
    MMSPCL_FREE(names);
    return st;
}

static mmspcl_status mmspcl__parse(mmspcl_weights *w, const char *label, mmspcl_error *err) {
    mmspcl__cursor c;
    mmspcl__strpool sp;
    uint64_t version, align, n_kv, n_tensors, meta_size, data_offset, data_size;
    const unsigned char *h;
    mmspcl__span *spans = NULL;
    uint64_t i;
    mmspcl_status st;

    c.p = w->bytes; c.size = w->size; c.pos = 0; c.label = label; c.err = err;
    if (w->size < MMSPCL__HEADER_SIZE)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %zu bytes is shorter than the %u-byte header",
                            label, w->size, MMSPCL__HEADER_SIZE);
    h = w->bytes;
    if (memcmp(h, MMSPCL__MAGIC, 8) != 0)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: not an mmspcl weight file (bad magic at byte 0)", label);
    version = mmspcl__le(h + 8, 4);
    align = mmspcl__le(h + 12, 4);
    n_kv = mmspcl__le(h + 16, 8);
    n_tensors = mmspcl__le(h + 24, 8);
    meta_size = mmspcl__le(h + 32, 8);
    data_offset = mmspcl__le(h + 40, 8);
    data_size = mmspcl__le(h + 48, 8);
    if (version != MMSPCL__FORMAT_VERSION)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: format version %llu (this build reads %u)",
                            label, (unsigned long long)version, MMSPCL__FORMAT_VERSION);
    if (align != MMSPCL__ALIGN)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: alignment %llu at byte 12 (must be %u)",
                            label, (unsigned long long)align, MMSPCL__ALIGN);
    if (n_kv > MMSPCL_MAX_KV || n_tensors > MMSPCL_MAX_TENSORS)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %llu keys / %llu tensors exceed the limits (%d / %d)",
                            label, (unsigned long long)n_kv, (unsigned long long)n_tensors, MMSPCL_MAX_KV, MMSPCL_MAX_TENSORS);
    if (meta_size > w->size - MMSPCL__HEADER_SIZE)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: metadata size %llu at byte 32 runs past the end of the file (%zu bytes)",
                            label, (unsigned long long)meta_size, w->size);
    /* a key record takes at least 7 bytes, a tensor record at least 28: refuse counts the
       metadata cannot hold before allocating for them */
    if (n_kv * 7 + n_tensors * 28 > meta_size)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %llu keys and %llu tensors cannot fit in %llu bytes of metadata",
                            label, (unsigned long long)n_kv, (unsigned long long)n_tensors, (unsigned long long)meta_size);
    if (data_offset % MMSPCL__ALIGN || data_offset < MMSPCL__HEADER_SIZE + meta_size || data_offset > w->size ||
        data_size > w->size - data_offset)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT,
                            "%s: data section [%llu, +%llu) at byte 40 is misaligned, overlaps the metadata or runs past the end of the file (%zu bytes)",
                            label, (unsigned long long)data_offset, (unsigned long long)data_size, w->size);
    w->version = (uint32_t)version;

    /* Every name and string is copied once into a pool bounded by the metadata size, so a lying
       count cannot make us allocate more. Worst case: an empty string-array item takes 4 bytes
       in the file and 1 (NUL) + 8 (pointer) + 4 (length) = 13 in the pool, hence 4x. */
    sp.size = (size_t)meta_size * 4 + 64;
    sp.used = 0;
    w->kv = (mmspcl_kv *)MMSPCL_MALLOC((size_t)(n_kv ? n_kv : 1) * sizeof(mmspcl_kv));
    w->tensors = (mmspcl_tensor *)MMSPCL_MALLOC((size_t)(n_tensors ? n_tensors : 1) * sizeof(mmspcl_tensor));
    sp.base = (char *)MMSPCL_MALLOC(sp.size);
    spans = (mmspcl__span *)MMSPCL_MALLOC((size_t)(n_tensors ? n_tensors : 1) * sizeof(mmspcl__span));
    w->meta = sp.base;
    if (!w->kv || !w->tensors || !sp.base || !spans) {
        MMSPCL_FREE(spans);
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: out of memory for metadata", label);
    }
    memset(w->kv, 0, (size_t)(n_kv ? n_kv : 1) * sizeof(mmspcl_kv));
    memset(w->tensors, 0, (size_t)(n_tensors ? n_tensors : 1) * sizeof(mmspcl_tensor));
    c.pos = MMSPCL__HEADER_SIZE;
    c.size = (size_t)(MMSPCL__HEADER_SIZE + meta_size);  /* records may not run into the data */
    for (i = 0; i < n_kv; i++)
        if ((st = mmspcl__parse_kv(&c, &sp, &w->kv[i]))) goto done;
    w->n_kv = (int64_t)n_kv;
    for (i = 0; i < n_tensors; i++) {
        uint64_t off = 0;
        if ((st = mmspcl__parse_tensor(&c, &sp, data_size, &w->tensors[i], &off))) goto done;
        w->tensors[i].data = w->bytes + data_offset + off;
        spans[i].begin = off;
        spans[i].end = off + w->tensors[i].nbytes;
        spans[i].name = w->tensors[i].name;
    }
    w->n_tensors = (int64_t)n_tensors;
    if (c.pos != c.size) {
        st = mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: metadata ends at byte %zu but the header says %zu",
                          label, c.pos, c.size);
        goto done;
    }
    qsort(spans, (size_t)n_tensors, sizeof *spans, mmspcl__span_cmp);
    for (i = 1; i < n_tensors; i++)
        if (spans[i].begin < spans[i - 1].end) {
            st = mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap at data offset %llu",
                              label, spans[i - 1].name, spans[i].name, (unsigned long long)spans[i].begin);
            goto done;
        }
    /* names index the model and keys its settings: duplicates would be ambiguous */
    if ((st = mmspcl__unique_names(&w->tensors[0].name, sizeof(mmspcl_tensor), (size_t)n_tensors, "tensor name", label, err)) ||
        (st = mmspcl__unique_names(&w->kv[0].key, sizeof(mmspcl_kv), (size_t)n_kv, "key", label, err)))
        goto done;
    st = MMSPCL_OK;
done:
    MMSPCL_FREE(spans);
    return st;
}

static void mmspcl__weights_release(mmspcl_weights *w) {
    if (!w) return;
#ifdef MMSPCL__HAVE_MMAP
    if (w->storage == 2 && w->bytes) munmap((void *)w->bytes, w->size);
#endif
    if (w->storage == 1) MMSPCL_FREE(w->raw);
    MMSPCL_FREE(w->kv);
    MMSPCL_FREE(w->tensors);
    MMSPCL_FREE(w->meta);
    MMSPCL_FREE(w);
}

void mmspcl_weights_free(mmspcl_weights *w) { mmspcl__weights_release(w); }

static mmspcl_status mmspcl__weights_finish(mmspcl_weights *w, const char *label,
                                            mmspcl_weights **out, mmspcl_error *err) {
    mmspcl_status st = mmspcl__parse(w, label, err);
    if (st) { mmspcl__weights_release(w); return st; }
    *out = w;
    return MMSPCL_OK;
}

static mmspcl_weights *mmspcl__weights_new(void) {
    mmspcl_weights *w = (mmspcl_weights *)MMSPCL_MALLOC(sizeof *w);
    if (w) memset(w, 0, sizeof *w);
    return w;
}

mmspcl_status mmspcl_weights_from_memory(mmspcl_weights **out, const void *bytes, size_t size,
                                         mmspcl_error *err) {
    mmspcl_weights *w;
    if (!out || (!bytes && size)) return mmspcl__fail(err, MMSPCL_ERR_ARG, "weights_from_memory: NULL argument");
    *out = NULL;
    if (!(w = mmspcl__weights_new())) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "out of memory");
    w->bytes = (const unsigned char *)bytes;
    w->size = size;
    return mmspcl__weights_finish(w, "<memory>", out, err);
}

#ifndef MMSPCL_NO_STDIO
mmspcl_status mmspcl_weights_read(mmspcl_weights **out, const char *path, mmspcl_error *err) {
    const uint64_t max_bytes = MMSPCL_MAX_TENSOR_BYTES; /* a variable: no -Wtype-limits on 32-bit size_t */
    mmspcl_weights *w;
    unsigned char *buf, *raw;
    size_t len;
    mmspcl_status st;
    if (!out || !path) return mmspcl__fail(err, MMSPCL_ERR_ARG, "weights_read: NULL argument");
    *out = NULL;
    /* aligned to 64 so that tensors (at 64-byte offsets in the file) are aligned in memory */
    if ((st = mmspcl__read_whole(path, max_bytes < SIZE_MAX / 2 ? (size_t)max_bytes : SIZE_MAX / 2, 64, &raw, &buf, &len, err)))
        return st;
    if (!(w = mmspcl__weights_new())) { MMSPCL_FREE(raw); return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "out of memory"); }
    w->raw = raw;
    w->bytes = buf;
    w->size = (size_t)len;
    w->storage = 1;
    return mmspcl__weights_finish(w, path, out, err);
}

mmspcl_status mmspcl_weights_open(mmspcl_weights **out, const char *path, mmspcl_error *err) {
#ifdef MMSPCL__HAVE_MMAP
    int fd;
    struct stat sb;
    void *map;
    mmspcl_weights *w;
    if (!out || !path) return mmspcl__fail(err, MMSPCL_ERR_ARG, "weights_open: NULL argument");
    *out = NULL;
    if ((fd = open(path, O_RDONLY)) < 0) return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size == 0) { close(fd); return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: empty file", path); }
    map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return mmspcl_weights_read(out, path, err);  /* e.g. a pipe-backed fs */
    if (!(w = mmspcl__weights_new())) { munmap(map, (size_t)sb.st_size); return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "out of memory"); }
    w->bytes = (const unsigned char *)map;
    w->size = (size_t)sb.st_size;
    w->storage = 2;
    return mmspcl__weights_finish(w, path, out, err);
#else
    return mmspcl_weights_read(out, path, err);
#endif
}
#endif /* MMSPCL_NO_STDIO */

const mmspcl_tensor *mmspcl_weights_find(const mmspcl_weights *w, const char *name) {
    int64_t i;
    for (i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0) return &w->tensors[i];
    return NULL;
}

const mmspcl_kv *mmspcl_weights_get(const mmspcl_weights *w, const char *key) {
    int64_t i;
    for (i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) return &w->kv[i];
    return NULL;
}

int mmspcl_weights_get_int(const mmspcl_weights *w, const char *key, int64_t *out) {
    const mmspcl_kv *kv = mmspcl_weights_get(w, key);
    if (!kv || kv->type != MMSPCL_KV_INT) return 0;
    *out = kv->i;
    return 1;
}

int mmspcl_weights_get_float(const mmspcl_weights *w, const char *key, double *out) {
    const mmspcl_kv *kv = mmspcl_weights_get(w, key);
    if (!kv) return 0;
    if (kv->type == MMSPCL_KV_FLOAT) { *out = kv->f; return 1; }
    if (kv->type == MMSPCL_KV_INT) { *out = (double)kv->i; return 1; }
    return 0;
}

int mmspcl_weights_get_str(const mmspcl_weights *w, const char *key, const char **out) {
    const mmspcl_kv *kv = mmspcl_weights_get(w, key);
    if (!kv || kv->type != MMSPCL_KV_STR) return 0;
    *out = kv->str;
    return 1;
}

mmspcl_status mmspcl_weights_expect(const mmspcl_weights *w, const char *name, int ndim,
                                    const int64_t *ne, const mmspcl_tensor **out,
                                    mmspcl_error *err) {
    const mmspcl_tensor *t = mmspcl_weights_find(w, name);
    int i;
    *out = NULL;
    if (!t) return mmspcl__fail(err, MMSPCL_ERR_NOT_FOUND, "tensor '%s' is missing", name);
    if (t->ndim != ndim)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "tensor '%s' has %d dimensions, expected %d", name, t->ndim, ndim);
    for (i = 0; i < ndim; i++)
        if (t->ne[i] != ne[i])
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "tensor '%s' dimension %d is %lld, expected %lld",
                                name, i, (long long)t->ne[i], (long long)ne[i]);
    *out = t;
    return MMSPCL_OK;
}

mmspcl_status mmspcl_weights_expect_matrix(const mmspcl_weights *w, const char *name, int64_t rows,
                                           int64_t cols, const mmspcl_tensor **out, mmspcl_error *err) {
    const mmspcl_tensor *t = mmspcl_weights_find(w, name);
    int64_t ne[2];
    *out = NULL;
    if (t && t->ndim == 3) {   /* panels: {rows / 16, cols, 16} f32 */
        if (!mmspcl_tensor_is_panels(t) || t->ne[0] * MMSPCL_PANEL != rows || t->ne[1] != cols)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT,
                                "tensor '%s' (%s, %lld x %lld x %lld) is not a %lld x %lld matrix in f32 panels of %d rows",
                                name, mmspcl_dtype_name(t->dtype), (long long)t->ne[0], (long long)t->ne[1],
                                (long long)t->ne[2], (long long)rows, (long long)cols, MMSPCL_PANEL);
        *out = t;
        return MMSPCL_OK;
    }
    ne[0] = rows; ne[1] = cols;
    {
        mmspcl_status st = mmspcl_weights_expect(w, name, 2, ne, out, err);
        if (st) return st;
    }
    if ((*out)->dtype == MMSPCL_I32 || mmspcl_dtype_row_size((*out)->dtype, cols) == 0) {
        *out = NULL;
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "tensor '%s' has dtype %s, which a matrix of %lld columns cannot use",
                            name, mmspcl_dtype_name(t->dtype), (long long)cols);
    }
    return MMSPCL_OK;
}

/* ---- 5.2 Writer -------------------------------------------------------------------------- */
typedef struct mmspcl__wkv {
    char *key;
    mmspcl_kv_type type;
    int64_t i;
    double f;
    unsigned char *blob;   /* STR: bytes; STR_ARRAY: serialised items (u32 len + bytes)* */
    size_t blob_len;
    int64_t count;
} mmspcl__wkv;

typedef struct mmspcl__wtensor {
    char *name;
    mmspcl_dtype dtype;
    int ndim;
    int64_t ne[MMSPCL_MAX_DIMS];
    const void *data;
    size_t nbytes;
} mmspcl__wtensor;

struct mmspcl_writer {
    mmspcl__wkv *kv;
    int64_t n_kv, cap_kv;
    mmspcl__wtensor *t;
    int64_t n_t, cap_t;
};

static char *mmspcl__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = (char *)MMSPCL_MALLOC(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int mmspcl__grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    void *np;
    int64_t nc;
    if (need <= *cap) return 0;
    nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    if (!(np = MMSPCL_REALLOC(*p, (size_t)nc * elem))) return -1;
    *p = np;
    *cap = nc;
    return 0;
}

mmspcl_writer *mmspcl_writer_create(void) {
    mmspcl_writer *w = (mmspcl_writer *)MMSPCL_MALLOC(sizeof *w);
    if (w) memset(w, 0, sizeof *w);
    return w;
}

void mmspcl_writer_free(mmspcl_writer *w) {
    int64_t i;
    if (!w) return;
    for (i = 0; i < w->n_kv; i++) { MMSPCL_FREE(w->kv[i].key); MMSPCL_FREE(w->kv[i].blob); }
    for (i = 0; i < w->n_t; i++) MMSPCL_FREE(w->t[i].name);
    MMSPCL_FREE(w->kv);
    MMSPCL_FREE(w->t);
    MMSPCL_FREE(w);
}

/* Finds key's slot (emptied for the new value) or appends one. */
static int mmspcl__key_ok(const char *key) { return key && strlen(key) <= MMSPCL_MAX_NAME; }

static mmspcl__wkv *mmspcl__writer_slot(mmspcl_writer *w, const char *key) {
    int64_t i;
    mmspcl__wkv *kv;
    if (!mmspcl__key_ok(key)) return NULL;
    for (i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) break;
    if (i < w->n_kv) {
        kv = &w->kv[i];
        MMSPCL_FREE(kv->blob);
    } else {
        if (mmspcl__grow((void **)&w->kv, &w->cap_kv, w->n_kv + 1, sizeof *w->kv)) return NULL;
        kv = &w->kv[w->n_kv];
        memset(kv, 0, sizeof *kv);
        if (!(kv->key = mmspcl__strdup(key))) return NULL;
        w->n_kv++;
    }
    /* a valid value until the caller fills the slot: a set_* that then runs out of memory
       leaves the key as int 0, never a string without its bytes */
    kv->type = MMSPCL_KV_INT;
    kv->i = 0;
    kv->blob = NULL;
    kv->blob_len = 0;
    kv->count = 0;
    return kv;
}

mmspcl_status mmspcl_writer_set_int(mmspcl_writer *w, const char *key, int64_t v) {
    mmspcl__wkv *kv = mmspcl__writer_slot(w, key);
    if (!kv) return mmspcl__key_ok(key) ? MMSPCL_ERR_NOMEM : MMSPCL_ERR_ARG;
    kv->type = MMSPCL_KV_INT;
    kv->i = v;
    return MMSPCL_OK;
}

mmspcl_status mmspcl_writer_set_float(mmspcl_writer *w, const char *key, double v) {
    mmspcl__wkv *kv = mmspcl__writer_slot(w, key);
    if (!kv) return mmspcl__key_ok(key) ? MMSPCL_ERR_NOMEM : MMSPCL_ERR_ARG;
    kv->type = MMSPCL_KV_FLOAT;
    kv->f = v;
    return MMSPCL_OK;
}

mmspcl_status mmspcl_writer_set_str(mmspcl_writer *w, const char *key, const char *s) {
    size_t n = strlen(s);
    mmspcl__wkv *kv;
    if (!mmspcl__key_ok(key)) return MMSPCL_ERR_ARG;
    kv = mmspcl__writer_slot(w, key);
    if (!kv || !(kv->blob = (unsigned char *)MMSPCL_MALLOC(n + 1))) return MMSPCL_ERR_NOMEM;
    memcpy(kv->blob, s, n);
    kv->blob_len = n;
    kv->type = MMSPCL_KV_STR;
    return MMSPCL_OK;
}

static void mmspcl__put_le(unsigned char *p, uint64_t v, int n) {
    int i;
    for (i = 0; i < n; i++, v >>= 8) p[i] = (unsigned char)(v & 0xff);
}

mmspcl_status mmspcl_writer_set_str_array(mmspcl_writer *w, const char *key,
                                          const char *const *strs, const uint32_t *lens,
                                          int64_t count) {
    size_t total = 0, pos = 0;
    int64_t i;
    mmspcl__wkv *kv;
    if (count < 0) return MMSPCL_ERR_ARG;
    for (i = 0; i < count; i++) total += 4 + (lens ? lens[i] : strlen(strs[i]));
    if (!mmspcl__key_ok(key)) return MMSPCL_ERR_ARG;
    kv = mmspcl__writer_slot(w, key);
    if (!kv || !(kv->blob = (unsigned char *)MMSPCL_MALLOC(total + 1))) return MMSPCL_ERR_NOMEM;
    for (i = 0; i < count; i++) {
        size_t n = lens ? lens[i] : strlen(strs[i]);
        mmspcl__put_le(kv->blob + pos, n, 4);
        memcpy(kv->blob + pos + 4, strs[i], n);
        pos += 4 + n;
    }
    kv->blob_len = total;
    kv->count = count;
    kv->type = MMSPCL_KV_STR_ARRAY;
    return MMSPCL_OK;
}

mmspcl_status mmspcl_writer_add_tensor(mmspcl_writer *w, const char *name, mmspcl_dtype dtype,
                                       int ndim, const int64_t *shape, const void *data,
                                       size_t nbytes, mmspcl_error *err) {
    mmspcl__wtensor *t;
    uint64_t nel = 1, need;
    int64_t i;
    if (!name || strlen(name) > MMSPCL_MAX_NAME || !*name)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "writer: tensor name empty or longer than %d bytes", MMSPCL_MAX_NAME);
    if ((unsigned)dtype >= MMSPCL_DTYPE_COUNT || ndim < 1 || ndim > MMSPCL_MAX_DIMS)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "writer: tensor '%s' has a bad dtype or %d dimensions", name, ndim);
    for (i = 0; i < ndim; i++) {
        if (shape[i] <= 0 || (uint64_t)shape[i] > MMSPCL_MAX_TENSOR_BYTES / nel)
            return mmspcl__fail(err, MMSPCL_ERR_ARG, "writer: tensor '%s' dimension %lld is zero, negative or too large",
                                name, (long long)i);
        nel *= (uint64_t)shape[i];
    }
    need = mmspcl_dtype_row_size(dtype, shape[ndim - 1]) * (nel / (uint64_t)shape[ndim - 1]);
    if (need == 0 || need != nbytes)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "writer: tensor '%s' (%s) has %zu bytes, its shape needs %llu",
                            name, mmspcl_dtype_name(dtype), nbytes, (unsigned long long)need);
    for (i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return mmspcl__fail(err, MMSPCL_ERR_ARG, "writer: tensor '%s' added twice", name);
    if (mmspcl__grow((void **)&w->t, &w->cap_t, w->n_t + 1, sizeof *w->t))
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "writer: out of memory");
    t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    if (!(t->name = mmspcl__strdup(name))) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "writer: out of memory");
    t->dtype = dtype;
    t->ndim = ndim;
    for (i = 0; i < ndim; i++) t->ne[i] = shape[i];
    t->data = data;
    t->nbytes = nbytes;
    w->n_t++;
    return MMSPCL_OK;
}

static uint64_t mmspcl__align_up(uint64_t v) { return (v + MMSPCL__ALIGN - 1) & ~(uint64_t)(MMSPCL__ALIGN - 1); }

/* Serialises header + metadata (padded to the data offset) into one buffer. */
static mmspcl_status mmspcl__writer_meta(const mmspcl_writer *w, unsigned char **out, size_t *out_len,
                                         uint64_t *data_size, mmspcl_error *err) {
    size_t meta = 0, pos;
    uint64_t off = 0, data_offset;
    int64_t i;
    int d;
    unsigned char *b;
    for (i = 0; i < w->n_kv; i++) {
        const mmspcl__wkv *kv = &w->kv[i];
        meta += 2 + strlen(kv->key) + 1;
        meta += kv->type == MMSPCL_KV_STR ? 4 + kv->blob_len : kv->type == MMSPCL_KV_STR_ARRAY ? 8 + kv->blob_len : 8;
    }
    for (i = 0; i < w->n_t; i++) meta += 2 + strlen(w->t[i].name) + 2 + 8 * (size_t)w->t[i].ndim + 16;
    data_offset = mmspcl__align_up(MMSPCL__HEADER_SIZE + meta);
    b = (unsigned char *)MMSPCL_MALLOC((size_t)data_offset);
    if (!b) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "writer: out of memory");
    memset(b, 0, (size_t)data_offset);
    pos = MMSPCL__HEADER_SIZE;
    for (i = 0; i < w->n_kv; i++) {
        const mmspcl__wkv *kv = &w->kv[i];
        size_t kl = strlen(kv->key);
        mmspcl__put_le(b + pos, kl, 2); memcpy(b + pos + 2, kv->key, kl); pos += 2 + kl;
        b[pos++] = (unsigned char)kv->type;
        switch (kv->type) {
        case MMSPCL_KV_INT: mmspcl__put_le(b + pos, (uint64_t)kv->i, 8); pos += 8; break;
        case MMSPCL_KV_FLOAT: { uint64_t u; memcpy(&u, &kv->f, 8); mmspcl__put_le(b + pos, u, 8); pos += 8; break; }
        case MMSPCL_KV_STR: mmspcl__put_le(b + pos, kv->blob_len, 4); memcpy(b + pos + 4, kv->blob, kv->blob_len); pos += 4 + kv->blob_len; break;
        case MMSPCL_KV_STR_ARRAY: mmspcl__put_le(b + pos, (uint64_t)kv->count, 8); memcpy(b + pos + 8, kv->blob, kv->blob_len); pos += 8 + kv->blob_len; break;
        }
    }
    for (i = 0; i < w->n_t; i++) {
        const mmspcl__wtensor *t = &w->t[i];
        size_t nl = strlen(t->name);
        mmspcl__put_le(b + pos, nl, 2); memcpy(b + pos + 2, t->name, nl); pos += 2 + nl;
        b[pos++] = (unsigned char)t->dtype;
        b[pos++] = (unsigned char)t->ndim;
        for (d = 0; d < t->ndim; d++) { mmspcl__put_le(b + pos, (uint64_t)t->ne[d], 8); pos += 8; }
        mmspcl__put_le(b + pos, off, 8);
        mmspcl__put_le(b + pos + 8, t->nbytes, 8);
        pos += 16;
        off = mmspcl__align_up(off + t->nbytes);
    }
    MMSPCL_ASSERT(pos == MMSPCL__HEADER_SIZE + meta);
    memcpy(b, MMSPCL__MAGIC, 8);
    mmspcl__put_le(b + 8, MMSPCL__FORMAT_VERSION, 4);
    mmspcl__put_le(b + 12, MMSPCL__ALIGN, 4);
    mmspcl__put_le(b + 16, (uint64_t)w->n_kv, 8);
    mmspcl__put_le(b + 24, (uint64_t)w->n_t, 8);
    mmspcl__put_le(b + 32, meta, 8);
    mmspcl__put_le(b + 40, data_offset, 8);
    mmspcl__put_le(b + 48, off, 8);
    *out = b;
    *out_len = (size_t)data_offset;
    *data_size = off;
    return MMSPCL_OK;
}

mmspcl_status mmspcl_writer_save_to_memory(mmspcl_writer *w, unsigned char **out, size_t *size,
                                           mmspcl_error *err) {
    unsigned char *meta = NULL, *b;
    size_t meta_len = 0;
    uint64_t data_size = 0, off = 0;
    int64_t i;
    mmspcl_status st = mmspcl__writer_meta(w, &meta, &meta_len, &data_size, err);
    if (st) return st;
    b = (unsigned char *)MMSPCL_MALLOC(meta_len + (size_t)data_size);
    if (!b) { MMSPCL_FREE(meta); return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "writer: out of memory"); }
    memcpy(b, meta, meta_len);
    memset(b + meta_len, 0, (size_t)data_size);
    for (i = 0; i < w->n_t; i++) {
        memcpy(b + meta_len + off, w->t[i].data, w->t[i].nbytes);
        off = mmspcl__align_up(off + w->t[i].nbytes);
    }
    MMSPCL_FREE(meta);
    *out = b;
    *size = meta_len + (size_t)data_size;
    return MMSPCL_OK;
}

#ifndef MMSPCL_NO_STDIO
mmspcl_status mmspcl_writer_save(mmspcl_writer *w, const char *path, mmspcl_progress_fn progress,
                                 void *user, mmspcl_error *err) {
    static const unsigned char zeros[MMSPCL__ALIGN] = {0};
    unsigned char *meta;
    size_t meta_len, plen = strlen(path);
    uint64_t data_size, written = 0;
    int64_t i;
    char *tmp;
    FILE *f;
    mmspcl_status st;
#ifdef MMSPCL__HAVE_MMAP
    {   /* rename() would replace a device node or a folder's entry by a regular file: refuse */
        struct stat sb;
        if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
            return mmspcl__fail(err, MMSPCL_ERR_IO, "%s exists and is not a regular file: not replaced", path);
    }
#endif
    st = mmspcl__writer_meta(w, &meta, &meta_len, &data_size, err);
    if (st) return st;
    if (!(tmp = (char *)MMSPCL_MALLOC(plen + 5))) { MMSPCL_FREE(meta); return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "writer: out of memory"); }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    if (!(f = fopen(tmp, "wb"))) {
        st = mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot create", tmp);
        goto out;
    }
    if (fwrite(meta, 1, meta_len, f) != meta_len) goto write_error;
    for (i = 0; i < w->n_t; i++) {
        const unsigned char *p = (const unsigned char *)w->t[i].data;
        size_t left = w->t[i].nbytes, pad = (size_t)(mmspcl__align_up(w->t[i].nbytes) - w->t[i].nbytes);
        while (left) {  /* chunks, so progress moves on multi-GB tensors */
            size_t n = left < ((size_t)1 << 24) ? left : ((size_t)1 << 24);
            if (fwrite(p, 1, n, f) != n) goto write_error;
            p += n; left -= n; written += n;
            if (progress) progress(user, written, data_size);
        }
        if (pad && fwrite(zeros, 1, pad, f) != pad) goto write_error;
        written += pad;
    }
    if (fflush(f) != 0) goto write_error;
    if (fclose(f) != 0) { f = NULL; goto write_error; }
    f = NULL;
    if (rename(tmp, path) != 0) {
        remove(tmp);
        st = mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot rename %s into place", path, tmp);
        goto out;
    }
    if (progress) progress(user, data_size, data_size);
    st = MMSPCL_OK;
    goto out;
write_error:
    if (f) fclose(f);
    remove(tmp);
    st = mmspcl__fail(err, MMSPCL_ERR_IO, "%s: write failed (disk full?); nothing was written", path);
out:
    MMSPCL_FREE(tmp);
    MMSPCL_FREE(meta);
    return st;
}
#endif /* MMSPCL_NO_STDIO */

/* ---------------------------------------------------------------------------------------------
   6. Kernels
   Each operation has a scalar definition (6.1), written to be read; the SIMD paths (6.2 - 6.8)
   are tested against it (tests/test_kernels.c): within 1e-5 relative for float arithmetic,
   bit-identical for the integer paths. The public functions (6.9) choose the path (the table
   is over the declarations, 6. Kernels). Work is split over independent outputs and every
   output is computed by the same sequence of operations whatever the thread count, so results
   do not depend on it.
   ------------------------------------------------------------------------------------------ */

/* ---- 6.1 Definitions ------------------------------------------------------------------------
   The scalar code of every operation: what the other paths are tested against, and what runs
   where none applies. mmspcl_dot_f32 has no other path. */

/* Eight partial sums: a fixed order the compiler can keep in vector registers. */
float mmspcl_dot_f32(const float *a, const float *b, int n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0, j;
    for (; i + 8 <= n; i += 8)
        for (j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    for (j = 0; i < n; i++, j++) acc[j] += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* General matrix product (declared with mmspcl_gemm_f32): each output one chain from C or 0,
   products added in k order. */
#ifdef _OPENMP
#define MMSPCL__IN_PARALLEL() omp_in_parallel()
#else
#define MMSPCL__IN_PARALLEL() 0
#endif
/* worth splitting over threads: a big product, not already inside a parallel region */
#define MMSPCL__GEMM_PARALLEL(M, N, K) ((double)(M) * (double)(N) * (double)(K) >= 4e6 && !MMSPCL__IN_PARALLEL())
static void mmspcl__gemm_definition(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                                    const float *B, int ldb, float *C, int ldc, int accumulate) {
    const int par = MMSPCL__GEMM_PARALLEL(M, N, K);
    int i;
    (void)par;   /* without OpenMP */
    MMSPCL__OMP_FOR_IF(par)
    for (i = 0; i < M; i++) {
        int j, k;
        for (j = 0; j < N; j++) {
            float acc = accumulate ? C[(size_t)i * ldc + j] : 0.0f;
            for (k = 0; k < K; k++) {
                const float a = trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                const float b = trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += a * b;
            }
            C[(size_t)i * ldc + j] = acc;
        }
    }
}

/* Linear layers, float weights (f32, f16, panels): y = x W^T + b.
   Definition: each output is bias + mmspcl_dot_f32(x row, W row widened to f32). */
/* What a linear layer's tasks share (each path uses the fields it needs). */
typedef struct mmspcl__lin_job {
    float *out;
    const float *x, *bias;
    const mmspcl_tensor *W;
    int rows, n_in, n_out;
} mmspcl__lin_job;

/* A k chunk of a linear layer (f32 row-lane and NEON paths): x^T of columns k0 .. k0+kc in xt,
   per-thread scratch of `wide` floats each from xt + ldt * kcmax. */
typedef struct mmspcl__lin_chunk_job {
    mmspcl__lin_job l;
    float *xt;
    size_t wide, esize;
    int ldt, kcmax, k0, kc;
} mmspcl__lin_chunk_job;

/* The integer paths' tasks (x86 and NEON): quantized x in buf, per-thread scratch after it. */
typedef struct mmspcl__lin_q_job {
    mmspcl__lin_job l;
    unsigned char *buf;
    const int8_t *xq;
    const float *xd;
    const int32_t *xc;
    size_t xbytes, sbytes, per_thread, row_bytes;
    int ldt, kind, dot;
} mmspcl__lin_q_job;

typedef struct mmspcl__lin_scalar_job { mmspcl__lin_job l; float *wide; } mmspcl__lin_scalar_job;

/* task: output o for every row */
static void mmspcl__linear_scalar_task(void *ctx, int o, int tid) {
    const mmspcl__lin_scalar_job *j = (const mmspcl__lin_scalar_job *)ctx;
    const mmspcl_tensor *W = j->l.W;
    const int n_in = j->l.n_in, n_out = j->l.n_out;
    const float *w;
    int r;
    if (W->dtype != MMSPCL_F32 || W->ndim != 2) {   /* f16, bf16, panels: row o widened */
        float *buf = j->wide + (size_t)tid * (size_t)n_in;
        mmspcl_matrix_row(W, o, buf);
        w = buf;
    } else {
        w = (const float *)W->data + (size_t)o * (size_t)n_in;
    }
    for (r = 0; r < j->l.rows; r++)
        j->l.out[(size_t)r * (size_t)n_out + (size_t)o] =
            (j->l.bias ? j->l.bias[o] : 0.0f) + mmspcl_dot_f32(j->l.x + (size_t)r * (size_t)n_in, w, n_in);
}

/* wide: team * n_in floats */
static void mmspcl__linear_scalar(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                                  const float *bias, float *wide, int team) {
    mmspcl__lin_scalar_job j;
    j.l.out = out; j.l.x = x; j.l.bias = bias; j.l.W = W; j.l.rows = rows; j.l.n_in = n_in;
    j.l.n_out = (int)mmspcl_matrix_rows(W);
    j.wide = wide;
    mmspcl__parallel(j.l.n_out, team, mmspcl__linear_scalar_task, &j);
}

/* Linear layers, quantized weights (q8_0, q4_0, q4_k, q5_k): the integer path.
   Definition (every SIMD path gives the same bits):
     1. each row of x is quantized in blocks of 32 with a power-of-two scale: amax = max|x|;
        d = 0 and q = 0 when amax = 0, else d = 2^e with e the smallest integer such that
        127 * 2^e >= amax (clamped to [-100, 100]: mmspcl__act_exp) and q = round-to-nearest-even
        (clamp(x * 2^-e, -127, 127)), an int8 in [-127, 127];
     2. for each output o and block b: isum = sum of the 32 products q_x * q_w (exact, int32);
     3. acc = 0; for b in order: acc = fma(d_x * d_w, (float)isum, acc); out = acc + bias.
   q4_0 weights count as nibble - 8. The scale of x being a power of two, d_x * d_w is exact (the
   weight scale d_w is a finite f16 value, or S of a k-type sub-block, and the clamp keeps the
   product a normal float): so a SIMD path may form it by adding e to the exponent field of d_w
   (an integer add, cheaper than a multiply on the VNNI kernels' pipes: 6.5) and still give the
   definition's bits. The price: a step up to 2 x max|x| / 127 instead of max|x| / 127, so the
   activation rounding error is at most 2 x that of a free scale (about 1.45 x on average). */
static int mmspcl__act_exp(float amax) {   /* amax > 0 */
    const uint32_t u = mmspcl__f32_bits(amax);
    /* amax = m 2^E, m in [1, 2): 127 * 2^(E-6) >= amax iff m <= 127/64 (fraction <= 0x7e0000) */
    const int e = (int)(u >> 23 & 255) - 133 + ((u & 0x7fffffu) > 0x7e0000u);
    return e < -100 ? -100 : e > 100 ? 100 : e;
}
static float mmspcl__pow2f(int e) { return mmspcl__bits_f32((uint32_t)(e + 127) << 23); }   /* |e| <= 126 */
static void mmspcl__quantize_act(const float *x, int n, int8_t *q, float *d) {
    int b, j;
    for (b = 0; b < n / MMSPCL_QBLOCK; b++, x += MMSPCL_QBLOCK, q += MMSPCL_QBLOCK) {
        float amax = 0.0f, id;
        int e;
        for (j = 0; j < MMSPCL_QBLOCK; j++) amax = fmaxf(amax, fabsf(x[j]));
        if (amax == 0.0f) {   /* also x = -0 */
            d[b] = 0.0f;
            memset(q, 0, MMSPCL_QBLOCK);
            continue;
        }
        e = mmspcl__act_exp(amax);
        d[b] = mmspcl__pow2f(e);
        id = mmspcl__pow2f(-e);
        for (j = 0; j < MMSPCL_QBLOCK; j++) q[j] = (int8_t)lrintf(fminf(fmaxf(x[j] * id, -127.0f), 127.0f));
    }
}

/* The 32 int8 values and the scale of block b of weight row w (q8_0, q4_0; q4_k / q5_k: q - z of
   sub-block b % 8 of super-block b / 8, scale S). */
static float mmspcl__weight_block(const void *w, mmspcl_dtype dt, int b, int8_t *v) {
    int j;
    if (dt == MMSPCL_Q4_K || dt == MMSPCL_Q5_K)
        return mmspcl__ksub_values((const unsigned char *)w + (size_t)(b / 8) * (size_t)mmspcl__types[dt].bytes, mmspcl__kbits(dt),
                                   b % 8, v);
    if (dt == MMSPCL_Q8_0) {
        const mmspcl_block_q8_0 *blk = (const mmspcl_block_q8_0 *)w + b;
        for (j = 0; j < MMSPCL_QBLOCK; j++) v[j] = blk->q[j];
        return mmspcl_fp16_to_fp32(blk->d);
    } else {
        const mmspcl_block_q4_0 *blk = (const mmspcl_block_q4_0 *)w + b;
        for (j = 0; j < MMSPCL_QBLOCK / 2; j++) {
            v[j] = (int8_t)((blk->q[j] & 15) - 8);
            v[j + 16] = (int8_t)((blk->q[j] >> 4) - 8);
        }
        return mmspcl_fp16_to_fp32(blk->d);
    }
}

typedef struct mmspcl__lin_qs_job { mmspcl__lin_job l; const int8_t *xq; const float *xd; size_t row_bytes; } mmspcl__lin_qs_job;

/* task: output o for every row */
static void mmspcl__linear_q_scalar_task(void *ctx, int o, int tid) {
    const mmspcl__lin_qs_job *jb = (const mmspcl__lin_qs_job *)ctx;
    const int n_in = jb->l.n_in, n_out = jb->l.n_out, nb = n_in / MMSPCL_QBLOCK;
    const void *w = (const unsigned char *)jb->l.W->data + (size_t)o * jb->row_bytes;
    int rr, b, j;
    (void)tid;
    for (rr = 0; rr < jb->l.rows; rr++) {
        const int8_t *q = jb->xq + (size_t)rr * n_in;
        float acc = 0.0f;
        for (b = 0; b < nb; b++) {
            int8_t v[MMSPCL_QBLOCK];
            float dw = mmspcl__weight_block(w, jb->l.W->dtype, b, v);
            int32_t isum = 0;
            for (j = 0; j < MMSPCL_QBLOCK; j++) isum += (int32_t)q[b * MMSPCL_QBLOCK + j] * v[j];
            acc = fmaf(jb->xd[(size_t)rr * nb + b] * dw, (float)isum, acc);
        }
        jb->l.out[(size_t)rr * n_out + o] = acc + (jb->l.bias ? jb->l.bias[o] : 0.0f);
    }
}

static mmspcl_status mmspcl__linear_q_scalar(float *out, const float *x, int rows, int n_in,
                                             const mmspcl_tensor *W, const float *bias) {
    const int n_out = (int)W->ne[0], nb = n_in / MMSPCL_QBLOCK;
    const size_t row_bytes = mmspcl_dtype_row_size(W->dtype, n_in);
    int8_t *xq = (int8_t *)MMSPCL_MALLOC((size_t)rows * (size_t)n_in + (size_t)rows * (size_t)nb * sizeof(float));
    float *xd = (float *)(xq + (size_t)rows * (size_t)n_in);
    mmspcl__lin_qs_job j;
    int r;
    if (!xq) return MMSPCL_ERR_NOMEM;
    /* n_in is a multiple of 4, so xd is aligned for floats */
    for (r = 0; r < rows; r++)
        mmspcl__quantize_act(x + (size_t)r * n_in, n_in, xq + (size_t)r * n_in, xd + (size_t)r * nb);
    j.l.out = out; j.l.x = x; j.l.bias = bias; j.l.W = W; j.l.rows = rows; j.l.n_in = n_in; j.l.n_out = n_out;
    j.xq = xq; j.xd = xd; j.row_bytes = row_bytes;
    mmspcl__parallel(n_out, mmspcl__team(), mmspcl__linear_q_scalar_task, &j);
    MMSPCL_FREE(xq);
    return MMSPCL_OK;
}

/* Linear layers, bf16 weights: bf16 x bf16 -> f32, in the order of AVX512-BF16's vdpbf16ps.
   Definition (every x86 path gives the same bits):
     1. each value of x is rounded to bf16 (mmspcl__bf16_act: a zero or subnormal float becomes a
        zero of its sign, any other value mmspcl_fp32_to_bf16's nearest even, as vcvtneps2bf16);
     2. for each output o: acc = 0, then for the columns in the order 1, 0, 3, 2, 5, 4, ... (each
        pair's odd column first, as vdpbf16ps adds them; an odd last column alone)
        acc = fma(xb[k], w[k], acc); out = acc + bias.
   A product of two bf16 is exact in f32, so each step is acc + x w rounded once, the step the
   instruction does. vdpbf16ps also flushes subnormal weights, products and partial sums to zero,
   which this definition does not: the two agree whenever none of those is below 2^-126 in
   magnitude (finite checkpoints with |w| > 1e-38 and activations of ordinary size). */
static uint16_t mmspcl__bf16_act(float f) {
    const uint32_t u = mmspcl__f32_bits(f);
    return (u & 0x7f800000u) == 0 ? (uint16_t)((u >> 16) & 0x8000u) : mmspcl_fp32_to_bf16(f);
}

/* Column k's place in the definition's order (pairs swapped; an odd last column stays). */
static int mmspcl__bf16_col(int k, int n) { return (k ^ 1) < n ? k ^ 1 : k; }

typedef struct mmspcl__lin_bf16_job { mmspcl__lin_job l; float *xb; size_t nx; } mmspcl__lin_bf16_job;

/* task: output o for every row */
static void mmspcl__linear_bf16_scalar_task(void *ctx, int o, int tid) {
    const mmspcl__lin_bf16_job *j = (const mmspcl__lin_bf16_job *)ctx;
    const int n_in = j->l.n_in, n_out = j->l.n_out;
    float *w = j->xb + j->nx + (size_t)tid * (size_t)n_in;   /* row o widened (exact) */
    int r, k;
    mmspcl_dequantize_row(MMSPCL_BF16, (const uint16_t *)j->l.W->data + (size_t)o * (size_t)n_in, w, n_in);
    for (r = 0; r < j->l.rows; r++) {
        const float *xr = j->xb + (size_t)r * (size_t)n_in;
        float acc = 0.0f;
        for (k = 0; k < n_in; k++) {
            const int c = mmspcl__bf16_col(k, n_in);
            acc = fmaf(xr[c], w[c], acc);
        }
        j->l.out[(size_t)r * (size_t)n_out + (size_t)o] = acc + (j->l.bias ? j->l.bias[o] : 0.0f);
    }
}

static mmspcl_status mmspcl__linear_bf16_scalar(float *out, const float *x, int rows, int n_in,
                                                const mmspcl_tensor *W, const float *bias) {
    const int n_out = (int)W->ne[0], team = mmspcl__team();
    const size_t nx = (size_t)rows * (size_t)n_in;
    float *xb = (float *)MMSPCL_MALLOC((nx + (size_t)team * (size_t)n_in) * sizeof(float));
    mmspcl__lin_bf16_job j;
    size_t i;
    if (!xb) return MMSPCL_ERR_NOMEM;
    for (i = 0; i < nx; i++) xb[i] = mmspcl_bf16_to_fp32(mmspcl__bf16_act(x[i]));
    j.l.out = out; j.l.x = x; j.l.bias = bias; j.l.W = W; j.l.rows = rows; j.l.n_in = n_in; j.l.n_out = n_out;
    j.xb = xb; j.nx = nx;
    mmspcl__parallel(n_out, team, mmspcl__linear_bf16_scalar_task, &j);
    MMSPCL_FREE(xb);
    return MMSPCL_OK;
}

/* mmspcl_linear's definition (MMSPCL_PATH_SCALAR): the integer path for q8_0 / q4_0 weights,
   bf16 x bf16 for bf16 weights; f32 and f16 as above, f32 rows in place, f16 / panel rows widened
   one at a time. */
static mmspcl_status mmspcl__linear_definition(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                                               const float *bias) {
    const int team = mmspcl__team();
    float *wide;
    if (mmspcl__dtype_integer(W->dtype)) return mmspcl__linear_q_scalar(out, x, rows, n_in, W, bias);
    if (W->dtype == MMSPCL_BF16) return mmspcl__linear_bf16_scalar(out, x, rows, n_in, W, bias);
    wide = (float *)MMSPCL_MALLOC((size_t)team * (size_t)n_in * sizeof(float));
    if (!wide) return MMSPCL_ERR_NOMEM;
    mmspcl__linear_scalar(out, x, rows, n_in, W, bias, wide, team);
    MMSPCL_FREE(wide);
    return MMSPCL_OK;
}

/* Layer norm of one row (in place ok): mean and biased variance in double, as torch.nn.LayerNorm,
   then ((x - mean) * inv) * gamma + beta in float. */
static void mmspcl__layernorm_scalar(float *yr, const float *xr, const float *gamma, const float *beta, int dim,
                                     float eps) {
    double mean = 0.0, var = 0.0;
    float inv;
    int i;
    for (i = 0; i < dim; i++) mean += xr[i];
    mean /= dim;
    for (i = 0; i < dim; i++) { double d = xr[i] - mean; var += d * d; }
    var /= dim;                          /* biased variance, as torch.nn.LayerNorm */
    inv = (float)(1.0 / sqrt(var + eps));
    for (i = 0; i < dim; i++)
        yr[i] = ((xr[i] - (float)mean) * inv) * (gamma ? gamma[i] : 1.0f) + (beta ? beta[i] : 0.0f);
}

/* GELU, x * 0.5 * (1 + erf(x / sqrt(2))), and quick GELU, x * sigmoid(1.702 x), elementwise. */
static void mmspcl__gelu_scalar(float *x, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

static void mmspcl__gelu_grad_scalar(float *d, const float *x, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        d[i] *= 0.5f * (1.0f + erff(x[i] * 0.70710678118654752f)) + x[i] * expf(-0.5f * x[i] * x[i]) * 0.39894228040143268f;
}

static void mmspcl__quick_gelu_scalar(float *x, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

/* Softmax in place: exp(x - max), then divided by the sum. */
static void mmspcl__softmax_scalar(float *x, int n) {
    float mx = -INFINITY, sum = 0.0f;
    int i;
    for (i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (i = 0; i < n; i++) { x[i] = expf(x[i] - mx); sum += x[i]; }
    for (i = 0; i < n; i++) x[i] /= sum;
}

/* Attention, one task per (head, query) pair: scores q.k / sqrt(head_dim) (-inf for masked
   keys), their softmax by mmspcl_softmax (so the AVX2 one where mmspcl_softmax takes it), then
   the sum of the value rows weighted by it (zero weights skipped). */
/* What an attention call's tasks share. */
typedef struct mmspcl__attn_job {
    float *out, *scratch;
    const float *q, *k, *v;
    const unsigned char *key_valid;
    int ld_out, ld_q, ld_kv, n_q, n_k, head_dim;
    float scale;
    size_t per;   /* scratch floats per thread */
} mmspcl__attn_job;

/* task: one (head, query) pair */
static void mmspcl__attention_scalar_task(void *ctx, int task, int tid) {
    const mmspcl__attn_job *a = (const mmspcl__attn_job *)ctx;
    const int n_q = a->n_q, n_k = a->n_k, head_dim = a->head_dim, h = task / n_q, i = task % n_q;
    float *p = a->scratch + (size_t)tid * (size_t)n_k;
    const float *qi = a->q + (size_t)i * (size_t)a->ld_q + h * head_dim;
    float *oi = a->out + (size_t)i * (size_t)a->ld_out + h * head_dim;
    int j, d;
    for (j = 0; j < n_k; j++)
        p[j] = a->key_valid && !a->key_valid[j] ? -INFINITY
             : mmspcl_dot_f32(qi, a->k + (size_t)j * (size_t)a->ld_kv + h * head_dim, head_dim) * a->scale;
    mmspcl_softmax(p, n_k);
    for (d = 0; d < head_dim; d++) oi[d] = 0.0f;
    for (j = 0; j < n_k; j++) {
        const float *vj = a->v + (size_t)j * (size_t)a->ld_kv + h * head_dim;
        if (p[j] == 0.0f) continue;
        for (d = 0; d < head_dim; d++) oi[d] += p[j] * vj[d];
    }
}

static void mmspcl__attention_scalar(float *out, int ld_out, const float *q, int ld_q, const float *k,
                                     const float *v, int ld_kv, int n_q, int n_k, int n_heads, int head_dim,
                                     const unsigned char *key_valid, float *scratch, int team) {
    mmspcl__attn_job a;
    a.out = out; a.scratch = scratch; a.q = q; a.k = k; a.v = v; a.key_valid = key_valid;
    a.ld_out = ld_out; a.ld_q = ld_q; a.ld_kv = ld_kv; a.n_q = n_q; a.n_k = n_k; a.head_dim = head_dim;
    a.scale = 1.0f / sqrtf((float)head_dim);
    a.per = (size_t)n_k;
    mmspcl__parallel(n_heads * n_q, team, mmspcl__attention_scalar_task, &a);
}

/* ---- 6.2 SIMD layout and x86 CPU features --------------------------------------------------
   The AVX-512 float path, every integer path and NEON put consecutive ROWS of x in the lanes of
   a vector ("x^T" packed once per call: [k][rows rounded up], zero rows past the end) and
   broadcast weights straight from W's rows, so W is streamed from memory once, in place, with no
   per-call repacking of the big matrix. A micro-kernel keeps MO outputs x NV vectors of rows in
   registers. (The AVX2 float path, 6.6, and the AVX-512 panel kernel, 6.4, have outputs in the
   lanes and broadcast x instead.)
   Integer paths: x^T holds 4-byte groups [k/4][rows][4] of quantized activations; each weight
   group of 4 int8 is broadcast as one 32-bit word; a dot-product instruction adds the 4 products
   into each row's 32-bit lane. */

#ifndef MMSPCL__KC
#define MMSPCL__KC 1024   /* k chunk of the f32 paths: x^T of the chunk stays in L2 */
#endif

#if !defined(MMSPCL_NO_SIMD) && (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define MMSPCL__X86_DISPATCH 1
#include <immintrin.h>
/* GCC 12's own AVX-512 headers trip -Wmaybe-uninitialized in C++ at -O2 (GCC bug 105593,
   fixed in 13): silence it for the SIMD section only. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define MMSPCL__POP_DIAGNOSTIC 1
#endif
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 || defined(__clang__) && __clang_major__ >= 12
#include <cpuid.h>
#define MMSPCL__HAVE_AVXVNNI 1   /* the compiler knows target("avxvnni") */
#endif

/* CPU features. Kernels ask on every call (the attention definition calls mmspcl_softmax once
   per head and query), and CPUID costs microseconds where it exits a VM, so they are read once
   and cached: mmspcl__x86_features(w) reads them on its first call with that w and returns the
   cached value afterwards. The cache (one int per w, 0 until read) is the library's only mutable
   static data; threads that read the features at the same time store the same value, through
   relaxed atomics (no lock, no data race). */
#define MMSPCL__CPU_AVX2 1
#define MMSPCL__CPU_AVX512 2
#define MMSPCL__CPU_VNNI512 4
#define MMSPCL__CPU_AVXVNNI 8
#define MMSPCL__CPU_BF16_512 16   /* AVX512-BF16: vdpbf16ps, vcvtne2ps2bf16 */
#define MMSPCL__CPU_KNOWN 256   /* in the cache: the features are read */
static int mmspcl__x86_read_features(int want_avxvnni) {
    int f = 0;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) f |= MMSPCL__CPU_AVX2;
    if ((f & MMSPCL__CPU_AVX2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl")) {
        f |= MMSPCL__CPU_AVX512;
        if (__builtin_cpu_supports("avx512vnni")) f |= MMSPCL__CPU_VNNI512;
        if (__builtin_cpu_supports("avx512bf16")) f |= MMSPCL__CPU_BF16_512;
    }
#ifdef MMSPCL__HAVE_AVXVNNI
    /* CPUID leaf 7 sub-leaf 1, EAX bit 4 (not every compiler's __builtin_cpu_supports knows it);
       asked only when AVX512-VNNI is absent or the caller wants it (CPUID is slow in a VM) */
    if ((f & MMSPCL__CPU_AVX2) && (want_avxvnni || !(f & MMSPCL__CPU_VNNI512))) {
        unsigned a = 0, b = 0, c = 0, d = 0;
        if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 4 & 1)) f |= MMSPCL__CPU_AVXVNNI;
    }
#endif
    return f;
}

/* want_avxvnni: also look for AVX-VNNI when AVX512-VNNI is present (the AVXVNNI path). */
static int mmspcl__x86_features(int want_avxvnni) {
    static int cache[2];
    const int w = want_avxvnni != 0;
    int f = __atomic_load_n(&cache[w], __ATOMIC_RELAXED);
    if (!f) {
        f = mmspcl__x86_read_features(w) | MMSPCL__CPU_KNOWN;
        __atomic_store_n(&cache[w], f, __ATOMIC_RELAXED);
    }
    return f & ~MMSPCL__CPU_KNOWN;
}

/* 4 bytes as one 32-bit word (a broadcast operand). */
static int32_t mmspcl__word(const int8_t *p) { int32_t v; memcpy(&v, p, 4); return v; }

#define MMSPCL__R1(M) M(0)
#define MMSPCL__R2(M) M(0) M(1)
#define MMSPCL__R3(M) M(0) M(1) M(2)
#define MMSPCL__R4(M) M(0) M(1) M(2) M(3)
#define MMSPCL__R5(M) M(0) M(1) M(2) M(3) M(4)
#define MMSPCL__R6(M) M(0) M(1) M(2) M(3) M(4) M(5)
#define MMSPCL__R8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)


/* ---- 6.3 x86 AVX-512: linear, f32 / f16 / bf16 weights --------------------------------------
   Micro-kernels of 6 outputs x NV (1, 2, 4) vectors of 16 rows. */
#define MMSPCL__MO 6
#define MMSPCL__SG 8   /* groups per super-group (48 outputs: 3 whole transposes per tile store) */

/* 16 x 16 transpose of r[0..15] in place (written out: GCC keeps it in registers). */
#define MMSPCL__T1(i) const __m512 t##i = (i & 1) ? _mm512_unpackhi_ps(r[i - 1], r[i]) : _mm512_unpacklo_ps(r[i], r[i + 1]);
#define MMSPCL__T2(i, a, b) const __m512 u##i = _mm512_shuffle_ps(a, b, (i & 1) ? 0xEE : 0x44);
#define MMSPCL__T3(c) {                                                                                     \
    const __m512 v = _mm512_shuffle_f32x4(u##c, u4##c, 0x88), v2 = _mm512_shuffle_f32x4(u##c, u4##c, 0xDD);      \
    const __m512 w = _mm512_shuffle_f32x4(u8##c, u12##c, 0x88), w2 = _mm512_shuffle_f32x4(u8##c, u12##c, 0xDD);   \
    r[c] = _mm512_shuffle_f32x4(v, w, 0x88); r[8 + c] = _mm512_shuffle_f32x4(v, w, 0xDD);                    \
    r[4 + c] = _mm512_shuffle_f32x4(v2, w2, 0x88); r[12 + c] = _mm512_shuffle_f32x4(v2, w2, 0xDD); }
static inline __attribute__((always_inline, target("avx512f"))) void mmspcl__tr16(__m512 *r) {
    MMSPCL__T1(0) MMSPCL__T1(1) MMSPCL__T1(2) MMSPCL__T1(3) MMSPCL__T1(4) MMSPCL__T1(5) MMSPCL__T1(6) MMSPCL__T1(7)
    MMSPCL__T1(8) MMSPCL__T1(9) MMSPCL__T1(10) MMSPCL__T1(11) MMSPCL__T1(12) MMSPCL__T1(13) MMSPCL__T1(14) MMSPCL__T1(15)
    MMSPCL__T2(0, t0, t2) MMSPCL__T2(1, t0, t2) MMSPCL__T2(2, t1, t3) MMSPCL__T2(3, t1, t3)
    MMSPCL__T2(40, t4, t6) MMSPCL__T2(41, t4, t6) MMSPCL__T2(42, t5, t7) MMSPCL__T2(43, t5, t7)
    MMSPCL__T2(80, t8, t10) MMSPCL__T2(81, t8, t10) MMSPCL__T2(82, t9, t11) MMSPCL__T2(83, t9, t11)
    MMSPCL__T2(120, t12, t14) MMSPCL__T2(121, t12, t14) MMSPCL__T2(122, t13, t15) MMSPCL__T2(123, t13, t15)
    MMSPCL__T3(0) MMSPCL__T3(1) MMSPCL__T3(2) MMSPCL__T3(3)
}
#undef MMSPCL__T1
#undef MMSPCL__T2
#undef MMSPCL__T3

/* x^T in tiles of up to 64 rows: the tile of rows r0 .. r0+tw-1 (tw = min(64, ldt - r0)) is
   xt[r0 * kc + k * tw + r - r0] = x[r][k0 + k] for k < kc; zero for rows .. ldt (a multiple of 16),
   so a micro-kernel streams one contiguous block. */
static __attribute__((target("avx512f"))) void mmspcl__pack_xt_avx512(float *xt, int ldt, const float *x, int rows,
                                                                       int n_in, int k0, int kc) {
    int r0, k, i;
    for (r0 = 0; r0 < ldt; r0 += 16)
        for (k = 0; k < kc; k += 16) {
            const int t0 = r0 & ~63, tw = ldt - t0 < 64 ? ldt - t0 : 64;
            float *dst = xt + (size_t)t0 * kc + (r0 - t0);
            __m512 v[16];
            const int kn = kc - k < 16 ? kc - k : 16;
            const __mmask16 m = (__mmask16)((1u << kn) - 1);
            for (i = 0; i < 16; i++)
                v[i] = r0 + i < rows ? _mm512_maskz_loadu_ps(m, x + (size_t)(r0 + i) * n_in + k0 + k) : _mm512_setzero_ps();
            mmspcl__tr16(v);
            for (i = 0; i < kn; i++) _mm512_storeu_ps(dst + (size_t)(k + i) * tw, v[i]);
        }
}

/* Columns k0 .. k0+kc of rows o0 .. o0+mo-1 of an f16 / bf16 W widened to f32: dst[o][kc]. */
static __attribute__((target("avx512f,f16c"))) void mmspcl__widen_avx512(float *dst, const mmspcl_tensor *W, int n_in,
                                                                          int o0, int mo, int k0, int kc) {
    int o, k;
    for (o = 0; o < mo; o++) {
        const uint16_t *s = (const uint16_t *)W->data + (size_t)(o0 + o) * n_in + k0;
        float *d = dst + (size_t)o * kc;
        for (k = 0; k + 16 <= kc; k += 16) {
            const __m256i h = _mm256_loadu_si256((const __m256i *)(s + k));
            _mm512_storeu_ps(d + k, W->dtype == MMSPCL_F16 ? _mm512_cvtph_ps(h)
                             : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
        }
        for (; k < kc; k++) d[k] = W->dtype == MMSPCL_F16 ? mmspcl_fp16_to_fp32(s[k]) : mmspcl_bf16_to_fp32(s[k]);
    }
}

/* t[o][ts] holds output o of rows 0 .. mr-1: out = bias + t (acc == 0) or out += t. */
static void mmspcl__store_cols(float *out, int ld, const float *t, int ts, int mr, int mo, const float *bias, int acc) {
    int r, o;
    for (r = 0; r < mr; r++)
        for (o = 0; o < mo; o++) {
            if (acc) out[(size_t)r * ld + o] += t[o * ts + r];
            else out[(size_t)r * ld + o] = t[o * ts + r] + (bias ? bias[o] : 0.0f);
        }
}

/* The same as mmspcl__store_cols with 16 x 16 transposes and masked row stores, 16 outputs at a
   time (mo <= 48: the row-lane kernel stores a super-group of 8 output groups at once). */
static __attribute__((target("avx512f"))) void mmspcl__store_cols_avx512(float *out, int ld, const float *t, int ts, int mr,
                                                                          int mo, const float *bias, int acc) {
    int ob, r0, r, o;
    for (ob = 0; ob < mo; ob += 16) {
        const int mb = mo - ob < 16 ? mo - ob : 16;
        const __mmask16 m = (__mmask16)(mb == 16 ? 0xFFFFu : (1u << mb) - 1);
        const __m512 b = bias && !acc ? _mm512_maskz_loadu_ps(m, bias + ob) : _mm512_setzero_ps();
        for (r0 = 0; r0 < mr; r0 += 16) {
            __m512 v[16];
            for (o = 0; o < 16; o++) v[o] = o < mb ? _mm512_loadu_ps(t + (ob + o) * ts + r0) : _mm512_setzero_ps();
            mmspcl__tr16(v);
            for (r = 0; r < 16 && r0 + r < mr; r++) {
                float *dst = out + (size_t)(r0 + r) * ld + ob;
                _mm512_mask_storeu_ps(dst, m, acc ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst), v[r]) : _mm512_add_ps(v[r], b));
            }
        }
    }
}

/* Micro-kernel: t[o][16 v + lane] = sum_k w[o][k] * xt[k * ldx + 16 v + lane], o < 6, v < NV.
   Spread over the k loop it prefetches pf->n lines: pf->lpr lines from each of rows pf->p + i *
   pf->stride (the next group's weights, so they stream from memory while this group computes). */
typedef struct mmspcl__pf { const char *p; size_t stride; int lpr, n; } mmspcl__pf;
#define MMSPCL__V1(M, o) M(o, 0)
#define MMSPCL__V2(M, o) M(o, 0) M(o, 1)
#define MMSPCL__V3(M, o) M(o, 0) M(o, 1) M(o, 2)
#define MMSPCL__V4(M, o) M(o, 0) M(o, 1) M(o, 2) M(o, 3)
#define MMSPCL__Z_DECL(o, v) __m512 a##o##v = _mm512_setzero_ps();
#define MMSPCL__Z_FMA(o, v) a##o##v = _mm512_fmadd_ps(b, x##v, a##o##v);
#define MMSPCL__Z_STORE(o, v) _mm512_storeu_ps(t + o * 64 + 16 * v, a##o##v);
#define MMSPCL__Z_LOADX(v) const __m512 x##v = _mm512_loadu_ps(xk + 16 * v);
#define MMSPCL__Z_DECL1(o) MMSPCL__V1(MMSPCL__Z_DECL, o)
#define MMSPCL__Z_DECL2(o) MMSPCL__V2(MMSPCL__Z_DECL, o)
#define MMSPCL__Z_DECL3(o) MMSPCL__V3(MMSPCL__Z_DECL, o)
#define MMSPCL__Z_DECL4(o) MMSPCL__V4(MMSPCL__Z_DECL, o)
#define MMSPCL__Z_STEP1(o) { const __m512 b = _mm512_set1_ps(w##o[k]); MMSPCL__V1(MMSPCL__Z_FMA, o) }
#define MMSPCL__Z_STEP2(o) { const __m512 b = _mm512_set1_ps(w##o[k]); MMSPCL__V2(MMSPCL__Z_FMA, o) }
#define MMSPCL__Z_STEP3(o) { const __m512 b = _mm512_set1_ps(w##o[k]); MMSPCL__V3(MMSPCL__Z_FMA, o) }
#define MMSPCL__Z_STEP4(o) { const __m512 b = _mm512_set1_ps(w##o[k]); MMSPCL__V4(MMSPCL__Z_FMA, o) }
#define MMSPCL__Z_ST1(o) MMSPCL__V1(MMSPCL__Z_STORE, o)
#define MMSPCL__Z_ST2(o) MMSPCL__V2(MMSPCL__Z_STORE, o)
#define MMSPCL__Z_ST3(o) MMSPCL__V3(MMSPCL__Z_STORE, o)
#define MMSPCL__Z_ST4(o) MMSPCL__V4(MMSPCL__Z_STORE, o)
#define MMSPCL__F32K(NV)                                                                                    \
static __attribute__((target("avx512f,fma"))) void mmspcl__f32k##NV(float *t, const float *xt, int ldx,    \
                                                                     const float *const *w, int kc,        \
                                                                     const mmspcl__pf *pf) {               \
    const float *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3], *w4 = w[4], *w5 = w[5];                       \
    int k, pi = 0, pk = pf && pf->n ? 0 : kc;                                                               \
    MMSPCL__R6(MMSPCL__Z_DECL##NV)                                                                          \
    for (k = 0; k < kc; k++) {                                                                              \
        const float *xk = xt + (size_t)k * ldx;                                                             \
        MMSPCL__R##NV(MMSPCL__Z_LOADX)                                                                      \
        MMSPCL__R6(MMSPCL__Z_STEP##NV)                                                                      \
        if (k == pk) {                                                                                      \
            _mm_prefetch(pf->p + (size_t)(pi / pf->lpr) * pf->stride + (size_t)(pi % pf->lpr) * 64, _MM_HINT_T0); \
            pi++;                                                                                           \
            pk = pi < pf->n ? (int)((long long)pi * kc / pf->n) : kc;                                       \
        }                                                                                                   \
    }                                                                                                       \
    MMSPCL__R6(MMSPCL__Z_ST##NV)                                                                            \
}
MMSPCL__F32K(1)
MMSPCL__F32K(2)
MMSPCL__F32K(3)
MMSPCL__F32K(4)

static void mmspcl__f32k(int nv, float *t, const float *xt, int ldx, const float *const *w, int kc, const mmspcl__pf *pf) {
    if (nv == 4) mmspcl__f32k4(t, xt, ldx, w, kc, pf);
    else if (nv == 3) mmspcl__f32k3(t, xt, ldx, w, kc, pf);
    else if (nv == 2) mmspcl__f32k2(t, xt, ldx, w, kc, pf);
    else mmspcl__f32k1(t, xt, ldx, w, kc, pf);
}

/* task: super-group sg (MMSPCL__SG groups of 6 outputs), every row tile */
static void mmspcl__linear_f32_avx512_task(void *ctx, int sg, int tid) {
    const mmspcl__lin_chunk_job *j = (const mmspcl__lin_chunk_job *)ctx;
    const mmspcl_tensor *W = j->l.W;
    const int vrows = j->l.rows, n_in = j->l.n_in, n_out = j->l.n_out, ldt = j->ldt, k0 = j->k0, kc = j->kc;
    const size_t esize = j->esize;
    const int s0 = sg * MMSPCL__SG * MMSPCL__MO, smo = n_out - s0 < MMSPCL__SG * MMSPCL__MO ? n_out - s0 : MMSPCL__SG * MMSPCL__MO;
    const float *xt = j->xt;
    float *buf = j->xt + (size_t)ldt * (size_t)j->kcmax + (size_t)tid * j->wide;
    float t[MMSPCL__SG * MMSPCL__MO * 64];
    int o, r0, g;
    for (r0 = 0; r0 < vrows; r0 += 64) {
        const int nv = ldt - r0 < 64 ? (ldt - r0) / 16 : 4;
        const float *xb = xt + (size_t)r0 * kc;
        for (g = 0; g * MMSPCL__MO < smo; g++) {
            const int o0 = s0 + g * MMSPCL__MO, mo = n_out - o0 < MMSPCL__MO ? n_out - o0 : MMSPCL__MO;
            const float *w[MMSPCL__MO];
            mmspcl__pf pf;   /* the next group's rows, columns k0 .. k0+kc */
            pf.stride = (size_t)n_in * esize;
            pf.p = (const char *)W->data + (size_t)(o0 + MMSPCL__MO) * pf.stride + (size_t)k0 * esize;
            pf.lpr = (int)(((size_t)kc * esize + 63) / 64);
            pf.n = o0 + MMSPCL__MO < n_out ? pf.lpr * (n_out - o0 - MMSPCL__MO < MMSPCL__MO ? n_out - o0 - MMSPCL__MO : MMSPCL__MO) : 0;
            if (W->dtype == MMSPCL_F32) {
                for (o = 0; o < MMSPCL__MO; o++) w[o] = (const float *)W->data + (size_t)(o0 + (o < mo ? o : 0)) * n_in + k0;
            } else {   /* widened rows of the whole super-group, kept for the next row tiles */
                float *wr = buf + (size_t)g * MMSPCL__MO * kc;
                if (r0 == 0) mmspcl__widen_avx512(wr, W, n_in, o0, mo, k0, kc);
                for (o = 0; o < MMSPCL__MO; o++) w[o] = wr + (size_t)(o < mo ? o : 0) * kc;
            }
            mmspcl__f32k(nv, t + (size_t)g * MMSPCL__MO * 64, xb, 16 * nv, w, kc, r0 ? NULL : &pf);
        }
        mmspcl__store_cols_avx512(j->l.out + (size_t)r0 * n_out + s0, n_out, t, 64, vrows - r0 < 16 * nv ? vrows - r0 : 16 * nv,
                                  smo, j->l.bias ? j->l.bias + s0 : NULL, k0 > 0);
    }
}

static mmspcl_status mmspcl__linear_f32_avx512(float *out, const float *x, int rows, int n_in,
                                               const mmspcl_tensor *W, const float *bias) {
    /* Every row goes through the same vector lanes whatever its position: a row's result does
       not depend on the batch around it (a leftover-rows kernel with another summation order
       would break that). */
    const int vrows = rows;
    const int n_out = (int)W->ne[0], ldt = (vrows + 15) & ~15, nthreads = mmspcl__team();
    const int kcmax = n_in <= MMSPCL__KC * 3 / 2 ? n_in : MMSPCL__KC, n_groups = (n_out + MMSPCL__MO - 1) / MMSPCL__MO;
    const int n_super = (n_groups + MMSPCL__SG - 1) / MMSPCL__SG;
    const size_t wide = W->dtype == MMSPCL_F32 ? 0 : (size_t)MMSPCL__SG * MMSPCL__MO * (size_t)kcmax, esize = W->dtype == MMSPCL_F32 ? 4 : 2;
    float *xt = (float *)MMSPCL_MALLOC(((size_t)ldt * (size_t)kcmax + (size_t)nthreads * wide + 16) * sizeof(float));
    mmspcl__lin_chunk_job j;
    int k0;
    if (!xt) return MMSPCL_ERR_NOMEM;
    j.l.out = out; j.l.x = x; j.l.bias = bias; j.l.W = W; j.l.rows = rows; j.l.n_in = n_in; j.l.n_out = n_out;
    j.xt = xt; j.wide = wide; j.esize = esize; j.ldt = ldt; j.kcmax = kcmax;
    for (k0 = 0; k0 < n_in; k0 += kcmax) {
        const int kc = n_in - k0 < kcmax ? n_in - k0 : kcmax;
        mmspcl__pack_xt_avx512(xt, ldt, x, vrows, n_in, k0, kc);
        /* super-groups of MMSPCL__SG groups of 6 outputs: their tiles are stored together, 16
           outputs per transpose */
        j.k0 = k0; j.kc = kc;
        mmspcl__parallel(n_super, nthreads, mmspcl__linear_f32_avx512_task, &j);
    }
    MMSPCL_FREE(xt);
    return MMSPCL_OK;
}

/* bf16 weights on AVX512-BF16 (vdpbf16ps): the bf16 definition (6.1) in the row-lane layout.
   x is rounded to bf16 (vcvtne2ps2bf16, the definition's rounding) and packed as column pairs
   with the rows in the lanes: the tile of rows r0 .. r0+tw-1 (tw = min(64, ldt - r0)) holds the
   32-bit word (x[r][2p], x[r][2p+1]) at xb[r0 * n_in / 2 + p * tw + r - r0]; zero rows up to ldt.
   W's rows are read in place, each pair (w[2p], w[2p+1]) broadcast as one word: vdpbf16ps adds
   x[2p+1] w[2p+1], then x[2p] w[2p], to each row's lane, one chain per output over all of k (no
   k chunks: the chain is the definition's). Needs n_in even (an odd n_in takes the AVX2 code). */
static __attribute__((target("avx512f,avx512bw,avx512bf16"))) void mmspcl__pack_xb_avx512(uint32_t *xb, int ldt, const float *x,
                                                                                         int rows, int n_in) {
    const int np = n_in / 2;
    int r0, p, i;
    for (r0 = 0; r0 < ldt; r0 += 16) {
        const int t0 = r0 & ~63, tw = ldt - t0 < 64 ? ldt - t0 : 64;
        uint32_t *dst = xb + (size_t)t0 * np + (r0 - t0);
        for (p = 0; p < np; p += 16) {
            const int pn = np - p < 16 ? np - p : 16, kn = 2 * pn;
            const __mmask16 m0 = (__mmask16)(kn >= 16 ? 0xFFFFu : (1u << kn) - 1);
            const __mmask16 m1 = (__mmask16)(kn >= 32 ? 0xFFFFu : kn <= 16 ? 0u : (1u << (kn - 16)) - 1);
            __m512 v[16];
            for (i = 0; i < 16; i++) {
                v[i] = _mm512_setzero_ps();
                if (r0 + i < rows) {   /* 32 columns, rounded to bf16: word j = (x[2j], x[2j + 1]) */
                    const float *xr = x + (size_t)(r0 + i) * n_in + 2 * p;
                    v[i] = _mm512_castsi512_ps((__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, xr + 16),
                                                                             _mm512_maskz_loadu_ps(m0, xr)));
                }
            }
            mmspcl__tr16(v);   /* v[j]: word j (pair p + j) of the 16 rows */
            for (i = 0; i < pn; i++) _mm512_storeu_ps((float *)(dst + (size_t)(p + i) * tw), v[i]);
        }
    }
}

/* Micro-kernel: t[o][16 v + lane] = the chain of output o for row 16 v + lane, o < 6, v < NV;
   prefetches like mmspcl__f32k (pf counts lines over the np pairs). */
#define MMSPCL__B_DOT(o, v) a##o##v = _mm512_dpbf16_ps(a##o##v, (__m512bh)x##v, (__m512bh)wb);
#define MMSPCL__B_LOADX(v) const __m512i x##v = _mm512_loadu_si512((const void *)(xk + 16 * v));
#define MMSPCL__B_STEP1(o) { const __m512i wb = _mm512_set1_epi32(mmspcl__word((const int8_t *)(w##o + 2 * p))); MMSPCL__V1(MMSPCL__B_DOT, o) }
#define MMSPCL__B_STEP2(o) { const __m512i wb = _mm512_set1_epi32(mmspcl__word((const int8_t *)(w##o + 2 * p))); MMSPCL__V2(MMSPCL__B_DOT, o) }
#define MMSPCL__B_STEP3(o) { const __m512i wb = _mm512_set1_epi32(mmspcl__word((const int8_t *)(w##o + 2 * p))); MMSPCL__V3(MMSPCL__B_DOT, o) }
#define MMSPCL__B_STEP4(o) { const __m512i wb = _mm512_set1_epi32(mmspcl__word((const int8_t *)(w##o + 2 * p))); MMSPCL__V4(MMSPCL__B_DOT, o) }
#define MMSPCL__BF16K(NV)                                                                                   \
static __attribute__((target("avx512f,avx512bw,avx512bf16"))) void mmspcl__bf16k##NV(                     \
    float *t, const uint32_t *xb, int ldx, const uint16_t *const *w, int np, const mmspcl__pf *pf) {       \
    const uint16_t *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3], *w4 = w[4], *w5 = w[5];                  \
    int p, pi = 0, pk = pf && pf->n ? 0 : np;                                                               \
    MMSPCL__R6(MMSPCL__Z_DECL##NV)                                                                          \
    for (p = 0; p < np; p++) {                                                                              \
        const uint32_t *xk = xb + (size_t)p * ldx;                                                          \
        MMSPCL__R##NV(MMSPCL__B_LOADX)                                                                      \
        MMSPCL__R6(MMSPCL__B_STEP##NV)                                                                      \
        if (p == pk) {                                                                                      \
            _mm_prefetch(pf->p + (size_t)(pi / pf->lpr) * pf->stride + (size_t)(pi % pf->lpr) * 64, _MM_HINT_T0); \
            pi++;                                                                                           \
            pk = pi < pf->n ? (int)((long long)pi * np / pf->n) : np;                                       \
        }                                                                                                   \
    }                                                                                                       \
    MMSPCL__R6(MMSPCL__Z_ST##NV)                                                                            \
}
MMSPCL__BF16K(1)
MMSPCL__BF16K(2)
MMSPCL__BF16K(3)
MMSPCL__BF16K(4)

static void mmspcl__bf16k(int nv, float *t, const uint32_t *xb, int ldx, const uint16_t *const *w, int np, const mmspcl__pf *pf) {
    if (nv == 4) mmspcl__bf16k4(t, xb, ldx, w, np, pf);
    else if (nv == 3) mmspcl__bf16k3(t, xb, ldx, w, np, pf);
    else if (nv == 2) mmspcl__bf16k2(t, xb, ldx, w, np, pf);
    else mmspcl__bf16k1(t, xb, ldx, w, np, pf);
}

typedef struct mmspcl__lin_bf16x_job { mmspcl__lin_job l; const uint32_t *xb; int ldt, np; } mmspcl__lin_bf16x_job;

/* task: super-group sg of 8 groups of 6 outputs, every row tile */
static void mmspcl__linear_bf16_avx512_task(void *ctx, int sg, int tid) {
    const mmspcl__lin_bf16x_job *j = (const mmspcl__lin_bf16x_job *)ctx;
    const mmspcl_tensor *W = j->l.W;
    const uint32_t *xb = j->xb;
    const float *bias = j->l.bias;
    float *out = j->l.out;
    const int rows = j->l.rows, n_in = j->l.n_in, n_out = j->l.n_out, ldt = j->ldt, np = j->np;
    (void)tid;
    {
        const int s0 = sg * MMSPCL__SG * MMSPCL__MO, smo = n_out - s0 < MMSPCL__SG * MMSPCL__MO ? n_out - s0 : MMSPCL__SG * MMSPCL__MO;
        float t[MMSPCL__SG * MMSPCL__MO * 64];
        int o, r0, g;
        for (r0 = 0; r0 < rows; r0 += 64) {
            const int nv = ldt - r0 < 64 ? (ldt - r0) / 16 : 4;
            for (g = 0; g * MMSPCL__MO < smo; g++) {
                const int o0 = s0 + g * MMSPCL__MO, mo = n_out - o0 < MMSPCL__MO ? n_out - o0 : MMSPCL__MO;
                const uint16_t *w[MMSPCL__MO];
                mmspcl__pf pf;   /* the next group's rows */
                pf.stride = (size_t)n_in * 2;
                pf.p = (const char *)W->data + (size_t)(o0 + MMSPCL__MO) * pf.stride;
                pf.lpr = (int)((pf.stride + 63) / 64);
                pf.n = o0 + MMSPCL__MO < n_out ? pf.lpr * (n_out - o0 - MMSPCL__MO < MMSPCL__MO ? n_out - o0 - MMSPCL__MO : MMSPCL__MO) : 0;
                for (o = 0; o < MMSPCL__MO; o++) w[o] = (const uint16_t *)W->data + (size_t)(o0 + (o < mo ? o : 0)) * n_in;
                mmspcl__bf16k(nv, t + (size_t)g * MMSPCL__MO * 64, xb + (size_t)r0 * np, 16 * nv, w, np, r0 ? NULL : &pf);
            }
            mmspcl__store_cols_avx512(out + (size_t)r0 * n_out + s0, n_out, t, 64, rows - r0 < 16 * nv ? rows - r0 : 16 * nv,
                                      smo, bias ? bias + s0 : NULL, 0);
        }
    }
}

/* Super-groups of 8 groups of 6 outputs, row tiles of 64, as mmspcl__linear_f32_avx512. */
static mmspcl_status mmspcl__linear_bf16_avx512(float *out, const float *x, int rows, int n_in,
                                                const mmspcl_tensor *W, const float *bias) {
    const int n_out = (int)W->ne[0], ldt = (rows + 15) & ~15, np = n_in / 2;
    const int n_groups = (n_out + MMSPCL__MO - 1) / MMSPCL__MO, n_super = (n_groups + MMSPCL__SG - 1) / MMSPCL__SG;
    uint32_t *xb = (uint32_t *)MMSPCL_MALLOC((size_t)ldt * (size_t)np * sizeof(uint32_t) + 64);
    mmspcl__lin_bf16x_job j;
    if (!xb) return MMSPCL_ERR_NOMEM;
    mmspcl__pack_xb_avx512(xb, ldt, x, rows, n_in);
    j.l.out = out; j.l.x = x; j.l.bias = bias; j.l.W = W; j.l.rows = rows; j.l.n_in = n_in; j.l.n_out = n_out;
    j.xb = xb; j.ldt = ldt; j.np = np;
    mmspcl__parallel(n_super, mmspcl__team(), mmspcl__linear_bf16_avx512_task, &j);
    MMSPCL_FREE(xb);
    return MMSPCL_OK;
}

/* ---- 6.4 x86 AVX-512: linear, f32 panels -----------------------------------------------------
   Rows of x broadcast, outputs in the lanes.
   The layout mmspcl-convert --panels writes (docs/FORMAT.md): W[o][k] at panel o / 16, element
   k * 16 + o % 16, so the 16 outputs of a panel at one k are one vector, read in place. A group is
   4 panels (64 outputs); the micro-kernel holds 6 rows x 4 vectors and broadcasts x[r][k], so any
   number of rows runs at full vector width (the row-lane kernel above pays for 16 lanes on its
   last, partly filled vector: 22% of ViT-B/32's 50 tokens). Each output is the same chain of
   fused multiply-adds over the same k chunks as mmspcl__linear_f32_avx512, started from zero, then
   `out = t + bias` (first chunk) or `out += t`: the same bits as the 2-D f32 weight. */
#define MMSPCL__PR 6    /* rows per micro-kernel */
#define MMSPCL__PPF 16  /* prefetch distance in k steps (one 64-byte line per panel and step) */

#define MMSPCL__P_DECL(r) __m512 c##r##_0 = _mm512_setzero_ps(), c##r##_1 = c##r##_0, c##r##_2 = c##r##_0,  \
                                 c##r##_3 = c##r##_0; const float *x##r = x + (size_t)(r) * ldx;
#define MMSPCL__P_FMA(r) { const __m512 xb = _mm512_set1_ps(x##r[k]);                                        \
    c##r##_0 = _mm512_fmadd_ps(p0, xb, c##r##_0); c##r##_1 = _mm512_fmadd_ps(p1, xb, c##r##_1);                  \
    c##r##_2 = _mm512_fmadd_ps(p2, xb, c##r##_2); c##r##_3 = _mm512_fmadd_ps(p3, xb, c##r##_3); }
#define MMSPCL__P_STORE(r) _mm512_storeu_ps(t + (r) * 64, c##r##_0); _mm512_storeu_ps(t + (r) * 64 + 16, c##r##_1); \
                           _mm512_storeu_ps(t + (r) * 64 + 32, c##r##_2); _mm512_storeu_ps(t + (r) * 64 + 48, c##r##_3);
/* t[r][64] = sum over k < kc of x[r * ldx + k] * panel vectors p[0..3][k * 16].
   Prefetch (pf may be NULL): at every 2^shift-th step, line first + k >> shift of the four
   streams pf[0..3], up to line `last`: the panels themselves, ahead, when they come from memory,
   or a slice of the next group's panels while this group's come from L2. */
typedef struct mmspcl__ppf { const char *p[4]; int first, last, shift; } mmspcl__ppf;
#define MMSPCL__F32P(MR)                                                                                    \
static __attribute__((target("avx512f,fma"))) void mmspcl__f32p##MR(float *t, const float *const *p,       \
                                                                     const float *x, int ldx, int kc,     \
                                                                     const mmspcl__ppf *pf) {              \
    const float *q0 = p[0], *q1 = p[1], *q2 = p[2], *q3 = p[3];                                             \
    const int mask = pf ? (1 << pf->shift) - 1 : 0;                                                         \
    int k, line = pf ? pf->first : 0, last = pf ? pf->last : 0;                                             \
    MMSPCL__R##MR(MMSPCL__P_DECL)                                                                           \
    for (k = 0; k < kc; k++) {                                                                              \
        const __m512 p0 = _mm512_loadu_ps(q0 + (size_t)k * 16), p1 = _mm512_loadu_ps(q1 + (size_t)k * 16);  \
        const __m512 p2 = _mm512_loadu_ps(q2 + (size_t)k * 16), p3 = _mm512_loadu_ps(q3 + (size_t)k * 16);  \
        if (line < last && !(k & mask)) {                                                                   \
            const size_t at = (size_t)line++ * 64;                                                          \
            _mm_prefetch(pf->p[0] + at, _MM_HINT_T0); _mm_prefetch(pf->p[1] + at, _MM_HINT_T0);             \
            _mm_prefetch(pf->p[2] + at, _MM_HINT_T0); _mm_prefetch(pf->p[3] + at, _MM_HINT_T0);             \
        }                                                                                                   \
        MMSPCL__R##MR(MMSPCL__P_FMA)                                                                        \
    }                                                                                                       \
    MMSPCL__R##MR(MMSPCL__P_STORE)                                                                          \
}
MMSPCL__F32P(1)
MMSPCL__F32P(2)
MMSPCL__F32P(3)
MMSPCL__F32P(4)
MMSPCL__F32P(5)
MMSPCL__F32P(6)

static void mmspcl__f32p(int mr, float *t, const float *const *p, const float *x, int ldx, int kc, const mmspcl__ppf *pf) {
    switch (mr) {
    case 6: mmspcl__f32p6(t, p, x, ldx, kc, pf); break;
    case 5: mmspcl__f32p5(t, p, x, ldx, kc, pf); break;
    case 4: mmspcl__f32p4(t, p, x, ldx, kc, pf); break;
    case 3: mmspcl__f32p3(t, p, x, ldx, kc, pf); break;
    case 2: mmspcl__f32p2(t, p, x, ldx, kc, pf); break;
    default: mmspcl__f32p1(t, p, x, ldx, kc, pf); break;
    }
}

/* t[r][64] holds outputs 0 .. mo-1 of rows r < mr: out = t + bias (acc == 0) or out += t, the
   additions mmspcl__store_cols_avx512 makes. */
static __attribute__((target("avx512f"))) void mmspcl__store_rows_avx512(float *out, int ld, const float *t, int mr, int mo,
                                                                          const float *bias, int acc) {
    int r, v;
    for (r = 0; r < mr; r++) {
        float *dst = out + (size_t)r * ld;
        for (v = 0; v < mo; v += 16) {
            const __mmask16 m = (__mmask16)(mo - v < 16 ? (1u << (mo - v)) - 1 : 0xFFFFu);
            const __m512 tv = _mm512_loadu_ps(t + r * 64 + v);
            _mm512_mask_storeu_ps(dst + v, m, acc ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst + v), tv)
                                  : _mm512_add_ps(tv, bias ? _mm512_maskz_loadu_ps(m, bias + v) : _mm512_setzero_ps()));
        }
    }
}

/* task: group g of 4 panels (64 outputs), every row chunk, columns k0 .. k0+kc */
static void mmspcl__linear_panels_avx512_task(void *ctx, int g, int tid) {
    const mmspcl__lin_chunk_job *jb = (const mmspcl__lin_chunk_job *)ctx;
    const mmspcl_tensor *W = jb->l.W;
    const int rows = jb->l.rows, n_in = jb->l.n_in, n_out = jb->l.n_out, k0 = jb->k0, kc = jb->kc;
    const int n_panels = (int)W->ne[0], n_groups = (n_panels + 3) / 4;
    const int n_chunks = (rows + MMSPCL__PR - 1) / MMSPCL__PR;           /* row chunks as even as possible */
    const int o0 = g * 64, mo = n_out - o0 < 64 ? n_out - o0 : 64;
    const float *p[4];
    mmspcl__ppf ahead, next;
    float t[MMSPCL__PR * 64];
    int j, c;
    (void)tid;
    for (j = 0; j < 4; j++) {   /* a last group of fewer panels repeats its first; the extra outputs are dropped */
        const int pn = 4 * g + 4 + j < n_panels ? 4 * g + 4 + j : 4 * g + 4;
        p[j] = mmspcl__panel(W, 4 * g + (16 * j < mo ? j : 0), k0);
        ahead.p[j] = (const char *)p[j];
        next.p[j] = (const char *)mmspcl__panel(W, pn, k0);
    }
    ahead.first = MMSPCL__PPF; ahead.last = kc; ahead.shift = 0;
    next.last = g + 1 < n_groups ? kc : 0;
    next.shift = 0;   /* the next group's lines, spread over chunks 1 .. n_chunks - 1 */
    while (n_chunks > 2 && (2 << next.shift) <= n_chunks - 1) next.shift++;
    for (c = 0; c < n_chunks; c++) {
        const int r0 = (int)((long long)c * rows / n_chunks), mr = (int)((long long)(c + 1) * rows / n_chunks) - r0;
        const mmspcl__ppf *pf = NULL;
        if (c == 0 && (g == 0 || n_chunks == 1)) pf = &ahead;   /* this group's panels come from memory */
        else if (c > 0 || n_chunks == 1) {
            next.first = n_chunks == 1 ? 0 : (c - 1) * (kc >> next.shift);
            pf = &next;
        }
        mmspcl__f32p(mr, t, p, jb->l.x + (size_t)r0 * n_in + k0, n_in, kc, pf);
        mmspcl__store_rows_avx512(jb->l.out + (size_t)r0 * n_out + o0, n_out, t, mr, mo, jb->l.bias ? jb->l.bias + o0 : NULL, k0 > 0);
    }
}

static mmspcl_status mmspcl__linear_panels_avx512(float *out, const float *x, int rows, int n_in,
                                                  const mmspcl_tensor *W, const float *bias) {
    const int n_panels = (int)W->ne[0], n_out = n_panels * 16, n_groups = (n_panels + 3) / 4;
    const int kcmax = n_in <= MMSPCL__KC * 3 / 2 ? n_in : MMSPCL__KC;   /* the row-lane kernel's chunks */
    mmspcl__lin_chunk_job j;
    int k0;
    memset(&j, 0, sizeof j);
    j.l.out = out; j.l.x = x; j.l.bias = bias; j.l.W = W; j.l.rows = rows; j.l.n_in = n_in; j.l.n_out = n_out;
    j.kcmax = kcmax;
    for (k0 = 0; k0 < n_in; k0 += kcmax) {
        j.k0 = k0;
        j.kc = n_in - k0 < kcmax ? n_in - k0 : kcmax;
        mmspcl__parallel(n_groups, mmspcl__team(), mmspcl__linear_panels_avx512_task, &j);
    }
    return MMSPCL_OK;
}

/* ---- 6.5 x86: linear, q8_0 / q4_0 weights ----------------------------------------------------
   The integer path: AVX2 (maddubs), AVX-VNNI and AVX512-VNNI (vpdpbusd).
   AVX512-VNNI (mmspcl__linear_qn512, below): the outputs in the lanes, 6 rows x 32 outputs a tile,
   W in groups of 32 outputs with 4 bytes of each interleaved (packed once by mmspcl_tensor_pack,
   or per call), k in chunks of 16 blocks; per block of 32 columns and tile 96 vpdpbusd, then for
   each of the 12 accumulators one cvt, two integer adds (the correction and d_x * d_w as d_w's
   bits plus e << 23, 6.1) and one fma: the fma is the only float operation, which caps the
   kernel at 8/9 of vpdpbusd's rate (a multiply as well would cap it at 8/10).
   AVX2 and AVX-VNNI: activations in tiles of tw rows (tw = min(T, ldt - r0)): tile r0 holds xq[r0 * n_in + ((k/4)
   * tw + r - r0) * 4 + k%4] int8 (rows in the lanes), scales xd[r0 * nb + b * tw + r - r0] and
   xc (same place) the correction -128 * sum(q) of each block (VNNI multiplies unsigned by signed
   bytes: weights are stored +128 as unsigned, so sum((w + 128) q) - 128 sum(q) = sum(w q)).
   Weights: each thread unpacks the rows of its output group once into plain int8 rows (+128 for
   VNNI) and their scales; the micro-kernel broadcasts 4 weight bytes at a time from there. */
/* One block of 32 activations as the definition quantizes it (6.1): q, the scale d (0 for a zero
   block), e << 23 (0 for a zero block: the VNNI kernel's exponent offset) and the sum of q. */
static __attribute__((target("avx2,fma"))) void mmspcl__quant_block_avx2(const float *xb, int8_t *q, float *d, int32_t *eb,
                                                                         int32_t *sum) {
    const __m256 sign = _mm256_set1_ps(-0.0f), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    const __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8), v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                             _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    __m256i i0, i1, i2, i3, p;
    __m256 id;
    float amax;
    int e;
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    amax = _mm_cvtss_f32(h);
    if (amax == 0.0f) {
        memset(q, 0, MMSPCL_QBLOCK);
        *d = 0.0f; *eb = 0; *sum = 0;
        return;
    }
    e = mmspcl__act_exp(amax);
    *d = mmspcl__pow2f(e);
    *eb = (int32_t)((uint32_t)e << 23);
    id = _mm256_set1_ps(mmspcl__pow2f(-e));
#define MMSPCL__QB_CVT(v) _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v, id), lo), hi))
    i0 = MMSPCL__QB_CVT(v0); i1 = MMSPCL__QB_CVT(v1); i2 = MMSPCL__QB_CVT(v2); i3 = MMSPCL__QB_CVT(v3);
#undef MMSPCL__QB_CVT
    {   /* sum of the 32 values (exact), then pack to bytes in order */
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
        *sum = _mm_cvtsi128_si32(s4);
    }
    p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    /* packs works per 128-bit lane: dwords come out as 0 2 4 6 1 3 5 7 */
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, p);
}

static __attribute__((target("avx2,fma"))) void mmspcl__pack_xq_avx2(int8_t *xq, float *xd, int32_t *xc, int ldt, int T,
                                                                      const float *x, int rows, int n_in) {
    const int nb = n_in / MMSPCL_QBLOCK;
    int r, b, g;
    for (r = 0; r < ldt; r++) {
        const float *xr = x + (size_t)r * n_in;
        const int t0 = r / T * T, tw = ldt - t0 < T ? ldt - t0 : T, lane = r - t0;
        int8_t *tq = xq + (size_t)t0 * n_in;
        for (b = 0; b < nb; b++) {
            int8_t q[MMSPCL_QBLOCK];
            int32_t sum = 0, eb;
            float d = 0.0f;
            if (r < rows) mmspcl__quant_block_avx2(xr + 32 * b, q, &d, &eb, &sum);
            else memset(q, 0, sizeof q);
            for (g = 0; g < MMSPCL_QBLOCK / 4; g++) memcpy(tq + ((size_t)(b * 8 + g) * tw + lane) * 4, q + 4 * g, 4);
            xd[(size_t)t0 * nb + (size_t)b * tw + lane] = d;
            if (xc) xc[(size_t)t0 * nb + (size_t)b * tw + lane] = -128 * sum;
        }
    }
}

/* Rows o0 .. o0+mo-1 of a q8_0 / q4_0 / q4_k / q5_k W as int8 rows dst[o][n_in] (+128 when
   flip) and f32 scales ds[o][nb]. */
static __attribute__((target("avx2,f16c"))) void mmspcl__unpack_w_avx2(int8_t *dst, float *ds, const mmspcl_tensor *W,
                                                                        int n_in, int o0, int mo, int flip) {
    const int nb = n_in / MMSPCL_QBLOCK;
    const size_t row_bytes = mmspcl_dtype_row_size(W->dtype, n_in);
    const __m256i fx = _mm256_set1_epi8(flip ? (char)0x80 : 0), off = _mm256_set1_epi8(flip ? 120 : -8);
    const __m128i m4 = _mm_set1_epi8(15);
    int o, b;
    for (o = 0; o < mo; o++) {
        const unsigned char *src = (const unsigned char *)W->data + (size_t)(o0 + o) * row_bytes;
        int8_t *d = dst + (size_t)o * n_in;
        if (W->dtype == MMSPCL_Q8_0) {
            const mmspcl_block_q8_0 *blk = (const mmspcl_block_q8_0 *)src;
            for (b = 0; b < nb; b++) {
                _mm256_storeu_si256((__m256i *)(d + 32 * b), _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)blk[b].q), fx));
                ds[(size_t)o * nb + b] = _cvtsh_ss(blk[b].d);
            }
        } else if (W->dtype == MMSPCL_Q4_0) {
            const mmspcl_block_q4_0 *blk = (const mmspcl_block_q4_0 *)src;
            for (b = 0; b < nb; b++) {
                const __m128i v = _mm_loadu_si128((const __m128i *)blk[b].q);
                const __m256i u = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
                _mm256_storeu_si256((__m256i *)(d + 32 * b), _mm256_add_epi8(u, off));
                ds[(size_t)o * nb + b] = _cvtsh_ss(blk[b].d);
            }
        } else {   /* q4_k, q5_k: nibbles as q4_0's (plus bit 4 from its plane), minus z[j] */
            const int bits = mmspcl__kbits(W->dtype), bytes = mmspcl__types[W->dtype].bytes;
            const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
            const __m256i bit = _mm256_set1_epi64x(0x8040201008040201ll), b16 = _mm256_set1_epi8(16);
            uint64_t scw = 0, zw = 0;
            float dk = 0.0f;
            for (b = 0; b < nb; b++) {
                const unsigned char *blk = src + (size_t)(b / 8) * (size_t)bytes;
                const int j = b % 8;
                int z;
                float S;
                if (j == 0) {   /* the super-block's header, once: d, 8 scale codes, 8 zero points */
                    uint16_t h = (uint16_t)(blk[0] | blk[1] << 8);
                    scw = mmspcl__le_bits(blk + 2, 6);
                    zw = mmspcl__le_bits(blk + 8, bits == 4 ? 4 : 5);
                    dk = _cvtsh_ss(h);
                }
                S = dk * (float)(int)(scw >> (6 * j) & 63);
                z = (int)(zw >> (bits * j) & (uint64_t)(bits == 4 ? 15 : 31));
                {
                const __m128i v = _mm_loadu_si128((const __m128i *)(blk + (bits == 4 ? 12 : 13) + 16 * j));
                __m256i u = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
                if (bits == 5) {   /* byte i gets bit i of the plane's word: 16 or 0 */
                    int32_t h;
                    __m256i hb;
                    memcpy(&h, blk + 141 + 4 * j, 4);
                    hb = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(h), spread), bit);
                    u = _mm256_or_si256(u, _mm256_and_si256(_mm256_cmpeq_epi8(hb, bit), b16));
                }
                _mm256_storeu_si256((__m256i *)(d + 32 * b), _mm256_add_epi8(u, _mm256_set1_epi8((char)(flip ? 128 - z : -z))));
                ds[(size_t)o * nb + b] = S;
                }
            }
        }
    }
}

/* AVX512-VNNI micro-kernel: 6 outputs x NV (1, 2) vectors of 16 rows; t[o][32]. */
#define MMSPCL__Q_DECLF(o, v) __m512 f##o##v = _mm512_setzero_ps();
#define MMSPCL__Q_INIT(o, v) __m512i i##o##v = c##v;
#define MMSPCL__Q_DOT(o, v) i##o##v = _mm512_dpbusd_epi32(i##o##v, wb, x##v);
#define MMSPCL__Q_FMA(o, v) f##o##v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i##o##v), _mm512_mul_ps(d##v, s), f##o##v);
#define MMSPCL__Q_STORE(o, v) _mm512_storeu_ps(t + o * 32 + 16 * v, f##o##v);
#define MMSPCL__Q_LOADC(v) const __m512i c##v = _mm512_loadu_si512((const void *)(xc + (size_t)b * tw + 16 * v));
#define MMSPCL__Q_LOADX(v) const __m512i x##v = _mm512_loadu_si512((const void *)(xq + ((size_t)(8 * b + g) * tw + 16 * v) * 4));
#define MMSPCL__Q_LOADD(v) const __m512 d##v = _mm512_loadu_ps(xd + (size_t)b * tw + 16 * v);
#define MMSPCL__Q_DECLF1(o) MMSPCL__V1(MMSPCL__Q_DECLF, o)
#define MMSPCL__Q_DECLF2(o) MMSPCL__V2(MMSPCL__Q_DECLF, o)
#define MMSPCL__Q_INIT1(o) MMSPCL__V1(MMSPCL__Q_INIT, o)
#define MMSPCL__Q_INIT2(o) MMSPCL__V2(MMSPCL__Q_INIT, o)
#define MMSPCL__Q_STEP1(o) { const __m512i wb = _mm512_set1_epi32(mmspcl__word(w##o + 32 * b + 4 * g)); MMSPCL__V1(MMSPCL__Q_DOT, o) }
#define MMSPCL__Q_STEP2(o) { const __m512i wb = _mm512_set1_epi32(mmspcl__word(w##o + 32 * b + 4 * g)); MMSPCL__V2(MMSPCL__Q_DOT, o) }
#define MMSPCL__Q_SCALE1(o) { const __m512 s = _mm512_set1_ps(s##o[b]); MMSPCL__V1(MMSPCL__Q_FMA, o) }
#define MMSPCL__Q_SCALE2(o) { const __m512 s = _mm512_set1_ps(s##o[b]); MMSPCL__V2(MMSPCL__Q_FMA, o) }
#define MMSPCL__Q_ST1(o) MMSPCL__V1(MMSPCL__Q_STORE, o)
#define MMSPCL__Q_ST2(o) MMSPCL__V2(MMSPCL__Q_STORE, o)
#define MMSPCL__Q_GROUP1(G) { const int g = G; MMSPCL__R1(MMSPCL__Q_LOADX) MMSPCL__R6(MMSPCL__Q_STEP1) }
#define MMSPCL__Q_GROUP2(G) { const int g = G; MMSPCL__R2(MMSPCL__Q_LOADX) MMSPCL__R6(MMSPCL__Q_STEP2) }
#define MMSPCL__QK512(NV)                                                                                   \
static __attribute__((target("avx512f,avx512bw,avx512vnni,fma"))) void mmspcl__qk512_##NV(                 \
    float *t, const int8_t *xq, const float *xd, const int32_t *xc, const int8_t *const *w,                 \
    const float *const *ws, int nb, const char *pf, int pf_n) {                                             \
    const int tw = 16 * NV;                                                                                 \
    int pi = 0;                                                                                             \
    const int8_t *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3], *w4 = w[4], *w5 = w[5];                      \
    const float *s0 = ws[0], *s1 = ws[1], *s2 = ws[2], *s3 = ws[3], *s4 = ws[4], *s5 = ws[5];                 \
    int b;                                                                                                  \
    MMSPCL__R6(MMSPCL__Q_DECLF##NV)                                                                         \
    for (b = 0; b < nb; b++) {                                                                              \
        for (; pi < (b + 1) * pf_n / nb; pi++) _mm_prefetch(pf + 64 * (size_t)pi, _MM_HINT_T0);             \
        MMSPCL__R##NV(MMSPCL__Q_LOADC)                                                                      \
        MMSPCL__R6(MMSPCL__Q_INIT##NV)                                                                      \
        MMSPCL__R8(MMSPCL__Q_GROUP##NV)                                                                     \
        {                                                                                                   \
            MMSPCL__R##NV(MMSPCL__Q_LOADD)                                                                  \
            MMSPCL__R6(MMSPCL__Q_SCALE##NV)                                                                 \
        }                                                                                                   \
    }                                                                                                       \
    MMSPCL__R6(MMSPCL__Q_ST##NV)                                                                            \
}
MMSPCL__QK512(1)
MMSPCL__QK512(2)

/* 256-bit micro-kernels: 4 outputs x 8 rows; AVX2 (sign trick + maddubs: exact, no saturation
   since |w| <= 128 and |q| <= 127) or AVX-VNNI (as the 512-bit kernel). */
static __attribute__((target("avx2,fma"))) void mmspcl__qk_avx2(float *t, const int8_t *xq, const float *xd,
                                                                const int8_t *const *w, const float *const *ws, int nb) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 f[4];
    int b, g, o;
    for (o = 0; o < 4; o++) f[o] = _mm256_setzero_ps();
    for (b = 0; b < nb; b++) {
        __m256i i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0;
        __m256 d;
        for (g = 0; g < 8; g++) {
            const __m256i x = _mm256_loadu_si256((const __m256i *)(xq + (size_t)(8 * b + g) * 32));
#define MMSPCL__A2_DOT(o) { const __m256i wb = _mm256_set1_epi32(mmspcl__word(w[o] + 32 * b + 4 * g));                   \
            i##o = _mm256_add_epi32(i##o, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(wb), _mm256_sign_epi8(x, wb)), ones)); }
            MMSPCL__R4(MMSPCL__A2_DOT)
#undef MMSPCL__A2_DOT
        }
        d = _mm256_loadu_ps(xd + (size_t)b * 8);
        f[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_mul_ps(d, _mm256_set1_ps(ws[0][b])), f[0]);
        f[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1), _mm256_mul_ps(d, _mm256_set1_ps(ws[1][b])), f[1]);
        f[2] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i2), _mm256_mul_ps(d, _mm256_set1_ps(ws[2][b])), f[2]);
        f[3] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i3), _mm256_mul_ps(d, _mm256_set1_ps(ws[3][b])), f[3]);
    }
    for (o = 0; o < 4; o++) _mm256_storeu_ps(t + o * 8, f[o]);
}

#ifdef MMSPCL__HAVE_AVXVNNI
static __attribute__((target("avx2,fma,avxvnni"))) void mmspcl__qk_avxvnni(float *t, const int8_t *xq, const float *xd,
                                                                          const int32_t *xc, const int8_t *const *w,
                                                                          const float *const *ws, int nb) {
    __m256 f[4];
    int b, g, o;
    for (o = 0; o < 4; o++) f[o] = _mm256_setzero_ps();
    for (b = 0; b < nb; b++) {
        __m256i i0 = _mm256_loadu_si256((const __m256i *)(xc + (size_t)b * 8)), i1 = i0, i2 = i0, i3 = i0;
        __m256 d;
        for (g = 0; g < 8; g++) {
            const __m256i x = _mm256_loadu_si256((const __m256i *)(xq + (size_t)(8 * b + g) * 32));
#define MMSPCL__AV_DOT(o) i##o = _mm256_dpbusd_avx_epi32(i##o, _mm256_set1_epi32(mmspcl__word(w[o] + 32 * b + 4 * g)), x);
            MMSPCL__R4(MMSPCL__AV_DOT)
#undef MMSPCL__AV_DOT
        }
        d = _mm256_loadu_ps(xd + (size_t)b * 8);
        f[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_mul_ps(d, _mm256_set1_ps(ws[0][b])), f[0]);
        f[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1), _mm256_mul_ps(d, _mm256_set1_ps(ws[1][b])), f[1]);
        f[2] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i2), _mm256_mul_ps(d, _mm256_set1_ps(ws[2][b])), f[2]);
        f[3] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i3), _mm256_mul_ps(d, _mm256_set1_ps(ws[3][b])), f[3]);
    }
    for (o = 0; o < 4; o++) _mm256_storeu_ps(t + o * 8, f[o]);
}
#endif

/* AVX512-VNNI with the outputs in the lanes (kind 2). A group of 32 outputs (two panels of 16)
   is packed per call, per block b of 32 columns, into MMSPCL__QN_BLOCK bytes: panel p's 8 vectors
   of 64 bytes (vector g: the 4 bytes 32b + 4g .. 32b + 4g + 3 of each of its 16 weight rows, +128
   as unsigned), then the two panels' 16 scale words (the bits of d_w; a zero scale becomes 1.0 with
   the block's weights 0, which gives the definition's acc unchanged). x is row-major int8 with, per
   row and block, -128 * sum(q) (xc) and e << 23 (xe): d_x * d_w is d_w's bits plus xe (6.1). */
#define MMSPCL__QN_ROWS 6
#define MMSPCL__QN_BLOCK (2 * 8 * 64 + 2 * 64)
/* The permutation indices of mmspcl__xchg_avx512 for element bit m = 1, 2, 4: [m / 2][0 or 1][16]. */
static const int32_t mmspcl__xchg_idx[3][2][16] = {
    {{0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30}, {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31}},
    {{0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29}, {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31}},
    {{0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27}, {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31}}};
/* Swaps element bit m of a and b with the pair's vector bit: a keeps the elements whose bit m is
   0 (a's in place, b's moved to the bit-m-set places), b those whose bit m is 1. */
static __attribute__((target("avx512f"))) void mmspcl__xchg_avx512(__m512i *a, __m512i *b, int m) {
    const int32_t(*ix)[16] = mmspcl__xchg_idx[m == 1 ? 0 : m == 2 ? 1 : 2];
    const __m512i x = *a, y = *b;
    *a = _mm512_permutex2var_epi32(x, _mm512_loadu_si512((const void *)ix[0]), y);
    *b = _mm512_permutex2var_epi32(x, _mm512_loadu_si512((const void *)ix[1]), y);
}

/* Packs the 32 weight rows o0 .. o0 + 31 (those from mo on: zero) into dst (nb blocks). q8_0 is
   read in place; the other types through mmspcl__unpack_w_avx2 into u[32][n_in], us[32][nb]. */
static __attribute__((target("avx512f,avx2,f16c"))) void mmspcl__pack_qn_avx512(unsigned char *dst, const mmspcl_tensor *W, int o0,
                                                                                  int mo, int n_in, int8_t *u, float *us) {
    const int nb = n_in / MMSPCL_QBLOCK, q8 = W->dtype == MMSPCL_Q8_0;
    const size_t rb = mmspcl_dtype_row_size(W->dtype, n_in);
    const unsigned char *src = (const unsigned char *)W->data + (size_t)o0 * rb;
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    int b, p, k;
    if (!q8) mmspcl__unpack_w_avx2(u, us, W, n_in, o0, mo, 1);
    for (b = 0; b < nb; b++) {
        unsigned char *blk = dst + (size_t)b * MMSPCL__QN_BLOCK;
        float *sc = (float *)(blk + 1024);
        int zero[32];
        for (k = 0; k < 32; k++) {   /* the scales; rows past mo and zero scales: weights 0, scale 1 */
            float d = k >= mo ? 0.0f : q8 ? _cvtsh_ss(((const mmspcl_block_q8_0 *)(src + (size_t)k * rb))[b].d) : us[(size_t)k * nb + b];
            zero[k] = d == 0.0f;
            sc[k] = zero[k] ? 1.0f : d;
        }
        for (p = 0; p < 2; p++) {
            __m512i a[8];
            __m256i h[16];
            for (k = 0; k < 16; k++) {
                const int o = 16 * p + k;
                if (zero[o])
                    h[k] = flip;
                else if (q8)
                    h[k] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(((const mmspcl_block_q8_0 *)(src + (size_t)o * rb))[b].q)), flip);
                else
                    h[k] = _mm256_loadu_si256((const __m256i *)(u + (size_t)o * n_in + 32 * b));
            }
            for (k = 0; k < 8; k++) a[k] = _mm512_inserti64x4(_mm512_castsi256_si512(h[k]), h[k + 8], 1);   /* element (r / 8) * 8 + g */
            for (k = 0; k < 4; k++) mmspcl__xchg_avx512(&a[k], &a[k + 4], 4);
            for (k = 0; k < 8; k++) if (!(k & 2)) mmspcl__xchg_avx512(&a[k], &a[k + 2], 2);
            for (k = 0; k < 8; k += 2) mmspcl__xchg_avx512(&a[k], &a[k + 1], 1);
            for (k = 0; k < 8; k++) _mm512_storeu_si512((void *)(blk + 512 * p + 64 * k), a[k]);
        }
    }
}

#define MMSPCL__QN_DECL(r) __m512 f##r##0 = first ? _mm512_setzero_ps() : _mm512_loadu_ps(t + 32 * r),                     \
                                  f##r##1 = first ? _mm512_setzero_ps() : _mm512_loadu_ps(t + 32 * r + 16);
/* the accumulators start at the block's correction -128 * sum(q) (a broadcast load), which
   saves the 12 integer adds a block it would cost after the dot products; the same int32 sums */
#define MMSPCL__QN_INIT(r) __m512i i##r##0 = _mm512_set1_epi32(xc[(size_t)r * nb + b]), i##r##1 = i##r##0;
#define MMSPCL__QN_DOT(r) { const __m512i xb = _mm512_set1_epi32(mmspcl__word(xq + (size_t)r * ldx + 32 * b + 4 * g)); \
    i##r##0 = _mm512_dpbusd_epi32(i##r##0, w0, xb); i##r##1 = _mm512_dpbusd_epi32(i##r##1, w1, xb); }
#define MMSPCL__QN_GROUP(G) { const int g = G; const __m512i w0 = _mm512_loadu_si512((const void *)(wb + 64 * g));       \
    const __m512i w1 = _mm512_loadu_si512((const void *)(wb + 512 + 64 * g)); MMSPCL__R6(MMSPCL__QN_DOT) }
#define MMSPCL__QN_SCALE(r) { const __m512i e = _mm512_set1_epi32(xe[(size_t)r * nb + b]);                                  \
    f##r##0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i##r##0), _mm512_castsi512_ps(_mm512_add_epi32(s0, e)), f##r##0);                   \
    f##r##1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i##r##1), _mm512_castsi512_ps(_mm512_add_epi32(s1, e)), f##r##1); }
#define MMSPCL__QN_STORE(r) _mm512_storeu_ps(t + 32 * r, f##r##0); _mm512_storeu_ps(t + 32 * r + 16, f##r##1);
/* 6 rows x 32 outputs, blocks b0 .. b1 - 1: the accumulators t[6][32] start at 0 (first) or at
   t (the blocks before: the definition's chain goes on), and are stored back. pf_n cache lines
   from pf are prefetched into L2 along the way, at most pf_k a block. */
static __attribute__((target("avx512f,avx512bw,avx512vnni,fma"))) void mmspcl__qn512(float *t, int first, const int8_t *xq, size_t ldx,
                                                                                    const int32_t *xc, const int32_t *xe, int nb,
                                                                                    int b0, int b1, const unsigned char *wp,
                                                                                    const char *pf, int pf_n, int pf_k) {
    int b, pi = 0;
    MMSPCL__R6(MMSPCL__QN_DECL)
    for (b = b0; b < b1; b++) {
        const unsigned char *wb = wp + (size_t)b * MMSPCL__QN_BLOCK;
        int k;
        for (k = 0; k < pf_k && pi < pf_n; k++, pi++) _mm_prefetch(pf + 64 * (size_t)pi, _MM_HINT_T1);
        {
            MMSPCL__R6(MMSPCL__QN_INIT)
            MMSPCL__R8(MMSPCL__QN_GROUP)
            {
                const __m512i s0 = _mm512_loadu_si512((const void *)(wb + 1024)), s1 = _mm512_loadu_si512((const void *)(wb + 1088));
                MMSPCL__R6(MMSPCL__QN_SCALE)
            }
        }
    }
    MMSPCL__R6(MMSPCL__QN_STORE)
}

typedef struct mmspcl__lin_qn_job {
    mmspcl__lin_job l;
    const int8_t *xq;
    const int32_t *xc, *xe;
    unsigned char *scratch;
    size_t per_thread, row_bytes;
    int ldt;
} mmspcl__lin_qn_job;

#define MMSPCL__QN_KC 16   /* blocks of 32 columns a k chunk: 18 KiB of packed weights, in L1 with x */
/* task: the group of 32 outputs 32 g .. 32 g + 31: packed, then k chunk by k chunk over every
   tile of 6 rows, the accumulators of all rows in acc[ldt][32] */
static __attribute__((target("avx512f,avx2,f16c"))) void mmspcl__linear_qn_task(void *ctx, int g, int tid) {
    const mmspcl__lin_qn_job *jb = (const mmspcl__lin_qn_job *)ctx;
    const int rows = jb->l.rows, n_in = jb->l.n_in, n_out = jb->l.n_out, nb = n_in / MMSPCL_QBLOCK;
    const int o0 = 32 * g, mo = n_out - o0 < 32 ? n_out - o0 : 32, next = n_out - o0 - 32 < 32 ? n_out - o0 - 32 : 32;
    const size_t gbytes = (size_t)nb * MMSPCL__QN_BLOCK;
    unsigned char *own = jb->scratch + (size_t)tid * jb->per_thread;
    const unsigned char *wp = jb->l.W->packed ? (const unsigned char *)jb->l.W->packed + (size_t)g * gbytes : own;
    float *acc = (float *)(own + gbytes);
    int8_t *u = (int8_t *)(acc + (size_t)jb->ldt * 32);
    float *us = (float *)(u + (size_t)32 * n_in);
    /* the next group's weights (packed, or its rows) are fetched into L2 along the way, spread over the calls */
    const char *pf = jb->l.W->packed ? (const char *)(wp + gbytes) : (const char *)jb->l.W->data + (size_t)(o0 + 32) * jb->row_bytes;
    const size_t pf_bytes = next <= 0 ? 0 : jb->l.W->packed ? gbytes : (size_t)next * jb->row_bytes;
    const int tiles = (rows + MMSPCL__QN_ROWS - 1) / MMSPCL__QN_ROWS, chunks = (nb + MMSPCL__QN_KC - 1) / MMSPCL__QN_KC;
    const int pf_all = (int)((pf_bytes + 63) / 64);
    const int pf_call = (pf_all + tiles * chunks - 1) / (tiles * chunks), pf_k = (pf_call + MMSPCL__QN_KC - 1) / MMSPCL__QN_KC;
    int r0, r, p, c, call = 0;
    if (!jb->l.W->packed) mmspcl__pack_qn_avx512(own, jb->l.W, o0, mo, n_in, u, us);
    for (c = 0; c < chunks; c++) {
        const int b0 = c * MMSPCL__QN_KC, b1 = nb - b0 < MMSPCL__QN_KC ? nb : b0 + MMSPCL__QN_KC;
        for (r0 = 0; r0 < rows; r0 += MMSPCL__QN_ROWS, call++) {
            const int pf0 = call * pf_call, pf_n = pf_all - pf0 < pf_call ? pf_all - pf0 : pf_call;
            float *a = acc + (size_t)r0 * 32;
            mmspcl__qn512(a, c == 0, jb->xq + (size_t)r0 * n_in, (size_t)n_in, jb->xc + (size_t)r0 * nb, jb->xe + (size_t)r0 * nb, nb,
                          b0, b1, wp, pf + 64 * (size_t)(pf_n > 0 ? pf0 : 0), pf_n > 0 ? pf_n : 0, pf_k);
            if (c < chunks - 1) continue;
            for (r = 0; r < rows - r0 && r < MMSPCL__QN_ROWS; r++)   /* the last chunk: out = acc + bias */
                for (p = 0; p * 16 < mo; p++) {
                    const int n = mo - 16 * p < 16 ? mo - 16 * p : 16;
                    const __mmask16 m = (__mmask16)((1u << n) - 1);
                    __m512 v = _mm512_loadu_ps(a + 32 * r + 16 * p);
                    if (jb->l.bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, jb->l.bias + o0 + 16 * p));
                    _mm512_mask_storeu_ps(jb->l.out + (size_t)(r0 + r) * n_out + o0 + 16 * p, m, v);
                }
        }
    }
}

static __attribute__((target("avx2,fma"))) mmspcl_status mmspcl__linear_qn512(float *out, const float *x, int rows, int n_in,
                                                                               const mmspcl_tensor *W, const float *bias) {
    const int n_out = (int)W->ne[0], nb = n_in / MMSPCL_QBLOCK, nthreads = mmspcl__team();
    const int ldt = (rows + MMSPCL__QN_ROWS - 1) / MMSPCL__QN_ROWS * MMSPCL__QN_ROWS;
    const size_t xbytes = (size_t)ldt * (size_t)n_in, sbytes = (size_t)ldt * (size_t)nb * 4;
    const size_t per_thread = ((size_t)nb * MMSPCL__QN_BLOCK + (size_t)ldt * 128 + (size_t)32 * n_in + (size_t)32 * nb * 4 + 63) &
                              ~(size_t)63;
    unsigned char *buf = (unsigned char *)MMSPCL_MALLOC(2 * sbytes + xbytes + (size_t)nthreads * per_thread + 64);
    int32_t *xc, *xe;
    int8_t *xq;
    mmspcl__lin_qn_job j;
    int r, b;
    if (!buf) return MMSPCL_ERR_NOMEM;
    xc = (int32_t *)buf;
    xe = (int32_t *)(buf + sbytes);
    xq = (int8_t *)(buf + 2 * sbytes);
    for (r = 0; r < ldt; r++)
        for (b = 0; b < nb; b++) {
            int8_t *q = xq + (size_t)r * n_in + 32 * b;
            int32_t sum = 0, eb = 0;
            float d;
            if (r < rows) mmspcl__quant_block_avx2(x + (size_t)r * n_in + 32 * b, q, &d, &eb, &sum);
            else memset(q, 0, 32);
            xc[(size_t)r * nb + b] = -128 * sum;
            xe[(size_t)r * nb + b] = eb;
        }
    memset(&j, 0, sizeof j);
    j.l.out = out; j.l.x = x; j.l.bias = bias; j.l.W = W; j.l.rows = rows; j.l.n_in = n_in; j.l.n_out = n_out;
    j.xq = xq; j.xc = xc; j.xe = xe; j.per_thread = per_thread; j.ldt = ldt; j.row_bytes = mmspcl_dtype_row_size(W->dtype, n_in);
    j.scratch = (unsigned char *)(((uintptr_t)(xq + xbytes) + 63) & ~(uintptr_t)63);
    mmspcl__parallel((n_out + 31) / 32, nthreads, mmspcl__linear_qn_task, &j);
    MMSPCL_FREE(buf);
    return MMSPCL_OK;
}

/* mmspcl_tensor_pack on AVX512-VNNI: every group of 32 outputs as the task above packs it per
   call, one after the other (group g at g * nb * MMSPCL__QN_BLOCK bytes). */
typedef struct mmspcl__qn_pack_job { const mmspcl_tensor *W; unsigned char *dst, *scratch; size_t per_thread; } mmspcl__qn_pack_job;
static void mmspcl__qn_pack_task(void *ctx, int g, int tid) {
    const mmspcl__qn_pack_job *j = (const mmspcl__qn_pack_job *)ctx;
    const int n_out = (int)j->W->ne[0], n_in = (int)j->W->ne[1], nb = n_in / MMSPCL_QBLOCK;
    int8_t *u = (int8_t *)(j->scratch + (size_t)tid * j->per_thread);
    mmspcl__pack_qn_avx512(j->dst + (size_t)g * nb * MMSPCL__QN_BLOCK, j->W, 32 * g, n_out - 32 * g < 32 ? n_out - 32 * g : 32, n_in, u,
                           (float *)(u + (size_t)32 * n_in));
}
static mmspcl_status mmspcl__tensor_pack_qn(mmspcl_tensor *W) {
    const int n_out = (int)W->ne[0], n_in = (int)W->ne[1], nb = n_in / MMSPCL_QBLOCK, groups = (n_out + 31) / 32;
    const size_t bytes = (size_t)groups * nb * MMSPCL__QN_BLOCK, per_thread = (size_t)32 * n_in + (size_t)32 * nb * 4;
    const int team = mmspcl__team();
    unsigned char *raw = (unsigned char *)MMSPCL_MALLOC(bytes + 128), *dst;
    mmspcl__qn_pack_job j;
    if (!raw) return MMSPCL_ERR_NOMEM;
    j.scratch = W->dtype == MMSPCL_Q8_0 ? NULL : (unsigned char *)MMSPCL_MALLOC((size_t)team * per_thread);
    if (W->dtype != MMSPCL_Q8_0 && !j.scratch) { MMSPCL_FREE(raw); return MMSPCL_ERR_NOMEM; }
    dst = (unsigned char *)(((uintptr_t)raw + sizeof(void *) + 63) & ~(uintptr_t)63);   /* 64-byte aligned, the allocation before it */
    memcpy(dst - sizeof(void *), &raw, sizeof(void *));
    j.W = W; j.dst = dst; j.per_thread = per_thread;
    mmspcl__parallel(groups, team, mmspcl__qn_pack_task, &j);
    MMSPCL_FREE(j.scratch);
    W->packed = dst;
    return MMSPCL_OK;
}

/* task: one group of MO outputs (kind: 2 AVX512-VNNI, 1 AVX-VNNI, 0 AVX2), every row tile */
static void mmspcl__linear_q_x86_task(void *ctx, int g, int tid) {
    const mmspcl__lin_q_job *jb = (const mmspcl__lin_q_job *)ctx;
    const mmspcl_tensor *W = jb->l.W;
    float *out = jb->l.out;
    const float *bias = jb->l.bias, *xd = jb->xd;
    const int8_t *xq = jb->xq;
    const int32_t *xc = jb->xc;
    const int rows = jb->l.rows, n_in = jb->l.n_in, n_out = jb->l.n_out, nb = n_in / MMSPCL_QBLOCK, kind = jb->kind;
    const int ldt = jb->ldt, MO = kind == 2 ? MMSPCL__MO : 4;
    const size_t row_bytes = jb->row_bytes;
    {
        const int o0 = g * MO, mo = n_out - o0 < MO ? n_out - o0 : MO;
        unsigned char *tb = jb->buf + jb->xbytes + 2 * jb->sbytes + (size_t)tid * jb->per_thread;
        float *ws_buf = (float *)tb;
        int8_t *wq = (int8_t *)(tb + (size_t)MO * nb * 4);
        const int8_t *w[MMSPCL__MO];
        const float *ws[MMSPCL__MO];
        float t[MMSPCL__MO * 32];
        int o, r0, nv;
        mmspcl__unpack_w_avx2(wq, ws_buf, W, n_in, o0, mo, kind != 0);
        for (o = 0; o < MO; o++) {
            w[o] = wq + (size_t)(o < mo ? o : 0) * n_in;
            ws[o] = ws_buf + (size_t)(o < mo ? o : 0) * nb;
        }
        if (kind == 2) {
            /* while the first tile runs, the next group's weight rows are fetched from memory */
            const int next = n_out - o0 - MO < MO ? n_out - o0 - MO : MO;
            const char *pf = (const char *)W->data + (size_t)(o0 + MO) * row_bytes;
            const int pf_n = next > 0 ? (int)((size_t)next * row_bytes / 64) : 0;
            for (r0 = 0; r0 < rows; r0 += 32) {
                const size_t xo = (size_t)r0 * n_in, so = (size_t)r0 * nb;
                nv = ldt - r0 >= 32 ? 2 : 1;
                if (nv == 2) mmspcl__qk512_2(t, xq + xo, xd + so, xc + so, w, ws, nb, pf, r0 ? 0 : pf_n);
                else mmspcl__qk512_1(t, xq + xo, xd + so, xc + so, w, ws, nb, pf, r0 ? 0 : pf_n);
                mmspcl__store_cols_avx512(out + (size_t)r0 * n_out + o0, n_out, t, 32, rows - r0 < 16 * nv ? rows - r0 : 16 * nv,
                                   mo, bias ? bias + o0 : NULL, 0);
            }
        } else {
            for (r0 = 0; r0 < rows; r0 += 8) {
#ifdef MMSPCL__HAVE_AVXVNNI
                if (kind == 1) mmspcl__qk_avxvnni(t, xq + (size_t)r0 * n_in, xd + (size_t)r0 * nb, xc + (size_t)r0 * nb, w, ws, nb);
                else
#endif
                mmspcl__qk_avx2(t, xq + (size_t)r0 * n_in, xd + (size_t)r0 * nb, w, ws, nb);
                mmspcl__store_cols(out + (size_t)r0 * n_out + o0, n_out, t, 8, rows - r0 < 8 ? rows - r0 : 8, mo,
                                   bias ? bias + o0 : NULL, 0);
            }
        }
    }
}

/* kind: 2 AVX512-VNNI, 1 AVX-VNNI, 0 AVX2. */
static mmspcl_status mmspcl__linear_q_x86(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                                          const float *bias, int kind) {
    const int n_out = (int)W->ne[0], nb = n_in / MMSPCL_QBLOCK, nthreads = mmspcl__team();
    const int ldt = (rows + 15) & ~15, MO = kind == 2 ? MMSPCL__MO : 4, n_groups = (n_out + MO - 1) / MO;
    const size_t row_bytes = mmspcl_dtype_row_size(W->dtype, n_in);
    const size_t xbytes = (size_t)ldt * (size_t)n_in, sbytes = (size_t)ldt * (size_t)nb * 4;
    const size_t per_thread = (size_t)MO * ((size_t)n_in + (size_t)nb * 4);
    unsigned char *buf = (unsigned char *)MMSPCL_MALLOC(xbytes + 2 * sbytes + (size_t)nthreads * per_thread + 64);
    int8_t *xq;
    float *xd;
    int32_t *xc;
    mmspcl__lin_q_job j;
    if (!buf) return MMSPCL_ERR_NOMEM;
    xd = (float *)buf;
    xc = (int32_t *)(buf + sbytes);
    xq = (int8_t *)(buf + 2 * sbytes);
    mmspcl__pack_xq_avx2(xq, xd, kind ? xc : NULL, ldt, kind == 2 ? 32 : 8, x, rows, n_in);
    j.l.out = out; j.l.x = x; j.l.bias = bias; j.l.W = W; j.l.rows = rows; j.l.n_in = n_in; j.l.n_out = n_out;
    j.buf = buf; j.xq = xq; j.xd = xd; j.xc = xc; j.xbytes = xbytes; j.sbytes = sbytes; j.per_thread = per_thread;
    j.row_bytes = row_bytes; j.ldt = ldt; j.kind = kind; j.dot = 0;
    mmspcl__parallel(n_groups, nthreads, mmspcl__linear_q_x86_task, &j);
    MMSPCL_FREE(buf);
    return MMSPCL_OK;
}

/* ---- 6.6 x86 AVX2: linear, float weights ----------------------------------------------------
   f32, f16, bf16: W in panels of 16 outputs, packed per call; f32 panels: read in place.
   Tiles of 6 rows x 16 outputs: one fma chain per output along k, so bf16 weights give the bf16
   definition's bits (6.1) when x is rounded to bf16 and both are packed in its column order, 1,
   0, 3, 2, ... (the vdpbf16ps emulation of CPUs without AVX512-BF16). */
/* Panel of columns n0 .. n0+nr-1 of W^T: panel[k * 16 + j] = W[n0 + j][k] (bf16: column
   mmspcl__bf16_col(k)), zero past nr. rows: scratch for 16 widened rows (n_in x 16 floats) when W
   is not f32. */
static void mmspcl__pack_panel16(float *panel, const mmspcl_tensor *W, int n0, int nr, int n_in, float *rows) {
    const size_t row_bytes = mmspcl_dtype_row_size(W->dtype, n_in);
    const float *src[16];
    int j, k, kk;
    for (j = 0; j < 16; j++) {
        if (j >= nr) src[j] = NULL;
        else if (W->dtype == MMSPCL_F32) src[j] = (const float *)W->data + (size_t)(n0 + j) * (size_t)n_in;
        else {
            float *dst = rows + (size_t)j * n_in;
            mmspcl_dequantize_row(W->dtype, (const unsigned char *)W->data + (size_t)(n0 + j) * row_bytes, dst, n_in);
            src[j] = dst;
        }
    }
    for (k = 0; k < n_in; k += 16) {
        const int kn = n_in - k < 16 ? n_in - k : 16;
        for (j = 0; j < 16; j++)
            for (kk = 0; kk < kn; kk++)
                panel[(size_t)(k + kk) * 16 + j] = !src[j] ? 0.0f
                                                 : src[j][W->dtype == MMSPCL_BF16 ? mmspcl__bf16_col(k + kk, n_in) : k + kk];
    }
}

/* out tile rows < mr, columns < nr = bias + x block (packed [k][6]) times the panel: the chains
   start from the bias, or (bias_last, the bf16 definition's order) from 0 with the bias added at
   the end. */
static __attribute__((target("avx2,fma"))) void mmspcl__tile_avx2(float *out, int ld_out, const float *xp, int n_in,
                                                                  const float *panel, const float *bias, int mr, int nr,
                                                                  int bias_last) {
    float tmp[6 * 16], b[16];
    int j, k, r;
    for (j = 0; j < 16; j++) b[j] = bias && j < nr && !bias_last ? bias[j] : 0.0f;
    {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#define MMSPCL__DECL(r) __m256 a##r##_0 = b0, a##r##_1 = b1;
        MMSPCL__R6(MMSPCL__DECL)
#undef MMSPCL__DECL
        for (k = 0; k < n_in; k++) {
            const __m256 w0 = _mm256_loadu_ps(panel + (size_t)k * 16), w1 = _mm256_loadu_ps(panel + (size_t)k * 16 + 8);
            const float *xk = xp + (size_t)k * 6;
#define MMSPCL__FMA(r) { const __m256 xv = _mm256_broadcast_ss(xk + r); \
            a##r##_0 = _mm256_fmadd_ps(xv, w0, a##r##_0); a##r##_1 = _mm256_fmadd_ps(xv, w1, a##r##_1); }
            MMSPCL__R6(MMSPCL__FMA)
#undef MMSPCL__FMA
        }
#define MMSPCL__STORE(r) _mm256_storeu_ps(tmp + r * 16, a##r##_0); _mm256_storeu_ps(tmp + r * 16 + 8, a##r##_1);
        MMSPCL__R6(MMSPCL__STORE)
#undef MMSPCL__STORE
    }
    for (r = 0; r < mr; r++)
        for (j = 0; j < nr; j++)
            out[(size_t)r * ld_out + j] = bias_last ? tmp[r * 16 + j] + (bias ? bias[j] : 0.0f) : tmp[r * 16 + j];
}

typedef struct mmspcl__lin_avx2_job { mmspcl__lin_job l; float *buf; const float *xp; size_t per_thread; int bf; } mmspcl__lin_avx2_job;

/* task: panel p of 16 outputs, every block of 6 rows */
static void mmspcl__linear_f32_avx2_task(void *ctx, int p, int tid) {
    const mmspcl__lin_avx2_job *j = (const mmspcl__lin_avx2_job *)ctx;
    const mmspcl_tensor *W = j->l.W;
    const int rows = j->l.rows, n_in = j->l.n_in, n_out = j->l.n_out, n_blocks = (rows + 5) / 6;
    float *scratch = j->buf + (size_t)tid * j->per_thread, *wide = scratch + (size_t)n_in * 16;
    const int n0 = p * 16, nr = n_out - n0 < 16 ? n_out - n0 : 16;
    const float *panel = scratch;
    int blk;
    if (mmspcl_tensor_is_panels(W)) panel = mmspcl__panel(W, p, 0);   /* already this kernel's panels */
    else mmspcl__pack_panel16(scratch, W, n0, nr, n_in, wide);
    for (blk = 0; blk < n_blocks; blk++) {
        const int b0 = blk * 6, mr = rows - b0 < 6 ? rows - b0 : 6;
        mmspcl__tile_avx2(j->l.out + (size_t)b0 * n_out + n0, n_out, j->xp + (size_t)blk * 6 * n_in, n_in, panel,
                          j->l.bias ? j->l.bias + n0 : NULL, mr, nr, j->bf);
    }
}

static mmspcl_status mmspcl__linear_f32_avx2(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                                             const float *bias) {
    const int n_out = (int)mmspcl_matrix_rows(W), n_panels = (n_out + 15) / 16, n_blocks = (rows + 5) / 6, nthreads = mmspcl__team();
    const int bf = W->dtype == MMSPCL_BF16;              /* the bf16 definition's x and order */
    const size_t per_thread = (size_t)n_in * 16 * 2 + 16;   /* a panel and 16 widened rows */
    float *buf = (float *)MMSPCL_MALLOC(((size_t)nthreads * per_thread + (size_t)n_blocks * 6 * n_in) * sizeof(float));
    float *xp;
    mmspcl__lin_avx2_job j;
    int r0, r, k;
    if (!buf) return MMSPCL_ERR_NOMEM;
    xp = buf + (size_t)nthreads * per_thread;   /* x in blocks of 6 rows, [block][k][6], zero past rows */
    for (r0 = 0; r0 < rows; r0 += 6)
        for (k = 0; k < n_in; k++)
            for (r = 0; r < 6; r++) {
                float v = 0.0f;
                if (r0 + r < rows) {
                    v = x[(size_t)(r0 + r) * n_in + (bf ? mmspcl__bf16_col(k, n_in) : k)];
                    if (bf) v = mmspcl_bf16_to_fp32(mmspcl__bf16_act(v));
                }
                xp[((size_t)(r0 / 6) * n_in + k) * 6 + r] = v;
            }
    j.l.out = out; j.l.x = x; j.l.bias = bias; j.l.W = W; j.l.rows = rows; j.l.n_in = n_in; j.l.n_out = n_out;
    j.buf = buf; j.xp = xp; j.per_thread = per_thread; j.bf = bf;
    mmspcl__parallel(n_panels, nthreads, mmspcl__linear_f32_avx2_task, &j);
    MMSPCL_FREE(buf);
    return MMSPCL_OK;
}

/* General matrix product (mmspcl_gemm_f32), BLIS-style blocking, one geometry per path (AVX2:
   tiles of 6 rows x 16 columns, k blocks of 512, 72 rows; AVX-512: 12 x 32, k 256, 144 rows):
   per thread a range of NR-column panels of C; per block of KC values of k, op(B) of those
   columns is packed into panels [KC][NR] and, per MC rows, op(A) into blocks [KC][MR] (in L2)
   that meet every panel. A tile keeps its MR x NR outputs in vector accumulators through the KC
   products; between k blocks the partial sums go through C, which keeps each output one chain
   (the definition's). Every geometry gives the same bits: the blocking only changes where the
   chains pause in C. */
typedef struct mmspcl__gemm_geo { int mr, nr, kc, mc; } mmspcl__gemm_geo;
#ifndef MMSPCL__GEMM_KC
#define MMSPCL__GEMM_KC 512
#endif
#ifndef MMSPCL__GEMM_MC
#define MMSPCL__GEMM_MC 72
#endif
#ifndef MMSPCL__GEMM512_KC
#define MMSPCL__GEMM512_KC 256
#endif
#ifndef MMSPCL__GEMM512_MC
#define MMSPCL__GEMM512_MC 144
#endif
static const mmspcl__gemm_geo mmspcl__gemm_geo_avx2 = {6, 16, MMSPCL__GEMM_KC, MMSPCL__GEMM_MC};
static const mmspcl__gemm_geo mmspcl__gemm_geo_avx512 = {12, 32, MMSPCL__GEMM512_KC, MMSPCL__GEMM512_MC};
/* n (6, 12, 16 or 32: constant sizes, so the copies are inlined vector moves) floats */
static inline void mmspcl__gemm_copy(float *dst, const float *src, int n) {
    switch (n) {
    case 6: memcpy(dst, src, 6 * sizeof(float)); break;
    case 12: memcpy(dst, src, 12 * sizeof(float)); break;
    case 16: memcpy(dst, src, 16 * sizeof(float)); break;
    case 32: memcpy(dst, src, 32 * sizeof(float)); break;
    default: memcpy(dst, src, (size_t)n * sizeof(float)); break;
    }
}
/* ap[blk][k][r] = op(A)[i0 + mr blk + r][k0 + k], zero for rows past the block (i0 + mc <= M) */
static void mmspcl__gemm_pack_a(float *ap, int mr, int trans_a, const float *A, int lda, int i0, int mc, int k0, int kc) {
    int r0, r, k;
    for (r0 = 0; r0 < mc; r0 += mr) {
        float *dst = ap + (size_t)(r0 / mr) * kc * mr;
        const int h = mc - r0 < mr ? mc - r0 : mr;   /* real rows of the block */
        if (trans_a) {   /* the block's mr values of each k are adjacent in A */
            for (k = 0; k < kc; k++) {
                const float *src = A + (size_t)(k0 + k) * lda + i0 + r0;
                if (h == mr) { mmspcl__gemm_copy(dst + (size_t)k * mr, src, mr); continue; }
                for (r = 0; r < h; r++) dst[(size_t)k * mr + r] = src[r];
                for (; r < mr; r++) dst[(size_t)k * mr + r] = 0.0f;
            }
            continue;
        }
        for (r = 0; r < mr; r++) {
            if (r >= h) {
                for (k = 0; k < kc; k++) dst[(size_t)k * mr + r] = 0.0f;
            } else {
                const float *src = A + (size_t)(i0 + r0 + r) * lda + k0;
                for (k = 0; k < kc; k++) dst[(size_t)k * mr + r] = src[k];
            }
        }
    }
}
/* bp[p][k][c] = op(B)[k0 + k][j0 + nr p + c], zero for columns past nc */
static void mmspcl__gemm_pack_b(float *bp, int nr, int trans_b, const float *B, int ldb, int j0, int nc, int k0, int kc) {
    int p, c, k;
    for (p = 0; p < nc; p += nr) {
        float *dst = bp + (size_t)(p / nr) * kc * nr;
        const int w = nc - p < nr ? nc - p : nr;
        if (trans_b) {
            for (c = 0; c < nr; c++) {
                const float *src = B + (size_t)(j0 + p + c) * ldb + k0;
                if (c >= w) for (k = 0; k < kc; k++) dst[(size_t)k * nr + c] = 0.0f;
                else for (k = 0; k < kc; k++) dst[(size_t)k * nr + c] = src[k];
            }
        } else {
            for (k = 0; k < kc; k++) {
                const float *src = B + (size_t)(k0 + k) * ldb + j0 + p;
                if (w == nr) { mmspcl__gemm_copy(dst + (size_t)k * nr, src, nr); continue; }
                for (c = 0; c < w; c++) dst[(size_t)k * nr + c] = src[c];
                for (; c < nr; c++) dst[(size_t)k * nr + c] = 0.0f;
            }
        }
    }
}
/* A partial tile (mr < MR rows or nr < NR columns) runs on a full MR x NR copy: in, C's values
   (zeros outside the tile); out, the tile's part back into C. */
static void mmspcl__gemm_tile_stage_in(float *tmp, int MR, int NR, const float *C, int ldc, int mr, int nr) {
    int r, j;
    for (r = 0; r < MR; r++)
        for (j = 0; j < NR; j++) tmp[r * NR + j] = r < mr && j < nr ? C[(size_t)r * ldc + j] : 0.0f;
}
static void mmspcl__gemm_tile_stage_out(float *C, int ldc, const float *tmp, int NR, int mr, int nr) {
    int r, j;
    for (r = 0; r < mr; r++)
        for (j = 0; j < nr; j++) C[(size_t)r * ldc + j] = tmp[r * NR + j];
}
/* A tile: C (mr <= MR rows, nr <= NR columns) = (load ? C : 0) + ap block times bp panel over kc */
typedef void (*mmspcl__gemm_tile_fn)(float *C, int ldc, const float *ap, const float *bp, int kc, int mr, int nr, int load);
static __attribute__((target("avx2,fma"))) void mmspcl__gemm_tile_avx2(float *C, int ldc, const float *ap, const float *bp,
                                                                       int kc, int mr, int nr, int load) {
    float tmp[6 * 16];
    int k;
    const int full = mr == 6 && nr == 16;
    if (load && !full) mmspcl__gemm_tile_stage_in(tmp, 6, 16, C, ldc, mr, nr);
    {
        const float *src = full ? C : tmp;
        const size_t ld = full ? (size_t)ldc : 16;
#define MMSPCL__DECL(r) __m256 a##r##_0 = load ? _mm256_loadu_ps(src + r * ld) : _mm256_setzero_ps(), \
                               a##r##_1 = load ? _mm256_loadu_ps(src + r * ld + 8) : _mm256_setzero_ps();
        MMSPCL__R6(MMSPCL__DECL)
#undef MMSPCL__DECL
        for (k = 0; k < kc; k++) {
            const __m256 w0 = _mm256_loadu_ps(bp + (size_t)k * 16), w1 = _mm256_loadu_ps(bp + (size_t)k * 16 + 8);
            const float *xk = ap + (size_t)k * 6;
#define MMSPCL__FMA(r) { const __m256 xv = _mm256_broadcast_ss(xk + r); \
            a##r##_0 = _mm256_fmadd_ps(xv, w0, a##r##_0); a##r##_1 = _mm256_fmadd_ps(xv, w1, a##r##_1); }
            MMSPCL__R6(MMSPCL__FMA)
#undef MMSPCL__FMA
        }
        if (full) {
#define MMSPCL__STORE(r) _mm256_storeu_ps(C + r * (size_t)ldc, a##r##_0); _mm256_storeu_ps(C + r * (size_t)ldc + 8, a##r##_1);
            MMSPCL__R6(MMSPCL__STORE)
#undef MMSPCL__STORE
            return;
        }
#define MMSPCL__STORE(r) _mm256_storeu_ps(tmp + r * 16, a##r##_0); _mm256_storeu_ps(tmp + r * 16 + 8, a##r##_1);
        MMSPCL__R6(MMSPCL__STORE)
#undef MMSPCL__STORE
    }
    mmspcl__gemm_tile_stage_out(C, ldc, tmp, 16, mr, nr);
}
#define MMSPCL__R12(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11)
/* 12 x 32: 24 zmm accumulators, two vectors of the panel and one broadcast of A per row and k */
static __attribute__((target("avx512f"))) void mmspcl__gemm_tile_avx512(float *C, int ldc, const float *ap, const float *bp,
                                                                        int kc, int mr, int nr, int load) {
    float tmp[12 * 32];
    int k;
    const int full = mr == 12 && nr == 32;
    if (load && !full) mmspcl__gemm_tile_stage_in(tmp, 12, 32, C, ldc, mr, nr);
    {
        const float *src = full ? C : tmp;
        const size_t ld = full ? (size_t)ldc : 32;
#define MMSPCL__DECL(r) __m512 a##r##_0 = load ? _mm512_loadu_ps(src + r * ld) : _mm512_setzero_ps(), \
                               a##r##_1 = load ? _mm512_loadu_ps(src + r * ld + 16) : _mm512_setzero_ps();
        MMSPCL__R12(MMSPCL__DECL)
#undef MMSPCL__DECL
        for (k = 0; k < kc; k++) {
            const __m512 w0 = _mm512_loadu_ps(bp + (size_t)k * 32), w1 = _mm512_loadu_ps(bp + (size_t)k * 32 + 16);
            const float *xk = ap + (size_t)k * 12;
#define MMSPCL__FMA(r) { const __m512 xv = _mm512_set1_ps(xk[r]); \
            a##r##_0 = _mm512_fmadd_ps(xv, w0, a##r##_0); a##r##_1 = _mm512_fmadd_ps(xv, w1, a##r##_1); }
            MMSPCL__R12(MMSPCL__FMA)
#undef MMSPCL__FMA
        }
        if (full) {
#define MMSPCL__STORE(r) _mm512_storeu_ps(C + r * (size_t)ldc, a##r##_0); _mm512_storeu_ps(C + r * (size_t)ldc + 16, a##r##_1);
            MMSPCL__R12(MMSPCL__STORE)
#undef MMSPCL__STORE
            return;
        }
#define MMSPCL__STORE(r) _mm512_storeu_ps(tmp + r * 32, a##r##_0); _mm512_storeu_ps(tmp + r * 32 + 16, a##r##_1);
        MMSPCL__R12(MMSPCL__STORE)
#undef MMSPCL__STORE
    }
    mmspcl__gemm_tile_stage_out(C, ldc, tmp, 32, mr, nr);
}
#undef MMSPCL__R12
/* What one call shares: the operands, the geometry and its tile kernel. */
typedef struct mmspcl__gemm_job {
    int trans_a, trans_b, M, K, lda, ldb, ldc, accumulate;
    const float *A, *B;
    float *C;
    mmspcl__gemm_geo g;
    mmspcl__gemm_tile_fn tile;
} mmspcl__gemm_job;
/* columns j0 .. j1-1 of C, with one thread's packing buffers: ap [MC][KC], bp [KC][j1 - j0 rounded up to NR].
   A block of A is packed once per k block and meets every panel of the thread's columns. */
static void mmspcl__gemm_cols(const mmspcl__gemm_job *j, int j0, int j1, float *ap, float *bp) {
    const int nc = j1 - j0, MR = j->g.mr, NR = j->g.nr;
    int pc, ic, jr, ir;
    for (pc = 0; pc < j->K; pc += j->g.kc) {
        const int kc = j->K - pc < j->g.kc ? j->K - pc : j->g.kc, load = j->accumulate || pc > 0;
        mmspcl__gemm_pack_b(bp, NR, j->trans_b, j->B, j->ldb, j0, nc, pc, kc);
        for (ic = 0; ic < j->M; ic += j->g.mc) {
            const int mc = j->M - ic < j->g.mc ? j->M - ic : j->g.mc;
            mmspcl__gemm_pack_a(ap, MR, j->trans_a, j->A, j->lda, ic, mc, pc, kc);
            for (jr = 0; jr < nc; jr += NR)
                for (ir = 0; ir < mc; ir += MR)
                    j->tile(j->C + (size_t)(ic + ir) * j->ldc + j0 + jr, j->ldc, ap + (size_t)(ir / MR) * kc * MR,
                            bp + (size_t)(jr / NR) * kc * NR, kc, mc - ir < MR ? mc - ir : MR, nc - jr < NR ? nc - jr : NR, load);
        }
    }
}
/* floats of packing buffer per thread, for nt threads (ap [MC][KC], then bp [KC][the thread's panels]) */
static size_t mmspcl__gemm_per_thread(const mmspcl__gemm_geo *g, int M, int N, int K, int nt) {
    const int n_panels = (N + g->nr - 1) / g->nr, kc = K < g->kc ? K : g->kc;
    const int mc = M < g->mc ? (M + g->mr - 1) / g->mr * g->mr : g->mc;
    return (size_t)mc * kc + (size_t)kc * g->nr * (size_t)((n_panels + nt - 1) / nt);
}
/* threads a product of N columns runs on */
static int mmspcl__gemm_threads(const mmspcl__gemm_geo *g, int M, int N, int K) {
    const int n_panels = (N + g->nr - 1) / g->nr;
    const int nt = MMSPCL__GEMM_PARALLEL(M, N, K) ? MMSPCL__MAX_THREADS() : 1;
    return nt > n_panels ? n_panels : nt;
}
static mmspcl_status mmspcl__gemm_blocked(mmspcl__gemm_job *j, int N, float *work, size_t work_floats) {
    const int n_panels = (N + j->g.nr - 1) / j->g.nr, nt = mmspcl__gemm_threads(&j->g, j->M, N, j->K);
    const size_t per = mmspcl__gemm_per_thread(&j->g, j->M, N, j->K, nt);
    const size_t bfl = (size_t)(j->K < j->g.kc ? j->K : j->g.kc) * j->g.nr * (size_t)((n_panels + nt - 1) / nt);
    float *buf = work;
    int t;
    if ((!buf || work_floats < per * (size_t)nt) && !(buf = (float *)MMSPCL_MALLOC(sizeof(float) * per * (size_t)nt)))
        return MMSPCL_ERR_NOMEM;
    MMSPCL__OMP_FOR_IF(nt > 1)
    for (t = 0; t < nt; t++) {   /* thread t: panels n_panels * t / nt .. */
        const int j0 = (int)((int64_t)n_panels * t / nt) * j->g.nr, j1p = (int)((int64_t)n_panels * (t + 1) / nt) * j->g.nr;
        float *ap = buf + per * (size_t)t;
        mmspcl__gemm_cols(j, j0, j1p < N ? j1p : N, ap, ap + (per - bfl));
    }
    if (buf != work) MMSPCL_FREE(buf);
    return MMSPCL_OK;
}
/* avx512: the 12 x 32 tiles, else the 6 x 16 AVX2 ones */
static mmspcl_status mmspcl__gemm_simd(int avx512, int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                                       const float *B, int ldb, float *C, int ldc, int accumulate, float *work,
                                       size_t work_floats) {
    mmspcl__gemm_job j;
    j.trans_a = trans_a; j.trans_b = trans_b; j.M = M; j.K = K; j.lda = lda; j.ldb = ldb; j.ldc = ldc;
    j.accumulate = accumulate; j.A = A; j.B = B; j.C = C;
    j.g = avx512 ? mmspcl__gemm_geo_avx512 : mmspcl__gemm_geo_avx2;
    j.tile = avx512 ? mmspcl__gemm_tile_avx512 : mmspcl__gemm_tile_avx2;
    return mmspcl__gemm_blocked(&j, N, work, work_floats);
}

/* ---- 6.7 x86: elementwise functions and attention -------------------------------------------
   AVX2: GELU, quick GELU, softmax rows. AVX-512: attention, layer norm. */
/* exp(x), x clamped to [-87.3, 88.3] (Cephes' expf polynomial, about 1 ulp). */
static inline __attribute__((always_inline, target("avx2,fma"))) __m256 mmspcl__exp256(__m256 x) {
    __m256 n, r, p;
    __m256i e;
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    p = _mm256_fmadd_ps(_mm256_set1_ps(1.9875691500e-4f), r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* erf(x) = x P(x^2) / Q(x^2) on [-4, 4] (+-1 outside in float); absolute error below 2e-7. */
static inline __attribute__((always_inline, target("avx2,fma"))) __m256 mmspcl__erf256(__m256 x) {
    __m256 x2, p, q;
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-4.0f)), _mm256_set1_ps(4.0f));
    x2 = _mm256_mul_ps(x, x);
    p = _mm256_fmadd_ps(_mm256_set1_ps(-2.72614225801306e-10f), x2, _mm256_set1_ps(2.77068142495902e-08f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-2.10102402082508e-06f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-5.69250639462346e-05f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-7.34990630326855e-04f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-2.95459980854025e-03f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-1.60960333262415e-02f));
    q = _mm256_fmadd_ps(_mm256_set1_ps(-1.45660718464996e-05f), x2, _mm256_set1_ps(-2.13374055278905e-04f));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-1.68282697438203e-03f));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-7.37332916720468e-03f));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-1.42647390514189e-02f));
    return _mm256_div_ps(_mm256_mul_ps(x, p), q);
}

/* act 0: GELU (erf), 1: quick GELU; the tail (n % 8) uses the scalar formulas. */
static __attribute__((target("avx2,fma"))) size_t mmspcl__act_avx2(float *x, size_t n, int act) {
    size_t i;
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        __m256 y;
        if (act == 0)
            y = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v),
                              _mm256_add_ps(_mm256_set1_ps(1.0f), mmspcl__erf256(_mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f)))));
        else
            y = _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), mmspcl__exp256(_mm256_mul_ps(v, _mm256_set1_ps(-1.702f)))));
        _mm256_storeu_ps(x + i, y);
    }
    return i;
}

/* d[i] *= GELU'(x[i]) for the whole vectors of n; returns how many were done */
static __attribute__((target("avx2,fma"))) size_t mmspcl__gelu_grad_avx2(float *d, const float *x, size_t n) {
    size_t i;
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 cdf = _mm256_mul_ps(_mm256_set1_ps(0.5f),
                                         _mm256_add_ps(_mm256_set1_ps(1.0f), mmspcl__erf256(_mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f)))));
        const __m256 pdf = _mm256_mul_ps(mmspcl__exp256(_mm256_mul_ps(_mm256_set1_ps(-0.5f), _mm256_mul_ps(v, v))),
                                         _mm256_set1_ps(0.39894228040143268f));
        _mm256_storeu_ps(d + i, _mm256_mul_ps(_mm256_loadu_ps(d + i), _mm256_add_ps(cdf, _mm256_mul_ps(v, pdf))));
    }
    return i;
}

/* e[j] = exp(s[j] * scale - max) (0 where valid[j] == 0), in place; returns the sum of e. */
static __attribute__((target("avx2,fma"))) float mmspcl__softmax_row_avx2(float *s, int n, float scale,
                                                                          const unsigned char *valid) {
    const __m256 sc = _mm256_set1_ps(scale), ninf = _mm256_set1_ps(-INFINITY);
    __m256 m = ninf, acc = _mm256_setzero_ps();
    float mx, t[8], sum, tail = 0.0f;
    int j;
    if (valid)
        for (j = 0; j < n; j++) s[j] = valid[j] ? s[j] * scale : -INFINITY;
    else
        for (j = 0; j + 8 <= n; j += 8) _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), sc));
    if (!valid)
        for (j = n & ~7; j < n; j++) s[j] *= scale;
    for (j = 0; j + 8 <= n; j += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(s + j));
    _mm256_storeu_ps(t, m);
    mx = t[0];
    for (j = 1; j < 8; j++) mx = t[j] > mx ? t[j] : mx;
    for (j = n & ~7; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    {
        const __m256 mv = _mm256_set1_ps(mx);
        for (j = 0; j + 8 <= n; j += 8) {
            const __m256 v = _mm256_loadu_ps(s + j);
            const __m256 e = _mm256_and_ps(mmspcl__exp256(_mm256_sub_ps(v, mv)), _mm256_cmp_ps(v, ninf, _CMP_NEQ_OQ));
            _mm256_storeu_ps(s + j, e);
            acc = _mm256_add_ps(acc, e);
        }
    }
    for (j = n & ~7; j < n; j++) { s[j] = s[j] == -INFINITY ? 0.0f : expf(s[j] - mx); tail += s[j]; }
    _mm256_storeu_ps(t, acc);
    sum = ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
    return sum + tail;
}

/* Attention with the f32 micro-kernels, one task per head: K_h^T is packed once (keys in the
   lanes), then for 6 queries at a time: scores = 6 query rows broadcast against K_h^T, softmax,
   and (sum_j e_j v_j) / sum_j e_j with V's rows as the lanes (head_dim a multiple of 16).
   Returns 0 when done, -1 when it cannot (shape, memory): the caller then runs the definition. */
/* task: head h */
static void mmspcl__attention_avx512_task(void *ctx, int h, int tid) {
    const mmspcl__attn_job *a = (const mmspcl__attn_job *)ctx;
    const int n_q = a->n_q, n_k = a->n_k, hd = a->head_dim, ld_q = a->ld_q, ld_kv = a->ld_kv, ld_out = a->ld_out;
    const int ldk = (n_k + 15) & ~15;
    const float scale = a->scale, *q = a->q, *k = a->k, *v = a->v;
    const unsigned char *key_valid = a->key_valid;
    float *out = a->out;
    {
        float *kt = a->scratch + (size_t)tid * a->per, *s = kt + (size_t)hd * ldk;
        float t[MMSPCL__MO * 64], inv[MMSPCL__MO];
        const float *w[MMSPCL__MO];
        int q0, o, j0, d0, i;
        mmspcl__pack_xt_avx512(kt, ldk, k + (size_t)h * hd, n_k, ld_kv, 0, hd);
        for (q0 = 0; q0 < n_q; q0 += MMSPCL__MO) {
            const int mq = n_q - q0 < MMSPCL__MO ? n_q - q0 : MMSPCL__MO;
            for (o = 0; o < MMSPCL__MO; o++) w[o] = q + (size_t)(q0 + (o < mq ? o : 0)) * ld_q + (size_t)h * hd;
            for (j0 = 0; j0 < ldk; j0 += 64) {
                const int nv = ldk - j0 < 64 ? (ldk - j0) / 16 : 4;
                mmspcl__f32k(nv, t, kt + (size_t)j0 * hd, 16 * nv, w, hd, NULL);
                for (o = 0; o < mq; o++) memcpy(s + (size_t)o * ldk + j0, t + o * 64, (size_t)16 * nv * sizeof(float));
            }
            for (o = 0; o < mq; o++) inv[o] = 1.0f / mmspcl__softmax_row_avx2(s + (size_t)o * ldk, n_k, scale, key_valid);
            for (o = 0; o < MMSPCL__MO; o++) w[o] = s + (size_t)(o < mq ? o : 0) * ldk;
            for (d0 = 0; d0 < hd; d0 += 64) {
                const int nv = hd - d0 < 64 ? (hd - d0) / 16 : 4;
                mmspcl__f32k(nv, t, v + (size_t)h * hd + d0, ld_kv, w, n_k, NULL);
                for (o = 0; o < mq; o++) {
                    float *dst = out + (size_t)(q0 + o) * ld_out + (size_t)h * hd + d0;
                    for (i = 0; i < 16 * nv; i++) dst[i] = t[o * 64 + i] * inv[o];
                }
            }
        }
    }
}

static int mmspcl__attention_avx512(float *out, int ld_out, const float *q, int ld_q, const float *k, const float *v,
                                    int ld_kv, int n_q, int n_k, int n_heads, int hd, const unsigned char *key_valid) {
    const int ldk = (n_k + 15) & ~15, nthreads = mmspcl__team();
    const size_t per = ((size_t)hd + MMSPCL__MO) * (size_t)ldk;
    mmspcl__attn_job a;
    if (hd % 16 || n_q < 1 || n_k < 1) return -1;
    if (!(a.scratch = (float *)MMSPCL_MALLOC((size_t)nthreads * per * sizeof(float)))) return -1;
    a.out = out; a.q = q; a.k = k; a.v = v; a.key_valid = key_valid;
    a.ld_out = ld_out; a.ld_q = ld_q; a.ld_kv = ld_kv; a.n_q = n_q; a.n_k = n_k; a.head_dim = hd;
    a.scale = 1.0f / sqrtf((float)hd);
    a.per = per;
    mmspcl__parallel(n_heads, nthreads, mmspcl__attention_avx512_task, &a);
    MMSPCL_FREE(a.scratch);
    return 0;
}
/* One row of the layer norm: the definition's formula with 8 double partial sums (in place ok). */
static __attribute__((target("avx512f"))) void mmspcl__layernorm_avx512(float *yr, const float *xr, const float *gamma,
                                                                         const float *beta, int dim, float eps) {
    __m512d s = _mm512_setzero_pd();
    double mean, var, t[8];
    float inv;
    int i;
    for (i = 0; i + 8 <= dim; i += 8) s = _mm512_add_pd(s, _mm512_cvtps_pd(_mm256_loadu_ps(xr + i)));
    _mm512_storeu_pd(t, s);
    mean = ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
    for (; i < dim; i++) mean += xr[i];
    mean /= dim;
    s = _mm512_setzero_pd();
    for (i = 0; i + 8 <= dim; i += 8) {
        const __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(xr + i)), _mm512_set1_pd(mean));
        s = _mm512_add_pd(s, _mm512_mul_pd(d, d));
    }
    _mm512_storeu_pd(t, s);
    var = ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
    for (i = dim & ~7; i < dim; i++) var += (xr[i] - mean) * (xr[i] - mean);
    var /= dim;
    inv = (float)(1.0 / sqrt(var + eps));
    {
        const __m512 m = _mm512_set1_ps((float)mean), iv = _mm512_set1_ps(inv);
        for (i = 0; i + 16 <= dim; i += 16) {
            __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(xr + i), m), iv);
            if (gamma) v = _mm512_mul_ps(v, _mm512_loadu_ps(gamma + i));
            if (beta) v = _mm512_add_ps(v, _mm512_loadu_ps(beta + i));
            _mm512_storeu_ps(yr + i, v);
        }
    }
    for (; i < dim; i++)
        yr[i] = ((xr[i] - (float)mean) * inv) * (gamma ? gamma[i] : 1.0f) + (beta ? beta[i] : 0.0f);
}

#ifdef MMSPCL__POP_DIAGNOSTIC
#pragma GCC diagnostic pop
#undef MMSPCL__POP_DIAGNOSTIC
#endif
#endif /* MMSPCL__X86_DISPATCH */

/* ---- 6.8 ARM NEON: linear -------------------------------------------------------------------
   Compile-time. The scheme of 6.2 with 4 rows per vector; q8_0 / q4_0 with or without sdot. */
#if !defined(MMSPCL_NO_SIMD) && defined(__ARM_NEON) && defined(__aarch64__)
#define MMSPCL__NEON 1
#include <arm_neon.h>
#ifndef MMSPCL__R8 /* defined in the x86 section, which an ARM build skips */
#define MMSPCL__R8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#endif

static int32_t mmspcl__word(const int8_t *p) { int32_t v; memcpy(&v, p, 4); return v; }

static void mmspcl__pack_xt_neon(float *xt, int ldt, const float *x, int rows, int n_in, int k0, int kc) {
    int r, k;
    for (r = 0; r < ldt; r++)
        for (k = 0; k < kc; k++) xt[(size_t)k * ldt + r] = r < rows ? x[(size_t)r * n_in + k0 + k] : 0.0f;
}

/* 8 outputs x 2 vectors of 4 rows: t[o][8]. */
static void mmspcl__f32k_neon(float *t, const float *xt, int ldt, const float *const *w, int kc) {
    int k;
#define MMSPCL__N_DECL(o) float32x4_t a##o##0 = vdupq_n_f32(0.0f), a##o##1 = a##o##0; const float *w##o = w[o];
    MMSPCL__R8(MMSPCL__N_DECL)
    for (k = 0; k < kc; k++) {
        const float32x4_t x0 = vld1q_f32(xt + (size_t)k * ldt), x1 = vld1q_f32(xt + (size_t)k * ldt + 4);
#define MMSPCL__N_FMA(o) a##o##0 = vfmaq_n_f32(a##o##0, x0, w##o[k]); a##o##1 = vfmaq_n_f32(a##o##1, x1, w##o[k]);
        MMSPCL__R8(MMSPCL__N_FMA)
    }
#define MMSPCL__N_ST(o) vst1q_f32(t + o * 8, a##o##0); vst1q_f32(t + o * 8 + 4, a##o##1);
    MMSPCL__R8(MMSPCL__N_ST)
#undef MMSPCL__N_DECL
#undef MMSPCL__N_FMA
#undef MMSPCL__N_ST
}

static void mmspcl__store_cols_neon(float *out, int ld, const float *t, int ts, int mr, int mo, const float *bias, int acc) {
    int r, o;
    for (r = 0; r < mr; r++)
        for (o = 0; o < mo; o++) {
            if (acc) out[(size_t)r * ld + o] += t[o * ts + r];
            else out[(size_t)r * ld + o] = t[o * ts + r] + (bias ? bias[o] : 0.0f);
        }
}

/* task: group g of 8 outputs, every row tile, columns k0 .. k0+kc */
static void mmspcl__linear_f32_neon_task(void *ctx, int g, int tid) {
    const mmspcl__lin_chunk_job *j = (const mmspcl__lin_chunk_job *)ctx;
    const mmspcl_tensor *W = j->l.W;
    const int rows = j->l.rows, n_in = j->l.n_in, n_out = j->l.n_out, ldt = j->ldt, k0 = j->k0, kc = j->kc;
    const int in_place = W->dtype == MMSPCL_F32 && W->ndim == 2;   /* else rows are widened (f16, bf16, panels) */
    const int o0 = g * 8, mo = n_out - o0 < 8 ? n_out - o0 : 8;
    const float *w[8];
    float t[8 * 8];
    int o, r0;
    for (o = 0; o < 8; o++) {
        const int oo = o0 + (o < mo ? o : 0);
        if (in_place) w[o] = (const float *)W->data + (size_t)oo * n_in + k0;
        else {
            float *d = j->xt + (size_t)ldt * (size_t)j->kcmax + (size_t)tid * j->wide + (size_t)o * n_in;
            mmspcl_matrix_row(W, oo, d);
            w[o] = d + k0;
        }
    }
    for (r0 = 0; r0 < rows; r0 += 8) {
        mmspcl__f32k_neon(t, j->xt + r0, ldt, w, kc);
        mmspcl__store_cols_neon(j->l.out + (size_t)r0 * n_out + o0, n_out, t, 8, rows - r0 < 8 ? rows - r0 : 8, mo,
                                j->l.bias ? j->l.bias + o0 : NULL, k0 > 0);
    }
}

static mmspcl_status mmspcl__linear_f32_neon(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                                             const float *bias) {
    const int n_out = (int)mmspcl_matrix_rows(W), ldt = (rows + 7) & ~7, nthreads = mmspcl__team();
    const int kcmax = n_in <= MMSPCL__KC * 3 / 2 ? n_in : MMSPCL__KC, n_groups = (n_out + 7) / 8;
    const int in_place = W->dtype == MMSPCL_F32 && W->ndim == 2;
    const size_t wide = in_place ? 0 : (size_t)8 * (size_t)n_in;
    float *xt = (float *)MMSPCL_MALLOC(((size_t)ldt * (size_t)kcmax + (size_t)nthreads * wide) * sizeof(float));
    mmspcl__lin_chunk_job j;
    int k0;
    if (!xt) return MMSPCL_ERR_NOMEM;
    j.l.out = out; j.l.x = x; j.l.bias = bias; j.l.W = W; j.l.rows = rows; j.l.n_in = n_in; j.l.n_out = n_out;
    j.xt = xt; j.wide = wide; j.esize = 4; j.ldt = ldt; j.kcmax = kcmax;
    for (k0 = 0; k0 < n_in; k0 += kcmax) {
        const int kc = n_in - k0 < kcmax ? n_in - k0 : kcmax;
        mmspcl__pack_xt_neon(xt, ldt, x, rows, n_in, k0, kc);
        j.k0 = k0; j.kc = kc;
        mmspcl__parallel(n_groups, nthreads, mmspcl__linear_f32_neon_task, &j);
    }
    MMSPCL_FREE(xt);
    return MMSPCL_OK;
}

/* Quantized activations as in the definition (vcvtnq rounds to nearest even, like lrintf):
   xq[(k/4)][ldt][4], xd[b][ldt]. */
static void mmspcl__pack_xq_neon(int8_t *xq, float *xd, int ldt, const float *x, int rows, int n_in) {
    const int nb = n_in / MMSPCL_QBLOCK;
    int r, b, g, i;
    for (r = 0; r < ldt; r++)
        for (b = 0; b < nb; b++) {
            int8_t q[MMSPCL_QBLOCK];
            float d = 0.0f;
            if (r < rows) {
                const float *xb = x + (size_t)r * n_in + 32 * b;
                const float32x4_t lo = vdupq_n_f32(-127.0f), hi = vdupq_n_f32(127.0f);
                float32x4_t v[8], m = vdupq_n_f32(0.0f), id;
                float amax;
                for (i = 0; i < 8; i++) { v[i] = vld1q_f32(xb + 4 * i); m = vmaxq_f32(m, vabsq_f32(v[i])); }
                amax = vmaxvq_f32(m);
                if (amax != 0.0f) {   /* the definition's power-of-two scale (6.1) */
                    const int e = mmspcl__act_exp(amax);
                    d = mmspcl__pow2f(e);
                    id = vdupq_n_f32(mmspcl__pow2f(-e));
                } else {
                    id = vdupq_n_f32(0.0f);
                }
#define MMSPCL__QN_CVT(v) vqmovn_s32(vcvtnq_s32_f32(vminnmq_f32(vmaxnmq_f32(vmulq_f32(v, id), lo), hi)))
                for (i = 0; i < 8; i += 2) vst1_s8(q + 4 * i, vqmovn_s16(vcombine_s16(MMSPCL__QN_CVT(v[i]), MMSPCL__QN_CVT(v[i + 1]))));
#undef MMSPCL__QN_CVT
            } else {
                memset(q, 0, sizeof q);
            }
            for (g = 0; g < MMSPCL_QBLOCK / 4; g++) memcpy(xq + ((size_t)(b * 8 + g) * ldt + r) * 4, q + 4 * g, 4);
            xd[(size_t)b * ldt + r] = d;
        }
}

/* 4 outputs x 2 vectors of 4 rows per micro-kernel; dot: sdot (ARMv8.2 dot product) or not. */
static void mmspcl__qk_neon(float *t, const int8_t *xq, const float *xd, int ldt, const int8_t *const *w,
                            const float *const *ws, int nb, int dot) {
    float32x4_t f[4][2];
    int b, g, o, v;
    for (o = 0; o < 4; o++) f[o][0] = f[o][1] = vdupq_n_f32(0.0f);
    for (b = 0; b < nb; b++) {
        int32x4_t i[4][2];
        for (o = 0; o < 4; o++) i[o][0] = i[o][1] = vdupq_n_s32(0);
#ifdef __ARM_FEATURE_DOTPROD
        if (dot) {
            int h;
            for (h = 0; h < 2; h++) {
                int8x16_t wv[4];
                for (o = 0; o < 4; o++) wv[o] = vld1q_s8(w[o] + 32 * b + 16 * h);
                for (v = 0; v < 2; v++) {
                    const int8_t *xp = xq + ((size_t)(8 * b + 4 * h) * ldt + 4 * v) * 4;
                    const int8x16_t x0 = vld1q_s8(xp), x1 = vld1q_s8(xp + (size_t)ldt * 4);
                    const int8x16_t x2 = vld1q_s8(xp + (size_t)ldt * 8), x3 = vld1q_s8(xp + (size_t)ldt * 12);
                    for (o = 0; o < 4; o++) {
                        i[o][v] = vdotq_laneq_s32(i[o][v], x0, wv[o], 0);
                        i[o][v] = vdotq_laneq_s32(i[o][v], x1, wv[o], 1);
                        i[o][v] = vdotq_laneq_s32(i[o][v], x2, wv[o], 2);
                        i[o][v] = vdotq_laneq_s32(i[o][v], x3, wv[o], 3);
                    }
                }
            }
        } else
#endif
        {
            (void)dot;
            for (g = 0; g < 8; g++)
                for (v = 0; v < 2; v++) {
                    const int8x16_t x = vld1q_s8(xq + ((size_t)(8 * b + g) * ldt + 4 * v) * 4);
                    for (o = 0; o < 4; o++) {
                        const int8x16_t wb = vreinterpretq_s8_s32(vdupq_n_s32(mmspcl__word(w[o] + 32 * b + 4 * g)));
                        const int16x8_t p = vpaddq_s16(vmull_s8(vget_low_s8(x), vget_low_s8(wb)), vmull_high_s8(x, wb));
                        i[o][v] = vpadalq_s16(i[o][v], p);
                    }
                }
        }
        for (v = 0; v < 2; v++) {
            const float32x4_t d = vld1q_f32(xd + (size_t)b * ldt + 4 * v);
            for (o = 0; o < 4; o++) f[o][v] = vfmaq_f32(f[o][v], vcvtq_f32_s32(i[o][v]), vmulq_n_f32(d, ws[o][b]));
        }
    }
    for (o = 0; o < 4; o++) { vst1q_f32(t + o * 8, f[o][0]); vst1q_f32(t + o * 8 + 4, f[o][1]); }
}

/* task: group g of 4 outputs, every row tile */
static void mmspcl__linear_q_neon_task(void *ctx, int g, int tid) {
    const mmspcl__lin_q_job *jb = (const mmspcl__lin_q_job *)ctx;
    const mmspcl_tensor *W = jb->l.W;
    float *out = jb->l.out;
    const float *bias = jb->l.bias, *xd = jb->xd;
    const int8_t *xq = jb->xq;
    const int rows = jb->l.rows, n_in = jb->l.n_in, n_out = jb->l.n_out, nb = n_in / MMSPCL_QBLOCK, ldt = jb->ldt, dot = jb->dot;
    {
        const int o0 = g * 4, mo = n_out - o0 < 4 ? n_out - o0 : 4;
        unsigned char *tb = jb->buf + jb->xbytes + jb->sbytes + (size_t)tid * jb->per_thread;
        float *ws_buf = (float *)tb;
        int8_t *wq = (int8_t *)(tb + (size_t)4 * nb * 4);
        const int8_t *w[4];
        const float *ws[4];
        float t[4 * 8];
        int o, r0, b;
        for (o = 0; o < mo; o++) {
            const unsigned char *src = (const unsigned char *)W->data + (size_t)(o0 + o) * mmspcl_dtype_row_size(W->dtype, n_in);
            for (b = 0; b < nb; b++) ws_buf[o * nb + b] = mmspcl__weight_block(src, W->dtype, b, wq + (size_t)o * n_in + 32 * b);
        }
        for (o = 0; o < 4; o++) {
            w[o] = wq + (size_t)(o < mo ? o : 0) * n_in;
            ws[o] = ws_buf + (size_t)(o < mo ? o : 0) * nb;
        }
        for (r0 = 0; r0 < rows; r0 += 8) {
            mmspcl__qk_neon(t, xq + (size_t)r0 * 4, xd + r0, ldt, w, ws, nb, dot);
            mmspcl__store_cols_neon(out + (size_t)r0 * n_out + o0, n_out, t, 8, rows - r0 < 8 ? rows - r0 : 8, mo,
                                    bias ? bias + o0 : NULL, 0);
        }
    }
}

static mmspcl_status mmspcl__linear_q_neon(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                                           const float *bias, int dot) {
    const int n_out = (int)W->ne[0], nb = n_in / MMSPCL_QBLOCK, nthreads = mmspcl__team();
    const int ldt = (rows + 7) & ~7, n_groups = (n_out + 3) / 4;
    const size_t xbytes = (size_t)ldt * (size_t)n_in, sbytes = (size_t)ldt * (size_t)nb * 4;
    const size_t per_thread = (size_t)4 * ((size_t)n_in + (size_t)nb * 4);
    unsigned char *buf = (unsigned char *)MMSPCL_MALLOC(xbytes + sbytes + (size_t)nthreads * per_thread + 64);
    int8_t *xq;
    float *xd;
    mmspcl__lin_q_job j;
    if (!buf) return MMSPCL_ERR_NOMEM;
    xd = (float *)buf;
    xq = (int8_t *)(buf + sbytes);
    mmspcl__pack_xq_neon(xq, xd, ldt, x, rows, n_in);
    j.l.out = out; j.l.x = x; j.l.bias = bias; j.l.W = W; j.l.rows = rows; j.l.n_in = n_in; j.l.n_out = n_out;
    j.buf = buf; j.xq = xq; j.xd = xd; j.xc = NULL; j.xbytes = xbytes; j.sbytes = sbytes; j.per_thread = per_thread;
    j.row_bytes = mmspcl_dtype_row_size(W->dtype, n_in); j.ldt = ldt; j.kind = 0; j.dot = dot;
    mmspcl__parallel(n_groups, nthreads, mmspcl__linear_q_neon_task, &j);
    MMSPCL_FREE(buf);
    return MMSPCL_OK;
}
#endif /* NEON */

/* ---- 6.9 The public kernels: choice of path -------------------------------------------------
   Each runs the path the table over the declarations gives (6. Kernels): for x86 from
   mmspcl__x86_features, for ARM from the build; mmspcl_linear_path also the caller's choice. */
mmspcl_status mmspcl_tensor_pack(mmspcl_tensor *W) {
    if (!W || W->packed || W->ndim != 2 || !mmspcl__dtype_integer(W->dtype) || W->ne[0] < 1 || W->ne[0] > 0x7fffffff ||
        W->ne[1] < 1 || W->ne[1] > 0x7fffffff || mmspcl_dtype_row_size(W->dtype, W->ne[1]) == 0)
        return MMSPCL_OK;   /* nothing to pack (or already packed) */
#ifdef MMSPCL__X86_DISPATCH
    if (mmspcl__x86_features(0) & MMSPCL__CPU_VNNI512) return mmspcl__tensor_pack_qn(W);
#endif
    return MMSPCL_OK;
}

void mmspcl_tensor_pack_free(mmspcl_tensor *W) {
    void *raw;
    if (!W || !W->packed) return;
    memcpy(&raw, (const unsigned char *)W->packed - sizeof(void *), sizeof(void *));
    MMSPCL_FREE(raw);
    W->packed = NULL;
}

mmspcl_status mmspcl_linear_path(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                                 const float *bias, mmspcl_kernel_path path) {
    const int quant = mmspcl__dtype_integer(W->dtype), panels = mmspcl_tensor_is_panels(W);
    const int bf16 = W->dtype == MMSPCL_BF16;
    if ((W->ndim != 2 && !panels) || W->ne[1] != n_in || rows < 0 || n_in < 1 || mmspcl_dtype_row_size(W->dtype, n_in) == 0 ||
        W->dtype == MMSPCL_I32 || mmspcl_matrix_rows(W) > 0x7fffffff)
        return MMSPCL_ERR_ARG;
    if (rows == 0 || W->ne[0] == 0) return MMSPCL_OK;
#ifdef MMSPCL__X86_DISPATCH
    if (path != MMSPCL_PATH_SCALAR) {
        const int f = mmspcl__x86_features(path == MMSPCL_PATH_AVXVNNI);
        if (path == MMSPCL_PATH_NEON || path == MMSPCL_PATH_NEON_DOTPROD) return MMSPCL_ERR_UNSUPPORTED;
        if (path == MMSPCL_PATH_AUTO) {
            if (quant) {
                if (f & MMSPCL__CPU_VNNI512) return mmspcl__linear_qn512(out, x, rows, n_in, W, bias);
#ifdef MMSPCL__HAVE_AVXVNNI
                if (f & MMSPCL__CPU_AVXVNNI) return mmspcl__linear_q_x86(out, x, rows, n_in, W, bias, 1);
#endif
                if (f & MMSPCL__CPU_AVX2) return mmspcl__linear_q_x86(out, x, rows, n_in, W, bias, 0);
            } else if (bf16) {   /* vdpbf16ps, else its emulation */
                if ((f & MMSPCL__CPU_BF16_512) && n_in % 2 == 0) return mmspcl__linear_bf16_avx512(out, x, rows, n_in, W, bias);
                if (f & MMSPCL__CPU_AVX2) return mmspcl__linear_f32_avx2(out, x, rows, n_in, W, bias);
            } else {
                if (f & MMSPCL__CPU_AVX512)
                    return panels ? mmspcl__linear_panels_avx512(out, x, rows, n_in, W, bias)
                                  : mmspcl__linear_f32_avx512(out, x, rows, n_in, W, bias);
                if (f & MMSPCL__CPU_AVX2) return mmspcl__linear_f32_avx2(out, x, rows, n_in, W, bias);
            }
        } else if (path == MMSPCL_PATH_AVX512) {
            if (!(f & (quant ? MMSPCL__CPU_VNNI512 : bf16 ? MMSPCL__CPU_BF16_512 : MMSPCL__CPU_AVX512))) return MMSPCL_ERR_UNSUPPORTED;
            if (bf16)
                return n_in % 2 ? mmspcl__linear_f32_avx2(out, x, rows, n_in, W, bias)
                                : mmspcl__linear_bf16_avx512(out, x, rows, n_in, W, bias);
            return quant    ? mmspcl__linear_qn512(out, x, rows, n_in, W, bias)
                   : panels ? mmspcl__linear_panels_avx512(out, x, rows, n_in, W, bias)
                            : mmspcl__linear_f32_avx512(out, x, rows, n_in, W, bias);
        } else if (path == MMSPCL_PATH_AVXVNNI) {
#ifdef MMSPCL__HAVE_AVXVNNI
            if (!(f & MMSPCL__CPU_AVXVNNI)) return MMSPCL_ERR_UNSUPPORTED;
            return quant ? mmspcl__linear_q_x86(out, x, rows, n_in, W, bias, 1)
                         : mmspcl__linear_f32_avx2(out, x, rows, n_in, W, bias);
#else
            return MMSPCL_ERR_UNSUPPORTED;
#endif
        } else if (path == MMSPCL_PATH_AVX2) {
            if (!(f & MMSPCL__CPU_AVX2)) return MMSPCL_ERR_UNSUPPORTED;
            return quant ? mmspcl__linear_q_x86(out, x, rows, n_in, W, bias, 0)
                         : mmspcl__linear_f32_avx2(out, x, rows, n_in, W, bias);
        } else {
            return MMSPCL_ERR_ARG;
        }
    }
#elif defined(MMSPCL__NEON)
    if (path != MMSPCL_PATH_SCALAR) {
        int dot = 0;
#ifdef __ARM_FEATURE_DOTPROD
        dot = path != MMSPCL_PATH_NEON;
#else
        if (path == MMSPCL_PATH_NEON_DOTPROD) return MMSPCL_ERR_UNSUPPORTED;
#endif
        if (path != MMSPCL_PATH_AUTO && path != MMSPCL_PATH_NEON && path != MMSPCL_PATH_NEON_DOTPROD)
            return path < MMSPCL_PATH_COUNT ? MMSPCL_ERR_UNSUPPORTED : MMSPCL_ERR_ARG;
        if (bf16) return mmspcl__linear_definition(out, x, rows, n_in, W, bias);   /* no BFDOT code yet */
        return quant ? mmspcl__linear_q_neon(out, x, rows, n_in, W, bias, dot)
                     : mmspcl__linear_f32_neon(out, x, rows, n_in, W, bias);
    }
#else
    (void)quant; (void)bf16;   /* only the SIMD paths need them */
    if (path != MMSPCL_PATH_SCALAR && path != MMSPCL_PATH_AUTO)
        return path < MMSPCL_PATH_COUNT ? MMSPCL_ERR_UNSUPPORTED : MMSPCL_ERR_ARG;
#endif
    return mmspcl__linear_definition(out, x, rows, n_in, W, bias);
}

mmspcl_status mmspcl_linear(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                            const float *bias) {
    return mmspcl_linear_path(out, x, rows, n_in, W, bias, MMSPCL_PATH_AUTO);
}

static mmspcl_status mmspcl__gemm_run(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                                      const float *B, int ldb, float *C, int ldc, int accumulate,
                                      mmspcl_kernel_path path, float *work, size_t work_floats) {
    if (M < 0 || N < 0 || K < 0 || ldc < N || lda < (trans_a ? M : K) || ldb < (trans_b ? K : N) || path >= MMSPCL_PATH_COUNT ||
        (int)path < 0)
        return MMSPCL_ERR_ARG;
    if (M == 0 || N == 0) return MMSPCL_OK;
    if (path != MMSPCL_PATH_AUTO && path != MMSPCL_PATH_SCALAR && path != MMSPCL_PATH_AVX2 && path != MMSPCL_PATH_AVX512)
        return MMSPCL_ERR_UNSUPPORTED;
#ifdef MMSPCL__X86_DISPATCH
    if (path != MMSPCL_PATH_SCALAR && K > 0) {
        const int f = mmspcl__x86_features(0);
        if ((f & MMSPCL__CPU_AVX512) && (path == MMSPCL_PATH_AUTO || path == MMSPCL_PATH_AVX512))
            return mmspcl__gemm_simd(1, trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate, work, work_floats);
        if ((f & MMSPCL__CPU_AVX2) && path != MMSPCL_PATH_AVX512)
            return mmspcl__gemm_simd(0, trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate, work, work_floats);
        if (path != MMSPCL_PATH_AUTO) return MMSPCL_ERR_UNSUPPORTED;
    }
#else
    (void)work;
    (void)work_floats;
    if (path == MMSPCL_PATH_AVX2 || path == MMSPCL_PATH_AVX512) return MMSPCL_ERR_UNSUPPORTED;
#endif
    mmspcl__gemm_definition(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_gemm_f32_path(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                                   const float *B, int ldb, float *C, int ldc, int accumulate,
                                   mmspcl_kernel_path path) {
    return mmspcl__gemm_run(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate, path, NULL, 0);
}

mmspcl_status mmspcl_gemm_f32(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                              const float *B, int ldb, float *C, int ldc, int accumulate) {
    return mmspcl__gemm_run(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate, MMSPCL_PATH_AUTO, NULL, 0);
}

mmspcl_status mmspcl_gemm_f32_ws(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                                 const float *B, int ldb, float *C, int ldc, int accumulate, float *work,
                                 size_t work_floats) {
    return mmspcl__gemm_run(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, accumulate, MMSPCL_PATH_AUTO, work,
                            work_floats);
}

size_t mmspcl_gemm_f32_work(int M, int N, int K, int threads) {
#ifdef MMSPCL__X86_DISPATCH
    const mmspcl__gemm_geo *geo[2];
    size_t most = 0, w;
    int i;
    geo[0] = &mmspcl__gemm_geo_avx2;
    geo[1] = &mmspcl__gemm_geo_avx512;
    if (M < 1 || N < 1 || K < 1) return 0;
    for (i = 0; i < 2; i++) {   /* enough for either path (AUTO, or one chosen) */
        const int np = (N + geo[i]->nr - 1) / geo[i]->nr;
        int nt = threads < 1 ? 1 : threads;
        if (nt > np) nt = np;
        if ((w = mmspcl__gemm_per_thread(geo[i], M, N, K, nt) * (size_t)nt) > most) most = w;
    }
    return most;
#else
    (void)M; (void)N; (void)K; (void)threads;
    return 0;
#endif
}

/* Layer norm: per row, the AVX-512 kernel or the definition. */
typedef struct mmspcl__ln_job { float *y; const float *x, *gamma, *beta; int dim, simd; float eps; } mmspcl__ln_job;

/* task: row r */
static void mmspcl__layernorm_task(void *ctx, int r, int tid) {
    const mmspcl__ln_job *j = (const mmspcl__ln_job *)ctx;
    const float *xr = j->x + (size_t)r * (size_t)j->dim;
    float *yr = j->y + (size_t)r * (size_t)j->dim;
    (void)tid;
#ifdef MMSPCL__X86_DISPATCH
    if (j->simd) { mmspcl__layernorm_avx512(yr, xr, j->gamma, j->beta, j->dim, j->eps); return; }
#endif
    mmspcl__layernorm_scalar(yr, xr, j->gamma, j->beta, j->dim, j->eps);
}

void mmspcl_layernorm(float *y, const float *x, const float *gamma, const float *beta, int rows,
                      int dim, float eps) {
    mmspcl__ln_job j;
    j.y = y; j.x = x; j.gamma = gamma; j.beta = beta; j.dim = dim; j.eps = eps; j.simd = 0;
#ifdef MMSPCL__X86_DISPATCH
    j.simd = (mmspcl__x86_features(0) & MMSPCL__CPU_AVX512) != 0;
#endif
    /* rows of a few hundred floats: threads only for a batch of them */
    mmspcl__parallel(rows, (size_t)rows * (size_t)dim >= 16384 ? mmspcl__team() : 1, mmspcl__layernorm_task, &j);
}

/* GELU and quick GELU: x86 with AVX2 evaluates erf / exp with polynomials (within 2e-7 absolute
   of erff, about 1 ulp of expf) on 8 values at a time, then the definition does the rest.
   Elementwise, so any split over threads gives the same bits. */
void mmspcl_gelu(float *x, size_t n) {
    size_t i = 0;
#ifdef MMSPCL__X86_DISPATCH
    if (mmspcl__x86_features(0) & MMSPCL__CPU_AVX2) i = mmspcl__act_avx2(x, n, 0);
#endif
    mmspcl__gelu_scalar(x + i, n - i);
}

void mmspcl_gelu_grad(float *d, const float *x, size_t n) {
    size_t i = 0;
#ifdef MMSPCL__X86_DISPATCH
    if (mmspcl__x86_features(0) & MMSPCL__CPU_AVX2) i = mmspcl__gelu_grad_avx2(d, x, n);
#endif
    mmspcl__gelu_grad_scalar(d + i, x + i, n - i);
}

void mmspcl_quick_gelu(float *x, size_t n) {
    size_t i = 0;
#ifdef MMSPCL__X86_DISPATCH
    if (mmspcl__x86_features(0) & MMSPCL__CPU_AVX2) i = mmspcl__act_avx2(x, n, 1);
#endif
    mmspcl__quick_gelu_scalar(x + i, n - i);
}

void mmspcl_softmax(float *x, int n) {
#ifdef MMSPCL__X86_DISPATCH
    if (mmspcl__x86_features(0) & MMSPCL__CPU_AVX2) {
        const float sum = mmspcl__softmax_row_avx2(x, n, 1.0f, NULL);
        int i;
        for (i = 0; i < n; i++) x[i] /= sum;
        return;
    }
#endif
    mmspcl__softmax_scalar(x, n);
}

size_t mmspcl_attention_scratch(int n_k) { return (size_t)mmspcl__team() * (size_t)n_k; }

/* Attention: the AVX-512 kernel when it takes the shape (it returns -1 when not), else the
   definition. */
void mmspcl_attention(float *out, int ld_out, const float *q, int ld_q, const float *k,
                      const float *v, int ld_kv, int n_q, int n_k, int n_heads, int head_dim,
                      const unsigned char *key_valid, float *scratch) {
#ifdef MMSPCL__X86_DISPATCH
    if ((mmspcl__x86_features(0) & MMSPCL__CPU_AVX512) &&
        mmspcl__attention_avx512(out, ld_out, q, ld_q, k, v, ld_kv, n_q, n_k, n_heads, head_dim, key_valid) == 0)
        return;
#endif
    mmspcl__attention_scalar(out, ld_out, q, ld_q, k, v, ld_kv, n_q, n_k, n_heads, head_dim, key_valid, scratch,
                             mmspcl__team());
}

/* ---------------------------------------------------------------------------------------------
   7. Byte-level BPE tokenizer
   The behaviour is described over the declarations. First the generated table of Unicode
   classes and the tokenizer's struct.
   ------------------------------------------------------------------------------------------ */

/* BEGIN GENERATED unicode classes */
/* Generated by tools/reference/gen_bpe_unicode.mjs (Node v20.20.2, Unicode 17.0).
   Entry e: code points from e >> 2 up to the next entry's have class e & 3 (0 other,
   1 letter \p{L}, 2 number \p{N}, 3 space). 1627 entries. */
#define MMSPCL__BPE_UCLASS_N 1627
static const uint32_t mmspcl__bpe_uclass[MMSPCL__BPE_UCLASS_N] = {
    0x0u,0x27u,0x38u,0x83u,0x84u,0xc2u,0xe8u,0x105u,0x16cu,
    0x185u,0x1ecu,0x217u,0x218u,0x283u,0x284u,0x2a9u,0x2acu,0x2cau,
    0x2d0u,0x2d5u,0x2d8u,0x2e6u,0x2e9u,0x2ecu,0x2f2u,0x2fcu,0x301u,
    0x35cu,0x361u,0x3dcu,0x3e1u,0xb08u,0xb19u,0xb48u,0xb81u,0xb94u,
    0xbb1u,0xbb4u,0xbb9u,0xbbcu,0xdc1u,0xdd4u,0xdd9u,0xde0u,0xde9u,
    0xdf8u,0xdfdu,0xe00u,0xe19u,0xe1cu,0xe21u,0xe2cu,0xe31u,0xe34u,
    0xe39u,0xe88u,0xe8du,0xfd8u,0xfddu,0x1208u,0x1229u,0x14c0u,0x14c5u,
    0x155cu,0x1565u,0x1568u,0x1581u,0x1624u,0x1741u,0x17acu,0x17bdu,0x17ccu,
    0x1881u,0x192cu,0x1982u,0x19a8u,0x19b9u,0x19c0u,0x19c5u,0x1b50u,0x1b55u,
    0x1b58u,0x1b95u,0x1b9cu,0x1bb9u,0x1bc2u,0x1be9u,0x1bf4u,0x1bfdu,0x1c00u,
    0x1c41u,0x1c44u,0x1c49u,0x1cc0u,0x1d35u,0x1e98u,0x1ec5u,0x1ec8u,0x1f02u,
    0x1f29u,0x1facu,0x1fd1u,0x1fd8u,0x1fe9u,0x1fecu,0x2001u,0x2058u,0x2069u,
    0x206cu,0x2091u,0x2094u,0x20a1u,0x20a4u,0x2101u,0x2164u,0x2181u,0x21acu,
    0x21c1u,0x2220u,0x2225u,0x2240u,0x2281u,0x2328u,0x2411u,0x24e8u,0x24f5u,
    0x24f8u,0x2541u,0x2544u,0x2561u,0x2588u,0x259au,0x25c0u,0x25c5u,0x2604u,
    0x2615u,0x2634u,0x263du,0x2644u,0x264du,0x26a4u,0x26a9u,0x26c4u,0x26c9u,
    0x26ccu,0x26d9u,0x26e8u,0x26f5u,0x26f8u,0x2739u,0x273cu,0x2771u,0x2778u,
    0x277du,0x2788u,0x279au,0x27c1u,0x27c8u,0x27d2u,0x27e8u,0x27f1u,0x27f4u,
    0x2815u,0x282cu,0x283du,0x2844u,0x284du,0x28a4u,0x28a9u,0x28c4u,0x28c9u,
    0x28d0u,0x28d5u,0x28dcu,0x28e1u,0x28e8u,0x2965u,0x2974u,0x2979u,0x297cu,
    0x299au,0x29c0u,0x29c9u,0x29d4u,0x2a15u,0x2a38u,0x2a3du,0x2a48u,0x2a4du,
    0x2aa4u,0x2aa9u,0x2ac4u,0x2ac9u,0x2ad0u,0x2ad5u,0x2ae8u,0x2af5u,0x2af8u,
    0x2b41u,0x2b44u,0x2b81u,0x2b88u,0x2b9au,0x2bc0u,0x2be5u,0x2be8u,0x2c15u,
    0x2c34u,0x2c3du,0x2c44u,0x2c4du,0x2ca4u,0x2ca9u,0x2cc4u,0x2cc9u,0x2cd0u,
    0x2cd5u,0x2ce8u,0x2cf5u,0x2cf8u,0x2d71u,0x2d78u,0x2d7du,0x2d88u,0x2d9au,
    0x2dc0u,0x2dc5u,0x2dcau,0x2de0u,0x2e0du,0x2e10u,0x2e15u,0x2e2cu,0x2e39u,
    0x2e44u,0x2e49u,0x2e58u,0x2e65u,0x2e6cu,0x2e71u,0x2e74u,0x2e79u,0x2e80u,
    0x2e8du,0x2e94u,0x2ea1u,0x2eacu,0x2eb9u,0x2ee8u,0x2f41u,0x2f44u,0x2f9au,
    0x2fccu,0x3015u,0x3034u,0x3039u,0x3044u,0x3049u,0x30a4u,0x30a9u,0x30e8u,
    0x30f5u,0x30f8u,0x3161u,0x316cu,0x3171u,0x3178u,0x3181u,0x3188u,0x319au,
    0x31c0u,0x31e2u,0x31fcu,0x3201u,0x3204u,0x3215u,0x3234u,0x3239u,0x3244u,
    0x3249u,0x32a4u,0x32a9u,0x32d0u,0x32d5u,0x32e8u,0x32f5u,0x32f8u,0x3371u,
    0x337cu,0x3381u,0x3388u,0x339au,0x33c0u,0x33c5u,0x33ccu,0x3411u,0x3434u,
    0x3439u,0x3444u,0x3449u,0x34ecu,0x34f5u,0x34f8u,0x3539u,0x353cu,0x3551u,
    0x355cu,0x3562u,0x357du,0x3588u,0x359au,0x35e4u,0x35e9u,0x3600u,0x3615u,
    0x365cu,0x3669u,0x36c8u,0x36cdu,0x36f0u,0x36f5u,0x36f8u,0x3701u,0x371cu,
    0x379au,0x37c0u,0x3805u,0x38c4u,0x38c9u,0x38d0u,0x3901u,0x391cu,0x3942u,
    0x3968u,0x3a05u,0x3a0cu,0x3a11u,0x3a14u,0x3a19u,0x3a2cu,0x3a31u,0x3a90u,
    0x3a95u,0x3a98u,0x3a9du,0x3ac4u,0x3ac9u,0x3ad0u,0x3af5u,0x3af8u,0x3b01u,
    0x3b14u,0x3b19u,0x3b1cu,0x3b42u,0x3b68u,0x3b71u,0x3b80u,0x3c01u,0x3c04u,
    0x3c82u,0x3cd0u,0x3d01u,0x3d20u,0x3d25u,0x3db4u,0x3e21u,0x3e34u,0x4001u,
    0x40acu,0x40fdu,0x4102u,0x4128u,0x4141u,0x4158u,0x4169u,0x4178u,0x4185u,
    0x4188u,0x4195u,0x419cu,0x41b9u,0x41c4u,0x41d5u,0x4208u,0x4239u,0x423cu,
    0x4242u,0x4268u,0x4281u,0x4318u,0x431du,0x4320u,0x4335u,0x4338u,0x4341u,
    0x43ecu,0x43f1u,0x4924u,0x4929u,0x4938u,0x4941u,0x495cu,0x4961u,0x4964u,
    0x4969u,0x4978u,0x4981u,0x4a24u,0x4a29u,0x4a38u,0x4a41u,0x4ac4u,0x4ac9u,
    0x4ad8u,0x4ae1u,0x4afcu,0x4b01u,0x4b04u,0x4b09u,0x4b18u,0x4b21u,0x4b5cu,
    0x4b61u,0x4c44u,0x4c49u,0x4c58u,0x4c61u,0x4d6cu,0x4da6u,0x4df4u,0x4e01u,
    0x4e40u,0x4e81u,0x4fd8u,0x4fe1u,0x4ff8u,0x5005u,0x59b4u,0x59bdu,0x5a03u,
    0x5a05u,0x5a6cu,0x5a81u,0x5bacu,0x5bbau,0x5bc5u,0x5be4u,0x5c01u,0x5c48u,
    0x5c7du,0x5cc8u,0x5d01u,0x5d48u,0x5d81u,0x5db4u,0x5db9u,0x5dc4u,0x5e01u,
    0x5ed0u,0x5f5du,0x5f60u,0x5f71u,0x5f74u,0x5f82u,0x5fa8u,0x5fc2u,0x5fe8u,
    0x6042u,0x6068u,0x6081u,0x61e4u,0x6201u,0x6214u,0x621du,0x62a4u,0x62a9u,
    0x62acu,0x62c1u,0x63d8u,0x6401u,0x647cu,0x651au,0x6541u,0x65b8u,0x65c1u,
    0x65d4u,0x6601u,0x66b0u,0x66c1u,0x6728u,0x6742u,0x676cu,0x6801u,0x685cu,
    0x6881u,0x6954u,0x6a02u,0x6a28u,0x6a42u,0x6a68u,0x6a9du,0x6aa0u,0x6c15u,
    0x6cd0u,0x6d15u,0x6d34u,0x6d42u,0x6d68u,0x6e0du,0x6e84u,0x6eb9u,0x6ec2u,
    0x6ee9u,0x6f98u,0x7001u,0x7090u,0x7102u,0x7128u,0x7135u,0x7142u,0x7169u,
    0x71f8u,0x7201u,0x722cu,0x7241u,0x72ecu,0x72f5u,0x7300u,0x73a5u,0x73b4u,
    0x73b9u,0x73d0u,0x73d5u,0x73dcu,0x73e9u,0x73ecu,0x7401u,0x7700u,0x7801u,
    0x7c58u,0x7c61u,0x7c78u,0x7c81u,0x7d18u,0x7d21u,0x7d38u,0x7d41u,0x7d60u,
    0x7d65u,0x7d68u,0x7d6du,0x7d70u,0x7d75u,0x7d78u,0x7d7du,0x7df8u,0x7e01u,
    0x7ed4u,0x7ed9u,0x7ef4u,0x7ef9u,0x7efcu,0x7f09u,0x7f14u,0x7f19u,0x7f34u,
    0x7f41u,0x7f50u,0x7f59u,0x7f70u,0x7f81u,0x7fb4u,0x7fc9u,0x7fd4u,0x7fd9u,
    0x7ff4u,0x8003u,0x802cu,0x80a3u,0x80a8u,0x80bfu,0x80c0u,0x817fu,0x8180u,
    0x81c2u,0x81c5u,0x81c8u,0x81d2u,0x81e8u,0x81fdu,0x8202u,0x8228u,0x8241u,
    0x8274u,0x8409u,0x840cu,0x841du,0x8420u,0x8429u,0x8450u,0x8455u,0x8458u,
    0x8465u,0x8478u,0x8491u,0x8494u,0x8499u,0x849cu,0x84a1u,0x84a4u,0x84a9u,
    0x84b8u,0x84bdu,0x84e8u,0x84f1u,0x8500u,0x8515u,0x8528u,0x8539u,0x853cu,
    0x8542u,0x860du,0x8616u,0x8628u,0x9182u,0x9270u,0x93aau,0x9400u,0x9ddau,
    0x9e50u,0xb001u,0xb394u,0xb3adu,0xb3bcu,0xb3c9u,0xb3d0u,0xb3f6u,0xb3f8u,
    0xb401u,0xb498u,0xb49du,0xb4a0u,0xb4b5u,0xb4b8u,0xb4c1u,0xb5a0u,0xb5bdu,
    0xb5c0u,0xb601u,0xb65cu,0xb681u,0xb69cu,0xb6a1u,0xb6bcu,0xb6c1u,0xb6dcu,
    0xb6e1u,0xb6fcu,0xb701u,0xb71cu,0xb721u,0xb73cu,0xb741u,0xb75cu,0xb761u,
    0xb77cu,0xb8bdu,0xb8c0u,0xc003u,0xc004u,0xc015u,0xc01eu,0xc020u,0xc086u,
    0xc0a8u,0xc0c5u,0xc0d8u,0xc0e2u,0xc0edu,0xc0f4u,0xc105u,0xc25cu,0xc275u,
    0xc280u,0xc285u,0xc3ecu,0xc3f1u,0xc400u,0xc415u,0xc4c0u,0xc4c5u,0xc63cu,
    0xc64au,0xc658u,0xc681u,0xc700u,0xc7c1u,0xc800u,0xc882u,0xc8a8u,0xc922u,
    0xc940u,0xc946u,0xc980u,0xca02u,0xca28u,0xcac6u,0xcb00u,0xd001u,0x13700u,
    0x13801u,0x29234u,0x29341u,0x293f8u,0x29401u,0x29834u,0x29841u,0x29882u,0x298a9u,
    0x298b0u,0x29901u,0x299bcu,0x299fdu,0x29a78u,0x29a81u,0x29b9au,0x29bc0u,0x29c5du,
    0x29c80u,0x29c89u,0x29e24u,0x29e2du,0x29f74u,0x29fc5u,0x2a008u,0x2a00du,0x2a018u,
    0x2a01du,0x2a02cu,0x2a031u,0x2a08cu,0x2a0c2u,0x2a0d8u,0x2a101u,0x2a1d0u,0x2a209u,
    0x2a2d0u,0x2a342u,0x2a368u,0x2a3c9u,0x2a3e0u,0x2a3edu,0x2a3f0u,0x2a3f5u,0x2a3fcu,
    0x2a402u,0x2a429u,0x2a498u,0x2a4c1u,0x2a51cu,0x2a581u,0x2a5f4u,0x2a611u,0x2a6ccu,
    0x2a73du,0x2a742u,0x2a768u,0x2a781u,0x2a794u,0x2a799u,0x2a7c2u,0x2a7e9u,0x2a7fcu,
    0x2a801u,0x2a8a4u,0x2a901u,0x2a90cu,0x2a911u,0x2a930u,0x2a942u,0x2a968u,0x2a981u,
    0x2a9dcu,0x2a9e9u,0x2a9ecu,0x2a9f9u,0x2aac0u,0x2aac5u,0x2aac8u,0x2aad5u,0x2aadcu,
    0x2aae5u,0x2aaf8u,0x2ab01u,0x2ab04u,0x2ab09u,0x2ab0cu,0x2ab6du,0x2ab78u,0x2ab81u,
    0x2abacu,0x2abc9u,0x2abd4u,0x2ac05u,0x2ac1cu,0x2ac25u,0x2ac3cu,0x2ac45u,0x2ac5cu,
    0x2ac81u,0x2ac9cu,0x2aca1u,0x2acbcu,0x2acc1u,0x2ad6cu,0x2ad71u,0x2ada8u,0x2adc1u,
    0x2af8cu,0x2afc2u,0x2afe8u,0x2b001u,0x35e90u,0x35ec1u,0x35f1cu,0x35f2du,0x35ff0u,
    0x3e401u,0x3e9b8u,0x3e9c1u,0x3eb68u,0x3ec01u,0x3ec1cu,0x3ec4du,0x3ec60u,0x3ec75u,
    0x3ec78u,0x3ec7du,0x3eca4u,0x3eca9u,0x3ecdcu,0x3ece1u,0x3ecf4u,0x3ecf9u,0x3ecfcu,
    0x3ed01u,0x3ed08u,0x3ed0du,0x3ed14u,0x3ed19u,0x3eec8u,0x3ef4du,0x3f4f8u,0x3f541u,
    0x3f640u,0x3f649u,0x3f720u,0x3f7c1u,0x3f7f0u,0x3f9c1u,0x3f9d4u,0x3f9d9u,0x3fbf4u,
    0x3fc42u,0x3fc68u,0x3fc85u,0x3fcecu,0x3fd05u,0x3fd6cu,0x3fd99u,0x3fefcu,0x3ff09u,
    0x3ff20u,0x3ff29u,0x3ff40u,0x3ff49u,0x3ff60u,0x3ff69u,0x3ff74u,0x40001u,0x40030u,
    0x40035u,0x4009cu,0x400a1u,0x400ecu,0x400f1u,0x400f8u,0x400fdu,0x40138u,0x40141u,
    0x40178u,0x40201u,0x403ecu,0x4041eu,0x404d0u,0x40502u,0x405e4u,0x4062au,0x40630u,
    0x40a01u,0x40a74u,0x40a81u,0x40b44u,0x40b86u,0x40bf0u,0x40c01u,0x40c82u,0x40c90u,
    0x40cb5u,0x40d06u,0x40d09u,0x40d2au,0x40d2cu,0x40d41u,0x40dd8u,0x40e01u,0x40e78u,
    0x40e81u,0x40f10u,0x40f21u,0x40f40u,0x40f46u,0x40f58u,0x41001u,0x41278u,0x41282u,
    0x412a8u,0x412c1u,0x41350u,0x41361u,0x413f0u,0x41401u,0x414a0u,0x414c1u,0x41590u,
    0x415c1u,0x415ecu,0x415f1u,0x4162cu,0x41631u,0x4164cu,0x41651u,0x41658u,0x4165du,
    0x41688u,0x4168du,0x416c8u,0x416cdu,0x416e8u,0x416edu,0x416f4u,0x41701u,0x417d0u,
    0x41801u,0x41cdcu,0x41d01u,0x41d58u,0x41d81u,0x41da0u,0x41e01u,0x41e18u,0x41e1du,
    0x41ec4u,0x41ec9u,0x41eecu,0x42001u,0x42018u,0x42021u,0x42024u,0x42029u,0x420d8u,
    0x420ddu,0x420e4u,0x420f1u,0x420f4u,0x420fdu,0x42158u,0x42162u,0x42181u,0x421dcu,
    0x421e6u,0x42201u,0x4227cu,0x4229eu,0x422c0u,0x42381u,0x423ccu,0x423d1u,0x423d8u,
    0x423eeu,0x42401u,0x4245au,0x42470u,0x42481u,0x424e8u,0x42501u,0x42568u,0x42601u,
    0x426e0u,0x426f2u,0x426f9u,0x42702u,0x42740u,0x4274au,0x42801u,0x42804u,0x42841u,
    0x42850u,0x42855u,0x42860u,0x42865u,0x428d8u,0x42902u,0x42924u,0x42981u,0x429f6u,
    0x429fcu,0x42a01u,0x42a76u,0x42a80u,0x42b01u,0x42b20u,0x42b25u,0x42b94u,0x42baeu,
    0x42bc0u,0x42c01u,0x42cd8u,0x42d01u,0x42d58u,0x42d62u,0x42d81u,0x42dccu,0x42de2u,
    0x42e01u,0x42e48u,0x42ea6u,0x42ec0u,0x43001u,0x43124u,0x43201u,0x432ccu,0x43301u,
    0x433ccu,0x433eau,0x43401u,0x43490u,0x434c2u,0x434e8u,0x43502u,0x43529u,0x43598u,
    0x435bdu,0x43618u,0x43982u,0x439fcu,0x43a01u,0x43aa8u,0x43ac1u,0x43ac8u,0x43b09u,
    0x43b20u,0x43c01u,0x43c76u,0x43c9du,0x43ca0u,0x43cc1u,0x43d18u,0x43d46u,0x43d54u,
    0x43dc1u,0x43e08u,0x43ec1u,0x43f16u,0x43f30u,0x43f81u,0x43fdcu,0x4400du,0x440e0u,
    0x4414au,0x441c0u,0x441c5u,0x441ccu,0x441d5u,0x441d8u,0x4420du,0x442c0u,0x44341u,
    0x443a4u,0x443c2u,0x443e8u,0x4440du,0x4449cu,0x444dau,0x44500u,0x44511u,0x44514u,
    0x4451du,0x44520u,0x44541u,0x445ccu,0x445d9u,0x445dcu,0x4460du,0x446ccu,0x44705u,
    0x44714u,0x44742u,0x44769u,0x4476cu,0x44771u,0x44774u,0x44786u,0x447d4u,0x44801u,
    0x44848u,0x4484du,0x448b0u,0x448fdu,0x44904u,0x44a01u,0x44a1cu,0x44a21u,0x44a24u,
    0x44a29u,0x44a38u,0x44a3du,0x44a78u,0x44a7du,0x44aa4u,0x44ac1u,0x44b7cu,0x44bc2u,
    0x44be8u,0x44c15u,0x44c34u,0x44c3du,0x44c44u,0x44c4du,0x44ca4u,0x44ca9u,0x44cc4u,
    0x44cc9u,0x44cd0u,0x44cd5u,0x44ce8u,0x44cf5u,0x44cf8u,0x44d41u,0x44d44u,0x44d75u,
    0x44d88u,0x44e01u,0x44e28u,0x44e2du,0x44e30u,0x44e39u,0x44e3cu,0x44e41u,0x44ed8u,
    0x44eddu,0x44ee0u,0x44f45u,0x44f48u,0x44f4du,0x44f50u,0x45001u,0x450d4u,0x4511du,
    0x4512cu,0x45142u,0x45168u,0x4517du,0x45188u,0x45201u,0x452c0u,0x45311u,0x45318u,
    0x4531du,0x45320u,0x45342u,0x45368u,0x45601u,0x456bcu,0x45761u,0x45770u,0x45801u,
    0x458c0u,0x45911u,0x45914u,0x45942u,0x45968u,0x45a01u,0x45aacu,0x45ae1u,0x45ae4u,
    0x45b02u,0x45b28u,0x45b42u,0x45b90u,0x45c01u,0x45c6cu,0x45cc2u,0x45cf0u,0x45d01u,
    0x45d1cu,0x46001u,0x460b0u,0x46281u,0x46382u,0x463ccu,0x463fdu,0x4641cu,0x46425u,
    0x46428u,0x46431u,0x46450u,0x46455u,0x4645cu,0x46461u,0x464c0u,0x464fdu,0x46500u,
    0x46505u,0x46508u,0x46542u,0x46568u,0x46681u,0x466a0u,0x466a9u,0x46744u,0x46785u,
    0x46788u,0x4678du,0x46790u,0x46801u,0x46804u,0x4682du,0x468ccu,0x468e9u,0x468ecu,
    0x46941u,0x46944u,0x46971u,0x46a28u,0x46a75u,0x46a78u,0x46ac1u,0x46be4u,0x46f01u,
    0x46f84u,0x46fc2u,0x46fe8u,0x47001u,0x47024u,0x47029u,0x470bcu,0x47101u,0x47104u,
    0x47142u,0x471b4u,0x471c9u,0x47240u,0x47401u,0x4741cu,0x47421u,0x47428u,0x4742du,
    0x474c4u,0x47519u,0x4751cu,0x47542u,0x47568u,0x47581u,0x47598u,0x4759du,0x475a4u,
    0x475a9u,0x47628u,0x47661u,0x47664u,0x47682u,0x476a8u,0x476c1u,0x47770u,0x47782u,
    0x477a8u,0x47b81u,0x47bccu,0x47c09u,0x47c0cu,0x47c11u,0x47c44u,0x47c49u,0x47cd0u,
    0x47d42u,0x47d68u,0x47ec1u,0x47ec4u,0x47f02u,0x47f54u,0x48001u,0x48e68u,0x49002u,
    0x491bcu,0x49201u,0x49510u,0x4be41u,0x4bfc4u,0x4c001u,0x4d0c0u,0x4d105u,0x4d11cu,
    0x4d181u,0x50fecu,0x51001u,0x5191cu,0x58401u,0x58478u,0x584c2u,0x584e8u,0x5a001u,
    0x5a8e4u,0x5a901u,0x5a97cu,0x5a982u,0x5a9a8u,0x5a9c1u,0x5aafcu,0x5ab02u,0x5ab28u,
    0x5ab41u,0x5abb8u,0x5ac01u,0x5acc0u,0x5ad01u,0x5ad10u,0x5ad42u,0x5ad68u,0x5ad6eu,
    0x5ad88u,0x5ad8du,0x5ade0u,0x5adf5u,0x5ae40u,0x5b501u,0x5b5b4u,0x5b5c2u,0x5b5e8u,
    0x5b901u,0x5ba02u,0x5ba5cu,0x5ba81u,0x5bae4u,0x5baedu,0x5bb50u,0x5bc01u,0x5bd2cu,
    0x5bd41u,0x5bd44u,0x5be4du,0x5be80u,0x5bf81u,0x5bf88u,0x5bf8du,0x5bf90u,0x5bfc9u,
    0x5bfd2u,0x5bfdcu,0x5c001u,0x63358u,0x633fdu,0x6347cu,0x63601u,0x637ccu,0x6bfc1u,
    0x6bfd0u,0x6bfd5u,0x6bff0u,0x6bff5u,0x6bffcu,0x6c001u,0x6c48cu,0x6c4c9u,0x6c4ccu,
    0x6c541u,0x6c54cu,0x6c555u,0x6c558u,0x6c591u,0x6c5a0u,0x6c5c1u,0x6cbf0u,0x6f001u,
    0x6f1acu,0x6f1c1u,0x6f1f4u,0x6f201u,0x6f224u,0x6f241u,0x6f268u,0x733c2u,0x733e8u,
    0x74b02u,0x74b50u,0x74b82u,0x74bd0u,0x74d82u,0x74de4u,0x75001u,0x75154u,0x75159u,
    0x75274u,0x75279u,0x75280u,0x75289u,0x7528cu,0x75295u,0x7529cu,0x752a5u,0x752b4u,
    0x752b9u,0x752e8u,0x752edu,0x752f0u,0x752f5u,0x75310u,0x75315u,0x75418u,0x7541du,
    0x7542cu,0x75435u,0x75454u,0x75459u,0x75474u,0x75479u,0x754e8u,0x754edu,0x754fcu,
    0x75501u,0x75514u,0x75519u,0x7551cu,0x75529u,0x75544u,0x75549u,0x75a98u,0x75aa1u,
    0x75b04u,0x75b09u,0x75b6cu,0x75b71u,0x75becu,0x75bf1u,0x75c54u,0x75c59u,0x75cd4u,
    0x75cd9u,0x75d3cu,0x75d41u,0x75dbcu,0x75dc1u,0x75e24u,0x75e29u,0x75ea4u,0x75ea9u,
    0x75f0cu,0x75f11u,0x75f30u,0x75f3au,0x76000u,0x77c01u,0x77c7cu,0x77c95u,0x77cacu,
    0x780c1u,0x781b8u,0x78401u,0x784b4u,0x784ddu,0x784f8u,0x78502u,0x78528u,0x78539u,
    0x7853cu,0x78a41u,0x78ab8u,0x78b01u,0x78bb0u,0x78bc2u,0x78be8u,0x79341u,0x793b0u,
    0x793c2u,0x793e8u,0x79741u,0x797b8u,0x797c1u,0x797c6u,0x797ecu,0x79b01u,0x79b7cu,
    0x79b81u,0x79b8cu,0x79b91u,0x79b98u,0x79b9du,0x79bb8u,0x79bc1u,0x79bd4u,0x79bf9u,
    0x79c00u,0x79f81u,0x79f9cu,0x79fa1u,0x79fb0u,0x79fb5u,0x79fbcu,0x79fc1u,0x79ffcu,
    0x7a001u,0x7a314u,0x7a31eu,0x7a340u,0x7a401u,0x7a510u,0x7a52du,0x7a530u,0x7a542u,
    0x7a568u,0x7b1c6u,0x7b2b0u,0x7b2b6u,0x7b2c0u,0x7b2c6u,0x7b2d4u,0x7b406u,0x7b4b8u,
    0x7b4beu,0x7b4f8u,0x7b801u,0x7b810u,0x7b815u,0x7b880u,0x7b885u,0x7b88cu,0x7b891u,
    0x7b894u,0x7b89du,0x7b8a0u,0x7b8a5u,0x7b8ccu,0x7b8d1u,0x7b8e0u,0x7b8e5u,0x7b8e8u,
    0x7b8edu,0x7b8f0u,0x7b909u,0x7b90cu,0x7b91du,0x7b920u,0x7b925u,0x7b928u,0x7b92du,
    0x7b930u,0x7b935u,0x7b940u,0x7b945u,0x7b94cu,0x7b951u,0x7b954u,0x7b95du,0x7b960u,
    0x7b965u,0x7b968u,0x7b96du,0x7b970u,0x7b975u,0x7b978u,0x7b97du,0x7b980u,0x7b985u,
    0x7b98cu,0x7b991u,0x7b994u,0x7b99du,0x7b9acu,0x7b9b1u,0x7b9ccu,0x7b9d1u,0x7b9e0u,
    0x7b9e5u,0x7b9f4u,0x7b9f9u,0x7b9fcu,0x7ba01u,0x7ba28u,0x7ba2du,0x7ba70u,0x7ba85u,
    0x7ba90u,0x7ba95u,0x7baa8u,0x7baadu,0x7baf0u,0x7c402u,0x7c434u,0x7efc2u,0x7efe8u,
    0x80001u,0xa9b80u,0xa9c01u,0xae078u,0xae081u,0xb3ab8u,0xb3ac1u,0xbaf84u,0xbafc1u,
    0xbb978u,0xbe001u,0xbe878u,0xc0001u,0xc4d2cu,0xc4d41u,0xcd1e8u
};
/* END GENERATED unicode classes */

enum { MMSPCL__BPE_OTHER = 0, MMSPCL__BPE_LETTER = 1, MMSPCL__BPE_NUMBER = 2, MMSPCL__BPE_SPACE = 3 };
#define MMSPCL__BPE_INVALID 0xFFFFFFFFu  /* code point of a byte that starts no valid UTF-8 */
#define MMSPCL__BPE_LOCAL 256            /* pieces up to this many bytes need no allocation */
#define MMSPCL__BPE_N_SPECIAL 5

static const char *const mmspcl__bpe_special_names[MMSPCL__BPE_N_SPECIAL] = {
    "<s>", "<pad>", "</s>", "<unk>", "<mask>"};
enum { MMSPCL__BPE_BOS, MMSPCL__BPE_PAD, MMSPCL__BPE_EOS, MMSPCL__BPE_UNK, MMSPCL__BPE_MASK };

struct mmspcl_bpe {
    int64_t n_vocab;
    char *pool;                 /* every token string, NUL-terminated */
    size_t *tok_off;            /* [n_vocab] offset in pool */
    uint32_t *tok_len;          /* [n_vocab] bytes; 0 = hole */
    int32_t *vocab_slot;        /* open addressing: id + 1, 0 = empty */
    uint32_t vocab_mask;
    uint64_t *merge_key;        /* (left << 32 | right), UINT64_MAX = empty */
    uint32_t *merge_rank;
    int32_t *merge_new;
    uint32_t merge_mask;
    int64_t n_merges;
    int32_t byte_id[256];       /* id of the one-character token of each byte, -1 if absent */
    uint16_t byte_cp[256];      /* GPT-2's bytes_to_unicode */
    int16_t cp_byte[324];       /* its inverse (code points 0..323), -1 elsewhere */
    int32_t special[MMSPCL__BPE_N_SPECIAL];
};

/* ---- 7.1 Unicode ------------------------------------------------------------------------- */

/* Decodes one well-formed UTF-8 sequence (Unicode Table 3-7) at s[0..n); n >= 1. Anything else
   is one invalid byte: *cp = MMSPCL__BPE_INVALID, length 1. */
static size_t mmspcl__bpe_utf8(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xC2 && c <= 0xDF) {
        if (n >= 2 && (s[1] & 0xC0) == 0x80) { *cp = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F); return 2; }
    } else if (c >= 0xE0 && c <= 0xEF) {
        unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        if (n >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80) {
            *cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
            return 3;
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        if (n >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80) {
            *cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
                  ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
            return 4;
        }
    }
    *cp = MMSPCL__BPE_INVALID;
    return 1;
}

static int mmspcl__bpe_class(uint32_t cp) {
    size_t lo = 0, hi = MMSPCL__BPE_UCLASS_N;
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return MMSPCL__BPE_LETTER;
        if (cp >= '0' && cp <= '9') return MMSPCL__BPE_NUMBER;
        if (cp == ' ' || (cp >= 9 && cp <= 13)) return MMSPCL__BPE_SPACE;
        return MMSPCL__BPE_OTHER;
    }
    if (cp > 0x10FFFF) return MMSPCL__BPE_OTHER;  /* invalid byte */
    /* last entry whose first code point is <= cp */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if ((mmspcl__bpe_uclass[mid] >> 2) <= cp) lo = mid; else hi = mid;
    }
    return (int)(mmspcl__bpe_uclass[lo] & 3);
}

/* Start of the run of whitespace characters (White_Space) that ends at s[hi], not below lo. */
static size_t mmspcl__bpe_ws_run_start(const unsigned char *s, size_t lo, size_t hi) {
    while (hi > lo) {
        unsigned a = s[hi - 1];
        if (a == ' ' || (a >= 9 && a <= 13)) { hi -= 1; continue; }
        if (hi - lo >= 2 && s[hi - 2] == 0xC2 && (a == 0x85 || a == 0xA0)) { hi -= 2; continue; }
        if (hi - lo >= 3) {
            unsigned b1 = s[hi - 3], b2 = s[hi - 2];
            if ((b1 == 0xE1 && b2 == 0x9A && a == 0x80) ||                       /* U+1680 */
                (b1 == 0xE2 && b2 == 0x80 && (a <= 0x8A || a == 0xA8 || a == 0xA9 || a == 0xAF)) ||
                (b1 == 0xE2 && b2 == 0x81 && a == 0x9F) ||                       /* U+205F */
                (b1 == 0xE3 && b2 == 0x80 && a == 0x80)) {                       /* U+3000 */
                hi -= 3;
                continue;
            }
        }
        break;
    }
    return hi;
}

/* ---- 7.2 Hashing ------------------------------------------------------------------------- */

static uint64_t mmspcl__bpe_hash_bytes(uint64_t h, const unsigned char *s, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) { h ^= s[i]; h *= 0x100000001B3ull; }
    return h;
}
#define MMSPCL__BPE_FNV0 0xCBF29CE484222325ull

static uint32_t mmspcl__bpe_mix(uint64_t h) {
    h ^= h >> 33; h *= 0xFF51AFD7ED558CCDull; h ^= h >> 33;
    return (uint32_t)h;
}

/* Id of the token a ++ b (b may be empty), -1 if absent. */
static int32_t mmspcl__bpe_lookup2(const mmspcl_bpe *bpe, const char *a, size_t na, const char *b,
                                   size_t nb) {
    uint64_t h = mmspcl__bpe_hash_bytes(MMSPCL__BPE_FNV0, (const unsigned char *)a, na);
    uint32_t i;
    h = mmspcl__bpe_hash_bytes(h, (const unsigned char *)b, nb);
    for (i = mmspcl__bpe_mix(h) & bpe->vocab_mask;; i = (i + 1) & bpe->vocab_mask) {
        int32_t id = bpe->vocab_slot[i] - 1;
        const char *t;
        if (id < 0) return -1;
        t = bpe->pool + bpe->tok_off[id];
        if (bpe->tok_len[id] == na + nb && !memcmp(t, a, na) && (nb == 0 || !memcmp(t + na, b, nb)))
            return id;
    }
}

static uint32_t mmspcl__bpe_pair_slot(uint64_t key, uint32_t mask) {
    return mmspcl__bpe_mix(key * 0x9E3779B97F4A7C15ull) & mask;
}

/* Rank and result of merging the pair (l, r); 0 when there is no such merge. */
static int mmspcl__bpe_merge_get(const mmspcl_bpe *bpe, int32_t l, int32_t r, uint32_t *rank,
                                 int32_t *new_id) {
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    uint32_t i;
    for (i = mmspcl__bpe_pair_slot(key, bpe->merge_mask);; i = (i + 1) & bpe->merge_mask) {
        uint64_t k = bpe->merge_key[i];
        if (k == key) { *rank = bpe->merge_rank[i]; *new_id = bpe->merge_new[i]; return 1; }
        if (k == UINT64_MAX) return 0;
    }
}

static uint32_t mmspcl__bpe_pow2(int64_t n) {
    uint32_t c = 16;
    while ((int64_t)c < 2 * n) c <<= 1;
    return c;
}

/* ---- 7.3 Loading ------------------------------------------------------------------------- */

void mmspcl_bpe_free(mmspcl_bpe *bpe) {
    if (!bpe) return;
    MMSPCL_FREE(bpe->pool);
    MMSPCL_FREE(bpe->tok_off);
    MMSPCL_FREE(bpe->tok_len);
    MMSPCL_FREE(bpe->vocab_slot);
    MMSPCL_FREE(bpe->merge_key);
    MMSPCL_FREE(bpe->merge_rank);
    MMSPCL_FREE(bpe->merge_new);
    MMSPCL_FREE(bpe);
}

/* s[0..len) for a message: at most 48 bytes, control bytes and bytes outside well-formed UTF-8 as
   \xNN, "..." when cut; always NUL-terminated in buf (64 bytes at least). */
static const char *mmspcl__bpe_show(char *buf, size_t cap, const char *s, size_t len) {
    size_t i = 0, o = 0;
    while (s && i < len && i < 48 && o + 8 < cap) {
        uint32_t cp;
        size_t k = mmspcl__bpe_utf8((const unsigned char *)s + i, len - i, &cp);
        if (cp == MMSPCL__BPE_INVALID || cp < 0x20 || cp == 0x7F) {
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02X", (unsigned)(unsigned char)s[i]);
            i++;
        } else {
            memcpy(buf + o, s + i, k);
            o += k;
            i += k;
        }
    }
    if (s && i < len && o + 4 <= cap) { memcpy(buf + o, "...", 3); o += 3; }
    buf[o] = 0;
    return buf;
}

/* MMSPCL_BPE_STRICT, on a built tokenizer: no holes, no token twice, the five specials present. */
static mmspcl_status mmspcl__bpe_strict(const mmspcl_bpe *bpe, mmspcl_error *err) {
    char miss[64], show[128];
    size_t ml = 0;
    int64_t i;
    int k;
    for (i = 0; i < bpe->n_vocab; i++) {
        const char *t = bpe->pool + bpe->tok_off[i];
        int32_t first;
        if (!bpe->tok_len[i])
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "bpe: token id %lld is empty (every id from 0 to %lld needs a token)",
                                (long long)i, (long long)bpe->n_vocab - 1);
        if ((first = mmspcl__bpe_lookup2(bpe, t, bpe->tok_len[i], "", 0)) != (int32_t)i)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "bpe: token \"%s\" has two ids, %d and %lld (one id per token)",
                                mmspcl__bpe_show(show, sizeof show, t, bpe->tok_len[i]), (int)first, (long long)i);
    }
    miss[0] = 0;
    for (k = 0; k < MMSPCL__BPE_N_SPECIAL; k++)
        if (bpe->special[k] < 0)
            ml += (size_t)snprintf(miss + ml, sizeof miss - ml, "%s%s", ml ? " " : "", mmspcl__bpe_special_names[k]);
    if (ml)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "bpe: the vocabulary lacks the special token%s %s "
                            "(RoBERTa and the SPCL prompt need all of <s> <pad> </s> <unk> <mask>)", strchr(miss, ' ') ? "s" : "", miss);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_bpe_from_arrays(mmspcl_bpe **out, const char *const *vocab,
                                     const uint32_t *vocab_lens, int64_t n_vocab,
                                     const char *const *merges, const uint32_t *merge_lens,
                                     int64_t n_merges, mmspcl_error *err) {
    if (!out) return mmspcl__fail(err, MMSPCL_ERR_ARG, "bpe: out is NULL");
    return mmspcl_bpe_from_arrays_ex(out, vocab, vocab_lens, n_vocab, merges, merge_lens, n_merges, 0, NULL, err);
}

mmspcl_status mmspcl_bpe_from_arrays_ex(mmspcl_bpe **out, const char *const *vocab,
                                        const uint32_t *vocab_lens, int64_t n_vocab,
                                        const char *const *merges, const uint32_t *merge_lens,
                                        int64_t n_merges, int flags, int64_t *bad_merge,
                                        mmspcl_error *err) {
    mmspcl_bpe *bpe;
    size_t pool_size = 0, off = 0;
    int64_t i, first = 0;
    int b, n_cp = 0;
    char show[128];
    mmspcl_status st;
    if (out) *out = NULL;
    if (bad_merge) *bad_merge = -1;
    if (!vocab || n_vocab <= 0 || n_vocab > 0x3FFFFFFF)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "bpe: vocabulary of %lld tokens (1..2^30 allowed)", (long long)n_vocab);
    if (n_merges < 0 || n_merges > 0x3FFFFFFF || (n_merges > 0 && !merges))
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "bpe: %lld merges (0..2^30 allowed)", (long long)n_merges);
    for (i = 0; i < n_vocab; i++) {
        size_t len = vocab[i] ? (vocab_lens ? vocab_lens[i] : strlen(vocab[i])) : 0;
        if (len > 0xFFFFFF) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "bpe: token %lld is %zu bytes long", (long long)i, len);
        pool_size += len + 1;
    }
    bpe = (mmspcl_bpe *)MMSPCL_MALLOC(sizeof *bpe);
    if (!bpe) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "bpe: out of memory");
    memset(bpe, 0, sizeof *bpe);
    bpe->n_vocab = n_vocab;
    bpe->vocab_mask = mmspcl__bpe_pow2(n_vocab) - 1;
    bpe->merge_mask = mmspcl__bpe_pow2(n_merges) - 1;
    bpe->pool = (char *)MMSPCL_MALLOC(pool_size);
    bpe->tok_off = (size_t *)MMSPCL_MALLOC((size_t)n_vocab * sizeof(size_t));
    bpe->tok_len = (uint32_t *)MMSPCL_MALLOC((size_t)n_vocab * sizeof(uint32_t));
    bpe->vocab_slot = (int32_t *)MMSPCL_MALLOC(((size_t)bpe->vocab_mask + 1) * sizeof(int32_t));
    bpe->merge_key = (uint64_t *)MMSPCL_MALLOC(((size_t)bpe->merge_mask + 1) * sizeof(uint64_t));
    bpe->merge_rank = (uint32_t *)MMSPCL_MALLOC(((size_t)bpe->merge_mask + 1) * sizeof(uint32_t));
    bpe->merge_new = (int32_t *)MMSPCL_MALLOC(((size_t)bpe->merge_mask + 1) * sizeof(int32_t));
    if (!bpe->pool || !bpe->tok_off || !bpe->tok_len || !bpe->vocab_slot || !bpe->merge_key ||
        !bpe->merge_rank || !bpe->merge_new) {
        mmspcl_bpe_free(bpe);
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "bpe: out of memory for %lld tokens and %lld merges",
                            (long long)n_vocab, (long long)n_merges);
    }
    memset(bpe->vocab_slot, 0, ((size_t)bpe->vocab_mask + 1) * sizeof(int32_t));
    memset(bpe->merge_key, 0xFF, ((size_t)bpe->merge_mask + 1) * sizeof(uint64_t));

    /* vocabulary: copy, and index every non-empty token (the first id wins on duplicates) */
    for (i = 0; i < n_vocab; i++) {
        size_t len = vocab[i] ? (vocab_lens ? vocab_lens[i] : strlen(vocab[i])) : 0;
        bpe->tok_off[i] = off;
        bpe->tok_len[i] = (uint32_t)len;
        if (len) memcpy(bpe->pool + off, vocab[i], len);
        bpe->pool[off + len] = 0;
        off += len + 1;
        if (len && mmspcl__bpe_lookup2(bpe, vocab[i], len, "", 0) < 0) {
            uint64_t h = mmspcl__bpe_hash_bytes(MMSPCL__BPE_FNV0, (const unsigned char *)vocab[i], len);
            uint32_t s = mmspcl__bpe_mix(h) & bpe->vocab_mask;
            while (bpe->vocab_slot[s]) s = (s + 1) & bpe->vocab_mask;
            bpe->vocab_slot[s] = (int32_t)i + 1;
        }
    }

    /* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to 256+n */
    for (b = 0; b < 324; b++) bpe->cp_byte[b] = -1;
    for (b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        char u[2];
        size_t ul;
        uint32_t cp = keep ? (uint32_t)b : (uint32_t)(256 + n_cp++);
        bpe->byte_cp[b] = (uint16_t)cp;
        bpe->cp_byte[cp] = (int16_t)b;
        if (cp < 0x80) { u[0] = (char)cp; ul = 1; }
        else { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); ul = 2; }
        bpe->byte_id[b] = mmspcl__bpe_lookup2(bpe, u, ul, "", 0);
    }

    /* merges: "left right" -> (rank, id of left ++ right); a later duplicate replaces an
       earlier one, as in Hugging Face's HashMap */
    if (n_merges > 0) {
        size_t l0 = merge_lens ? merge_lens[0] : (merges[0] ? strlen(merges[0]) : 0);
        if (merges[0] && l0 >= 8 && !memcmp(merges[0], "#version", 8)) first = 1;
    }
    for (i = first; i < n_merges; i++) {
        const char *m = merges[i], *sp;
        size_t len = m ? (merge_lens ? merge_lens[i] : strlen(m)) : 0;
        int32_t lid, rid, nid;
        uint64_t key;
        uint32_t s;
        sp = len ? (const char *)memchr(m, ' ', len) : NULL;
        if (!sp || sp == m || sp == m + len - 1 || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - m))) {
            mmspcl_bpe_free(bpe);
            if (bad_merge) *bad_merge = i;
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "bpe: merge %lld \"%s\" is not \"left right\" (two tokens, one space)",
                                (long long)i, mmspcl__bpe_show(show, sizeof show, m, len));
        }
        lid = mmspcl__bpe_lookup2(bpe, m, (size_t)(sp - m), "", 0);
        rid = mmspcl__bpe_lookup2(bpe, sp + 1, len - (size_t)(sp + 1 - m), "", 0);
        nid = mmspcl__bpe_lookup2(bpe, m, (size_t)(sp - m), sp + 1, len - (size_t)(sp + 1 - m));
        if (lid < 0 || rid < 0 || nid < 0) {
            mmspcl_bpe_free(bpe);
            if (bad_merge) *bad_merge = i;
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "bpe: merge %lld \"%s\": %s is not in the vocabulary",
                                (long long)i, mmspcl__bpe_show(show, sizeof show, m, len),
                                lid < 0 ? "its left part" : rid < 0 ? "its right part" : "the merged token");
        }
        key = ((uint64_t)(uint32_t)lid << 32) | (uint32_t)rid;
        for (s = mmspcl__bpe_pair_slot(key, bpe->merge_mask);; s = (s + 1) & bpe->merge_mask)
            if (bpe->merge_key[s] == key || bpe->merge_key[s] == UINT64_MAX) break;
        if (bpe->merge_key[s] == UINT64_MAX) bpe->n_merges++;
        bpe->merge_key[s] = key;
        bpe->merge_rank[s] = (uint32_t)(i - first);
        bpe->merge_new[s] = nid;
    }
    for (b = 0; b < MMSPCL__BPE_N_SPECIAL; b++) {
        const char *nm = mmspcl__bpe_special_names[b];
        bpe->special[b] = mmspcl__bpe_lookup2(bpe, nm, strlen(nm), "", 0);
    }
    if ((flags & MMSPCL_BPE_STRICT) && (st = mmspcl__bpe_strict(bpe, err))) {
        mmspcl_bpe_free(bpe);
        return st;
    }
    if (out) *out = bpe;
    else mmspcl_bpe_free(bpe);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_bpe_from_weights(mmspcl_bpe **out, const mmspcl_weights *w, mmspcl_error *err) {
    const mmspcl_kv *v, *m;
    if (!out) return mmspcl__fail(err, MMSPCL_ERR_ARG, "bpe: out is NULL");
    *out = NULL;
    if (!w) return mmspcl__fail(err, MMSPCL_ERR_ARG, "bpe: weights are NULL");
    v = mmspcl_weights_get(w, "tokenizer.vocab");
    m = mmspcl_weights_get(w, "tokenizer.merges");
    if (!v || !m)
        return mmspcl__fail(err, MMSPCL_ERR_NOT_FOUND, "bpe: the weight file has no %s (convert it with the tokenizer files next to the checkpoint)",
                            !v ? "tokenizer.vocab" : "tokenizer.merges");
    if (v->type != MMSPCL_KV_STR_ARRAY || m->type != MMSPCL_KV_STR_ARRAY)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "bpe: %s is not a string array",
                            v->type != MMSPCL_KV_STR_ARRAY ? "tokenizer.vocab" : "tokenizer.merges");
    return mmspcl_bpe_from_arrays(out, v->strs, v->lens, v->count, m->strs, m->lens, m->count, err);
}

/* ---- 7.4 Encoding ------------------------------------------------------------------------ */

typedef struct { int32_t c, prev, next; uint32_t len; } mmspcl__bpe_sym;
typedef struct { uint32_t rank, pos; int32_t new_id; } mmspcl__bpe_mrg;

typedef struct {
    mmspcl__bpe_sym *sym;       /* cap symbols */
    mmspcl__bpe_mrg *heap;      /* 3 * cap entries */
    size_t cap;
    int32_t *ids;
    int max_ids;
    int64_t count;
    int failed;
    mmspcl__bpe_sym sym_local[MMSPCL__BPE_LOCAL];
    mmspcl__bpe_mrg heap_local[3 * MMSPCL__BPE_LOCAL];
} mmspcl__bpe_ctx;

static void mmspcl__bpe_emit(mmspcl__bpe_ctx *cx, int32_t id) {
    if (cx->count < cx->max_ids) cx->ids[cx->count] = id;
    cx->count++;
}

/* min-heap on (rank, pos): the lowest rank first, the leftmost on ties */
static int mmspcl__bpe_less(const mmspcl__bpe_mrg *a, const mmspcl__bpe_mrg *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void mmspcl__bpe_push(mmspcl__bpe_mrg *h, size_t *n, mmspcl__bpe_mrg m) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!mmspcl__bpe_less(&m, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = m;
}

static mmspcl__bpe_mrg mmspcl__bpe_pop(mmspcl__bpe_mrg *h, size_t *n) {
    mmspcl__bpe_mrg top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && mmspcl__bpe_less(&h[c + 1], &h[c])) c++;
        if (!mmspcl__bpe_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

/* BPE of one pre-tokenised piece, with Hugging Face's algorithm (models/bpe/word.rs merge_all). */
static void mmspcl__bpe_word(const mmspcl_bpe *bpe, mmspcl__bpe_ctx *cx, const unsigned char *s,
                             size_t n) {
    mmspcl__bpe_sym *sym;
    mmspcl__bpe_mrg *heap;
    size_t i, m = 0, nh = 0;
    uint32_t rank;
    int32_t nid;
    if (n == 1) {
        if (bpe->byte_id[s[0]] >= 0) mmspcl__bpe_emit(cx, bpe->byte_id[s[0]]);
        return;
    }
    if (n > cx->cap) {
        size_t cap = cx->cap;
        while (cap < n) cap *= 2;
        if (cx->sym != cx->sym_local) { MMSPCL_FREE(cx->sym); MMSPCL_FREE(cx->heap); }
        cx->sym = (mmspcl__bpe_sym *)MMSPCL_MALLOC(cap * sizeof(mmspcl__bpe_sym));
        cx->heap = (mmspcl__bpe_mrg *)MMSPCL_MALLOC(3 * cap * sizeof(mmspcl__bpe_mrg));
        if (!cx->sym || !cx->heap) {
            MMSPCL_FREE(cx->sym);
            MMSPCL_FREE(cx->heap);
            cx->sym = cx->sym_local;
            cx->heap = cx->heap_local;
            cx->cap = MMSPCL__BPE_LOCAL;
            cx->failed = 1;
            return;
        }
        cx->cap = cap;
    }
    sym = cx->sym;
    heap = cx->heap;
    /* one symbol per byte (a byte whose character is not in the vocabulary is dropped, as
       Hugging Face's BPE without unk_token does) */
    for (i = 0; i < n; i++) {
        int32_t id = bpe->byte_id[s[i]];
        if (id < 0) continue;
        sym[m].c = id;
        sym[m].prev = (int32_t)m - 1;
        sym[m].next = (int32_t)m + 1;
        sym[m].len = 1;
        m++;
    }
    if (m == 0) return;
    sym[m - 1].next = -1;
    for (i = 0; i + 1 < m; i++) {
        if (mmspcl__bpe_merge_get(bpe, sym[i].c, sym[i + 1].c, &rank, &nid)) {
            mmspcl__bpe_mrg e;
            e.rank = rank; e.pos = (uint32_t)i; e.new_id = nid;
            mmspcl__bpe_push(heap, &nh, e);
        }
    }
    while (nh) {
        mmspcl__bpe_mrg top = mmspcl__bpe_pop(heap, &nh);
        mmspcl__bpe_sym *cur = &sym[top.pos], *right;
        int32_t nx;
        if (cur->len == 0 || cur->next < 0) continue;
        nx = cur->next;
        right = &sym[nx];
        /* a stale entry: the pair at pos changed since it was queued */
        if (!mmspcl__bpe_merge_get(bpe, cur->c, right->c, &rank, &nid) || nid != top.new_id) continue;
        cur->c = top.new_id;
        cur->len += right->len;
        cur->next = right->next;
        right->len = 0;
        if (cur->next >= 0) sym[cur->next].prev = (int32_t)top.pos;
        if (cur->prev >= 0 && mmspcl__bpe_merge_get(bpe, sym[cur->prev].c, cur->c, &rank, &nid)) {
            mmspcl__bpe_mrg e;
            e.rank = rank; e.pos = (uint32_t)cur->prev; e.new_id = nid;
            mmspcl__bpe_push(heap, &nh, e);
        }
        if (cur->next >= 0 && mmspcl__bpe_merge_get(bpe, cur->c, sym[cur->next].c, &rank, &nid)) {
            mmspcl__bpe_mrg e;
            e.rank = rank; e.pos = top.pos; e.new_id = nid;
            mmspcl__bpe_push(heap, &nh, e);
        }
    }
    for (nid = 0; nid >= 0; nid = sym[nid].next) mmspcl__bpe_emit(cx, sym[nid].c);
}

/* GPT-2's pre-tokenisation of s[0..n) (no special tokens in it); BPE of every piece. */
static void mmspcl__bpe_pretok(const mmspcl_bpe *bpe, mmspcl__bpe_ctx *cx, const unsigned char *s,
                               size_t n) {
    size_t i = 0;
    while (i < n && !cx->failed) {
        uint32_t cp;
        size_t l0 = mmspcl__bpe_utf8(s + i, n - i, &cp), j;
        int k = mmspcl__bpe_class(cp);
        /* 's|'t|'re|'ve|'m|'ll|'d */
        if (s[i] == '\'' && i + 1 < n) {
            unsigned a = s[i + 1];
            if (a == 's' || a == 't' || a == 'm' || a == 'd') {
                mmspcl__bpe_word(bpe, cx, s + i, 2);
                i += 2;
                continue;
            }
            if (i + 2 < n && ((a == 'r' && s[i + 2] == 'e') || (a == 'v' && s[i + 2] == 'e') ||
                              (a == 'l' && s[i + 2] == 'l'))) {
                mmspcl__bpe_word(bpe, cx, s + i, 3);
                i += 3;
                continue;
            }
        }
        /*  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+ */
        j = i + l0;
        if (s[i] == ' ' && i + 1 < n) {
            uint32_t c1;
            size_t l1 = mmspcl__bpe_utf8(s + i + 1, n - i - 1, &c1);
            int k1 = mmspcl__bpe_class(c1);
            if (k1 != MMSPCL__BPE_SPACE) { k = k1; j = i + 1 + l1; }
        }
        if (k != MMSPCL__BPE_SPACE) {
            while (j < n) {
                size_t l = mmspcl__bpe_utf8(s + j, n - j, &cp);
                if (mmspcl__bpe_class(cp) != k) break;
                j += l;
            }
        } else {
            /* \s+(?!\S) | \s+ : a run of whitespace followed by a non-space gives up its last
               character (which then starts the next piece), unless it is the only one */
            size_t last = i;
            j = i;
            while (j < n) {
                size_t l = mmspcl__bpe_utf8(s + j, n - j, &cp);
                if (mmspcl__bpe_class(cp) != MMSPCL__BPE_SPACE) break;
                last = j;
                j += l;
            }
            if (j < n && last > i) j = last;
        }
        mmspcl__bpe_word(bpe, cx, s + i, j - i);
        i = j;
    }
}

int mmspcl_bpe_encode_ex(const mmspcl_bpe *bpe, const char *text, size_t len, int32_t *ids,
                         int max_ids, int flags) {
    const unsigned char *s = (const unsigned char *)text;
    mmspcl__bpe_ctx *cx, cx_store;
    size_t seg = 0, p = 0;
    int have_special = 0, k;
    if (!bpe || (!text && len > 0) || len > 0x3FFFFFFF) return -1;
    cx = &cx_store;
    cx->sym = cx->sym_local;
    cx->heap = cx->heap_local;
    cx->cap = MMSPCL__BPE_LOCAL;
    cx->ids = ids;
    cx->max_ids = ids ? (max_ids > 0 ? max_ids : 0) : 0;
    cx->count = 0;
    cx->failed = 0;
    if ((flags & MMSPCL_BPE_ADD_SPECIAL) && bpe->special[MMSPCL__BPE_BOS] >= 0)
        mmspcl__bpe_emit(cx, bpe->special[MMSPCL__BPE_BOS]);
    for (k = 0; k < MMSPCL__BPE_N_SPECIAL; k++) have_special |= bpe->special[k] >= 0;
    if (have_special && !(flags & MMSPCL_BPE_NO_SPECIAL_SPLIT)) {
        while (p < len) {
            const unsigned char *q = (const unsigned char *)memchr(s + p, '<', len - p);
            size_t pos, start, sl = 0;
            int match = -1;
            if (!q) break;
            pos = (size_t)(q - s);
            for (k = 0; k < MMSPCL__BPE_N_SPECIAL && match < 0; k++) {
                const char *nm = mmspcl__bpe_special_names[k];
                sl = strlen(nm);
                if (bpe->special[k] >= 0 && len - pos >= sl && !memcmp(s + pos, nm, sl)) match = k;
            }
            if (match < 0) { p = pos + 1; continue; }
            start = match == MMSPCL__BPE_MASK ? mmspcl__bpe_ws_run_start(s, seg, pos) : pos;  /* lstrip */
            mmspcl__bpe_pretok(bpe, cx, s + seg, start - seg);
            mmspcl__bpe_emit(cx, bpe->special[match]);
            seg = p = pos + sl;
        }
    }
    mmspcl__bpe_pretok(bpe, cx, s + seg, len - seg);
    if ((flags & MMSPCL_BPE_ADD_SPECIAL) && bpe->special[MMSPCL__BPE_EOS] >= 0)
        mmspcl__bpe_emit(cx, bpe->special[MMSPCL__BPE_EOS]);
    if (cx->sym != cx->sym_local) { MMSPCL_FREE(cx->sym); MMSPCL_FREE(cx->heap); }
    if (cx->failed) return -1;
    return (int)cx->count;
}

int mmspcl_bpe_encode(const mmspcl_bpe *bpe, const char *text, size_t len, int32_t *ids,
                      int max_ids) {
    return mmspcl_bpe_encode_ex(bpe, text, len, ids, max_ids, 0);
}

/* ---- 7.5 Decoding and lookups ------------------------------------------------------------ */

size_t mmspcl_bpe_decode(const mmspcl_bpe *bpe, const int32_t *ids, int n, char *out, size_t cap) {
    size_t total = 0;
    int t, k;
    if (!bpe || !ids) n = 0;
    for (t = 0; t < n; t++) {
        int32_t id = ids[t];
        const unsigned char *s;
        size_t len, i, l;
        int special = 0, mapped = 1;
        if (id < 0 || id >= bpe->n_vocab || bpe->tok_len[id] == 0) continue;
        s = (const unsigned char *)bpe->pool + bpe->tok_off[id];
        len = bpe->tok_len[id];
        for (k = 0; k < MMSPCL__BPE_N_SPECIAL; k++) special |= bpe->special[k] == id;
        /* every character through the reverse byte table; a token with a character outside it
           comes out verbatim (as Hugging Face's ByteLevel decoder does) */
        if (!special) {
            for (i = 0; i < len && mapped; i += l) {
                uint32_t cp;
                l = mmspcl__bpe_utf8(s + i, len - i, &cp);
                mapped = cp < 324 && bpe->cp_byte[cp] >= 0;
            }
        }
        for (i = 0; i < len; i += l) {
            unsigned char byte;
            if (special || !mapped) { byte = s[i]; l = 1; }
            else {
                uint32_t cp;
                l = mmspcl__bpe_utf8(s + i, len - i, &cp);
                byte = (unsigned char)bpe->cp_byte[cp];
            }
            if (out && total + 1 < cap) out[total] = (char)byte;
            total++;
        }
    }
    if (out && cap > 0) out[total < cap ? total : cap - 1] = 0;
    return total;
}

int32_t mmspcl_bpe_token_id(const mmspcl_bpe *bpe, const char *token) {
    if (!bpe || !token || !*token) return -1;
    return mmspcl__bpe_lookup2(bpe, token, strlen(token), "", 0);
}

const char *mmspcl_bpe_token_str(const mmspcl_bpe *bpe, int32_t id, size_t *len) {
    if (!bpe || id < 0 || id >= bpe->n_vocab || bpe->tok_len[id] == 0) return NULL;
    if (len) *len = bpe->tok_len[id];
    return bpe->pool + bpe->tok_off[id];
}

int64_t mmspcl_bpe_vocab_size(const mmspcl_bpe *bpe) { return bpe ? bpe->n_vocab : 0; }
int32_t mmspcl_bpe_bos_id(const mmspcl_bpe *bpe) { return bpe ? bpe->special[MMSPCL__BPE_BOS] : -1; }
int32_t mmspcl_bpe_pad_id(const mmspcl_bpe *bpe) { return bpe ? bpe->special[MMSPCL__BPE_PAD] : -1; }
int32_t mmspcl_bpe_eos_id(const mmspcl_bpe *bpe) { return bpe ? bpe->special[MMSPCL__BPE_EOS] : -1; }
int32_t mmspcl_bpe_unk_id(const mmspcl_bpe *bpe) { return bpe ? bpe->special[MMSPCL__BPE_UNK] : -1; }
int32_t mmspcl_bpe_mask_id(const mmspcl_bpe *bpe) { return bpe ? bpe->special[MMSPCL__BPE_MASK] : -1; }

/* ---------------------------------------------------------------------------------------------
   8. RoBERTa encoder
   ------------------------------------------------------------------------------------------ */
/* A model's packed copies of its Linear weights (mmspcl_tensor_pack), 6 a layer: the weight
   pointers at offsets offs[] of each of the n_layers layers (stride bytes apart) are repointed at
   the copies made. A weight file
   that is mmap'd gives the pages of a packed weight back (MADV_DONTNEED: they are read again from
   the file should anything use them), so memory holds the packed copy instead of both. */
typedef struct mmspcl__packed_set { mmspcl_tensor *t; int n; } mmspcl__packed_set;
static mmspcl_status mmspcl__pack_model(mmspcl__packed_set *ps, const mmspcl_weights *w, void *layers, size_t stride,
                                        const size_t offs[6], int n_layers, mmspcl_error *err) {
    const int n = 6 * n_layers;
    int i;
    if (!(ps->t = (mmspcl_tensor *)MMSPCL_MALLOC((size_t)n * sizeof *ps->t))) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "out of memory");
    memset(ps->t, 0, (size_t)n * sizeof *ps->t);
    ps->n = n;
    for (i = 0; i < n; i++) {
        const mmspcl_tensor **slot = (const mmspcl_tensor **)((unsigned char *)layers + (size_t)(i / 6) * stride + offs[i % 6]);
        ps->t[i] = **slot;
        ps->t[i].packed = NULL;
        if (mmspcl_tensor_pack(&ps->t[i]) != MMSPCL_OK)
            return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "out of memory packing '%s'", ps->t[i].name ? ps->t[i].name : "a weight");
        if (!ps->t[i].packed) continue;
        *slot = &ps->t[i];
#if defined(MMSPCL__HAVE_MMAP) && defined(MADV_DONTNEED)   /* madvise: with _DEFAULT_SOURCE (tools/lib/mmspcl_impl.c) */
        if (w->storage == 2) {
            const uintptr_t a = ((uintptr_t)ps->t[i].data + 4095) & ~(uintptr_t)4095;
            const uintptr_t e = ((uintptr_t)ps->t[i].data + ps->t[i].nbytes) & ~(uintptr_t)4095;
            if (e > a) madvise((void *)a, (size_t)(e - a), MADV_DONTNEED);
        }
#else
        (void)w;
#endif
    }
    return MMSPCL_OK;
}
static void mmspcl__packed_free(mmspcl__packed_set *ps) {
    int i;
    for (i = 0; i < ps->n; i++) mmspcl_tensor_pack_free(&ps->t[i]);
    MMSPCL_FREE(ps->t);
    ps->t = NULL;
    ps->n = 0;
}

typedef struct mmspcl__roberta_layer {
    const mmspcl_tensor *wq, *wk, *wv, *wo, *w_in, *w_out;
    const float *bq, *bk, *bv, *bo, *b_in, *b_out;
    const float *ln_attn_g, *ln_attn_b, *ln_out_g, *ln_out_b;
} mmspcl__roberta_layer;

struct mmspcl_roberta {
    mmspcl_roberta_config cfg;
    const mmspcl_tensor *word_emb, *pos_emb, *type_emb;
    const float *emb_ln_g, *emb_ln_b;
    mmspcl__roberta_layer *layers;
    mmspcl__packed_set packed;   /* the Linear weights repacked for this CPU, when it has such a kernel */
    int max_tokens;
    mmspcl_arena arena;
};

/* A vector parameter (bias, LayerNorm) must be f32 of length n: the converter stores them so. */
static mmspcl_status mmspcl__vec(const mmspcl_weights *w, const char *name, int64_t n,
                                 const float **out, mmspcl_error *err) {
    const mmspcl_tensor *t;
    mmspcl_status st = mmspcl_weights_expect(w, name, 1, &n, &t, err);
    if (st) return st;
    if (t->dtype != MMSPCL_F32)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "tensor '%s' is %s, expected f32", name, mmspcl_dtype_name(t->dtype));
    *out = (const float *)t->data;
    return MMSPCL_OK;
}

/* An embedding table: 2-D, rows looked up one at a time. */
static mmspcl_status mmspcl__table(const mmspcl_weights *w, const char *name, int64_t rows, int64_t cols,
                                   const mmspcl_tensor **out, mmspcl_error *err) {
    int64_t ne[2];
    ne[0] = rows; ne[1] = cols;
    return mmspcl_weights_expect(w, name, 2, ne, out, err);
}

/* "" when key is absent or has one of the types wanted (bits 1 << MMSPCL_KV_*), else
   " (it is a string)" and the like, for messages about a key of the wrong type. */
static const char *mmspcl__kv_wrong(const mmspcl_weights *w, const char *key, unsigned wanted) {
    static const char *const what[5] = {"", " (it is an integer)", " (it is a float)", " (it is a string)",
                                        " (it is a string array)"};
    const mmspcl_kv *kv = mmspcl_weights_get(w, key);
    if (!kv || (wanted >> kv->type) & 1u || kv->type < 1 || kv->type > 4) return "";
    return what[kv->type];
}

static mmspcl_status mmspcl__get_hparam(const mmspcl_weights *w, const char *key, int64_t lo,
                                        int64_t hi, int *out, mmspcl_error *err) {
    int64_t v;
    if (!mmspcl_weights_get_int(w, key, &v)) {
        const char *why = mmspcl__kv_wrong(w, key, 1u << MMSPCL_KV_INT);
        return mmspcl__fail(err, *why ? MMSPCL_ERR_FORMAT : MMSPCL_ERR_NOT_FOUND, "weight file has no integer '%s'%s", key, why);
    }
    if (v < lo || v > hi)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "'%s' = %lld is outside [%lld, %lld]", key, (long long)v,
                            (long long)lo, (long long)hi);
    *out = (int)v;
    return MMSPCL_OK;
}

/* Activations of max_tokens packed tokens: x, q, k, v, ctx (H each), ffn (I), attention scratch. */
static size_t mmspcl__roberta_arena_need(const mmspcl_roberta_config *c, int max_tokens, int max_seq) {
    size_t t = (size_t)max_tokens, h = (size_t)c->hidden_size;
    return sizeof(float) * (5 * t * h + t * (size_t)c->intermediate_size + mmspcl_attention_scratch(max_seq))
           + 8 * 64 + (size_t)max_seq;
}

mmspcl_status mmspcl_roberta_read_config(const mmspcl_weights *w, mmspcl_roberta_config *c,
                                         mmspcl_error *err) {
    const char *arch = NULL, *act = NULL;
    double eps = 1e-5;
    int64_t ieps;
    mmspcl_status st;
    if (!w || !c) return mmspcl__fail(err, MMSPCL_ERR_ARG, "roberta_read_config: NULL argument");
    memset(c, 0, sizeof *c);
    if (!mmspcl_weights_get_str(w, "general.architecture", &arch) || strcmp(arch, "roberta") != 0)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "weight file holds '%.64s', not a roberta encoder", arch ? arch : "(no general.architecture)");
    if ((st = mmspcl__get_hparam(w, "roberta.vocab_size", 1, 1 << 24, &c->vocab_size, err)) ||
        (st = mmspcl__get_hparam(w, "roberta.hidden_size", 1, 1 << 16, &c->hidden_size, err)) ||
        (st = mmspcl__get_hparam(w, "roberta.num_hidden_layers", 1, 1024, &c->num_layers, err)) ||
        (st = mmspcl__get_hparam(w, "roberta.num_attention_heads", 1, 1024, &c->num_heads, err)) ||
        (st = mmspcl__get_hparam(w, "roberta.intermediate_size", 1, 1 << 18, &c->intermediate_size, err)) ||
        (st = mmspcl__get_hparam(w, "roberta.max_position_embeddings", 1, 1 << 20, &c->max_positions, err)) ||
        (st = mmspcl__get_hparam(w, "roberta.type_vocab_size", 1, 1 << 16, &c->type_vocab_size, err)) ||
        (st = mmspcl__get_hparam(w, "roberta.pad_token_id", 0, c->vocab_size - 1, &c->pad_id, err)))
        return st;
    if (c->max_positions < c->pad_id + 2)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "'roberta.max_position_embeddings' = %d leaves no position after "
                            "'roberta.pad_token_id' = %d (positions start at pad_token_id + 1)", c->max_positions, c->pad_id);
    if (*mmspcl__kv_wrong(w, "roberta.layer_norm_eps", 1u << MMSPCL_KV_FLOAT | 1u << MMSPCL_KV_INT))
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "'roberta.layer_norm_eps' is not a number%s",
                            mmspcl__kv_wrong(w, "roberta.layer_norm_eps", 1u << MMSPCL_KV_FLOAT | 1u << MMSPCL_KV_INT));
    if (!mmspcl_weights_get_float(w, "roberta.layer_norm_eps", &eps) && mmspcl_weights_get_int(w, "roberta.layer_norm_eps", &ieps))
        eps = (double)ieps;
    if (!(eps >= 1e-30 && eps <= 1.0))   /* NaN fails too */
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "'roberta.layer_norm_eps' = %g is outside [1e-30, 1] (a LayerNorm "
                            "epsilon is small and positive)", eps);
    c->layer_norm_eps = (float)eps;
    if (mmspcl_weights_get_str(w, "roberta.hidden_act", &act) && strcmp(act, "gelu") != 0)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "roberta.hidden_act '%.64s' is not supported (only gelu)", act);
    if (c->hidden_size % c->num_heads)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "'roberta.hidden_size' = %d is not a multiple of "
                            "'roberta.num_attention_heads' = %d", c->hidden_size, c->num_heads);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_roberta_load(mmspcl_roberta **out, const mmspcl_weights *w, int max_batch,
                                  int max_seq, mmspcl_error *err) {
    mmspcl_roberta *m;
    mmspcl_roberta_config *c;
    char name[128];
    int64_t ne2[2];
    int l;
    mmspcl_status st;
    *out = NULL;
    if (max_batch < 1 || max_seq < 1)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "roberta_load: max_batch and max_seq must be >= 1");
    if (!(m = (mmspcl_roberta *)MMSPCL_MALLOC(sizeof *m))) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "out of memory");
    memset(m, 0, sizeof *m);
    c = &m->cfg;
    if ((st = mmspcl_roberta_read_config(w, c, err))) goto fail;
    if ((st = mmspcl__table(w, "embeddings.word_embeddings.weight", c->vocab_size, c->hidden_size, &m->word_emb, err)) ||
        (st = mmspcl__table(w, "embeddings.position_embeddings.weight", c->max_positions, c->hidden_size, &m->pos_emb, err)) ||
        (st = mmspcl__table(w, "embeddings.token_type_embeddings.weight", c->type_vocab_size, c->hidden_size, &m->type_emb, err)) ||
        (st = mmspcl__vec(w, "embeddings.LayerNorm.weight", c->hidden_size, &m->emb_ln_g, err)) ||
        (st = mmspcl__vec(w, "embeddings.LayerNorm.bias", c->hidden_size, &m->emb_ln_b, err)))
        goto fail;
    if (!(m->layers = (mmspcl__roberta_layer *)MMSPCL_MALLOC((size_t)c->num_layers * sizeof *m->layers))) {
        st = mmspcl__fail(err, MMSPCL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (l = 0; l < c->num_layers; l++) {
        mmspcl__roberta_layer *L = &m->layers[l];
        int64_t H = c->hidden_size, I = c->intermediate_size;
#define MMSPCL__NAME(suffix) (snprintf(name, sizeof name, "encoder.layer.%d.%s", l, suffix), name)
        if ((st = mmspcl_weights_expect_matrix(w, MMSPCL__NAME("attention.self.query.weight"), H, H, &L->wq, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("attention.self.query.bias"), H, &L->bq, err)) ||
            (st = mmspcl_weights_expect_matrix(w, MMSPCL__NAME("attention.self.key.weight"), H, H, &L->wk, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("attention.self.key.bias"), H, &L->bk, err)) ||
            (st = mmspcl_weights_expect_matrix(w, MMSPCL__NAME("attention.self.value.weight"), H, H, &L->wv, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("attention.self.value.bias"), H, &L->bv, err)) ||
            (st = mmspcl_weights_expect_matrix(w, MMSPCL__NAME("attention.output.dense.weight"), H, H, &L->wo, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("attention.output.dense.bias"), H, &L->bo, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("attention.output.LayerNorm.weight"), H, &L->ln_attn_g, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("attention.output.LayerNorm.bias"), H, &L->ln_attn_b, err)) ||
            (st = mmspcl_weights_expect_matrix(w, MMSPCL__NAME("intermediate.dense.weight"), I, H, &L->w_in, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("intermediate.dense.bias"), I, &L->b_in, err)) ||
            (st = mmspcl_weights_expect_matrix(w, MMSPCL__NAME("output.dense.weight"), H, I, &L->w_out, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("output.dense.bias"), H, &L->b_out, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("output.LayerNorm.weight"), H, &L->ln_out_g, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("output.LayerNorm.bias"), H, &L->ln_out_b, err)))
            goto fail;
#undef MMSPCL__NAME
    }
    (void)ne2;
    if ((int64_t)max_batch * max_seq > (1 << 24) || max_seq > c->max_positions - c->pad_id - 1) {
        st = mmspcl__fail(err, MMSPCL_ERR_ARG, "roberta_load: max_seq %d exceeds the %d positions the model has",
                          max_seq, c->max_positions - c->pad_id - 1);
        goto fail;
    }
    m->max_tokens = max_batch * max_seq;
    if ((st = mmspcl_arena_init(&m->arena, mmspcl__roberta_arena_need(c, m->max_tokens, max_seq), err))) goto fail;
    {
        static const size_t offs[6] = {offsetof(mmspcl__roberta_layer, wq), offsetof(mmspcl__roberta_layer, wk),
                                       offsetof(mmspcl__roberta_layer, wv), offsetof(mmspcl__roberta_layer, wo),
                                       offsetof(mmspcl__roberta_layer, w_in), offsetof(mmspcl__roberta_layer, w_out)};
        if ((st = mmspcl__pack_model(&m->packed, w, m->layers, sizeof *m->layers, offs, c->num_layers, err))) goto fail;
    }
    *out = m;
    return MMSPCL_OK;
fail:
    mmspcl_roberta_free(m);
    return st;
}

void mmspcl_roberta_free(mmspcl_roberta *m) {
    if (!m) return;
    mmspcl__packed_free(&m->packed);
    mmspcl_arena_free(&m->arena);
    MMSPCL_FREE(m->layers);
    MMSPCL_FREE(m);
}

const mmspcl_roberta_config *mmspcl_roberta_get_config(const mmspcl_roberta *m) { return &m->cfg; }
size_t mmspcl_roberta_arena_bytes(const mmspcl_roberta *m) { return m->arena.size; }

/* Row r of an embedding table of any dtype, added into y. */
static void mmspcl__add_embedding_row(float *y, const mmspcl_tensor *table, int64_t r, float *tmp) {
    int64_t n = table->ne[1], i;
    mmspcl_dequantize_row(table->dtype, (const unsigned char *)table->data + (size_t)r * mmspcl_dtype_row_size(table->dtype, n), tmp, n);
    for (i = 0; i < n; i++) y[i] += tmp[i];
}

/* x = LayerNorm(x + delta) */
static void mmspcl__residual_layernorm(float *x, const float *delta, const float *g, const float *b,
                                       int rows, int dim, float eps) {
    size_t i, n = (size_t)rows * (size_t)dim;
    for (i = 0; i < n; i++) x[i] += delta[i];
    mmspcl_layernorm(x, x, g, b, rows, dim, eps);
}

/* The activations of one forward (slices of the arena) and its packed token count. */
typedef struct mmspcl__roberta_run {
    float *x, *q, *k, *v, *ctx, *ffn, *scratch;
    int T;
} mmspcl__roberta_run;

/* Checks the batch, lays out the activations and runs the embeddings (+ LayerNorm) into r->x. */
static mmspcl_status mmspcl__roberta_begin(mmspcl_roberta *m, const int32_t *ids, const int *lengths, int batch,
                                           int seq, mmspcl__roberta_run *r, mmspcl_error *err) {
    const mmspcl_roberta_config *c = &m->cfg;
    const int H = c->hidden_size, I = c->intermediate_size;
    float *tmp;
    int b, T = 0, t;
    if (batch < 1 || seq < 1) return mmspcl__fail(err, MMSPCL_ERR_ARG, "roberta_forward: empty batch");
    for (b = 0; b < batch; b++) {
        if (lengths[b] < 1 || lengths[b] > seq)
            return mmspcl__fail(err, MMSPCL_ERR_ARG, "roberta_forward: sequence %d has length %d (1..%d allowed)", b, lengths[b], seq);
        if (lengths[b] > c->max_positions - c->pad_id - 1)
            return mmspcl__fail(err, MMSPCL_ERR_ARG, "roberta_forward: sequence %d has %d tokens, the model takes at most %d",
                                b, lengths[b], c->max_positions - c->pad_id - 1);
        for (t = 0; t < lengths[b]; t++)
            if (ids[(size_t)b * seq + t] < 0 || ids[(size_t)b * seq + t] >= c->vocab_size)
                return mmspcl__fail(err, MMSPCL_ERR_ARG, "roberta_forward: token id %d at [%d][%d] is outside the vocabulary (%d)",
                                    ids[(size_t)b * seq + t], b, t, c->vocab_size);
        T += lengths[b];
    }
    if (T > m->max_tokens)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "roberta_forward: %d tokens exceed the %d the model was loaded for", T, m->max_tokens);

    mmspcl_arena_reset(&m->arena);
    r->T = T;
    r->x = (float *)mmspcl_arena_alloc(&m->arena, (size_t)T * H * sizeof(float));
    r->q = (float *)mmspcl_arena_alloc(&m->arena, (size_t)T * H * sizeof(float));
    r->k = (float *)mmspcl_arena_alloc(&m->arena, (size_t)T * H * sizeof(float));
    r->v = (float *)mmspcl_arena_alloc(&m->arena, (size_t)T * H * sizeof(float));
    r->ctx = (float *)mmspcl_arena_alloc(&m->arena, (size_t)T * H * sizeof(float));
    r->ffn = (float *)mmspcl_arena_alloc(&m->arena, (size_t)T * I * sizeof(float));
    r->scratch = (float *)mmspcl_arena_alloc(&m->arena, mmspcl_attention_scratch(seq) * sizeof(float));
    if (!r->x || !r->q || !r->k || !r->v || !r->ctx || !r->ffn || !r->scratch)
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "roberta_forward: activation arena too small");
    tmp = r->ctx;  /* free until the first layer */

    /* Embeddings: word + position (HF: pad_id + running count of non-pad tokens) + type 0. */
    for (b = 0, T = 0; b < batch; b++) {
        int pos = c->pad_id;
        for (t = 0; t < lengths[b]; t++, T++) {
            int32_t id = ids[(size_t)b * seq + t];
            float *row = r->x + (size_t)T * H;
            memset(row, 0, (size_t)H * sizeof(float));
            mmspcl__add_embedding_row(row, m->word_emb, id, tmp);
            mmspcl__add_embedding_row(row, m->pos_emb, id != c->pad_id ? ++pos : c->pad_id, tmp);
            mmspcl__add_embedding_row(row, m->type_emb, 0, tmp);
        }
    }
    mmspcl_layernorm(r->x, r->x, m->emb_ln_g, m->emb_ln_b, T, H, c->layer_norm_eps);
    return MMSPCL_OK;
}

/* GELU row by row: a row's bits do not depend on where it sits in the batch (mmspcl_gelu's SIMD
   code leaves the last n % 8 values of a call to the definition). */
static void mmspcl__gelu_rows(float *x, int rows, int n) {
    int r;
    for (r = 0; r < rows; r++) mmspcl_gelu(x + (size_t)r * (size_t)n, (size_t)n);
}

/* One encoder layer over every packed token, in place on r->x; each sequence attends to itself. */
static mmspcl_status mmspcl__roberta_layer_all(const mmspcl_roberta *m, const mmspcl__roberta_layer *L,
                                               mmspcl__roberta_run *r, const int *lengths, int batch) {
    const mmspcl_roberta_config *c = &m->cfg;
    const int H = c->hidden_size, I = c->intermediate_size, nh = c->num_heads, T = r->T;
    mmspcl_status st;
    int b, start = 0;
    if ((st = mmspcl_linear(r->q, r->x, T, H, L->wq, L->bq)) || (st = mmspcl_linear(r->k, r->x, T, H, L->wk, L->bk)) ||
        (st = mmspcl_linear(r->v, r->x, T, H, L->wv, L->bv)))
        return st;
    for (b = 0; b < batch; start += lengths[b], b++)
        mmspcl_attention(r->ctx + (size_t)start * H, H, r->q + (size_t)start * H, H, r->k + (size_t)start * H,
                         r->v + (size_t)start * H, H, lengths[b], lengths[b], nh, H / nh, NULL, r->scratch);
    if ((st = mmspcl_linear(r->q, r->ctx, T, H, L->wo, L->bo))) return st;  /* q is free again */
    mmspcl__residual_layernorm(r->x, r->q, L->ln_attn_g, L->ln_attn_b, T, H, c->layer_norm_eps);
    if ((st = mmspcl_linear(r->ffn, r->x, T, H, L->w_in, L->b_in))) return st;
    mmspcl__gelu_rows(r->ffn, T, I);
    if ((st = mmspcl_linear(r->q, r->ffn, T, I, L->w_out, L->b_out))) return st;
    mmspcl__residual_layernorm(r->x, r->q, L->ln_out_g, L->ln_out_b, T, H, c->layer_norm_eps);
    return MMSPCL_OK;
}

/* The last layer for one row per sequence (row rows[b] of sequence b): keys and values of every
   token, then queries, attention, output projection and feed-forward for those rows alone, into
   out [batch][H]. Rows are computed exactly as inside the whole batch (every kernel computes a row
   by itself: tests/test_roberta.c), so the bits are mmspcl__roberta_layer_all's. */
static mmspcl_status mmspcl__roberta_layer_rows(const mmspcl_roberta *m, const mmspcl__roberta_layer *L,
                                                mmspcl__roberta_run *r, const int *lengths, int batch,
                                                const int *rows, float *out) {
    const mmspcl_roberta_config *c = &m->cfg;
    const int H = c->hidden_size, I = c->intermediate_size, nh = c->num_heads, T = r->T;
    float *xs = r->q, *qs = r->ctx, *cs = r->ffn;   /* batch <= T rows each */
    mmspcl_status st;
    int b, start = 0;
    if ((st = mmspcl_linear(r->k, r->x, T, H, L->wk, L->bk)) || (st = mmspcl_linear(r->v, r->x, T, H, L->wv, L->bv)))
        return st;
    for (b = 0; b < batch; start += lengths[b], b++)
        memcpy(xs + (size_t)b * H, r->x + ((size_t)start + (size_t)rows[b]) * H, sizeof(float) * (size_t)H);
    if ((st = mmspcl_linear(qs, xs, batch, H, L->wq, L->bq))) return st;
    for (b = 0, start = 0; b < batch; start += lengths[b], b++)
        mmspcl_attention(cs + (size_t)b * H, H, qs + (size_t)b * H, H, r->k + (size_t)start * H, r->v + (size_t)start * H,
                         H, 1, lengths[b], nh, H / nh, NULL, r->scratch);
    if ((st = mmspcl_linear(qs, cs, batch, H, L->wo, L->bo))) return st;   /* qs is free again */
    mmspcl__residual_layernorm(xs, qs, L->ln_attn_g, L->ln_attn_b, batch, H, c->layer_norm_eps);
    if ((st = mmspcl_linear(r->ffn, xs, batch, H, L->w_in, L->b_in))) return st;   /* cs is free again */
    mmspcl__gelu_rows(r->ffn, batch, I);
    if ((st = mmspcl_linear(qs, r->ffn, batch, I, L->w_out, L->b_out))) return st;
    mmspcl__residual_layernorm(xs, qs, L->ln_out_g, L->ln_out_b, batch, H, c->layer_norm_eps);
    memcpy(out, xs, sizeof(float) * (size_t)batch * (size_t)H);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_roberta_forward(mmspcl_roberta *m, const int32_t *ids, const int *lengths,
                                     int batch, int seq, float *hidden, mmspcl_error *err) {
    const int H = m->cfg.hidden_size;
    mmspcl__roberta_run r;
    int b, l, T;
    mmspcl_status st;
    if ((st = mmspcl__roberta_begin(m, ids, lengths, batch, seq, &r, err))) return st;
    for (l = 0; l < m->cfg.num_layers; l++)
        if ((st = mmspcl__roberta_layer_all(m, &m->layers[l], &r, lengths, batch)))
            return mmspcl__fail(err, st, "roberta_forward: layer %d failed (%s)", l, mmspcl_status_name(st));
    for (b = 0, T = 0; b < batch; b++) {
        float *dst = hidden + (size_t)b * seq * H;
        memcpy(dst, r.x + (size_t)T * H, (size_t)lengths[b] * H * sizeof(float));
        memset(dst + (size_t)lengths[b] * H, 0, (size_t)(seq - lengths[b]) * H * sizeof(float));
        T += lengths[b];
    }
    return MMSPCL_OK;
}

mmspcl_status mmspcl_roberta_forward_rows(mmspcl_roberta *m, const int32_t *ids, const int *lengths, int batch,
                                          int seq, const int *rows, float *out, mmspcl_error *err) {
    mmspcl__roberta_run r;
    int b, l;
    mmspcl_status st;
    if (!rows || !out) return mmspcl__fail(err, MMSPCL_ERR_ARG, "roberta_forward_rows: NULL rows or output");
    if ((st = mmspcl__roberta_begin(m, ids, lengths, batch, seq, &r, err))) return st;
    for (b = 0; b < batch; b++)
        if (rows[b] < 0 || rows[b] >= lengths[b])
            return mmspcl__fail(err, MMSPCL_ERR_ARG, "roberta_forward_rows: row %d of sequence %d is outside its %d tokens",
                                rows[b], b, lengths[b]);
    for (l = 0; l < m->cfg.num_layers; l++) {
        st = l + 1 < m->cfg.num_layers ? mmspcl__roberta_layer_all(m, &m->layers[l], &r, lengths, batch)
                                       : mmspcl__roberta_layer_rows(m, &m->layers[l], &r, lengths, batch, rows, out);
        if (st) return mmspcl__fail(err, st, "roberta_forward_rows: layer %d failed (%s)", l, mmspcl_status_name(st));
    }
    return MMSPCL_OK;
}

/* ---------------------------------------------------------------------------------------------
   9. SPCL prompt and text embedding z_t
   ------------------------------------------------------------------------------------------ */

/* SPCL's MELD cleaning: ’ -> ', drop ". Returns a new NUL-terminated string (caller frees). */
char *mmspcl_spcl_clean(const char *speaker, const char *sep, const char *text) {
    size_t ns = strlen(speaker), np = strlen(sep), nt = strlen(text), i, o = 0;
    char *s = (char *)MMSPCL_MALLOC(ns + np + nt + 1);
    if (!s) return NULL;
    memcpy(s, speaker, ns);
    memcpy(s + ns, sep, np);
    o = ns + np;
    for (i = 0; i < nt; i++) {
        if ((unsigned char)text[i] == 0xE2 && i + 2 < nt && (unsigned char)text[i + 1] == 0x80 &&
            (unsigned char)text[i + 2] == 0x99) { s[o++] = '\''; i += 2; continue; }
        if (text[i] == '"') continue;
        s[o++] = text[i];
    }
    s[o] = 0;
    return s;
}

/* bpe(text) appended to a growing id list. */
static mmspcl_status mmspcl__spcl_tokenize(const mmspcl_bpe *tok, const char *text, int32_t **ids,
                                           int *n, int *cap) {
    size_t len = strlen(text);
    for (;;) {
        int need = mmspcl_bpe_encode(tok, text, len, *ids + *n, *cap - *n);
        if (need < 0) return MMSPCL_ERR_ARG;
        if (need <= *cap - *n) { *n += need; return MMSPCL_OK; }
        {
            int nc = (*n + need) * 2 + 64;
            int32_t *p = (int32_t *)MMSPCL_REALLOC(*ids, (size_t)nc * sizeof(int32_t));
            if (!p) return MMSPCL_ERR_NOMEM;
            *ids = p;
            *cap = nc;
        }
    }
}

mmspcl_status mmspcl_spcl_prompts(const mmspcl_bpe *tok, const mmspcl_turn *turns, int n_turns,
                                  int max_len, int32_t *ids, int *lengths, int *mask_pos,
                                  mmspcl_error *err) {
    return mmspcl_spcl_prompts_query(tok, turns, n_turns, NULL, max_len, ids, lengths, mask_pos, NULL, err);
}

mmspcl_status mmspcl_spcl_prompts_query(const mmspcl_bpe *tok, const mmspcl_turn *turns, int n_turns,
                                        const int *qturn, int max_len, int32_t *ids, int *lengths,
                                        int *mask_pos, int *first, mmspcl_error *err) {
    int32_t *all = NULL, *query = NULL;
    int *start = NULL, n_all = 0, cap_all = 0, n_query = 0, cap_query = 0, t;
    const int32_t bos = mmspcl_bpe_token_id(tok, "<s>"), eos = mmspcl_bpe_token_id(tok, "</s>");
    const int32_t mask = mmspcl_bpe_token_id(tok, "<mask>"), pad = mmspcl_bpe_token_id(tok, "<pad>");
    mmspcl_status st = MMSPCL_OK;
    if (n_turns < 1 || max_len < 16) return mmspcl__fail(err, MMSPCL_ERR_ARG, "spcl_prompts: need >= 1 turn and max_len >= 16");
    for (t = 0; qturn && t < n_turns; t++)
        if (qturn[t] < 0 || qturn[t] > t)
            return mmspcl__fail(err, MMSPCL_ERR_ARG, "spcl_prompts: prompt %d asks about turn %d (0..%d allowed)", t, qturn[t], t);
    if (bos < 0 || eos < 0 || mask < 0)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "spcl_prompts: the vocabulary lacks <s>, </s> or <mask>");
    if (!(start = (int *)MMSPCL_MALLOC((size_t)(n_turns + 1) * sizeof(int)))) {
        st = mmspcl__fail(err, MMSPCL_ERR_NOMEM, "spcl_prompts: out of memory");
        goto done;
    }
    /* u_j for every turn, stored back to back: u_j = all[start[j] .. start[j+1]) */
    for (t = 0; t < n_turns; t++) {
        char *s = mmspcl_spcl_clean(turns[t].speaker ? turns[t].speaker : "", ":", turns[t].text ? turns[t].text : "");
        start[t] = n_all;
        if (!s) { st = MMSPCL_ERR_NOMEM; break; }
        st = mmspcl__spcl_tokenize(tok, s, &all, &n_all, &cap_all);
        MMSPCL_FREE(s);
        if (st) break;
        if (n_all + 1 > cap_all) {
            int32_t *p = (int32_t *)MMSPCL_REALLOC(all, (size_t)(cap_all + 64) * sizeof(int32_t));
            if (!p) { st = MMSPCL_ERR_NOMEM; break; }
            all = p;
            cap_all += 64;
        }
        all[n_all++] = eos;
    }
    start[n_turns] = n_all;
    if (!st) st = mmspcl__spcl_tokenize(tok, "For utterance:", &query, &n_query, &cap_query);
    if (st) { st = mmspcl__fail(err, st, "spcl_prompts: tokenising failed (%s)", mmspcl_status_name(st)); goto done; }

    for (t = 0; t < n_turns; t++) {
        int32_t *tail = NULL;
        const int q = qturn ? qturn[t] : t;
        int n_tail = 0, cap_tail = 0, l = 0, j, len_t = start[t + 1] - start[t], total, skip, o;
        char *p = mmspcl_spcl_clean(turns[q].speaker ? turns[q].speaker : "", " feels <mask>", "");
        if (!p) { st = mmspcl__fail(err, MMSPCL_ERR_NOMEM, "spcl_prompts: out of memory"); goto done; }
        st = mmspcl__spcl_tokenize(tok, p, &tail, &n_tail, &cap_tail);
        MMSPCL_FREE(p);
        if (st) { MMSPCL_FREE(tail); st = mmspcl__fail(err, st, "spcl_prompts: tokenising failed"); goto done; }
        for (j = 0; j < t; j++) {          /* SPCL's loop: the first start that leaves room */
            l = j;
            if ((start[t + 1] - start[j]) + 8 + len_t <= max_len) break;
        }
        if (l < t - MMSPCL_SPCL_MAX_CONTEXT) l = t - MMSPCL_SPCL_MAX_CONTEXT;
        if (first) first[t] = l;
        total = 1 + (start[t + 1] - start[l]) + n_query + (start[q + 1] - start[q]) + n_tail + 1;
        skip = total > max_len ? total - max_len : 0;   /* keep the last max_len ids */
        o = 0;
#define MMSPCL__EMIT(id) do { if (skip > 0) skip--; else ids[(size_t)t * max_len + o++] = (id); } while (0)
        MMSPCL__EMIT(bos);
        for (j = start[l]; j < start[t + 1]; j++) MMSPCL__EMIT(all[j]);
        for (j = 0; j < n_query; j++) MMSPCL__EMIT(query[j]);
        for (j = start[q]; j < start[q + 1]; j++) MMSPCL__EMIT(all[j]);
        for (j = 0; j < n_tail; j++) MMSPCL__EMIT(tail[j]);
        MMSPCL__EMIT(eos);
#undef MMSPCL__EMIT
        MMSPCL_FREE(tail);
        lengths[t] = o;
        mask_pos[t] = 0;
        for (j = 0; j < o; j++)
            if (ids[(size_t)t * max_len + j] == mask) { mask_pos[t] = j; break; }
        for (j = o; j < max_len; j++) ids[(size_t)t * max_len + j] = pad >= 0 ? pad : 1;
    }
done:
    MMSPCL_FREE(all);
    MMSPCL_FREE(query);
    MMSPCL_FREE(start);
    return st;
}

mmspcl_status mmspcl_spcl_embed_dialogue(mmspcl_roberta *m, const mmspcl_bpe *tok,
                                         const mmspcl_turn *turns, int n_turns, int max_len,
                                         float *z, mmspcl_error *err) {
    const int H = m->cfg.hidden_size;
    const int max_batch = m->max_tokens / max_len > 0 ? m->max_tokens / max_len : 1;
    int32_t *ids = (int32_t *)MMSPCL_MALLOC((size_t)n_turns * max_len * sizeof(int32_t));
    int *lengths = (int *)MMSPCL_MALLOC((size_t)n_turns * sizeof(int));
    int *mask_pos = (int *)MMSPCL_MALLOC((size_t)n_turns * sizeof(int));
    mmspcl_status st;
    int t0;
    if (!ids || !lengths || !mask_pos) {
        st = mmspcl__fail(err, MMSPCL_ERR_NOMEM, "spcl_embed_dialogue: out of memory");
        goto done;
    }
    if ((st = mmspcl_spcl_prompts(tok, turns, n_turns, max_len, ids, lengths, mask_pos, err))) goto done;
    for (t0 = 0; t0 < n_turns; t0 += max_batch) {
        int nb = n_turns - t0 < max_batch ? n_turns - t0 : max_batch;
        if ((st = mmspcl_roberta_forward_rows(m, ids + (size_t)t0 * max_len, lengths + t0, nb, max_len, mask_pos + t0,
                                              z + (size_t)t0 * H, err)))
            goto done;
    }
done:
    MMSPCL_FREE(ids);
    MMSPCL_FREE(lengths);
    MMSPCL_FREE(mask_pos);
    return st;
}

/* ---------------------------------------------------------------------------------------------
   10. Images
   PNG / BMP / PPM decoding (own inflate), Pillow-exact bicubic resize, CLIP preprocessing.
   First the byte readers the decoders share.
   ------------------------------------------------------------------------------------------ */

static uint32_t mmspcl__img_be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}
static uint32_t mmspcl__img_le32(const unsigned char *p) {
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | (uint32_t)p[0];
}
static unsigned mmspcl__img_le16(const unsigned char *p) { return (unsigned)p[0] | ((unsigned)p[1] << 8); }

/* Checks the limits and allocates out->rgb (w*h*3). */
static mmspcl_status mmspcl__img_alloc(mmspcl_image *out, int64_t w, int64_t h, const char *label,
                                       const char *fmt, mmspcl_error *err) {
    size_t n;
    if (w < 1 || h < 1)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %s image has size %lld x %lld", label, fmt,
                            (long long)w, (long long)h);
    if (w > MMSPCL_IMAGE_MAX_SIDE || h > MMSPCL_IMAGE_MAX_SIDE || w * h > MMSPCL_IMAGE_MAX_PIXELS)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED,
                            "%s: %s image of %lld x %lld pixels is over the limits (side %d, %lld pixels)",
                            label, fmt, (long long)w, (long long)h, MMSPCL_IMAGE_MAX_SIDE,
                            (long long)MMSPCL_IMAGE_MAX_PIXELS);
    n = (size_t)w * (size_t)h * 3;
    out->rgb = (unsigned char *)MMSPCL_MALLOC(n);
    if (!out->rgb)
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: cannot allocate %zu bytes for the pixels", label, n);
    out->width = (int)w;
    out->height = (int)h;
    return MMSPCL_OK;
}

/* ---- 10.1 PPM / PGM -------------------------------------------------------------------------
   Binary P6 / P5. */
static int mmspcl__img_pnm_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Reads one decimal header token after whitespace and comments; -1 on error. *pos is left on the
   byte that ended the token. */
static long mmspcl__img_pnm_token(const unsigned char *p, size_t n, size_t *pos) {
    size_t i = *pos;
    long v = 0;
    int digits = 0;
    for (;;) {
        if (i >= n) return -1;
        if (p[i] == '#') {
            while (i < n && p[i] != '\n' && p[i] != '\r') i++;
        } else if (mmspcl__img_pnm_space(p[i])) {
            i++;
        } else {
            break;
        }
    }
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        if (++digits > 9) return -1;
        v = v * 10 + (p[i] - '0');
        i++;
    }
    if (!digits || i >= n) return -1;
    if (!mmspcl__img_pnm_space(p[i]) && p[i] != '#') return -1;
    *pos = i;
    return v;
}

static mmspcl_status mmspcl__img_pnm(const unsigned char *p, size_t n, mmspcl_image *out,
                                     const char *label, mmspcl_error *err) {
    int ch = p[1] == '6' ? 3 : 1;
    const char *fmt = ch == 3 ? "PPM (P6)" : "PGM (P5)";
    size_t pos = 2, need, i, np;
    long w, h, maxval;
    int bps;
    mmspcl_status st;
    if (n < 3 || !mmspcl__img_pnm_space(p[2]))
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %s header: no whitespace after the magic", label, fmt);
    if ((w = mmspcl__img_pnm_token(p, n, &pos)) < 0 || (h = mmspcl__img_pnm_token(p, n, &pos)) < 0 ||
        (maxval = mmspcl__img_pnm_token(p, n, &pos)) < 0)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %s header is malformed or truncated near byte %zu",
                            label, fmt, pos);
    if (maxval < 1 || maxval > 65535)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %s maxval %ld (1..65535 allowed)", label, fmt, maxval);
    if (!mmspcl__img_pnm_space(p[pos]))
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %s: a comment right after maxval (byte %zu)", label, fmt, pos);
    pos++; /* exactly one whitespace byte ends the header */
    if (w < 1 || h < 1 || w > MMSPCL_IMAGE_MAX_SIDE || h > MMSPCL_IMAGE_MAX_SIDE ||
        (int64_t)w * h > MMSPCL_IMAGE_MAX_PIXELS)
        return mmspcl__img_alloc(out, w, h, label, fmt, err); /* fails with the right message */
    bps = maxval > 255 ? 2 : 1;
    np = (size_t)w * (size_t)h * (size_t)ch;
    need = np * (size_t)bps;
    if (n - pos < need)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %s of %ld x %ld needs %zu pixel bytes from byte %zu, the file has %zu",
                            label, fmt, w, h, need, pos, n - pos);
    if ((st = mmspcl__img_alloc(out, w, h, label, fmt, err))) return st;
    {
        const unsigned char *s = p + pos;
        unsigned char lut[256];
        int use_lut = bps == 1;
        if (use_lut) {
            int v;
            for (v = 0; v < 256; v++) {
                double r = rint((double)v / (double)maxval * 255.0);
                lut[v] = (unsigned char)(r > 255.0 ? 255 : r);
            }
        }
        for (i = 0; i < np; i++) {
            unsigned char v;
            if (use_lut) {
                v = lut[s[i]];
            } else {
                unsigned raw = ((unsigned)s[2 * i] << 8) | s[2 * i + 1];
                double r = rint((double)raw / (double)maxval * 255.0);
                v = (unsigned char)(r > 255.0 ? 255 : r);
            }
            if (ch == 3) {
                out->rgb[i] = v;
            } else {
                out->rgb[3 * i] = out->rgb[3 * i + 1] = out->rgb[3 * i + 2] = v;
            }
        }
    }
    return MMSPCL_OK;
}

/* ---- 10.2 BMP ---------------------------------------------------------------------------- */
static int mmspcl__img_mask_shift(uint32_t m) { /* shift of a one-byte contiguous mask, else -1 */
    int s;
    for (s = 0; s <= 24; s += 8)
        if (m == (uint32_t)0xFF << s) return s;
    return -1;
}

static mmspcl_status mmspcl__img_bmp(const unsigned char *p, size_t n, mmspcl_image *out,
                                     const char *label, mmspcl_error *err) {
    uint32_t off, hsize, compression = 0, ncolors = 0;
    int64_t w, h;
    int bits, topdown = 0, sh[3] = {16, 8, 0};
    size_t stride, pal_off, pal_entry, y;
    unsigned char pal[256][3];
    int npal = 0;
    mmspcl_status st;
    if (n < 18) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: BMP: %zu bytes is shorter than the headers", label, n);
    off = mmspcl__img_le32(p + 10);
    hsize = mmspcl__img_le32(p + 14);
    if (hsize != 12 && hsize != 40 && hsize != 52 && hsize != 56 && hsize != 64 && hsize != 108 && hsize != 124)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: BMP: info header size %u at byte 14 is not supported",
                            label, (unsigned)hsize);
    if (n < 14 + (size_t)hsize)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: BMP: the %u-byte info header is truncated", label, (unsigned)hsize);
    if (hsize == 12) {
        w = mmspcl__img_le16(p + 18);
        h = mmspcl__img_le16(p + 20);
        if (mmspcl__img_le16(p + 22) != 1)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: BMP: planes is not 1", label);
        bits = (int)mmspcl__img_le16(p + 24);
        pal_entry = 3;
    } else {
        int32_t hh = (int32_t)mmspcl__img_le32(p + 22);
        w = (int32_t)mmspcl__img_le32(p + 18);
        if (hh < 0) {
            if (hh == INT32_MIN) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: BMP: height %d", label, (int)hh);
            topdown = 1;
            h = -(int64_t)hh;
        } else {
            h = hh;
        }
        if (mmspcl__img_le16(p + 26) != 1)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: BMP: planes is not 1", label);
        bits = (int)mmspcl__img_le16(p + 28);
        compression = mmspcl__img_le32(p + 30);
        ncolors = mmspcl__img_le32(p + 46);
        pal_entry = 4;
    }
    if (bits != 1 && bits != 4 && bits != 8 && bits != 24 && bits != 32)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: BMP: %d bits per pixel is not supported (1, 4, 8, 24, 32)",
                            label, bits);
    if (compression == 3 && bits == 32) {
        uint32_t m[3];
        size_t mo = hsize >= 52 ? 14 + 40 : 14 + (size_t)hsize;
        int c;
        if (n < mo + 12)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: BMP: bit-field masks are truncated", label);
        for (c = 0; c < 3; c++) m[c] = mmspcl__img_le32(p + mo + 4 * (size_t)c);
        if (!(m[0] == 0 && m[1] == 0 && m[2] == 0)) {
            for (c = 0; c < 3; c++)
                if ((sh[c] = mmspcl__img_mask_shift(m[c])) < 0)
                    return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED,
                                        "%s: BMP: bit-field masks r=0x%08x g=0x%08x b=0x%08x are not supported "
                                        "(one whole byte each)", label, (unsigned)m[0], (unsigned)m[1], (unsigned)m[2]);
        }
    } else if (compression != 0) {
        static const char *const names[] = {"BI_RGB", "RLE8", "RLE4", "BI_BITFIELDS", "JPEG", "PNG", "BI_ALPHABITFIELDS"};
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: BMP: compression %s (%u) with %d bits is not supported",
                            label, compression < 7 ? names[compression] : "unknown", (unsigned)compression, bits);
    }
    if (w < 1 || h < 1 || w > MMSPCL_IMAGE_MAX_SIDE || h > MMSPCL_IMAGE_MAX_SIDE || w * h > MMSPCL_IMAGE_MAX_PIXELS)
        return mmspcl__img_alloc(out, w, h, label, "BMP", err);
    /* the pixels start after the headers (and the bit-field masks a 40-byte header is followed by) */
    pal_off = 14 + (size_t)hsize + (compression == 3 && hsize < 52 ? 12 : 0);
    if (off < pal_off)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: BMP: pixel data offset %u (bytes 10-13) points inside the "
                            "headers, which end at byte %zu", label, (unsigned)off, pal_off);
    if (bits <= 8) {
        size_t k, avail, maxc = (size_t)1 << bits;
        size_t count = ncolors ? ncolors : maxc;
        if (ncolors > 65536)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: BMP: palette of %u colours (bytes 46-49)", label, (unsigned)ncolors);
        /* the palette is as long as the header says (entries past 2^bits are never used) */
        if (pal_off + count * pal_entry > off)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: BMP: pixel data offset %u (bytes 10-13) points inside the "
                                "%zu-entry palette (bytes %zu to %zu)", label, (unsigned)off, count, pal_off,
                                pal_off + count * pal_entry - 1);
        if (count > maxc) count = maxc;
        if (pal_off > n || (n - pal_off) / pal_entry < count)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: BMP: the %zu-entry palette at byte %zu is truncated",
                                label, count, pal_off);
        avail = count;
        for (k = 0; k < 256; k++) {
            if (k < avail) {
                const unsigned char *e = p + pal_off + k * pal_entry;
                pal[k][0] = e[2]; pal[k][1] = e[1]; pal[k][2] = e[0];
            } else {
                pal[k][0] = pal[k][1] = pal[k][2] = 0;
            }
        }
        npal = (int)avail;
    }
    stride = (((size_t)w * (size_t)bits + 31) / 32) * 4;
    if (off > n || (n - off) / stride < (size_t)h)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT,
                            "%s: BMP: %lld rows of %zu bytes from byte %u run past the end of the file (%zu bytes)",
                            label, (long long)h, stride, (unsigned)off, n);
    if ((st = mmspcl__img_alloc(out, w, h, label, "BMP", err))) return st;
    (void)npal;
    for (y = 0; y < (size_t)h; y++) {
        const unsigned char *row = p + off + stride * (topdown ? y : (size_t)h - 1 - y);
        unsigned char *o = out->rgb + y * (size_t)w * 3;
        size_t x;
        if (bits == 24) {
            for (x = 0; x < (size_t)w; x++) {
                o[3 * x] = row[3 * x + 2]; o[3 * x + 1] = row[3 * x + 1]; o[3 * x + 2] = row[3 * x];
            }
        } else if (bits == 32) {
            for (x = 0; x < (size_t)w; x++) {
                uint32_t v = mmspcl__img_le32(row + 4 * x);
                o[3 * x] = (unsigned char)(v >> sh[0]);
                o[3 * x + 1] = (unsigned char)(v >> sh[1]);
                o[3 * x + 2] = (unsigned char)(v >> sh[2]);
            }
        } else {
            for (x = 0; x < (size_t)w; x++) {
                size_t bit = x * (size_t)bits;
                unsigned idx = (row[bit >> 3] >> (8 - bits - (int)(bit & 7))) & ((1u << bits) - 1);
                o[3 * x] = pal[idx][0]; o[3 * x + 1] = pal[idx][1]; o[3 * x + 2] = pal[idx][2];
            }
        }
    }
    return MMSPCL_OK;
}

/* ---- 10.3 Inflate ---------------------------------------------------------------------------
   RFC 1950 zlib wrapper around RFC 1951 deflate. */
#define MMSPCL__IMG_FASTBITS 10

typedef struct mmspcl__img_huff {
    uint16_t fast[1 << MMSPCL__IMG_FASTBITS]; /* (length << 9) | symbol; 0: not in the table */
    uint16_t count[16];                       /* codes of each length */
    uint16_t sym[320];                        /* symbols in canonical order */
} mmspcl__img_huff;

typedef struct mmspcl__img_inflate {
    const unsigned char *in;
    size_t n, pos;   /* pos: next byte to load into the bit buffer */
    uint64_t bits;
    int nbits;
    size_t phantom;  /* zero bits loaded past the end of the input */
    unsigned char *out;
    size_t out_n, out_pos;
    const char *label;
    mmspcl_error *err;
} mmspcl__img_inflate;

static void mmspcl__img_fill(mmspcl__img_inflate *s) {
    while (s->nbits <= 56) {
        uint64_t b = 0;
        if (s->pos < s->n) b = s->in[s->pos];
        else s->phantom += 8;
        s->pos++;
        s->bits |= b << s->nbits;
        s->nbits += 8;
    }
}

/* Bits are consumed; returns nonzero when that ran past the end of the stream. */
static int mmspcl__img_consume(mmspcl__img_inflate *s, int k) {
    s->bits >>= k;
    s->nbits -= k;
    return (size_t)s->nbits < s->phantom;
}

static int mmspcl__img_getbits(mmspcl__img_inflate *s, int k, unsigned *v) {
    if (s->nbits < k) mmspcl__img_fill(s);
    *v = (unsigned)(s->bits & (((uint64_t)1 << k) - 1));
    return mmspcl__img_consume(s, k);
}

static mmspcl_status mmspcl__img_zfail(mmspcl__img_inflate *s, const char *what) {
    size_t at = s->pos > (size_t)(s->nbits / 8) ? s->pos - (size_t)(s->nbits / 8) : 0;
    if (at > s->n) at = s->n;
    return mmspcl__fail(s->err, MMSPCL_ERR_FORMAT, "%s: PNG image data (zlib): %s (compressed byte %zu, output byte %zu)",
                        s->label, what, at, s->out_pos);
}

/* Builds a canonical Huffman code from code lengths (0 = unused). kind: 0 code-length code
   (must be complete), 1 literal/length or distance (incomplete only as a single 1-bit code). */
static int mmspcl__img_huff_build(mmspcl__img_huff *h, const unsigned char *len, int n, int kind) {
    uint16_t offs[16];
    int i, l, left, total = 0, maxlen = 0;
    memset(h->count, 0, sizeof h->count);
    memset(h->fast, 0, sizeof h->fast);
    for (i = 0; i < n; i++) h->count[len[i]]++;
    h->count[0] = 0;
    left = 1;
    for (l = 1; l < 16; l++) {
        left <<= 1;
        left -= h->count[l];
        if (left < 0) return -1; /* over-subscribed */
        total += h->count[l];
        if (h->count[l]) maxlen = l;
    }
    if (left > 0 && total > 0 && (kind == 0 || maxlen != 1)) return -2; /* incomplete */
    offs[1] = 0;
    for (l = 1; l < 15; l++) offs[l + 1] = (uint16_t)(offs[l] + h->count[l]);
    for (i = 0; i < n; i++)
        if (len[i]) h->sym[offs[len[i]]++] = (uint16_t)i;
    /* fast table: canonical codes (MSB first) stored bit-reversed, as deflate sends them */
    {
        unsigned code = 0;
        int k = 0;
        for (l = 1; l <= MMSPCL__IMG_FASTBITS; l++) {
            int c;
            for (c = 0; c < h->count[l]; c++, k++, code++) {
                unsigned rev = 0, t = code, j;
                int b;
                for (b = 0; b < l; b++) { rev = (rev << 1) | (t & 1); t >>= 1; }
                for (j = rev; j < (1u << MMSPCL__IMG_FASTBITS); j += 1u << l)
                    h->fast[j] = (uint16_t)((l << 9) | h->sym[k]);
            }
            code <<= 1;
        }
    }
    return 0;
}

/* Decodes one symbol; -1 on an invalid code or when the input ran out. */
static int mmspcl__img_huff_decode(mmspcl__img_inflate *s, const mmspcl__img_huff *h) {
    unsigned e;
    int l, code = 0, first = 0, index = 0;
    uint64_t b;
    if (s->nbits < 16) mmspcl__img_fill(s);
    e = h->fast[s->bits & ((1u << MMSPCL__IMG_FASTBITS) - 1)];
    if (e) {
        if (mmspcl__img_consume(s, (int)(e >> 9))) return -1;
        return (int)(e & 511);
    }
    b = s->bits;
    for (l = 1; l < 16; l++) {
        int count = h->count[l];
        code |= (int)(b & 1);
        b >>= 1;
        if (code - count < first) {
            if (mmspcl__img_consume(s, l)) return -1;
            return h->sym[index + (code - first)];
        }
        index += count;
        first += count;
        first <<= 1;
        code <<= 1;
    }
    return -1;
}

static const uint16_t mmspcl__img_lbase[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                               35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const unsigned char mmspcl__img_lext[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                                   3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t mmspcl__img_dbase[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129,
                                               193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
                                               4097, 6145, 8193, 12289, 16385, 24577};
static const unsigned char mmspcl__img_dext[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                                   6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static mmspcl_status mmspcl__img_codes(mmspcl__img_inflate *s, const mmspcl__img_huff *lit,
                                       const mmspcl__img_huff *dist) {
    for (;;) {
        int sym = mmspcl__img_huff_decode(s, lit);
        if (sym < 0) return mmspcl__img_zfail(s, "invalid literal/length code or data truncated");
        if (sym < 256) {
            if (s->out_pos >= s->out_n) return mmspcl__img_zfail(s, "more data than the image needs");
            s->out[s->out_pos++] = (unsigned char)sym;
        } else if (sym == 256) {
            return MMSPCL_OK;
        } else {
            unsigned extra, len, d;
            int ds;
            sym -= 257;
            if (sym >= 29) return mmspcl__img_zfail(s, "invalid length symbol");
            if (mmspcl__img_getbits(s, mmspcl__img_lext[sym], &extra)) return mmspcl__img_zfail(s, "data truncated");
            len = mmspcl__img_lbase[sym] + extra;
            ds = mmspcl__img_huff_decode(s, dist);
            if (ds < 0) return mmspcl__img_zfail(s, "invalid distance code or data truncated");
            if (ds >= 30) return mmspcl__img_zfail(s, "invalid distance symbol");
            if (mmspcl__img_getbits(s, mmspcl__img_dext[ds], &extra)) return mmspcl__img_zfail(s, "data truncated");
            d = mmspcl__img_dbase[ds] + extra;
            if (d > s->out_pos) return mmspcl__img_zfail(s, "distance reaches before the start of the data");
            if (len > s->out_n - s->out_pos) return mmspcl__img_zfail(s, "more data than the image needs");
            {
                unsigned char *o = s->out + s->out_pos;
                const unsigned char *from = o - d;
                unsigned i;
                for (i = 0; i < len; i++) o[i] = from[i];
                s->out_pos += len;
            }
        }
    }
}

static mmspcl_status mmspcl__img_dynamic(mmspcl__img_inflate *s, mmspcl__img_huff *lit, mmspcl__img_huff *dist) {
    static const unsigned char order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    unsigned char lens[320];
    unsigned hlit, hdist, hclen, v;
    int i, nlen, ndist, ncode;
    if (mmspcl__img_getbits(s, 5, &hlit) || mmspcl__img_getbits(s, 5, &hdist) || mmspcl__img_getbits(s, 4, &hclen))
        return mmspcl__img_zfail(s, "data truncated");
    nlen = (int)hlit + 257;
    ndist = (int)hdist + 1;
    ncode = (int)hclen + 4;
    if (nlen > 286 || ndist > 30) return mmspcl__img_zfail(s, "too many length or distance symbols");
    memset(lens, 0, sizeof lens);
    for (i = 0; i < ncode; i++) {
        if (mmspcl__img_getbits(s, 3, &v)) return mmspcl__img_zfail(s, "data truncated");
        lens[order[i]] = (unsigned char)v;
    }
    if (mmspcl__img_huff_build(lit, lens, 19, 0)) return mmspcl__img_zfail(s, "invalid code-length code");
    memset(lens, 0, sizeof lens);
    for (i = 0; i < nlen + ndist;) {
        int sym = mmspcl__img_huff_decode(s, lit), rep;
        unsigned char val = 0;
        if (sym < 0) return mmspcl__img_zfail(s, "invalid code-length symbol or data truncated");
        if (sym < 16) {
            lens[i++] = (unsigned char)sym;
            continue;
        }
        if (sym == 16) {
            if (i == 0) return mmspcl__img_zfail(s, "length repeat with no previous length");
            val = lens[i - 1];
            if (mmspcl__img_getbits(s, 2, &v)) return mmspcl__img_zfail(s, "data truncated");
            rep = 3 + (int)v;
        } else if (sym == 17) {
            if (mmspcl__img_getbits(s, 3, &v)) return mmspcl__img_zfail(s, "data truncated");
            rep = 3 + (int)v;
        } else {
            if (mmspcl__img_getbits(s, 7, &v)) return mmspcl__img_zfail(s, "data truncated");
            rep = 11 + (int)v;
        }
        if (i + rep > nlen + ndist) return mmspcl__img_zfail(s, "code lengths repeat past the end");
        while (rep--) lens[i++] = val;
    }
    if (lens[256] == 0) return mmspcl__img_zfail(s, "no end-of-block code");
    if (mmspcl__img_huff_build(lit, lens, nlen, 1)) return mmspcl__img_zfail(s, "invalid literal/length code lengths");
    if (mmspcl__img_huff_build(dist, lens + nlen, ndist, 1)) return mmspcl__img_zfail(s, "invalid distance code lengths");
    return mmspcl__img_codes(s, lit, dist);
}

/* Inflates a zlib stream into exactly out_n bytes. */
static mmspcl_status mmspcl__img_zlib(const unsigned char *in, size_t n, unsigned char *out, size_t out_n,
                                      const char *label, mmspcl_error *err) {
    mmspcl__img_inflate s;
    mmspcl__img_huff *lit, *dist;
    mmspcl_status st = MMSPCL_OK;
    unsigned last = 0, type, v;
    uint32_t a = 1, b = 0, want;
    size_t i;
    memset(&s, 0, sizeof s);
    s.in = in; s.n = n; s.out = out; s.out_n = out_n; s.label = label; s.err = err;
    if (n < 2) return mmspcl__img_zfail(&s, "stream shorter than its 2-byte header");
    if ((in[0] & 15) != 8 || (in[0] >> 4) > 7 || ((unsigned)in[0] * 256 + in[1]) % 31 != 0)
        return mmspcl__img_zfail(&s, "bad zlib header");
    if (in[1] & 32) return mmspcl__img_zfail(&s, "zlib preset dictionary is not allowed in PNG");
    s.pos = 2;
    lit = (mmspcl__img_huff *)MMSPCL_MALLOC(2 * sizeof *lit);
    if (!lit) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: out of memory for inflate tables", label);
    dist = lit + 1;
    while (!last && !st) {
        if (mmspcl__img_getbits(&s, 1, &last) || mmspcl__img_getbits(&s, 2, &type)) {
            st = mmspcl__img_zfail(&s, "data truncated");
            break;
        }
        if (type == 0) {
            unsigned len, nlen;
            mmspcl__img_consume(&s, s.nbits & 7); /* to a byte boundary */
            if (mmspcl__img_getbits(&s, 16, &len) || mmspcl__img_getbits(&s, 16, &nlen)) {
                st = mmspcl__img_zfail(&s, "data truncated");
            } else if (len != (~nlen & 0xFFFFu)) {
                st = mmspcl__img_zfail(&s, "stored block length does not match its complement");
            } else if (len > out_n - s.out_pos) {
                st = mmspcl__img_zfail(&s, "more data than the image needs");
            } else {
                unsigned k;
                for (k = 0; k < len; k++) {
                    if (mmspcl__img_getbits(&s, 8, &v)) { st = mmspcl__img_zfail(&s, "data truncated"); break; }
                    out[s.out_pos++] = (unsigned char)v;
                }
            }
        } else if (type == 1) {
            unsigned char lens[320];
            for (i = 0; i < 144; i++) lens[i] = 8;
            for (; i < 256; i++) lens[i] = 9;
            for (; i < 280; i++) lens[i] = 7;
            for (; i < 288; i++) lens[i] = 8;
            for (i = 0; i < 32; i++) lens[288 + i] = 5;
            mmspcl__img_huff_build(lit, lens, 288, 1);
            mmspcl__img_huff_build(dist, lens + 288, 32, 1);
            st = mmspcl__img_codes(&s, lit, dist);
        } else if (type == 2) {
            st = mmspcl__img_dynamic(&s, lit, dist);
        } else {
            st = mmspcl__img_zfail(&s, "invalid block type 3");
        }
    }
    MMSPCL_FREE(lit);
    if (st) return st;
    if (s.out_pos != out_n) {
        char msg[96];
        snprintf(msg, sizeof msg, "data ends after %zu of the %zu bytes the image needs", s.out_pos, out_n);
        return mmspcl__img_zfail(&s, msg);
    }
    mmspcl__img_consume(&s, s.nbits & 7);
    want = 0;
    for (i = 0; i < 4; i++) {
        if (mmspcl__img_getbits(&s, 8, &v)) return mmspcl__img_zfail(&s, "Adler-32 checksum is missing");
        want = (want << 8) | v;
    }
    for (i = 0; i < out_n;) { /* Adler-32 in blocks short enough not to overflow */
        size_t end = i + 5552 < out_n ? i + 5552 : out_n;
        for (; i < end; i++) { a += out[i]; b += a; }
        a %= 65521u;
        b %= 65521u;
    }
    if (((b << 16) | a) != want) {
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG image data (zlib): Adler-32 mismatch (stored %08x, computed %08x)",
                            label, (unsigned)want, (unsigned)((b << 16) | a));
    }
    return MMSPCL_OK;
}

/* ---- 10.4 PNG ---------------------------------------------------------------------------- */
static const uint32_t mmspcl__img_crc_table[256] = { /* CRC-32, reflected polynomial 0xEDB88320 */
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

static uint32_t mmspcl__img_crc32(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    size_t i;
    for (i = 0; i < n; i++) c = mmspcl__img_crc_table[(c ^ p[i]) & 255] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static unsigned char mmspcl__img_paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc) return (unsigned char)a;
    if (pb <= pc) return (unsigned char)b;
    return (unsigned char)c;
}

/* Undoes the filters of `rows` rows of `rb` bytes (plus the filter byte) in place. */
static mmspcl_status mmspcl__img_unfilter(unsigned char *d, size_t rows, size_t rb, size_t bpp,
                                          const char *label, mmspcl_error *err) {
    size_t y, x;
    for (y = 0; y < rows; y++) {
        unsigned char *r = d + y * (rb + 1) + 1;
        const unsigned char *up = y ? r - (rb + 1) : NULL;
        unsigned ft = r[-1];
        switch (ft) {
        case 0: break;
        case 1: for (x = bpp; x < rb; x++) r[x] = (unsigned char)(r[x] + r[x - bpp]); break;
        case 2: if (up) for (x = 0; x < rb; x++) r[x] = (unsigned char)(r[x] + up[x]); break;
        case 3:
            for (x = 0; x < rb; x++) {
                unsigned a = x >= bpp ? r[x - bpp] : 0, b = up ? up[x] : 0;
                r[x] = (unsigned char)(r[x] + ((a + b) >> 1));
            }
            break;
        case 4:
            for (x = 0; x < rb; x++) {
                int a = x >= bpp ? r[x - bpp] : 0, b = up ? up[x] : 0, c = (up && x >= bpp) ? up[x - bpp] : 0;
                r[x] = (unsigned char)(r[x] + mmspcl__img_paeth(a, b, c));
            }
            break;
        default:
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: row %zu has filter type %u (0..4 allowed)",
                                label, y, ft);
        }
    }
    return MMSPCL_OK;
}

/* Converts one unfiltered row of n pixels to RGB, writing pixel i at o + i*step*3. */
static void mmspcl__img_png_row(const unsigned char *r, size_t n, int ctype, int depth,
                                const unsigned char (*pal)[3], unsigned char *o, size_t step) {
    size_t i;
    int bps = depth == 16 ? 2 : 1; /* bytes per sample when depth >= 8 */
    for (i = 0; i < n; i++, o += 3 * step) {
        switch (ctype) {
        case 2: o[0] = r[3 * bps * i]; o[1] = r[3 * bps * i + bps]; o[2] = r[3 * bps * i + 2 * bps]; break;
        case 6: o[0] = r[4 * bps * i]; o[1] = r[4 * bps * i + bps]; o[2] = r[4 * bps * i + 2 * bps]; break;
        case 4: o[0] = o[1] = o[2] = r[2 * bps * i]; break;
        default: {
            unsigned v;
            if (depth >= 8) {
                v = r[bps * i];
            } else {
                size_t bit = i * (size_t)depth;
                v = (r[bit >> 3] >> (8 - depth - (int)(bit & 7))) & ((1u << depth) - 1);
            }
            if (ctype == 3) {
                o[0] = pal[v][0]; o[1] = pal[v][1]; o[2] = pal[v][2];
            } else {
                unsigned char g = (unsigned char)(depth == 1 ? v * 255 : depth == 2 ? v * 85 : depth == 4 ? v * 17 : v);
                o[0] = o[1] = o[2] = g;
            }
        }
        }
    }
}

static mmspcl_status mmspcl__img_png(const unsigned char *p, size_t n, mmspcl_image *out,
                                     const char *label, mmspcl_error *err) {
    static const int a7x0[7] = {0, 4, 0, 2, 0, 1, 0}, a7y0[7] = {0, 0, 4, 0, 2, 0, 1};
    static const int a7dx[7] = {8, 8, 4, 4, 2, 2, 1}, a7dy[7] = {8, 8, 8, 4, 4, 2, 2};
    unsigned char pal[256][3];
    int have_ihdr = 0, have_plte = 0, have_iend = 0, seen_idat = 0, idat_done = 0;
    int64_t w = 0, h = 0;
    int depth = 0, ctype = 0, interlace = 0, channels = 1, npal = 0, pass;
    size_t pos = 8, idat_total = 0, idat_first = 0, raw_n = 0, bpp;
    unsigned char *z = NULL, *raw = NULL;
    mmspcl_status st;
    memset(pal, 0, sizeof pal);
    /* pass 1: walk and check every chunk, read IHDR and PLTE, measure IDAT */
    while (!have_iend) {
        uint32_t len, crc;
        const unsigned char *type, *data;
        int c;
        if (n - pos < 12)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: truncated at byte %zu (no IEND chunk)", label, pos);
        len = mmspcl__img_be32(p + pos);
        type = p + pos + 4;
        data = p + pos + 8;
        if (len > 0x7FFFFFFFu || (size_t)len > n - pos - 12)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: chunk at byte %zu has length %u, past the end of the file (%zu bytes)",
                                label, pos, (unsigned)len, n);
        for (c = 0; c < 4; c++)
            if (!((type[c] >= 'A' && type[c] <= 'Z') || (type[c] >= 'a' && type[c] <= 'z')))
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: chunk at byte %zu has an invalid type", label, pos);
        crc = mmspcl__img_crc32(type, (size_t)len + 4);
        if (crc != mmspcl__img_be32(data + len))
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: CRC mismatch in chunk %.4s at byte %zu",
                                label, (const char *)type, pos);
        if (!have_ihdr && memcmp(type, "IHDR", 4) != 0)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: the first chunk is %.4s, not IHDR", label, (const char *)type);
        if (seen_idat && memcmp(type, "IDAT", 4) != 0) idat_done = 1;
        if (!memcmp(type, "IHDR", 4)) {
            static const char *const names[7] = {"grey", "?", "RGB", "palette", "grey+alpha", "?", "RGBA"};
            int ok;
            if (have_ihdr) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: second IHDR at byte %zu", label, pos);
            if (len != 13) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: IHDR length %u (13 expected)", label, (unsigned)len);
            have_ihdr = 1;
            w = mmspcl__img_be32(data);
            h = mmspcl__img_be32(data + 4);
            depth = data[8];
            ctype = data[9];
            interlace = data[12];
            if (w < 1 || h < 1 || w > 0x7FFFFFFF || h > 0x7FFFFFFF)
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: IHDR size %lld x %lld", label, (long long)w, (long long)h);
            switch (ctype) {
            case 0: ok = depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16; channels = 1; break;
            case 3: ok = depth == 1 || depth == 2 || depth == 4 || depth == 8; channels = 1; break;
            case 2: ok = depth == 8 || depth == 16; channels = 3; break;
            case 4: ok = depth == 8 || depth == 16; channels = 2; break;
            case 6: ok = depth == 8 || depth == 16; channels = 4; break;
            default:
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: colour type %d is invalid", label, ctype);
            }
            if (!ok)
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: bit depth %d is invalid for colour type %d (%s)",
                                    label, depth, ctype, names[ctype]);
            if (data[10] != 0 || data[11] != 0)
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: compression method %d / filter method %d (0 expected)",
                                    label, data[10], data[11]);
            if (interlace > 1)
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: interlace method %d", label, interlace);
            if (w > MMSPCL_IMAGE_MAX_SIDE || h > MMSPCL_IMAGE_MAX_SIDE || w * h > MMSPCL_IMAGE_MAX_PIXELS)
                return mmspcl__img_alloc(out, w, h, label, "PNG", err);
        } else if (!memcmp(type, "PLTE", 4)) {
            if (seen_idat) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: PLTE after IDAT", label);
            if (have_plte) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: second PLTE", label);
            if (len % 3 || len == 0 || len > 768)
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: PLTE length %u", label, (unsigned)len);
            have_plte = 1;
            npal = (int)(len / 3);
            memcpy(pal, data, len);
        } else if (!memcmp(type, "IDAT", 4)) {
            if (idat_done) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: IDAT chunks are not consecutive (byte %zu)", label, pos);
            if (!seen_idat) idat_first = pos;
            seen_idat = 1;
            idat_total += len;
        } else if (!memcmp(type, "IEND", 4)) {
            have_iend = 1;
        } else if (!(type[0] & 32)) {
            return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: PNG: unknown critical chunk %.4s at byte %zu",
                                label, (const char *)type, pos);
        }
        pos += (size_t)len + 12;
    }
    if (!seen_idat) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: no IDAT chunk", label);
    if (ctype == 3 && !have_plte) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: palette image without PLTE", label);
    (void)npal; /* indices past the palette give black */
    bpp = (size_t)channels * (size_t)depth / 8;
    if (bpp == 0) bpp = 1;
    /* expected decompressed size */
    for (pass = 0; pass < (interlace ? 7 : 1); pass++) {
        int64_t pw = interlace ? (w - a7x0[pass] + a7dx[pass] - 1) / a7dx[pass] : w;
        int64_t ph = interlace ? (h - a7y0[pass] + a7dy[pass] - 1) / a7dy[pass] : h;
        if (pw <= 0 || ph <= 0) continue;
        raw_n += (size_t)ph * (((size_t)pw * (size_t)channels * (size_t)depth + 7) / 8 + 1);
    }
    /* deflate expands at most 1032:1 (a 258-byte match in 2 bits): refuse before allocating */
    if ((uint64_t)raw_n / 1032 > (uint64_t)idat_total + 64)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: %zu bytes of IDAT cannot hold the %zu bytes a %lld x %lld image needs",
                            label, idat_total, raw_n, (long long)w, (long long)h);
    z = (unsigned char *)MMSPCL_MALLOC(idat_total ? idat_total : 1);
    raw = (unsigned char *)MMSPCL_MALLOC(raw_n);
    if (!z || !raw) {
        MMSPCL_FREE(z); MMSPCL_FREE(raw);
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: PNG: out of memory (%zu + %zu bytes)", label, idat_total, raw_n);
    }
    /* pass 2: gather the IDAT data */
    {
        size_t q = idat_first, zpos = 0;
        while (q + 8 <= n && !memcmp(p + q + 4, "IDAT", 4)) {
            uint32_t len = mmspcl__img_be32(p + q);
            memcpy(z + zpos, p + q + 8, len);
            zpos += len;
            q += (size_t)len + 12;
        }
    }
    st = mmspcl__img_zlib(z, idat_total, raw, raw_n, label, err);
    MMSPCL_FREE(z);
    if (!st) st = mmspcl__img_alloc(out, w, h, label, "PNG", err);
    if (!st) {
        size_t off = 0;
        for (pass = 0; pass < (interlace ? 7 : 1) && !st; pass++) {
            size_t x0 = interlace ? (size_t)a7x0[pass] : 0, y0 = interlace ? (size_t)a7y0[pass] : 0;
            size_t dx = interlace ? (size_t)a7dx[pass] : 1, dy = interlace ? (size_t)a7dy[pass] : 1;
            int64_t pw = interlace ? (w - a7x0[pass] + a7dx[pass] - 1) / a7dx[pass] : w;
            int64_t ph = interlace ? (h - a7y0[pass] + a7dy[pass] - 1) / a7dy[pass] : h;
            size_t rb, y;
            if (pw <= 0 || ph <= 0) continue;
            rb = ((size_t)pw * (size_t)channels * (size_t)depth + 7) / 8;
            st = mmspcl__img_unfilter(raw + off, (size_t)ph, rb, bpp, label, err);
            for (y = 0; y < (size_t)ph && !st; y++)
                mmspcl__img_png_row(raw + off + y * (rb + 1) + 1, (size_t)pw, ctype, depth,
                                    (const unsigned char(*)[3])pal,
                                    out->rgb + ((y0 + y * dy) * (size_t)w + x0) * 3, dx);
            off += (size_t)ph * (rb + 1);
        }
        if (st) mmspcl_image_free(out);
    }
    MMSPCL_FREE(raw);
    return st;
}

/* ---- 10.5 Format detection and loading ------------------------------------------------------
   Public decode / load / free. */
static mmspcl_status mmspcl__img_decode(const unsigned char *p, size_t n, mmspcl_image *out,
                                        const char *label, mmspcl_error *err) {
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    const char *fmt = NULL;
    if (n >= 8 && !memcmp(p, png_sig, 8)) return mmspcl__img_png(p, n, out, label, err);
    if (n >= 2 && p[0] == 'B' && p[1] == 'M') return mmspcl__img_bmp(p, n, out, label, err);
    if (n >= 2 && p[0] == 'P' && (p[1] == '5' || p[1] == '6')) return mmspcl__img_pnm(p, n, out, label, err);
    if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) fmt = "JPEG";
    else if (n >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6))) fmt = "GIF";
    else if (n >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4)) fmt = "WebP";
    else if (n >= 4 && (!memcmp(p, "II*\0", 4) || !memcmp(p, "MM\0*", 4))) fmt = "TIFF";
    else if (n >= 12 && !memcmp(p + 4, "ftyp", 4)) fmt = "HEIF/AVIF (ISO media)";
    else if (n >= 4 && !memcmp(p, "qoif", 4)) fmt = "QOI";
    else if (n >= 4 && p[0] == 0 && p[1] == 0 && (p[2] == 1 || p[2] == 2) && p[3] == 0) fmt = "ICO/CUR";
    else if (n >= 4 && !memcmp(p, "8BPS", 4)) fmt = "Photoshop PSD";
    else if (n >= 12 && !memcmp(p, "\0\0\0\x0CjP  ", 8)) fmt = "JPEG 2000";
    else if (n >= 4 && !memcmp(p, "\x76\x2f\x31\x01", 4)) fmt = "OpenEXR";
    else if (n >= 2 && p[0] == 'P' && p[1] >= '1' && p[1] <= '4') fmt = "plain-text or 1-bit PNM (P1-P4)";
    else if (n >= 2 && p[0] == 'P' && p[1] == '7') fmt = "PAM (P7)";
    if (fmt)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: %s images are not supported (PNG, BMP, binary PPM/PGM are)",
                            label, fmt);
    if (n == 0) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: empty image data", label);
    return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED,
                        "%s: unknown image format (first bytes %02x %02x %02x %02x; PNG, BMP, binary PPM/PGM are supported)",
                        label, p[0], n > 1 ? p[1] : 0, n > 2 ? p[2] : 0, n > 3 ? p[3] : 0);
}

mmspcl_status mmspcl_image_decode(const void *bytes, size_t size, mmspcl_image *out, mmspcl_error *err) {
    mmspcl_status st;
    if (!out) return mmspcl__fail(err, MMSPCL_ERR_ARG, "image_decode: NULL output");
    out->width = out->height = 0;
    out->rgb = NULL;
    if (!bytes && size) return mmspcl__fail(err, MMSPCL_ERR_ARG, "image_decode: NULL bytes");
    st = mmspcl__img_decode((const unsigned char *)bytes, bytes ? size : 0, out, "image", err);
    if (st) mmspcl_image_free(out);
    return st;
}

void mmspcl_image_free(mmspcl_image *img) {
    if (!img) return;
    MMSPCL_FREE(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}

#ifndef MMSPCL_NO_STDIO
mmspcl_status mmspcl_image_load(const char *path, mmspcl_image *out, mmspcl_error *err) {
    const int64_t max_bytes = MMSPCL_IMAGE_MAX_FILE_BYTES;
    const uint64_t max_size = (uint64_t)(SIZE_MAX / 2);
    unsigned char *buf;
    size_t len;
    mmspcl_status st;
    if (!out) return mmspcl__fail(err, MMSPCL_ERR_ARG, "image_load: NULL output");
    out->width = out->height = 0;
    out->rgb = NULL;
    if (!path) return mmspcl__fail(err, MMSPCL_ERR_ARG, "image_load: NULL path");
    /* through variables: where size_t is 32 bits a constant bound would warn (-Wtype-limits) */
    if ((st = mmspcl_read_file(path, (uint64_t)max_bytes < max_size ? (size_t)max_bytes : (size_t)max_size, &buf, &len, err)))
        return st;
    st = mmspcl__img_decode(buf, len, out, path, err);
    if (st) mmspcl_image_free(out);
    MMSPCL_FREE(buf);
    return st;
}
#endif

/* ---- 10.6 Pillow-exact bicubic resampling ---------------------------------------------------
   The same arithmetic as Pillow's libImaging/Resample.c, written anew. */
#define MMSPCL__IMG_PREC 22 /* fraction bits of the fixed-point coefficients (32 - 8 - 2) */

static double mmspcl__img_bicubic(double x) { /* a = -0.5 */
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((-0.5 + 2.0) * x - (-0.5 + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * -0.5;
    return 0.0;
}

typedef struct mmspcl__img_coeffs {
    int ksize;
    int *lo, *cnt;  /* first source index and number of taps of each output index */
    int32_t *k;     /* ksize per output index */
} mmspcl__img_coeffs;

/* Coefficients for output indices first .. first+count-1 of an in_size -> out_size resampling. */
static int mmspcl__img_coeffs_make(mmspcl__img_coeffs *c, int in_size, int out_size, int first, int count) {
    double scale = (double)(float)in_size / out_size, fscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * fscale, ss = 1.0 / fscale;
    double *wbuf;
    int i, ksize = (int)ceil(support) * 2 + 1;
    c->ksize = ksize;
    c->lo = (int *)MMSPCL_MALLOC(sizeof(int) * 2 * (size_t)count);
    c->k = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)ksize * (size_t)count);
    wbuf = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)ksize);
    if (!c->lo || !c->k || !wbuf) {
        MMSPCL_FREE(c->lo); MMSPCL_FREE(c->k); MMSPCL_FREE(wbuf);
        c->lo = NULL; c->k = NULL;
        return -1;
    }
    c->cnt = c->lo + count;
    for (i = 0; i < count; i++) {
        double center = 0.0 + ((double)(first + i) + 0.5) * scale, ww = 0.0;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5), x;
        int32_t *k = c->k + (size_t)i * (size_t)ksize;
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        if (xmax > ksize) xmax = ksize;
        if (xmax < 0) xmax = 0;
        for (x = 0; x < xmax; x++) {
            double v = mmspcl__img_bicubic(((double)(x + xmin) - center + 0.5) * ss);
            wbuf[x] = v;
            ww += v;
        }
        for (x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? wbuf[x] / ww : wbuf[x];
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << MMSPCL__IMG_PREC)) : (int32_t)(0.5 + v * (1 << MMSPCL__IMG_PREC));
        }
        for (; x < ksize; x++) k[x] = 0;
        c->lo[i] = xmin;
        c->cnt[i] = xmax;
    }
    MMSPCL_FREE(wbuf);
    return 0;
}

static void mmspcl__img_coeffs_free(mmspcl__img_coeffs *c) {
    MMSPCL_FREE(c->lo);
    MMSPCL_FREE(c->k);
    c->lo = NULL; c->k = NULL;
}

static unsigned char mmspcl__img_clip8(int64_t v) {
    if (v < 0) return 0;
    v >>= MMSPCL__IMG_PREC;
    return (unsigned char)(v > 255 ? 255 : v);
}

/* The window [x0, x0+cw) x [y0, y0+ch) of the dw x dh bicubic resize of src (w x h RGB, `stride`
   bytes per row), written to dst with `dstride` bytes per row. The window lies inside dw x dh. */
static mmspcl_status mmspcl__img_resample(const unsigned char *src, int w, int h, size_t stride,
                                          int dw, int dh, int x0, int y0, int cw, int ch,
                                          unsigned char *dst, size_t dstride) {
    mmspcl__img_coeffs cx, cy;
    const unsigned char *t; /* rows after the horizontal pass */
    unsigned char *tmp = NULL;
    size_t tstride;
    int need_h = dw != w, need_v = dh != h, r0, r1, xx, yy;
    memset(&cx, 0, sizeof cx);
    memset(&cy, 0, sizeof cy);
    if (cw <= 0 || ch <= 0) return MMSPCL_OK;
    if (need_v) {
        if (mmspcl__img_coeffs_make(&cy, h, dh, y0, ch)) return MMSPCL_ERR_NOMEM;
        r0 = cy.lo[0];
        r1 = cy.lo[ch - 1] + cy.cnt[ch - 1];
        for (yy = 0; yy < ch; yy++) { /* rows used by the window */
            if (cy.lo[yy] < r0) r0 = cy.lo[yy];
            if (cy.lo[yy] + cy.cnt[yy] > r1) r1 = cy.lo[yy] + cy.cnt[yy];
        }
    } else {
        r0 = y0;
        r1 = y0 + ch;
    }
    if (need_h) {
        int r;
        if (mmspcl__img_coeffs_make(&cx, w, dw, x0, cw)) { mmspcl__img_coeffs_free(&cy); return MMSPCL_ERR_NOMEM; }
        tstride = (size_t)cw * 3;
        tmp = (unsigned char *)MMSPCL_MALLOC(tstride * (size_t)(r1 > r0 ? r1 - r0 : 1));
        if (!tmp) { mmspcl__img_coeffs_free(&cx); mmspcl__img_coeffs_free(&cy); return MMSPCL_ERR_NOMEM; }
        for (r = r0; r < r1; r++) {
            const unsigned char *s = src + (size_t)r * stride;
            unsigned char *o = tmp + (size_t)(r - r0) * tstride;
            for (xx = 0; xx < cw; xx++) {
                const int32_t *k = cx.k + (size_t)xx * (size_t)cx.ksize;
                const unsigned char *sp = s + (size_t)cx.lo[xx] * 3;
                int64_t a0 = 1 << (MMSPCL__IMG_PREC - 1), a1 = a0, a2 = a0;
                int n = cx.cnt[xx], x;
                for (x = 0; x < n; x++) {
                    a0 += (int64_t)sp[3 * x] * k[x];
                    a1 += (int64_t)sp[3 * x + 1] * k[x];
                    a2 += (int64_t)sp[3 * x + 2] * k[x];
                }
                o[3 * xx] = mmspcl__img_clip8(a0);
                o[3 * xx + 1] = mmspcl__img_clip8(a1);
                o[3 * xx + 2] = mmspcl__img_clip8(a2);
            }
        }
        t = tmp;
        mmspcl__img_coeffs_free(&cx);
    } else {
        t = src + (size_t)r0 * stride + (size_t)x0 * 3;
        tstride = stride;
    }
    for (yy = 0; yy < ch; yy++) {
        unsigned char *o = dst + (size_t)yy * dstride;
        if (!need_v) {
            memcpy(o, t + (size_t)yy * tstride, (size_t)cw * 3);
            continue;
        }
        {
            const int32_t *k = cy.k + (size_t)yy * (size_t)cy.ksize;
            const unsigned char *base = t + (size_t)(cy.lo[yy] - r0) * tstride;
            int n = cy.cnt[yy];
            for (xx = 0; xx < cw * 3; xx++) {
                int64_t a = 1 << (MMSPCL__IMG_PREC - 1);
                const unsigned char *sp = base + xx;
                int y;
                for (y = 0; y < n; y++) a += (int64_t)sp[(size_t)y * tstride] * k[y];
                o[xx] = mmspcl__img_clip8(a);
            }
        }
    }
    MMSPCL_FREE(tmp);
    mmspcl__img_coeffs_free(&cy);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_image_resize_bicubic(const unsigned char *src, int w, int h, unsigned char *dst, int dw, int dh) {
    if (!src || !dst || w < 1 || h < 1 || dw < 1 || dh < 1 || w > MMSPCL_IMAGE_MAX_SIDE || h > MMSPCL_IMAGE_MAX_SIDE ||
        dw > MMSPCL_IMAGE_MAX_SIDE || dh > MMSPCL_IMAGE_MAX_SIDE)
        return MMSPCL_ERR_ARG;
    return mmspcl__img_resample(src, w, h, (size_t)w * 3, dw, dh, 0, 0, dw, dh, dst, (size_t)dw * 3);
}

/* ---- 10.7 CLIP preprocessing ------------------------------------------------------------- */
mmspcl_status mmspcl_clip_resize_size(int w, int h, int shortest_edge, int *out_w, int *out_h) {
    int shorter, longer, nl;
    double v;
    if (w < 1 || h < 1 || w > MMSPCL_IMAGE_MAX_SIDE || h > MMSPCL_IMAGE_MAX_SIDE || shortest_edge < 1 ||
        shortest_edge > MMSPCL_CLIP_MAX_SIZE || !out_w || !out_h)
        return MMSPCL_ERR_ARG;
    shorter = w <= h ? w : h;
    longer = w <= h ? h : w;
    /* Python: int(S * long / short): exact product, correctly rounded division, truncation */
    v = (double)((int64_t)shortest_edge * longer) / (double)shorter;
    nl = (int)v;
    if (w <= h) { *out_w = shortest_edge; *out_h = nl; }
    else { *out_w = nl; *out_h = shortest_edge; }
    return MMSPCL_OK;
}

static int mmspcl__img_floordiv2(int v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

mmspcl_status mmspcl_clip_resize_crop(const unsigned char *rgb, int width, int height, size_t stride,
                                      int shortest_edge, int crop, unsigned char *out, mmspcl_error *err) {
    int rw, rh, top, left, ys, ye, xs, xe;
    mmspcl_status st;
    if (!rgb || !out) return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip_resize_crop: NULL argument");
    if (width < 1 || height < 1 || width > MMSPCL_IMAGE_MAX_SIDE || height > MMSPCL_IMAGE_MAX_SIDE ||
        (int64_t)width * height > MMSPCL_IMAGE_MAX_PIXELS)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip preprocessing: image size %d x %d is outside 1..%d", width, height,
                            MMSPCL_IMAGE_MAX_SIDE);
    if (stride < (size_t)width * 3)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip preprocessing: stride %zu < width * 3 = %zu", stride, (size_t)width * 3);
    if (shortest_edge < 1 || shortest_edge > MMSPCL_CLIP_MAX_SIZE || crop < 1 || crop > MMSPCL_CLIP_MAX_SIZE)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip preprocessing: shortest_edge %d / crop %d outside 1..%d",
                            shortest_edge, crop, MMSPCL_CLIP_MAX_SIZE);
    mmspcl_clip_resize_size(width, height, shortest_edge, &rw, &rh);
    top = mmspcl__img_floordiv2(rh - crop);
    left = mmspcl__img_floordiv2(rw - crop);
    ys = top < 0 ? 0 : top;
    ye = top + crop > rh ? rh : top + crop;
    xs = left < 0 ? 0 : left;
    xe = left + crop > rw ? rw : left + crop;
    if (top < 0 || left < 0 || top + crop > rh || left + crop > rw)
        memset(out, 0, (size_t)crop * (size_t)crop * 3); /* padding (crop larger than the image) */
    st = mmspcl__img_resample(rgb, width, height, stride, rw, rh, xs, ys, xe - xs, ye - ys,
                              out + ((size_t)(ys - top) * (size_t)crop + (size_t)(xs - left)) * 3, (size_t)crop * 3);
    if (st) return mmspcl__fail(err, st, "clip preprocessing: out of memory resizing %d x %d to %d x %d", width, height, rw, rh);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_clip_preprocess_rgb(const unsigned char *rgb, int width, int height, size_t stride,
                                         int shortest_edge, int crop, const float mean[3], const float stdev[3],
                                         float *out, mmspcl_error *err) {
    unsigned char *u8;
    size_t n, i;
    int c;
    mmspcl_status st;
    if (!mean || !stdev || !out) return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip_preprocess: NULL argument");
    for (c = 0; c < 3; c++)
        if (!(stdev[c] != 0.0f)) return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip_preprocess: std[%d] is zero", c);
    if (crop < 1 || crop > MMSPCL_CLIP_MAX_SIZE)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip_preprocess: crop %d outside 1..%d", crop, MMSPCL_CLIP_MAX_SIZE);
    n = (size_t)crop * (size_t)crop;
    u8 = (unsigned char *)MMSPCL_MALLOC(n * 3);
    if (!u8) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "clip_preprocess: cannot allocate %zu bytes", n * 3);
    st = mmspcl_clip_resize_crop(rgb, width, height, stride, shortest_edge, crop, u8, err);
    if (!st) {
        for (c = 0; c < 3; c++) {
            float lut[256];
            int v;
            for (v = 0; v < 256; v++) {
                /* Hugging Face: rescale in float64 then cast to float32; normalise in float32 */
                float x = (float)((double)v * (1.0 / 255.0));
                lut[v] = (x - mean[c]) / stdev[c];
            }
            for (i = 0; i < n; i++) out[(size_t)c * n + i] = lut[u8[3 * i + (size_t)c]];
        }
    }
    MMSPCL_FREE(u8);
    return st;
}

mmspcl_status mmspcl_clip_preprocess(const mmspcl_image *img, int shortest_edge, int crop, const float mean[3],
                                     const float stdev[3], float *out, mmspcl_error *err) {
    if (!img || !img->rgb) return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip_preprocess: NULL or empty image");
    return mmspcl_clip_preprocess_rgb(img->rgb, img->width, img->height, (size_t)img->width * 3, shortest_edge, crop,
                                      mean, stdev, out, err);
}

/* ---------------------------------------------------------------------------------------------
   11. CLIP vision tower
   The API and the forward's equations are over the declarations.
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl__clip_layer {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    const mmspcl_tensor *q_w, *k_w, *v_w, *o_w, *fc1_w, *fc2_w;
    const float *q_b, *k_b, *v_b, *o_b, *fc1_b, *fc2_b;
} mmspcl__clip_layer;

struct mmspcl_clip {
    mmspcl_clip_config c;
    mmspcl_tensor patch_w;            /* the conv weight seen as a matrix [W, C*P*P] */
    const mmspcl_tensor *pos_emb;     /* [T, W], any float dtype (rows widened as they are used) */
    const float *class_emb;           /* [W] */
    const float *pre_ln_w, *pre_ln_b, *post_ln_w, *post_ln_b;
    const mmspcl_tensor *proj_w;      /* [proj, W] or NULL */
    mmspcl__clip_layer *layers;
    mmspcl__packed_set packed;        /* the layers' Linear weights repacked for this CPU, if it has such a kernel */
    float **owned;                    /* vectors widened to f32 at load */
    int n_owned;
    int max_batch, arena_threads;
    mmspcl_arena arena;
    const float *last_hidden;
};

/* Activations of one forward chunk of B images (T tokens, W wide, I in the MLP). */
typedef struct mmspcl__clip_acts {
    float *x;        /* [B*T][W] residual stream */
    float *h;        /* [B*T][W] layer norm output, patch embeddings, sub-layer output */
    float *q, *k, *v, *ctx;   /* [B*T][W] */
    float *f;        /* [B*T][I] MLP hidden; also the unfolded patches [B*N][C*P*P] */
    float *pooled;   /* [B][W] */
    float *scratch;  /* attention scratch */
} mmspcl__clip_acts;

static size_t mmspcl__clip_f_floats(const mmspcl_clip_config *c, int B) {
    size_t mlp = (size_t)B * (size_t)c->num_tokens * (size_t)c->intermediate_size;
    size_t unf = (size_t)B * (size_t)c->num_patches * (size_t)c->num_channels *
                 (size_t)c->patch_size * (size_t)c->patch_size;
    return mlp > unf ? mlp : unf;
}

/* Bytes the arena needs for B images with `threads` OpenMP threads (64 bytes of slack each). */
static size_t mmspcl__clip_arena_size(const mmspcl_clip_config *c, int B, int threads) {
    size_t tw = (size_t)B * (size_t)c->num_tokens * (size_t)c->hidden_size;
    size_t floats = 6 * tw + mmspcl__clip_f_floats(c, B) + (size_t)B * (size_t)c->hidden_size +
                    (size_t)threads * (size_t)c->num_tokens;
    return floats * sizeof(float) + 8 * 64;
}

static int mmspcl__clip_carve(mmspcl_arena *a, const mmspcl_clip_config *c, int B, int threads,
                              mmspcl__clip_acts *s) {
    size_t tw = (size_t)B * (size_t)c->num_tokens * (size_t)c->hidden_size;
    mmspcl_arena_reset(a);
    s->x = (float *)mmspcl_arena_alloc(a, tw * sizeof(float));
    s->h = (float *)mmspcl_arena_alloc(a, tw * sizeof(float));
    s->q = (float *)mmspcl_arena_alloc(a, tw * sizeof(float));
    s->k = (float *)mmspcl_arena_alloc(a, tw * sizeof(float));
    s->v = (float *)mmspcl_arena_alloc(a, tw * sizeof(float));
    s->ctx = (float *)mmspcl_arena_alloc(a, tw * sizeof(float));
    s->f = (float *)mmspcl_arena_alloc(a, mmspcl__clip_f_floats(c, B) * sizeof(float));
    s->pooled = (float *)mmspcl_arena_alloc(a, (size_t)B * (size_t)c->hidden_size * sizeof(float));
    s->scratch = (float *)mmspcl_arena_alloc(a, (size_t)threads * (size_t)c->num_tokens * sizeof(float));
    return s->x && s->h && s->q && s->k && s->v && s->ctx && s->f && s->pooled && s->scratch;
}

/* ---- 11.1 Loading ------------------------------------------------------------------------ */

static mmspcl_status mmspcl__clip_int(const mmspcl_weights *w, const char *key, int lo, int hi,
                                      int dflt, int *out, mmspcl_error *err) {
    int64_t v;
    if (!mmspcl_weights_get_int(w, key, &v)) {
        const char *why = mmspcl__kv_wrong(w, key, 1u << MMSPCL_KV_INT);
        if (*why) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "clip: '%s' is not an integer%s", key, why);
        if (dflt < 0) return mmspcl__fail(err, MMSPCL_ERR_NOT_FOUND, "clip: integer '%s' is missing", key);
        *out = dflt;
        return MMSPCL_OK;
    }
    if (v < lo || v > hi)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "clip: '%s' = %lld is out of range [%d, %d]", key,
                            (long long)v, lo, hi);
    *out = (int)v;
    return MMSPCL_OK;
}

static mmspcl_status mmspcl__clip_float(const mmspcl_weights *w, const char *key, double lo,
                                        double hi, double dflt, float *out, mmspcl_error *err) {
    double v;
    const char *why = mmspcl__kv_wrong(w, key, 1u << MMSPCL_KV_FLOAT | 1u << MMSPCL_KV_INT);
    if (*why) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "clip: '%s' is not a number%s", key, why);
    if (!mmspcl_weights_get_float(w, key, &v)) {
        int64_t iv;   /* an integer stored for a float key is fine */
        if (!mmspcl_weights_get_int(w, key, &iv)) { *out = (float)dflt; return MMSPCL_OK; }
        v = (double)iv;
    }
    if (!(v >= lo && v <= hi))
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "clip: '%s' = %g is out of range [%g, %g]", key, v, lo, hi);
    *out = (float)v;
    return MMSPCL_OK;
}

mmspcl_status mmspcl_clip_read_config(const mmspcl_weights *w, mmspcl_clip_config *c,
                                      mmspcl_error *err) {
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};  /* OpenAI CLIP's */
    static const float stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    const char *s;
    mmspcl_status st;
    int i;
    if (!w || !c) return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip_read_config: NULL argument");
    memset(c, 0, sizeof *c);
    if (!mmspcl_weights_get_str(w, "general.architecture", &s))
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "clip: the weight file has no 'general.architecture'");
    if (strcmp(s, "clip_vision") != 0)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED,
                            "clip: the weight file holds a '%.64s' model, not a CLIP vision tower ('clip_vision')", s);
    if ((st = mmspcl__clip_int(w, "clip.image_size", 1, 8192, -1, &c->image_size, err)) ||
        (st = mmspcl__clip_int(w, "clip.patch_size", 1, 8192, -1, &c->patch_size, err)) ||
        (st = mmspcl__clip_int(w, "clip.num_channels", 1, 16, 3, &c->num_channels, err)) ||
        (st = mmspcl__clip_int(w, "clip.hidden_size", 1, 65536, -1, &c->hidden_size, err)) ||
        (st = mmspcl__clip_int(w, "clip.num_hidden_layers", 0, 1024, -1, &c->num_layers, err)) ||
        (st = mmspcl__clip_int(w, "clip.num_attention_heads", 1, 65536, -1, &c->num_heads, err)) ||
        (st = mmspcl__clip_int(w, "clip.intermediate_size", 1, 1 << 20, -1, &c->intermediate_size, err)) ||
        (st = mmspcl__clip_int(w, "clip.projection_dim", 0, 1 << 20, 0, &c->projection_dim, err)) ||
        (st = mmspcl__clip_float(w, "clip.layer_norm_eps", 1e-30, 1.0, 1e-5, &c->layer_norm_eps, err)))
        return st;
    if (c->image_size % c->patch_size)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "clip: image_size %d is not a multiple of patch_size %d",
                            c->image_size, c->patch_size);
    if (c->hidden_size % c->num_heads)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "clip: hidden_size %d is not a multiple of num_attention_heads %d",
                            c->hidden_size, c->num_heads);
    c->num_patches = (c->image_size / c->patch_size) * (c->image_size / c->patch_size);
    c->num_tokens = 1 + c->num_patches;
    if ((int64_t)c->num_channels * c->patch_size * c->patch_size > (1 << 24))
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "clip: patch of %d x %d x %d values is too large",
                            c->num_channels, c->patch_size, c->patch_size);
    c->act = MMSPCL_CLIP_QUICK_GELU;
    if (mmspcl_weights_get_str(w, "clip.hidden_act", &s)) {
        if (!strcmp(s, "gelu")) c->act = MMSPCL_CLIP_GELU;
        else if (strcmp(s, "quick_gelu") != 0)
            return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED,
                                "clip: hidden_act '%.64s' is not supported (quick_gelu, gelu)", s);
    }
    if ((st = mmspcl__clip_int(w, "clip.resize_shortest_edge", 1, 1 << 16, c->image_size,
                               &c->resize_shortest_edge, err)) ||
        (st = mmspcl__clip_int(w, "clip.crop_size", 1, 1 << 16, c->image_size, &c->crop_size, err)))
        return st;
    if (c->crop_size != c->image_size)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "clip: crop_size %d differs from image_size %d",
                            c->crop_size, c->image_size);
    for (i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, "clip.image_mean.%d", i);
        if ((st = mmspcl__clip_float(w, key, -1e3, 1e3, mean[i], &c->image_mean[i], err))) return st;
        snprintf(key, sizeof key, "clip.image_std.%d", i);
        if ((st = mmspcl__clip_float(w, key, 1e-6, 1e3, stdv[i], &c->image_std[i], err))) return st;
    }
    return MMSPCL_OK;
}

/* A vector of n floats: f32 in place, other float types widened into memory the model owns. */
static mmspcl_status mmspcl__clip_vector(mmspcl_clip *m, const mmspcl_weights *w, const char *name,
                                         int64_t n, const float **out, mmspcl_error *err) {
    const mmspcl_tensor *t;
    mmspcl_status st;
    float *buf;
    if ((st = mmspcl_weights_expect(w, name, 1, &n, &t, err))) return st;
    if (t->dtype == MMSPCL_F32) { *out = (const float *)t->data; return MMSPCL_OK; }
    if (t->dtype == MMSPCL_I32 || mmspcl_dtype_row_size(t->dtype, n) == 0)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "clip: tensor '%s' has dtype %s, expected a float type",
                            name, mmspcl_dtype_name(t->dtype));
    buf = (float *)MMSPCL_MALLOC((size_t)n * sizeof(float));
    if (!buf) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "clip: no memory to widen '%s'", name);
    m->owned[m->n_owned++] = buf;   /* room was reserved by mmspcl_clip_load */
    mmspcl_dequantize_row(t->dtype, t->data, buf, n);
    *out = buf;
    return MMSPCL_OK;
}

static mmspcl_status mmspcl__clip_layer_load(mmspcl_clip *m, const mmspcl_weights *w, int l,
                                             mmspcl_error *err) {
    const mmspcl_clip_config *c = &m->c;
    mmspcl__clip_layer *L = &m->layers[l];
    int64_t W = c->hidden_size, I = c->intermediate_size;
    char name[128];
    mmspcl_status st;
#define MMSPCL__CLIP_NAME(suffix) (snprintf(name, sizeof name, "vision_model.encoder.layers.%d.%s", l, suffix), name)
    if ((st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("layer_norm1.weight"), W, &L->ln1_w, err)) ||
        (st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("layer_norm1.bias"), W, &L->ln1_b, err)) ||
        (st = mmspcl_weights_expect_matrix(w, MMSPCL__CLIP_NAME("self_attn.q_proj.weight"), W, W, &L->q_w, err)) ||
        (st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("self_attn.q_proj.bias"), W, &L->q_b, err)) ||
        (st = mmspcl_weights_expect_matrix(w, MMSPCL__CLIP_NAME("self_attn.k_proj.weight"), W, W, &L->k_w, err)) ||
        (st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("self_attn.k_proj.bias"), W, &L->k_b, err)) ||
        (st = mmspcl_weights_expect_matrix(w, MMSPCL__CLIP_NAME("self_attn.v_proj.weight"), W, W, &L->v_w, err)) ||
        (st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("self_attn.v_proj.bias"), W, &L->v_b, err)) ||
        (st = mmspcl_weights_expect_matrix(w, MMSPCL__CLIP_NAME("self_attn.out_proj.weight"), W, W, &L->o_w, err)) ||
        (st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("self_attn.out_proj.bias"), W, &L->o_b, err)) ||
        (st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("layer_norm2.weight"), W, &L->ln2_w, err)) ||
        (st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("layer_norm2.bias"), W, &L->ln2_b, err)) ||
        (st = mmspcl_weights_expect_matrix(w, MMSPCL__CLIP_NAME("mlp.fc1.weight"), I, W, &L->fc1_w, err)) ||
        (st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("mlp.fc1.bias"), I, &L->fc1_b, err)) ||
        (st = mmspcl_weights_expect_matrix(w, MMSPCL__CLIP_NAME("mlp.fc2.weight"), W, I, &L->fc2_w, err)) ||
        (st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("mlp.fc2.bias"), W, &L->fc2_b, err)))
        return st;
#undef MMSPCL__CLIP_NAME
    return MMSPCL_OK;
}

static mmspcl_status mmspcl__clip_load(mmspcl_clip *m, const mmspcl_weights *w, int max_batch,
                                       mmspcl_error *err) {
    mmspcl_clip_config *c = &m->c;
    const mmspcl_tensor *t;
    int64_t ne[4], W, D;
    mmspcl_status st;
    int l;
    if ((st = mmspcl_clip_read_config(w, c, err))) return st;
    W = c->hidden_size;
    D = (int64_t)c->num_channels * c->patch_size * c->patch_size;
    /* every vector may need widening: 16 per layer, 5 others */
    m->owned = (float **)MMSPCL_MALLOC(((size_t)c->num_layers * 16 + 5) * sizeof(float *));
    m->layers = (mmspcl__clip_layer *)MMSPCL_MALLOC(((size_t)c->num_layers + 1) * sizeof(mmspcl__clip_layer));
    if (!m->owned || !m->layers) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "clip: out of memory");

    ne[0] = W; ne[1] = c->num_channels; ne[2] = c->patch_size; ne[3] = c->patch_size;
    if ((st = mmspcl_weights_expect(w, "vision_model.embeddings.patch_embedding.weight", 4, ne, &t, err)))
        return st;
    m->patch_w = *t;                 /* the same bytes seen as [W, C*P*P] */
    m->patch_w.ndim = 2;
    m->patch_w.ne[1] = D;
    m->patch_w.ne[2] = m->patch_w.ne[3] = 0;
    if (t->dtype == MMSPCL_I32 || mmspcl_dtype_row_size(t->dtype, D) == 0)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "clip: tensor '%s' has dtype %s, which a matrix cannot use",
                            t->name, mmspcl_dtype_name(t->dtype));
    if ((st = mmspcl__clip_vector(m, w, "vision_model.embeddings.class_embedding", W, &m->class_emb, err)))
        return st;
    ne[0] = c->num_tokens; ne[1] = W;
    if ((st = mmspcl_weights_expect(w, "vision_model.embeddings.position_embedding.weight", 2, ne, &m->pos_emb, err)))
        return st;
    if (m->pos_emb->dtype == MMSPCL_I32 || mmspcl_dtype_row_size(m->pos_emb->dtype, W) == 0)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "clip: tensor '%s' has dtype %s, expected a float type",
                            m->pos_emb->name, mmspcl_dtype_name(m->pos_emb->dtype));
    if ((st = mmspcl__clip_vector(m, w, "vision_model.pre_layrnorm.weight", W, &m->pre_ln_w, err)) ||
        (st = mmspcl__clip_vector(m, w, "vision_model.pre_layrnorm.bias", W, &m->pre_ln_b, err)))
        return st;
    for (l = 0; l < c->num_layers; l++)
        if ((st = mmspcl__clip_layer_load(m, w, l, err))) return st;
    if ((st = mmspcl__clip_vector(m, w, "vision_model.post_layernorm.weight", W, &m->post_ln_w, err)) ||
        (st = mmspcl__clip_vector(m, w, "vision_model.post_layernorm.bias", W, &m->post_ln_b, err)))
        return st;
    m->proj_w = NULL;
    if (c->projection_dim > 0) {
        if ((st = mmspcl_weights_expect_matrix(w, "visual_projection.weight", c->projection_dim, W, &m->proj_w, err)))
            return st;
    } else if (mmspcl_weights_find(w, "visual_projection.weight")) {
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT,
                            "clip: tensor 'visual_projection.weight' is present but clip.projection_dim is missing or 0");
    }
    {   /* every activation index of a chunk must fit an int */
        int64_t widest = W > c->intermediate_size ? W : c->intermediate_size;
        if (D > widest) widest = D;
        if ((double)max_batch * (double)c->num_tokens * (double)widest > 2147483647.0)
            return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip: max_batch %d is too large for %d tokens of %lld values",
                                max_batch, c->num_tokens, (long long)widest);
    }
    m->max_batch = max_batch;
    m->arena_threads = mmspcl__team();
    {
        static const size_t offs[6] = {offsetof(mmspcl__clip_layer, q_w), offsetof(mmspcl__clip_layer, k_w),
                                       offsetof(mmspcl__clip_layer, v_w), offsetof(mmspcl__clip_layer, o_w),
                                       offsetof(mmspcl__clip_layer, fc1_w), offsetof(mmspcl__clip_layer, fc2_w)};
        if ((st = mmspcl__pack_model(&m->packed, w, m->layers, sizeof *m->layers, offs, c->num_layers, err))) return st;
    }
    return mmspcl_arena_init(&m->arena, mmspcl__clip_arena_size(c, max_batch, m->arena_threads), err);
}

mmspcl_status mmspcl_clip_load(mmspcl_clip **out, const mmspcl_weights *w, int max_batch,
                               mmspcl_error *err) {
    mmspcl_clip *m;
    mmspcl_status st;
    if (!out) return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip: out is NULL");
    *out = NULL;
    if (!w) return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip: no weights");
    if (max_batch < 1 || max_batch > 65536)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip: max_batch %d is out of range [1, 65536]", max_batch);
    m = (mmspcl_clip *)MMSPCL_MALLOC(sizeof *m);
    if (!m) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "clip: out of memory");
    memset(m, 0, sizeof *m);
    if ((st = mmspcl__clip_load(m, w, max_batch, err))) { mmspcl_clip_free(m); return st; }
    *out = m;
    return MMSPCL_OK;
}

void mmspcl_clip_free(mmspcl_clip *m) {
    int i;
    if (!m) return;
    mmspcl__packed_free(&m->packed);
    for (i = 0; i < m->n_owned; i++) MMSPCL_FREE(m->owned[i]);
    MMSPCL_FREE(m->owned);
    MMSPCL_FREE(m->layers);
    mmspcl_arena_free(&m->arena);
    MMSPCL_FREE(m);
}

const mmspcl_clip_config *mmspcl_clip_get_config(const mmspcl_clip *m) { return &m->c; }
size_t mmspcl_clip_arena_bytes(const mmspcl_clip *m) { return m->arena.size; }
const float *mmspcl_clip_last_hidden(const mmspcl_clip *m) { return m->last_hidden; }

/* ---- 11.2 Forward ------------------------------------------------------------------------ */

static mmspcl_status mmspcl__clip_linear(float *out, const float *x, int rows, int n_in,
                                         const mmspcl_tensor *W, const float *bias, mmspcl_error *err) {
    mmspcl_status st = mmspcl_linear(out, x, rows, n_in, W, bias);
    if (st) return mmspcl__fail(err, st, "clip: linear with '%s' failed (%s)", W->name ? W->name : "?",
                                mmspcl_status_name(st));
    return MMSPCL_OK;
}

typedef struct mmspcl__clip_rows_job { float *x; const float *y; const mmspcl_clip_config *c; int dim; } mmspcl__clip_rows_job;

/* task: x[r] += y[r] */
static void mmspcl__clip_add_task(void *ctx, int r, int tid) {
    const mmspcl__clip_rows_job *j = (const mmspcl__clip_rows_job *)ctx;
    float *xr = j->x + (size_t)r * (size_t)j->dim;
    const float *yr = j->y + (size_t)r * (size_t)j->dim;
    int i;
    (void)tid;
    for (i = 0; i < j->dim; i++) xr[i] += yr[i];
}

/* x += y over n rows of dim values */
static void mmspcl__clip_add(float *x, const float *y, int rows, int dim) {
    mmspcl__clip_rows_job j;
    j.x = x; j.y = y; j.c = NULL; j.dim = dim;
    mmspcl__parallel(rows, mmspcl__team(), mmspcl__clip_add_task, &j);
}

/* task: patch `task` (image task / N, patch task % N) into its row */
static void mmspcl__clip_unfold_task(void *ctx, int task, int tid) {
    const mmspcl__clip_rows_job *j = (const mmspcl__clip_rows_job *)ctx;
    const mmspcl_clip_config *c = j->c;
    const int S = c->image_size, P = c->patch_size, C = c->num_channels, g = S / P;
    const int b = task / c->num_patches, n = task % c->num_patches, py = n / g, px = n % g;
    float *dst = j->x + (size_t)task * (size_t)C * (size_t)P * (size_t)P;
    int ch, ky;
    (void)tid;
    for (ch = 0; ch < C; ch++)
        for (ky = 0; ky < P; ky++) {
            const float *src = j->y + (((size_t)b * (size_t)C + (size_t)ch) * (size_t)S +
                                       (size_t)(py * P + ky)) * (size_t)S + (size_t)px * (size_t)P;
            memcpy(dst, src, (size_t)P * sizeof(float));
            dst += P;
        }
}

/* Unfold B images [C][S][S] into rows [B*N][C*P*P], each row ordered (c, ky, kx) like the conv
   weight, patches in row-major order: the stride-P convolution becomes one matrix product. */
static void mmspcl__clip_unfold(const mmspcl_clip_config *c, const float *pixels, int B, float *rows) {
    mmspcl__clip_rows_job j;
    j.x = rows; j.y = pixels; j.c = c; j.dim = 0;
    mmspcl__parallel(B * c->num_patches, mmspcl__team(), mmspcl__clip_unfold_task, &j);
}

/* One chunk of B <= max_batch images. */
static mmspcl_status mmspcl__clip_chunk(mmspcl_clip *m, const mmspcl__clip_acts *s,
                                        const float *pixels, int B, float *embeds, float *pooled,
                                        mmspcl_error *err) {
    const mmspcl_clip_config *c = &m->c;
    const int W = c->hidden_size, T = c->num_tokens, N = c->num_patches, I = c->intermediate_size;
    const int D = c->num_channels * c->patch_size * c->patch_size, BT = B * T;
    const int hd = W / c->num_heads;
    const float eps = c->layer_norm_eps;
    const size_t row_bytes = mmspcl_dtype_row_size(m->pos_emb->dtype, W);
    float *x = s->x, *h = s->h;
    mmspcl_status st;
    int b, t, l;

    /* patch embedding: the stride-P convolution (no bias) as a product over unfolded patches */
    mmspcl__clip_unfold(c, pixels, B, s->f);
    if ((st = mmspcl__clip_linear(h, s->f, B * N, D, &m->patch_w, NULL, err))) return st;

    /* tokens: class embedding, then the patches; plus position embeddings */
    for (b = 0; b < B; b++)
        for (t = 0; t < T; t++) {
            float *xt = x + ((size_t)b * (size_t)T + (size_t)t) * (size_t)W;
            const float *e = t == 0 ? m->class_emb : h + ((size_t)b * (size_t)N + (size_t)(t - 1)) * (size_t)W;
            const unsigned char *pos = (const unsigned char *)m->pos_emb->data + (size_t)t * row_bytes;
            int i;
            if (m->pos_emb->dtype == MMSPCL_F32) memcpy(xt, pos, (size_t)W * sizeof(float));
            else mmspcl_dequantize_row(m->pos_emb->dtype, pos, xt, W);
            for (i = 0; i < W; i++) xt[i] = e[i] + xt[i];
        }
    mmspcl_layernorm(x, x, m->pre_ln_w, m->pre_ln_b, BT, W, eps);

    for (l = 0; l < c->num_layers; l++) {
        const mmspcl__clip_layer *L = &m->layers[l];
        /* x += out_proj(attention(layer_norm1(x))) */
        mmspcl_layernorm(h, x, L->ln1_w, L->ln1_b, BT, W, eps);
        if ((st = mmspcl__clip_linear(s->q, h, BT, W, L->q_w, L->q_b, err)) ||
            (st = mmspcl__clip_linear(s->k, h, BT, W, L->k_w, L->k_b, err)) ||
            (st = mmspcl__clip_linear(s->v, h, BT, W, L->v_w, L->v_b, err)))
            return st;
        for (b = 0; b < B; b++) {
            size_t off = (size_t)b * (size_t)T * (size_t)W;
            mmspcl_attention(s->ctx + off, W, s->q + off, W, s->k + off, s->v + off, W, T, T,
                             c->num_heads, hd, NULL, s->scratch);
        }
        if ((st = mmspcl__clip_linear(h, s->ctx, BT, W, L->o_w, L->o_b, err))) return st;
        mmspcl__clip_add(x, h, BT, W);
        /* x += fc2(act(fc1(layer_norm2(x)))) */
        mmspcl_layernorm(h, x, L->ln2_w, L->ln2_b, BT, W, eps);
        if ((st = mmspcl__clip_linear(s->f, h, BT, W, L->fc1_w, L->fc1_b, err))) return st;
        if (c->act == MMSPCL_CLIP_GELU) mmspcl_gelu(s->f, (size_t)BT * (size_t)I);
        else mmspcl_quick_gelu(s->f, (size_t)BT * (size_t)I);
        if ((st = mmspcl__clip_linear(h, s->f, BT, I, L->fc2_w, L->fc2_b, err))) return st;
        mmspcl__clip_add(x, h, BT, W);
    }
    m->last_hidden = x;

    /* pooled = post_layernorm(class token); embeds = visual_projection(pooled) */
    for (b = 0; b < B; b++)
        mmspcl_layernorm(s->pooled + (size_t)b * (size_t)W, x + (size_t)b * (size_t)T * (size_t)W,
                         m->post_ln_w, m->post_ln_b, 1, W, eps);
    if (pooled) memcpy(pooled, s->pooled, (size_t)B * (size_t)W * sizeof(float));
    if (embeds && (st = mmspcl__clip_linear(embeds, s->pooled, B, W, m->proj_w, NULL, err))) return st;
    return MMSPCL_OK;
}

mmspcl_status mmspcl_clip_forward(mmspcl_clip *m, const float *pixels, int batch, float *embeds,
                                  float *pooled, mmspcl_error *err) {
    const mmspcl_clip_config *c;
    mmspcl__clip_acts s;
    size_t px_per_image;
    int threads, done;
    if (!m || !pixels || batch < 0) return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip forward: bad arguments");
    c = &m->c;
    if (embeds && !m->proj_w)
        return mmspcl__fail(err, MMSPCL_ERR_ARG,
                            "clip forward: the weight file has no visual_projection: ask for pooled only");
    threads = mmspcl__team();
    if (threads > m->arena_threads) {   /* more threads than at load: the attention scratch grows */
        mmspcl_status st;
        mmspcl_arena_free(&m->arena);
        m->last_hidden = NULL;
        if ((st = mmspcl_arena_init(&m->arena, mmspcl__clip_arena_size(c, m->max_batch, threads), err)))
            return st;
        m->arena_threads = threads;
    }
    px_per_image = (size_t)c->num_channels * (size_t)c->image_size * (size_t)c->image_size;
    for (done = 0; done < batch; done += m->max_batch) {
        int B = batch - done < m->max_batch ? batch - done : m->max_batch;
        mmspcl_status st;
        if (!mmspcl__clip_carve(&m->arena, c, B, m->arena_threads, &s))
            return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "clip forward: arena of %zu bytes is too small",
                                m->arena.size);
        st = mmspcl__clip_chunk(m, &s, pixels + (size_t)done * px_per_image, B,
                                embeds ? embeds + (size_t)done * (size_t)c->projection_dim : NULL,
                                pooled ? pooled + (size_t)done * (size_t)c->hidden_size : NULL, err);
        if (st) return st;
    }
    return MMSPCL_OK;
}

/* ---- 11.3 Images ------------------------------------------------------------------------- */

mmspcl_status mmspcl_clip_preprocess_image(const mmspcl_clip *m, const mmspcl_image *img,
                                           float *out, mmspcl_error *err) {
    const mmspcl_clip_config *c;
    if (!m || !img || !out) return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip preprocess: bad arguments");
    c = &m->c;
    if (c->num_channels != 3)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "clip preprocess: the model takes %d channels, images give 3",
                            c->num_channels);
    return mmspcl_clip_preprocess(img, c->resize_shortest_edge, c->crop_size, c->image_mean, c->image_std, out, err);
}

mmspcl_status mmspcl_clip_embed_image(mmspcl_clip *m, const mmspcl_image *img, float *embed,
                                      mmspcl_error *err) {
    mmspcl_status st;
    float *pixels;
    if (!m || !img || !embed) return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip embed: bad arguments");
    pixels = (float *)MMSPCL_MALLOC((size_t)3 * (size_t)m->c.image_size * (size_t)m->c.image_size * sizeof(float));
    if (!pixels) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "clip embed: out of memory");
    st = mmspcl_clip_preprocess_image(m, img, pixels, err);
    if (!st) st = mmspcl_clip_forward(m, pixels, 1, embed, NULL, err);
    MMSPCL_FREE(pixels);
    return st;
}

/* ---------------------------------------------------------------------------------------------
   12. MM-SPCL heads
   Internal helpers: static, prefix mmspcl__heads_.
   The numeric work is done by the kernels; these functions only arrange rows and sequences.
   ------------------------------------------------------------------------------------------ */
/* ---- 12.1 Small layers ------------------------------------------------------------------- */

mmspcl_head_linear mmspcl_head_linear_f32(const float *w, const float *b, int in, int out) {
    mmspcl_head_linear l;
    memset(&l, 0, sizeof l);
    l.w.dtype = MMSPCL_F32;
    l.w.ndim = 2;
    l.w.ne[0] = out;
    l.w.ne[1] = in;
    l.w.data = w;
    l.w.nbytes = sizeof(float) * (size_t)in * (size_t)out;
    l.b = b;
    l.in = in;
    l.out = out;
    return l;
}

mmspcl_status mmspcl_head_linear_forward(const mmspcl_head_linear *l, const float *x, float *y, int n) {
    if (n <= 0) return MMSPCL_OK;
    return mmspcl_linear(y, x, n, l->in, &l->w, l->b);
}

void mmspcl_head_ln_forward(const mmspcl_head_ln *l, const float *x, float *y, int n) {
    mmspcl_layernorm(y, x, l->g, l->b, n, l->dim, l->eps);
}

static void mmspcl__heads_act(float *x, size_t n, mmspcl_act act) {
    size_t i;
    if (act == MMSPCL_ACT_GELU) { mmspcl_gelu(x, n); return; }
    for (i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

mmspcl_status mmspcl_head_mlp_forward(const mmspcl_head_mlp *m, const float *x, float *y, int n,
                                      float *hidden) {
    mmspcl_status st = mmspcl_head_linear_forward(&m->fc1, x, hidden, n);
    if (st) return st;
    mmspcl__heads_act(hidden, (size_t)n * (size_t)m->fc1.out, m->act);
    return mmspcl_head_linear_forward(&m->fc2, hidden, y, n);
}

size_t mmspcl_head_block_scratch(const mmspcl_head_block *b, int nb, int tq, int tk) {
    size_t D = (size_t)b->ln_q.dim, F = (size_t)b->ff.fc1.out, nk = (size_t)(b->cross ? tk : tq);
    size_t q = (size_t)nb * (size_t)tq, k = (size_t)nb * nk;
    /* xln, q, ctx, tmp: q rows; kvln (cross), k, v: k rows; hidden; attention scratch */
    return 4 * q * D + (b->cross ? k * D : 0) + 2 * k * D + q * F + mmspcl_attention_scratch((int)nk);
}

mmspcl_status mmspcl_head_block_forward(const mmspcl_head_block *b, float *x, int nb, int tq,
                                        const float *src, int tk, const unsigned char *kmask,
                                        float *scratch) {
    const int D = b->ln_q.dim, H = b->attn.n_heads, dh = D / H, nk = b->cross ? tk : tq;
    const size_t qn = (size_t)nb * tq * D, kn = (size_t)nb * nk * D;
    float *xln = scratch, *q = xln + qn, *ctx = q + qn, *tmp = ctx + qn;
    float *kvln = tmp + qn, *k = kvln + (b->cross ? kn : 0), *v = k + kn, *hid = v + kn;
    float *att = hid + (size_t)nb * tq * b->ff.fc1.out;
    const float *kv = xln;
    mmspcl_status st;
    size_t i;
    int s;
    mmspcl_head_ln_forward(&b->ln_q, x, xln, nb * tq);
    if (b->cross) { mmspcl_head_ln_forward(&b->ln_kv, src, kvln, nb * tk); kv = kvln; }
    if ((st = mmspcl_head_linear_forward(&b->attn.q, xln, q, nb * tq))) return st;
    if ((st = mmspcl_head_linear_forward(&b->attn.k, kv, k, nb * nk))) return st;
    if ((st = mmspcl_head_linear_forward(&b->attn.v, kv, v, nb * nk))) return st;
    for (s = 0; s < nb; s++) {
        const unsigned char *ms = kmask ? kmask + (size_t)s * nk : NULL;
        float *cs = ctx + (size_t)s * tq * D;
        int j, any = !ms;
        for (j = 0; ms && j < nk; j++) any |= ms[j] != 0;
        if (!any) { for (i = 0; i < (size_t)tq * D; i++) cs[i] = 0.0f; continue; }
        mmspcl_attention(cs, D, q + (size_t)s * tq * D, D, k + (size_t)s * nk * D, v + (size_t)s * nk * D,
                         D, tq, nk, H, dh, ms, att);
    }
    if ((st = mmspcl_head_linear_forward(&b->attn.o, ctx, tmp, nb * tq))) return st;
    for (i = 0; i < qn; i++) x[i] += tmp[i];
    mmspcl_head_ln_forward(&b->ln_ff, x, xln, nb * tq);
    if ((st = mmspcl_head_mlp_forward(&b->ff, xln, tmp, nb * tq, hid))) return st;
    for (i = 0; i < qn; i++) x[i] += tmp[i];
    return MMSPCL_OK;
}

/* ---- 12.2 SPCL score --------------------------------------------------------------------- */
/* cosine as torch.nn.functional.cosine_similarity: a.b / (max(|a|, eps) max(|b|, eps)) */
static double mmspcl__heads_cos(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    int i;
    for (i = 0; i < n; i++) { ab += (double)a[i] * b[i]; aa += (double)a[i] * a[i]; bb += (double)b[i] * b[i]; }
    aa = sqrt(aa); bb = sqrt(bb);
    return ab / ((aa > 1e-8 ? aa : 1e-8) * (bb > 1e-8 ? bb : 1e-8));
}

float mmspcl_score(const float *a, const float *b, int d) {
    return (float)((1.0 + mmspcl__heads_cos(a, b, d)) / 2.0 + 1e-8);
}

/* ---- 12.3 Cross-modal pruning ------------------------------------------------------------ */
/* one sample: o [dp] = xp with the chosen heads zeroed (o may be xp) */
static void mmspcl__heads_prune_row(const float *xb, int db, const float *xp, int dp, int K, float *o,
                                    unsigned char *kp) {
    const int nb = db / K, np = (dp + K - 1) / K;
    int hb, hp, j;
    memmove(o, xp, sizeof(float) * (size_t)dp);
    if (kp) for (hp = 0; hp < np; hp++) kp[hp] = 1;
    for (hb = 0; hb < nb; hb++) {
        int best = 0;
        double bc = -2;
        for (hp = 0; hp < np; hp++) {
            int w = (hp + 1) * K <= dp ? K : dp - hp * K;
            double c = mmspcl__heads_cos(xb + (size_t)hb * K, xp + (size_t)hp * K, w);
            if (c > bc) { bc = c; best = hp; }
        }
        if (kp) kp[best] = 0;
        for (j = best * K; j < (best + 1) * K && j < dp; j++) o[j] = 0.0f;
    }
}

/* Rows of a pruning call: `concat` 0 writes the pruned rows [n][dp], 1 [n][db + dp] with the base first. */
typedef struct mmspcl__prune_job {
    const float *base, *prune;
    float *out;
    unsigned char *kept;
    int db, dp, K, np, concat;
} mmspcl__prune_job;

/* task: row i */
static void mmspcl__prune_task(void *ctx, int i, int tid) {
    const mmspcl__prune_job *j = (const mmspcl__prune_job *)ctx;
    const int db = j->db, dp = j->dp;
    float *o = j->out + (size_t)i * (j->concat ? db + dp : dp);
    (void)tid;
    if (j->concat) {
        memcpy(o, j->base + (size_t)i * db, sizeof(float) * (size_t)db);
        o += db;
    }
    mmspcl__heads_prune_row(j->base + (size_t)i * db, db, j->prune + (size_t)i * dp, dp, j->K, o,
                            j->kept ? j->kept + (size_t)i * j->np : NULL);
}

static mmspcl_status mmspcl__prune_rows(const float *base, int db, const float *prune, int dp, int K, int n,
                                        float *out, unsigned char *kept, int concat, mmspcl_error *err) {
    mmspcl__prune_job j;
    if (K <= 0 || db <= 0 || dp <= 0 || db % K != 0 || n < 0)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "prune: base width %d must be a positive multiple of head size %d (pruning width %d)", db, K, dp);
    j.base = base; j.prune = prune; j.out = out; j.kept = kept;
    j.db = db; j.dp = dp; j.K = K; j.np = (dp + K - 1) / K; j.concat = concat;
    mmspcl__parallel(n, (double)n * db * dp >= 1e6 ? mmspcl__team() : 1, mmspcl__prune_task, &j);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_prune_apply(const float *base, int db, const float *prune, int dp, int K,
                                 int n, float *pruned, unsigned char *kept, mmspcl_error *err) {
    return mmspcl__prune_rows(base, db, prune, dp, K, n, pruned, kept, 0, err);
}

mmspcl_status mmspcl_prune_forward(const float *base, int db, const float *prune, int dp, int K,
                                   int n, float *out, unsigned char *kept, mmspcl_error *err) {
    return mmspcl__prune_rows(base, db, prune, dp, K, n, out, kept, 1, err);
}

mmspcl_status mmspcl_prune_threshold_apply(const float *base, int db, const float *prune, int dp, int K,
                                           double tau, int n, float *pruned, unsigned char *kept,
                                           mmspcl_error *err) {
    const int np = K > 0 ? (dp + K - 1) / K : 0;
    int i;
    if (K <= 0 || db <= 0 || dp <= 0 || db % K != 0 || n < 0 || tau != tau)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "prune: base width %d must be a positive multiple of head size %d (pruning width %d), threshold a number", db, K, dp);
    MMSPCL__OMP_FOR
    for (i = 0; i < n; i++) {
        const float *xb = base + (size_t)i * db, *xp = prune + (size_t)i * dp;
        float *o = pruned + (size_t)i * dp;
        int hb, hp, j;
        for (hp = 0; hp < np; hp++) {
            const int w = (hp + 1) * K <= dp ? K : dp - hp * K;
            int drop = 0;
            for (hb = 0; hb < db / K && !drop; hb++) drop = mmspcl__heads_cos(xb + (size_t)hb * K, xp + (size_t)hp * K, w) >= tau;
            if (kept) kept[(size_t)i * np + hp] = (unsigned char)!drop;
            for (j = hp * K; j < hp * K + w; j++) o[j] = drop ? 0.0f : xp[j];
        }
    }
    return MMSPCL_OK;
}

/* ---- 12.4 Fusion (a) --------------------------------------------------------------------- */
/* out [n][sum of the dims in mods] = concatenation of x[m] rows, m in t, a, v order */
static void mmspcl__heads_concat(const float *const x[3], const int dims[3], unsigned mods, int n,
                                 float *out) {
    int i, m, total = 0, off;
    for (m = 0; m < 3; m++) if (mods & (1u << m)) total += dims[m];
    for (i = 0; i < n; i++) {
        off = 0;
        for (m = 0; m < 3; m++) {
            if (!(mods & (1u << m))) continue;
            memcpy(out + (size_t)i * total + off, x[m] + (size_t)i * dims[m], sizeof(float) * (size_t)dims[m]);
            off += dims[m];
        }
    }
}

#define MMSPCL__HEADS_CHUNK 64

mmspcl_status mmspcl_fuse_linear_forward(const mmspcl_fuse_linear *f, const float *const x[3], int n,
                                         float *y, mmspcl_error *err) {
    unsigned mods = 0;
    int m, i;
    float *buf;
    for (m = 0; m < 3; m++) if (f->dims[m] > 0) {
        if (!x[m]) return mmspcl__fail(err, MMSPCL_ERR_ARG, "fuse_linear: modality %d has width %d but no input", m, f->dims[m]);
        mods |= 1u << m;
    }
    buf = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)MMSPCL__HEADS_CHUNK * (size_t)f->proj.in);
    if (!buf) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "fuse_linear: out of memory");
    for (i = 0; i < n; i += MMSPCL__HEADS_CHUNK) {
        int nn = n - i < MMSPCL__HEADS_CHUNK ? n - i : MMSPCL__HEADS_CHUNK;
        const float *xs[3];
        for (m = 0; m < 3; m++) xs[m] = x[m] ? x[m] + (size_t)i * f->dims[m] : NULL;
        mmspcl__heads_concat(xs, f->dims, mods, nn, buf);
        if (mmspcl_head_linear_forward(&f->proj, buf, y + (size_t)i * f->proj.out, nn)) {
            MMSPCL_FREE(buf);
            return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "fuse_linear: out of memory");
        }
    }
    MMSPCL_FREE(buf);
    return MMSPCL_OK;
}

/* ---- 12.5 Fusion (b) MulT and (c) MBT ---------------------------------------------------- */
/* token sequences, shared by MulT and MBT */
static const char *const mmspcl__heads_mod_name[3] = { "t", "a", "v" };
/* e [ns][seq][D] = x [ns][seq][tok] W^T + b + pos */
static mmspcl_status mmspcl__heads_embed(const mmspcl_head_linear *proj, const float *pos, const float *x,
                                         int ns, int seq, float *e) {
    const int D = proj->out;
    size_t s, q, per = (size_t)seq * D;
    mmspcl_status st = mmspcl_head_linear_forward(proj, x, e, ns * seq);
    if (st) return st;
    for (s = 0; s < (size_t)ns; s++)
        for (q = 0; q < per; q++) e[s * per + q] += pos[q];
    return MMSPCL_OK;
}

/* LN over every token, then the mean over each sequence's tokens: out row s at out + s * ld */
static void mmspcl__heads_ln_pool(const mmspcl_head_ln *ln, const float *x, int ns, int seq, float *tmp,
                                  float *out, int ld) {
    int s, t, d, D = ln->dim;
    mmspcl_head_ln_forward(ln, x, tmp, ns * seq);
    for (s = 0; s < ns; s++)
        for (d = 0; d < D; d++) {
            float acc = 0;
            for (t = 0; t < seq; t++) acc += tmp[((size_t)s * seq + t) * D + d];
            out[(size_t)s * ld + d] = acc / (float)seq;
        }
}

static size_t mmspcl__heads_max_block_scratch(const mmspcl_head_block *b, int nblocks, int ns, int tmax) {
    size_t s = 0, t;
    int i;
    for (i = 0; i < nblocks; i++) { t = mmspcl_head_block_scratch(&b[i], ns, tmax, tmax); if (t > s) s = t; }
    return s;
}

mmspcl_status mmspcl_mult_forward(const mmspcl_mult *m, const float *const x[3], int n, float *y,
                                  mmspcl_error *err) {
    const int D = m->d_model, L = m->n_cross + m->n_self, CH = MMSPCL__HEADS_CHUNK;
    int tmax = 1, etot = 0, mi, i;
    size_t bs;
    float *buf;
    mmspcl_status st = MMSPCL_OK;
    for (mi = 0; mi < 3; mi++) if (m->seq[mi] > 0) {
        if (!x[mi]) return mmspcl__fail(err, MMSPCL_ERR_ARG, "mult: modality %d has %d tokens but no input", mi, m->seq[mi]);
        if (m->seq[mi] > tmax) tmax = m->seq[mi];
        etot += m->seq[mi];
    }
    bs = mmspcl__heads_max_block_scratch(m->blocks, m->n_pairs * L, CH, tmax);
    buf = (float *)MMSPCL_MALLOC(sizeof(float) * ((size_t)CH * ((size_t)etot * D + 2 * (size_t)tmax * D + (size_t)m->n_pairs * D) + bs));
    if (!buf) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "mult: out of memory for a chunk of %d samples", CH);
    for (i = 0; i < n && !st; i += CH) {
        const int ns = n - i < CH ? n - i : CH;
        float *e[3], *h, *tmp, *pooled, *bscr, *p = buf;
        int a, b2, pi = 0, l;
        for (mi = 0; mi < 3; mi++) {
            e[mi] = NULL;
            if (m->seq[mi] <= 0) continue;
            e[mi] = p; p += (size_t)CH * m->seq[mi] * D;
            if (!st) st = mmspcl__heads_embed(&m->in_proj[mi], m->pos[mi], x[mi] + (size_t)i * m->seq[mi] * m->tok[mi], ns, m->seq[mi], e[mi]);
        }
        h = p; p += (size_t)CH * tmax * D;
        tmp = p; p += (size_t)CH * tmax * D;
        pooled = p; p += (size_t)CH * m->n_pairs * D;
        bscr = p;
        for (a = 0; a < 3 && !st; a++) {
            if (m->seq[a] <= 0) continue;
            for (b2 = 0; b2 < 3 && !st; b2++) {
                const mmspcl_head_block *blk;
                if (b2 == a || m->seq[b2] <= 0) continue;
                blk = m->blocks + (size_t)pi * L;
                memcpy(h, e[a], sizeof(float) * (size_t)ns * m->seq[a] * D);
                for (l = 0; l < L && !st; l++)
                    st = mmspcl_head_block_forward(&blk[l], h, ns, m->seq[a], blk[l].cross ? e[b2] : NULL,
                                                   m->seq[b2], NULL, bscr);
                mmspcl__heads_ln_pool(&m->final_ln[pi], h, ns, m->seq[a], tmp, pooled + (size_t)pi * D, m->n_pairs * D);
                pi++;
            }
        }
        if (!st) st = mmspcl_head_linear_forward(&m->out_proj, pooled, y + (size_t)i * m->out_dim, ns);
    }
    MMSPCL_FREE(buf);
    if (st) return mmspcl__fail(err, st, "mult: out of memory in a kernel");
    return MMSPCL_OK;
}

void mmspcl_mult_free(mmspcl_mult *m) {
    MMSPCL_FREE(m->blocks);
    MMSPCL_FREE(m->final_ln);
    m->blocks = NULL;
    m->final_ln = NULL;
}

/* Bottleneck sets of MBT: slot s (the present modalities in t, a, v order) reads and updates the
   sets sets[s][0 .. k[s] - 1]; returns the number of sets. Per modality: one set for all slots;
   per pair: set p for the p-th pair (a, b), a < b, in the order (0,1), (0,2), (1,2). */
static int mmspcl__heads_mbt_sets(int n_mod, int bottleneck, int sets[3][2], int k[3]) {
    int s, a, b, p = 0;
    for (s = 0; s < 3; s++) { k[s] = 0; sets[s][0] = sets[s][1] = 0; }
    if (bottleneck != MMSPCL_BOTTLENECK_PAIR) {
        for (s = 0; s < n_mod; s++) k[s] = 1;
        return 1;
    }
    for (a = 0; a < n_mod; a++)
        for (b = a + 1; b < n_mod; b++) { sets[a][k[a]++] = p; sets[b][k[b]++] = p; p++; }
    return p;
}

/* one MBT layer l for a chunk of ns samples: z[slot] updated, fsn [ns][NS F D] -> the next state;
   lens[slot] (NULL: every token real) are the chunk's lengths, mask [ns][T + K F] scratch */
typedef struct mmspcl__heads_mbt_ctx {
    const mmspcl_mbt *m;
    int sets[3][2], k[3], NS, members;
    const int *lens[3];
    float *z[3], *fsn, *fnew, *u, *bscr;
    unsigned char *mask;
} mmspcl__heads_mbt_ctx;

/* the key mask of slot `slot` over TT = T + extra tokens: its real tokens, then every extra one */
static const unsigned char *mmspcl__heads_mbt_mask(mmspcl__heads_mbt_ctx *c, int slot, int ns, int T, int TT) {
    int s, t;
    if (!c->lens[slot]) return NULL;
    for (s = 0; s < ns; s++)
        for (t = 0; t < TT; t++) c->mask[(size_t)s * TT + t] = t < c->lens[slot][s] || t >= T;
    return c->mask;
}

static mmspcl_status mmspcl__heads_mbt_layer(mmspcl__heads_mbt_ctx *c, int l, int ns) {
    const mmspcl_mbt *m = c->m;
    const int D = m->d_model, F = m->n_fusion, L = m->n_layers, fuse = l >= m->fusion_start;
    const size_t fd = (size_t)F * D, fsd = (size_t)c->NS * fd;
    mmspcl_status st = MMSPCL_OK;
    int mi, slot, s, j;
    size_t q;
    if (fuse) for (q = 0; q < (size_t)ns * fsd; q++) c->fnew[q] = 0.0f;
    for (mi = 0, slot = 0; mi < 3 && !st; mi++) {
        const int T = m->seq[mi], K = fuse ? c->k[slot] : 0, TT = T + K * F;
        const mmspcl_head_block *blk;
        const unsigned char *km;
        float *zs;
        if (T <= 0) continue;
        blk = &m->blocks[(size_t)slot * L + l];
        zs = c->z[slot];
        km = mmspcl__heads_mbt_mask(c, slot, ns, T, TT);
        if (!fuse) { st = mmspcl_head_block_forward(blk, zs, ns, T, NULL, 0, km, c->bscr); slot++; continue; }
        /* u = [own tokens ; the sets this modality shares] per sample */
        for (s = 0; s < ns; s++) {
            memcpy(c->u + (size_t)s * TT * D, zs + (size_t)s * T * D, sizeof(float) * (size_t)T * D);
            for (j = 0; j < K; j++)
                memcpy(c->u + ((size_t)s * TT + T + (size_t)j * F) * D, c->fsn + (size_t)s * fsd + (size_t)c->sets[slot][j] * fd,
                       sizeof(float) * fd);
        }
        st = mmspcl_head_block_forward(blk, c->u, ns, TT, NULL, 0, km, c->bscr);
        for (s = 0; s < ns; s++) {
            memcpy(zs + (size_t)s * T * D, c->u + (size_t)s * TT * D, sizeof(float) * (size_t)T * D);
            for (j = 0; j < K; j++) {
                float *dst = c->fnew + (size_t)s * fsd + (size_t)c->sets[slot][j] * fd;
                const float *src = c->u + ((size_t)s * TT + T + (size_t)j * F) * D;
                for (q = 0; q < fd; q++) dst[q] += src[q];
            }
        }
        slot++;
    }
    if (fuse) for (q = 0; q < (size_t)ns * fsd; q++) c->fsn[q] = c->fnew[q] / (float)c->members;
    return st;
}

/* the readout of slot `slot` (modality mi): every token through its layer norm, the sum over the
   real ones; ours: row `slot` of the concatenation, divided by the length; joint: added to the
   one D-wide row (divided by the total length afterwards) */
static void mmspcl__heads_mbt_readout(const mmspcl_mbt *m, int mi, int slot, const float *z, const int *lens, int ns,
                                      float *tmp, float *pooled) {
    const int D = m->d_model, T = m->seq[mi], joint = m->readout == MMSPCL_READOUT_JOINT;
    const size_t ld = (size_t)(joint ? 1 : m->n_mod) * D;
    int s, t, d;
    mmspcl_head_ln_forward(&m->final_ln[joint ? 0 : mi], z, tmp, ns * T);
    for (s = 0; s < ns; s++) {
        const int L = lens ? lens[s] : T;
        float *o = pooled + (size_t)s * ld + (joint ? 0 : (size_t)slot * D);
        for (d = 0; d < D; d++) {
            float acc = 0;
            for (t = 0; t < L; t++) acc += tmp[((size_t)s * T + t) * D + d];
            o[d] = joint ? o[d] + acc : acc / (float)L;
        }
    }
}

static mmspcl_status mmspcl__heads_mbt_check(const mmspcl_mbt *m, const float *const x[3], const int *const lens[3], int n,
                                             mmspcl__heads_mbt_ctx *c, mmspcl_error *err) {
    int mi, i;
    memset(c, 0, sizeof *c);
    c->m = m;
    c->NS = mmspcl__heads_mbt_sets(m->n_mod, m->bottleneck, c->sets, c->k);
    c->members = m->bottleneck == MMSPCL_BOTTLENECK_PAIR ? 2 : m->n_mod;
    if (c->NS != m->n_sets) return mmspcl__fail(err, MMSPCL_ERR_ARG, "mbt: %d bottleneck sets, the sharing rule gives %d", m->n_sets, c->NS);
    if (m->readout != MMSPCL_READOUT_MODALITY && m->readout != MMSPCL_READOUT_JOINT)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "mbt: readout %d is neither per modality (%d) nor joint (%d)", m->readout, MMSPCL_READOUT_MODALITY, MMSPCL_READOUT_JOINT);
    for (mi = 0; mi < 3; mi++) {
        if (m->seq[mi] <= 0) continue;
        if (!x[mi]) return mmspcl__fail(err, MMSPCL_ERR_ARG, "mbt: modality %d has %d tokens but no input", mi, m->seq[mi]);
        for (i = 0; lens && lens[mi] && i < n; i++)
            if (lens[mi][i] < 1 || lens[mi][i] > m->seq[mi])
                return mmspcl__fail(err, MMSPCL_ERR_ARG, "mbt: sample %d of %s has length %d (tokens 1..%d)", i, mmspcl__heads_mod_name[mi], lens[mi][i], m->seq[mi]);
    }
    return MMSPCL_OK;
}

mmspcl_status mmspcl_mbt_forward(const mmspcl_mbt *m, const float *const x[3], int n, float *y,
                                 mmspcl_error *err) {
    return mmspcl_mbt_forward_seq(m, x, NULL, n, y, err);
}

mmspcl_status mmspcl_mbt_forward_seq(const mmspcl_mbt *m, const float *const x[3], const int *const lens[3], int n,
                                     float *y, mmspcl_error *err) {
    const int D = m->d_model, L = m->n_layers, F = m->n_fusion, CH = MMSPCL__HEADS_CHUNK;
    const int joint = m->readout == MMSPCL_READOUT_JOINT, PW = (joint ? 1 : m->n_mod) * D;
    mmspcl__heads_mbt_ctx c;
    int tmax = 1, ztot = 0, mi, i, KM;
    size_t bs, fsd, nf;
    float *buf;
    mmspcl_status st = mmspcl__heads_mbt_check(m, x, lens, n, &c, err);
    if (st) return st;
    KM = c.k[0];
    fsd = (size_t)c.NS * F * D;
    for (mi = 0; mi < 3; mi++) if (m->seq[mi] > 0) {
        if (m->seq[mi] + KM * F > tmax) tmax = m->seq[mi] + KM * F;
        ztot += m->seq[mi];
    }
    bs = mmspcl__heads_max_block_scratch(m->blocks, m->n_mod * L, CH, tmax);
    nf = (size_t)CH * ((size_t)ztot * D + 2 * fsd + 2 * (size_t)tmax * D + (size_t)PW) + bs;
    buf = (float *)MMSPCL_MALLOC(sizeof(float) * nf + (size_t)CH * tmax);
    if (!buf) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "mbt: out of memory for a chunk of %d samples", CH);
    c.mask = (unsigned char *)(buf + nf);
    for (i = 0; i < n && !st; i += CH) {
        const int ns = n - i < CH ? n - i : CH;
        float *tmp, *pooled, *p = buf;
        int l, slot, s, d;
        for (mi = 0, slot = 0; mi < 3; mi++) {
            if (m->seq[mi] <= 0) continue;
            c.z[slot] = p; p += (size_t)CH * m->seq[mi] * D;
            c.lens[slot] = lens && lens[mi] ? lens[mi] + i : NULL;
            if (!st) st = mmspcl__heads_embed(&m->in_proj[mi], m->pos[mi], x[mi] + (size_t)i * m->seq[mi] * m->tok[mi], ns, m->seq[mi], c.z[slot]);
            slot++;
        }
        c.fsn = p; p += (size_t)CH * fsd;
        c.fnew = p; p += (size_t)CH * fsd;
        c.u = p; p += (size_t)CH * tmax * D;
        tmp = p; p += (size_t)CH * tmax * D;
        pooled = p; p += (size_t)CH * PW;
        c.bscr = p;
        for (s = 0; s < ns; s++) memcpy(c.fsn + (size_t)s * fsd, m->fusion_tokens, sizeof(float) * fsd);
        for (l = 0; l < L && !st; l++) st = mmspcl__heads_mbt_layer(&c, l, ns);
        if (joint) for (s = 0; s < ns * D; s++) pooled[s] = 0.0f;
        for (mi = 0, slot = 0; mi < 3; mi++) {
            if (m->seq[mi] <= 0) continue;
            mmspcl__heads_mbt_readout(m, mi, slot, c.z[slot], c.lens[slot], ns, tmp, pooled);
            slot++;
        }
        for (s = 0; joint && s < ns; s++) {
            int tot = 0;
            for (mi = 0, slot = 0; mi < 3; mi++) if (m->seq[mi] > 0) { tot += c.lens[slot] ? c.lens[slot][s] : m->seq[mi]; slot++; }
            for (d = 0; d < D; d++) pooled[(size_t)s * D + d] /= (float)tot;
        }
        if (!st) st = mmspcl_head_linear_forward(&m->out_proj, pooled, y + (size_t)i * m->out_dim, ns);
    }
    MMSPCL_FREE(buf);
    if (st) return mmspcl__fail(err, st, "mbt: out of memory in a kernel");
    return MMSPCL_OK;
}

void mmspcl_mbt_free(mmspcl_mbt *m) {
    MMSPCL_FREE(m->blocks);
    m->blocks = NULL;
}

/* ---- 12.6 MSVE --------------------------------------------------------------------------- */
/* one combination's network on nn rows: cat -> (fc act)* fc -> lg; h0, h1 [nn][hidden] scratch */
static mmspcl_status mmspcl__msve_net(const mmspcl_msve *m, int c, const float *cat, int nn, float *h0, float *h1,
                                      float *lg) {
    const float *in = cat;
    float *buf[2];
    int l;
    buf[0] = h0; buf[1] = h1;
    for (l = 0; l < m->depth[c]; l++) {
        const int last = l == m->depth[c] - 1;
        float *out = last ? lg : buf[l & 1];
        if (mmspcl_head_linear_forward(&m->fc[c][l], in, out, nn)) return MMSPCL_ERR_NOMEM;
        if (!last) mmspcl__heads_act(out, (size_t)nn * (size_t)m->fc[c][l].out, m->act);
        in = out;
    }
    return MMSPCL_OK;
}

mmspcl_status mmspcl_msve_forward(const mmspcl_msve *m, const float *const x[3], int n,
                                  unsigned combos, float *logits, mmspcl_error *err) {
    const int C = m->n_classes, CH = MMSPCL__HEADS_CHUNK;
    int c, mi, i, maxin = 0, maxh = 1, dtot = 0;
    float *buf, *z[3], *cat, *h0, *h1, *lg;
    size_t q;
    if (combos == 0) combos = m->combos;
    if (combos & ~m->combos)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "msve: combinations 0x%x are not enabled (enabled 0x%x)", combos, m->combos);
    for (c = 1; c < 8; c++) {
        if (!(combos & MMSPCL_COMBO(c))) continue;
        for (mi = 0; mi < 3; mi++)
            if ((c & (1 << mi)) && (m->dims[mi] <= 0 || !x[mi]))
                return mmspcl__fail(err, MMSPCL_ERR_ARG, "msve: combination %d needs modality %d", c, mi);
        if (m->fc[c][0].in > maxin) maxin = m->fc[c][0].in;
        if (m->depth[c] > 1 && m->hidden > maxh) maxh = m->hidden;
    }
    for (mi = 0; mi < 3; mi++) if (m->dims[mi] > 0) dtot += m->dims[mi];
    buf = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)CH * ((size_t)dtot + maxin + 2 * (size_t)maxh + C));
    if (!buf) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "msve: out of memory for a chunk of %d rows", CH);
    for (i = 0; i < n; i += CH) {
        int nn = n - i < CH ? n - i : CH, r;
        float *p = buf;
        for (mi = 0; mi < 3; mi++) {
            z[mi] = NULL;
            if (m->dims[mi] <= 0 || !x[mi]) continue;
            z[mi] = p; p += (size_t)CH * m->dims[mi];
            for (r = 0; r < nn; r++) {
                int d;
                for (d = 0; d < m->dims[mi]; d++) {
                    float v = x[mi][(size_t)(i + r) * m->dims[mi] + d];
                    if (m->mean[mi]) v -= m->mean[mi][d];
                    if (m->std[mi]) v /= m->std[mi][d];
                    z[mi][(size_t)r * m->dims[mi] + d] = v;
                }
            }
        }
        cat = p; p += (size_t)CH * maxin;
        h0 = p; p += (size_t)CH * maxh;
        h1 = p; p += (size_t)CH * maxh;
        lg = p;
        for (q = 0; q < (size_t)nn * C; q++) logits[(size_t)i * C + q] = 0;
        for (c = 1; c < 8; c++) {
            if (!(combos & MMSPCL_COMBO(c))) continue;
            mmspcl__heads_concat((const float *const *)z, m->dims, (unsigned)c, nn, cat);
            if (mmspcl__msve_net(m, c, cat, nn, h0, h1, lg)) {
                MMSPCL_FREE(buf);
                return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "msve: out of memory in a kernel");
            }
            for (q = 0; q < (size_t)nn * C; q++) logits[(size_t)i * C + q] += lg[q];
        }
    }
    MMSPCL_FREE(buf);
    return MMSPCL_OK;
}

static const char *const mmspcl__combo_names[8] = { "", "t", "a", "ta", "v", "tv", "av", "tav" };
const char *mmspcl_combo_name(int c) { return c >= 1 && c <= 7 ? mmspcl__combo_names[c] : ""; }

/* one entry s[0..len) of a combination list as a mask 1..7, or 0 with err set */
static int mmspcl__combo_entry(const char *s, size_t len, const char *list, mmspcl_error *err) {
    int c = 0;
    size_t k;
    if (len == 0) { mmspcl__fail(err, MMSPCL_ERR_ARG, "combinations '%s': an empty entry", list); return 0; }
    for (k = 0; k < len; k++) {
        const int bit = s[k] == 't' ? MMSPCL_MOD_T : s[k] == 'a' ? MMSPCL_MOD_A : s[k] == 'v' ? MMSPCL_MOD_V : 0;
        if (!bit || (c & bit)) {
            mmspcl__fail(err, MMSPCL_ERR_ARG, "combinations '%s': entry '%.*s' %s '%c' (entries are t, a, v, ta, tv, av, tav)", list,
                         (int)len, s, bit ? "repeats" : "has the unknown letter", s[k]);
            return 0;
        }
        c |= bit;
    }
    return c;
}

mmspcl_status mmspcl_combos_parse(const char *s, unsigned *set, mmspcl_error *err) {
    const char *p = s;
    unsigned out = 0;
    if (!s || !*s) return mmspcl__fail(err, MMSPCL_ERR_ARG, "combinations: an empty list (e.g. t,ta,tv,tav or all)");
    if (!strcmp(s, "all")) { *set = MMSPCL_COMBOS_ALL; return MMSPCL_OK; }
    for (;;) {
        const size_t len = strcspn(p, ",");
        const int c = mmspcl__combo_entry(p, len, s, err);
        if (!c) return MMSPCL_ERR_ARG;
        if (out & MMSPCL_COMBO(c)) return mmspcl__fail(err, MMSPCL_ERR_ARG, "combinations '%s': %s is listed twice", s, mmspcl__combo_names[c]);
        out |= MMSPCL_COMBO(c);
        if (!p[len]) break;
        p += len + 1;
    }
    *set = out;
    return MMSPCL_OK;
}

mmspcl_status mmspcl_depths_parse(const char *s, int depth[8], mmspcl_error *err) {
    static const int paper[8] = MMSPCL_MSVE_PAPER_DEPTHS;
    int tmp[8], c, seen = 0;
    const char *p = s;
    if (!s || !*s) return mmspcl__fail(err, MMSPCL_ERR_ARG, "depths: an empty list (e.g. tv=2,tav=3, paper or 1)");
    memcpy(tmp, depth, sizeof tmp);
    if (!strcmp(s, "paper")) { for (c = 1; c < 8; c++) depth[c] = paper[c]; return MMSPCL_OK; }
    if ((s[0] >= '1' && s[0] <= '3') && !s[1]) { for (c = 1; c < 8; c++) depth[c] = s[0] - '0'; return MMSPCL_OK; }
    for (;;) {
        const size_t len = strcspn(p, ","), name = strcspn(p, "=,");
        if (name >= len || len != name + 2 || p[name + 1] < '1' || p[name + 1] > '3')
            return mmspcl__fail(err, MMSPCL_ERR_ARG, "depths '%s': entry '%.*s' is not COMBINATION=DEPTH with a depth 1..3 (e.g. tav=3)", s,
                                (int)len, p);
        if (!(c = mmspcl__combo_entry(p, name, s, err))) return MMSPCL_ERR_ARG;
        if (seen & (1 << c)) return mmspcl__fail(err, MMSPCL_ERR_ARG, "depths '%s': %s is listed twice", s, mmspcl__combo_names[c]);
        seen |= 1 << c;
        tmp[c] = p[name + 1] - '0';
        if (!p[len]) break;
        p += len + 1;
    }
    memcpy(depth, tmp, sizeof tmp);
    return MMSPCL_OK;
}

/* ---- 12.7 Prototypes and metrics --------------------------------------------------------- */
typedef struct mmspcl__proto_job { const float *z, *protos; float *scores; int *pred; int dim, n_classes; } mmspcl__proto_job;

/* task: row i */
static void mmspcl__proto_task(void *ctx, int i, int tid) {
    const mmspcl__proto_job *j = (const mmspcl__proto_job *)ctx;
    int c, best = 0;
    float bs = -1;
    (void)tid;
    for (c = 0; c < j->n_classes; c++) {
        float s = mmspcl_score(j->z + (size_t)i * j->dim, j->protos + (size_t)c * j->dim, j->dim);
        if (j->scores) j->scores[(size_t)i * j->n_classes + c] = s;
        if (s > bs) { bs = s; best = c; }
    }
    j->pred[i] = best;
}

void mmspcl_proto_classify(const float *z, int n, int dim, const float *protos, int n_classes,
                           int *pred, float *scores) {
    mmspcl__proto_job j;
    j.z = z; j.protos = protos; j.scores = scores; j.pred = pred; j.dim = dim; j.n_classes = n_classes;
    mmspcl__parallel(n, (double)n * dim * n_classes >= 1e6 ? mmspcl__team() : 1, mmspcl__proto_task, &j);
}

void mmspcl_argmax_rows(const float *x, int n, int C, int *out) {
    int i, c;
    for (i = 0; i < n; i++) {
        const float *r = x + (size_t)i * C;
        int best = 0;
        for (c = 1; c < C; c++) if (r[c] > r[best]) best = c;
        out[i] = best;
    }
}

void mmspcl_confusion(const int *y_true, const int *y_pred, int n, int n_classes, int64_t *cm) {
    int i;
    for (i = 0; i < n_classes * n_classes; i++) cm[i] = 0;
    for (i = 0; i < n; i++) {
        if (y_true[i] < 0 || y_true[i] >= n_classes || y_pred[i] < 0 || y_pred[i] >= n_classes) continue;
        cm[(size_t)y_true[i] * n_classes + y_pred[i]]++;
    }
}

void mmspcl_metrics_from_confusion(const int64_t *cm, int n_classes, mmspcl_class_metrics *per_class,
                                   mmspcl_metrics *out) {
    int64_t total = 0, correct = 0;
    int c, k, present = 0;
    double wf = 0, wp = 0, wr = 0, mf = 0;
    for (c = 0; c < n_classes; c++) {
        int64_t tp = cm[(size_t)c * n_classes + c], sup = 0, pred = 0;
        double p, r, f;
        for (k = 0; k < n_classes; k++) { sup += cm[(size_t)c * n_classes + k]; pred += cm[(size_t)k * n_classes + c]; }
        p = pred > 0 ? (double)tp / (double)pred : 0.0;
        r = sup > 0 ? (double)tp / (double)sup : 0.0;
        f = (p + r) > 0 ? 2 * p * r / (p + r) : 0.0;
        if (per_class) { per_class[c].precision = p; per_class[c].recall = r; per_class[c].f1 = f; per_class[c].support = sup; }
        total += sup;
        correct += tp;
        wf += (double)sup * f; wp += (double)sup * p; wr += (double)sup * r;
        /* scikit-learn's macro average runs over the labels present in y_true or y_pred */
        if (sup > 0 || pred > 0) { mf += f; present++; }
    }
    out->n = total;
    out->accuracy = total ? (double)correct / (double)total : 0.0;
    out->weighted_f1 = total ? wf / (double)total : 0.0;
    out->weighted_precision = total ? wp / (double)total : 0.0;
    out->weighted_recall = total ? wr / (double)total : 0.0;
    out->macro_f1 = present ? mf / present : 0.0;
}

/* ---- 12.8 Loading ------------------------------------------------------------------------ */
static const char *const mmspcl__heads_combo_name[8] = { "", "t", "a", "ta", "v", "tv", "av", "tav" };

static mmspcl_status mmspcl__heads_f32(const mmspcl_weights *w, const char *name, int ndim,
                                       int64_t d0, int64_t d1, const float **out, mmspcl_error *err) {
    const mmspcl_tensor *t = NULL;
    int64_t ne[2];
    mmspcl_status st;
    ne[0] = d0; ne[1] = d1;
    st = mmspcl_weights_expect(w, name, ndim, ne, &t, err);
    if (st) return st;
    if (t->dtype != MMSPCL_F32)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "tensor %s: heads need f32, file has %s", name, mmspcl_dtype_name(t->dtype));
    *out = (const float *)t->data;
    return MMSPCL_OK;
}

static mmspcl_status mmspcl__heads_int(const mmspcl_weights *w, const char *prefix, const char *key,
                                       int lo, int hi, int *out, mmspcl_error *err) {
    char name[256];
    int64_t v;
    snprintf(name, sizeof name, "%s.%s", prefix, key);
    if (!mmspcl_weights_get_int(w, name, &v))
        return mmspcl__fail(err, MMSPCL_ERR_NOT_FOUND, "integer key %s is missing", name);
    if (v < lo || v > hi)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "key %s = %lld is outside %d..%d", name, (long long)v, lo, hi);
    *out = (int)v;
    return MMSPCL_OK;
}

/* NAME.weight [out][in] in any kernel dtype, NAME.bias f32 [out] */
static mmspcl_status mmspcl__heads_linear(mmspcl_head_linear *l, const mmspcl_weights *w, const char *name,
                                          int in, int out, mmspcl_error *err) {
    char buf[512];
    const mmspcl_tensor *t = NULL;
    int64_t ne[2];
    mmspcl_status st;
    memset(l, 0, sizeof *l);
    l->in = in; l->out = out;
    snprintf(buf, sizeof buf, "%s.weight", name);
    ne[0] = out; ne[1] = in;
    if ((st = mmspcl_weights_expect(w, buf, 2, ne, &t, err))) return st;
    if (t->dtype == MMSPCL_I32 || mmspcl_dtype_row_size(t->dtype, in) == 0)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "tensor %s: dtype %s cannot hold rows of %d values", buf, mmspcl_dtype_name(t->dtype), in);
    l->w = *t;
    snprintf(buf, sizeof buf, "%s.bias", name);
    return mmspcl__heads_f32(w, buf, 1, out, 0, &l->b, err);
}

mmspcl_status mmspcl_head_linear_load(mmspcl_head_linear *l, const mmspcl_weights *w, const char *name,
                                      mmspcl_error *err) {
    char buf[512];
    const mmspcl_tensor *t;
    snprintf(buf, sizeof buf, "%s.weight", name);
    t = mmspcl_weights_find(w, buf);
    if (!t) return mmspcl__fail(err, MMSPCL_ERR_NOT_FOUND, "tensor %s is missing", buf);
    if (t->ndim != 2 || t->ne[0] < 1 || t->ne[1] < 1 || t->ne[0] > (1 << 24) || t->ne[1] > (1 << 24))
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "tensor %s: expected [out][in]", buf);
    return mmspcl__heads_linear(l, w, name, (int)t->ne[1], (int)t->ne[0], err);
}

static mmspcl_status mmspcl__heads_lnorm(mmspcl_head_ln *l, const mmspcl_weights *w, const char *name,
                                         int dim, mmspcl_error *err) {
    char buf[512];
    mmspcl_status st;
    l->dim = dim; l->eps = 1e-5f;
    snprintf(buf, sizeof buf, "%s.weight", name);
    if ((st = mmspcl__heads_f32(w, buf, 1, dim, 0, &l->g, err))) return st;
    snprintf(buf, sizeof buf, "%s.bias", name);
    return mmspcl__heads_f32(w, buf, 1, dim, 0, &l->b, err);
}

static mmspcl_status mmspcl__heads_mlpl(mmspcl_head_mlp *m, const mmspcl_weights *w, const char *name,
                                        int in, int hidden, int out, mmspcl_act act, mmspcl_error *err) {
    char buf[512];
    mmspcl_status st;
    m->act = act;
    snprintf(buf, sizeof buf, "%s.fc1", name);
    if ((st = mmspcl__heads_linear(&m->fc1, w, buf, in, hidden, err))) return st;
    snprintf(buf, sizeof buf, "%s.fc2", name);
    return mmspcl__heads_linear(&m->fc2, w, buf, hidden, out, err);
}

static mmspcl_status mmspcl__heads_blockl(mmspcl_head_block *b, const mmspcl_weights *w, const char *name,
                                          int D, int H, int ff, mmspcl_act act, int cross, mmspcl_error *err) {
    char buf[512];
    mmspcl_status st;
    static const char *const qkvo[4] = { "q", "k", "v", "o" };
    mmspcl_head_linear *lin[4];
    int i;
    memset(b, 0, sizeof *b);
    b->cross = cross;
    b->attn.n_heads = H;
    lin[0] = &b->attn.q; lin[1] = &b->attn.k; lin[2] = &b->attn.v; lin[3] = &b->attn.o;
    snprintf(buf, sizeof buf, "%s.ln_q", name);
    if ((st = mmspcl__heads_lnorm(&b->ln_q, w, buf, D, err))) return st;
    if (cross) {
        snprintf(buf, sizeof buf, "%s.ln_kv", name);
        if ((st = mmspcl__heads_lnorm(&b->ln_kv, w, buf, D, err))) return st;
    }
    for (i = 0; i < 4; i++) {
        snprintf(buf, sizeof buf, "%s.attn.%s", name, qkvo[i]);
        if ((st = mmspcl__heads_linear(lin[i], w, buf, D, D, err))) return st;
    }
    snprintf(buf, sizeof buf, "%s.ln_ff", name);
    if ((st = mmspcl__heads_lnorm(&b->ln_ff, w, buf, D, err))) return st;
    snprintf(buf, sizeof buf, "%s.ff", name);
    return mmspcl__heads_mlpl(&b->ff, w, buf, D, ff * D, D, act, err);
}

mmspcl_status mmspcl_msve_load(mmspcl_msve *m, const mmspcl_weights *w, const char *prefix,
                               mmspcl_error *err) {
    char key[512];
    int c, mi, act, combos, l;
    mmspcl_status st;
    memset(m, 0, sizeof *m);
    if ((st = mmspcl__heads_int(w, prefix, "n_classes", 2, MMSPCL_MAX_CLASSES, &m->n_classes, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "hidden", 1, 1 << 20, &m->hidden, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "act", 0, 1, &act, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "combos", 2, 0xFE, &combos, err))) return st;
    m->combos = (unsigned)combos & MMSPCL_COMBOS_ALL;
    m->act = (mmspcl_act)act;
    for (mi = 0; mi < 3; mi++) {
        snprintf(key, sizeof key, "dim.%s", mmspcl__heads_mod_name[mi]);
        if ((st = mmspcl__heads_int(w, prefix, key, 0, 1 << 24, &m->dims[mi], err))) return st;
        if (m->dims[mi] == 0) continue;
        snprintf(key, sizeof key, "%s.mean.%s", prefix, mmspcl__heads_mod_name[mi]);
        if (mmspcl_weights_find(w, key) && (st = mmspcl__heads_f32(w, key, 1, m->dims[mi], 0, &m->mean[mi], err))) return st;
        snprintf(key, sizeof key, "%s.std.%s", prefix, mmspcl__heads_mod_name[mi]);
        if (mmspcl_weights_find(w, key) && (st = mmspcl__heads_f32(w, key, 1, m->dims[mi], 0, &m->std[mi], err))) return st;
    }
    for (c = 1; c < 8; c++) {
        int in = 0;
        int64_t depth = 2;   /* files from before depths: every combination an MLP of 2 layers */
        if (!(m->combos & MMSPCL_COMBO(c))) continue;
        for (mi = 0; mi < 3; mi++) if (c & (1 << mi)) {
            if (m->dims[mi] == 0)
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: combination %s enabled but modality %s has width 0", prefix, mmspcl__heads_combo_name[c], mmspcl__heads_mod_name[mi]);
            in += m->dims[mi];
        }
        snprintf(key, sizeof key, "%s.depth.%s", prefix, mmspcl__heads_combo_name[c]);
        if (mmspcl_weights_get_int(w, key, &depth) && (depth < 1 || depth > MMSPCL_MSVE_MAX_DEPTH))
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %lld, expected 1..%d", key, (long long)depth, MMSPCL_MSVE_MAX_DEPTH);
        m->depth[c] = (int)depth;
        for (l = 0; l < m->depth[c]; l++) {
            const int li = l ? m->hidden : in, lo = l == m->depth[c] - 1 ? m->n_classes : m->hidden;
            snprintf(key, sizeof key, "%s.%s.fc%d", prefix, mmspcl__heads_combo_name[c], l + 1);
            if ((st = mmspcl__heads_linear(&m->fc[c][l], w, key, li, lo, err))) return st;
        }
    }
    return MMSPCL_OK;
}

/* common part of MulT and MBT: per-modality token shapes, input projections, positions */
static mmspcl_status mmspcl__heads_seq_load(const mmspcl_weights *w, const char *prefix, int *seq, int *tok,
                                            int D, mmspcl_head_linear *in_proj, const float **pos,
                                            int *n_mod, mmspcl_error *err) {
    char key[512];
    int mi;
    mmspcl_status st;
    *n_mod = 0;
    for (mi = 0; mi < 3; mi++) {
        snprintf(key, sizeof key, "seq.%s", mmspcl__heads_mod_name[mi]);
        if ((st = mmspcl__heads_int(w, prefix, key, 0, 1 << 16, &seq[mi], err))) return st;
        snprintf(key, sizeof key, "tok.%s", mmspcl__heads_mod_name[mi]);
        if ((st = mmspcl__heads_int(w, prefix, key, 0, 1 << 20, &tok[mi], err))) return st;
        if (seq[mi] == 0) continue;
        if (tok[mi] == 0) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: modality %s has tokens of width 0", prefix, mmspcl__heads_mod_name[mi]);
        (*n_mod)++;
        snprintf(key, sizeof key, "%s.in.%s", prefix, mmspcl__heads_mod_name[mi]);
        if ((st = mmspcl__heads_linear(&in_proj[mi], w, key, tok[mi], D, err))) return st;
        snprintf(key, sizeof key, "%s.pos.%s", prefix, mmspcl__heads_mod_name[mi]);
        if ((st = mmspcl__heads_f32(w, key, 2, seq[mi], D, &pos[mi], err))) return st;
    }
    if (*n_mod < 2) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: needs at least two modalities", prefix);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_mult_load(mmspcl_mult *m, const mmspcl_weights *w, const char *prefix,
                               mmspcl_error *err) {
    char key[512];
    int act, a, b, p = 0, l, L, n_mod;
    mmspcl_status st;
    memset(m, 0, sizeof *m);
    if ((st = mmspcl__heads_int(w, prefix, "d_model", 1, 1 << 16, &m->d_model, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "n_heads", 1, m->d_model, &m->n_heads, err))) return st;
    if (m->d_model % m->n_heads) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: d_model %d not a multiple of n_heads %d", prefix, m->d_model, m->n_heads);
    if ((st = mmspcl__heads_int(w, prefix, "n_cross", 0, 64, &m->n_cross, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "n_self", 0, 64, &m->n_self, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "ff_mult", 1, 64, &m->ff_mult, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "out_dim", 1, 1 << 20, &m->out_dim, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "act", 0, 1, &act, err))) return st;
    m->act = (mmspcl_act)act;
    if ((st = mmspcl__heads_seq_load(w, prefix, m->seq, m->tok, m->d_model, m->in_proj, m->pos, &n_mod, err))) return st;
    m->n_pairs = n_mod * (n_mod - 1);
    L = m->n_cross + m->n_self;
    m->blocks = (mmspcl_head_block *)MMSPCL_MALLOC(sizeof(mmspcl_head_block) * (size_t)(m->n_pairs * L + 1));
    m->final_ln = (mmspcl_head_ln *)MMSPCL_MALLOC(sizeof(mmspcl_head_ln) * (size_t)m->n_pairs);
    if (!m->blocks || !m->final_ln) { mmspcl_mult_free(m); return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: out of memory", prefix); }
    for (a = 0; a < 3; a++) {
        if (!m->seq[a]) continue;
        for (b = 0; b < 3; b++) {
            if (b == a || !m->seq[b]) continue;
            for (l = 0; l < L; l++) {
                snprintf(key, sizeof key, "%s.%s_%s.layer.%d", prefix, mmspcl__heads_mod_name[a], mmspcl__heads_mod_name[b], l);
                if ((st = mmspcl__heads_blockl(&m->blocks[(size_t)p * L + l], w, key, m->d_model, m->n_heads, m->ff_mult, m->act, l < m->n_cross, err))) { mmspcl_mult_free(m); return st; }
            }
            snprintf(key, sizeof key, "%s.%s_%s.ln", prefix, mmspcl__heads_mod_name[a], mmspcl__heads_mod_name[b]);
            if ((st = mmspcl__heads_lnorm(&m->final_ln[p], w, key, m->d_model, err))) { mmspcl_mult_free(m); return st; }
            p++;
        }
    }
    snprintf(key, sizeof key, "%s.out", prefix);
    if ((st = mmspcl__heads_linear(&m->out_proj, w, key, m->n_pairs * m->d_model, m->out_dim, err))) { mmspcl_mult_free(m); return st; }
    return MMSPCL_OK;
}

mmspcl_status mmspcl_mbt_load(mmspcl_mbt *m, const mmspcl_weights *w, const char *prefix,
                              mmspcl_error *err) {
    char key[512];
    int act, mi, slot = 0, l;
    mmspcl_status st;
    memset(m, 0, sizeof *m);
    if ((st = mmspcl__heads_int(w, prefix, "d_model", 1, 1 << 16, &m->d_model, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "n_heads", 1, m->d_model, &m->n_heads, err))) return st;
    if (m->d_model % m->n_heads) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: d_model %d not a multiple of n_heads %d", prefix, m->d_model, m->n_heads);
    if ((st = mmspcl__heads_int(w, prefix, "n_layers", 1, 64, &m->n_layers, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "fusion_start", 0, m->n_layers, &m->fusion_start, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "n_fusion", 1, 1 << 12, &m->n_fusion, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "ff_mult", 1, 64, &m->ff_mult, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "out_dim", 1, 1 << 20, &m->out_dim, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "act", 0, 1, &act, err))) return st;
    m->act = (mmspcl_act)act;
    {   /* absent in older files: per modality */
        int64_t v;
        snprintf(key, sizeof key, "%s.bottleneck", prefix);
        if (mmspcl_weights_get_int(w, key, &v) && (st = mmspcl__heads_int(w, prefix, "bottleneck", 0, 1, &m->bottleneck, err))) return st;
        snprintf(key, sizeof key, "%s.readout", prefix);   /* absent in older files: ours */
        if (mmspcl_weights_get_int(w, key, &v) && (st = mmspcl__heads_int(w, prefix, "readout", 0, 1, &m->readout, err))) return st;
    }
    if ((st = mmspcl__heads_seq_load(w, prefix, m->seq, m->tok, m->d_model, m->in_proj, m->pos, &m->n_mod, err))) return st;
    {
        int sets[3][2], k[3];
        m->n_sets = mmspcl__heads_mbt_sets(m->n_mod, m->bottleneck, sets, k);
    }
    snprintf(key, sizeof key, "%s.fusion_tokens", prefix);
    if ((st = mmspcl__heads_f32(w, key, 2, (int64_t)m->n_sets * m->n_fusion, m->d_model, &m->fusion_tokens, err))) return st;
    m->blocks = (mmspcl_head_block *)MMSPCL_MALLOC(sizeof(mmspcl_head_block) * (size_t)(m->n_mod * m->n_layers));
    if (!m->blocks) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: out of memory", prefix);
    for (mi = 0; mi < 3; mi++) {
        if (!m->seq[mi]) continue;
        for (l = 0; l < m->n_layers; l++) {
            snprintf(key, sizeof key, "%s.%s.layer.%d", prefix, mmspcl__heads_mod_name[mi], l);
            if ((st = mmspcl__heads_blockl(&m->blocks[(size_t)slot * m->n_layers + l], w, key, m->d_model, m->n_heads, m->ff_mult, m->act, 0, err))) { mmspcl_mbt_free(m); return st; }
        }
        snprintf(key, sizeof key, "%s.%s.ln", prefix, mmspcl__heads_mod_name[mi]);
        if (m->readout == MMSPCL_READOUT_MODALITY && (st = mmspcl__heads_lnorm(&m->final_ln[mi], w, key, m->d_model, err))) { mmspcl_mbt_free(m); return st; }
        slot++;
    }
    snprintf(key, sizeof key, "%s.ln", prefix);
    if (m->readout == MMSPCL_READOUT_JOINT && (st = mmspcl__heads_lnorm(&m->final_ln[0], w, key, m->d_model, err))) { mmspcl_mbt_free(m); return st; }
    snprintf(key, sizeof key, "%s.out", prefix);
    if ((st = mmspcl__heads_linear(&m->out_proj, w, key, (m->readout == MMSPCL_READOUT_JOINT ? 1 : m->n_mod) * m->d_model, m->out_dim, err))) { mmspcl_mbt_free(m); return st; }
    return MMSPCL_OK;
}

mmspcl_status mmspcl_fuse_linear_load(mmspcl_fuse_linear *f, const mmspcl_weights *w,
                                      const char *prefix, mmspcl_error *err) {
    char key[512];
    int mi, in = 0, out;
    mmspcl_status st;
    memset(f, 0, sizeof *f);
    for (mi = 0; mi < 3; mi++) {
        snprintf(key, sizeof key, "dim.%s", mmspcl__heads_mod_name[mi]);
        if ((st = mmspcl__heads_int(w, prefix, key, 0, 1 << 24, &f->dims[mi], err))) return st;
        in += f->dims[mi];
    }
    if ((st = mmspcl__heads_int(w, prefix, "out_dim", 1, 1 << 20, &out, err))) return st;
    snprintf(key, sizeof key, "%s.proj", prefix);
    return mmspcl__heads_linear(&f->proj, w, key, in, out, err);
}

mmspcl_status mmspcl_protos_load(const float **protos, int *n_classes, int *dim,
                                 const mmspcl_weights *w, const char *prefix, mmspcl_error *err) {
    char key[512];
    const mmspcl_tensor *t;
    snprintf(key, sizeof key, "%s.protos", prefix);
    t = mmspcl_weights_find(w, key);
    if (!t) return mmspcl__fail(err, MMSPCL_ERR_NOT_FOUND, "tensor %s is missing", key);
    if (t->dtype != MMSPCL_F32 || t->ndim != 2 || t->ne[0] < 1 || t->ne[0] > MMSPCL_MAX_CLASSES || t->ne[1] < 1 || t->ne[1] > (1 << 24))
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "tensor %s: expected f32 [classes][dim]", key);
    *protos = (const float *)t->data;
    *n_classes = (int)t->ne[0];
    *dim = (int)t->ne[1];
    return MMSPCL_OK;
}

/* Cross-modal pruning as a layer (mmspcl_xprune, declared in 12.3; here for the loaders' helpers) */
mmspcl_status mmspcl_xprune_plan(const mmspcl_xprune_cfg *c, mmspcl_xprune_layout *l, mmspcl_error *err) {
    int m, k = 0;
    memset(l, 0, sizeof *l);
    if (c->base < 0 || c->base > 2 || c->dims[c->base] <= 0)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "prune: the base modality %d is not present", c->base);
    if (c->K < 1 || c->proj_dim < 0 || (c->rule != MMSPCL_PRUNE_ARGMAX && c->rule != MMSPCL_PRUNE_THRESHOLD) ||
        (c->joint != 0 && c->joint != 1) || (c->rule == MMSPCL_PRUNE_THRESHOLD && c->tau != c->tau))
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "prune: head size %d, projection %d, rule %d, joint %d (a threshold must be a number)",
                            c->K, c->proj_dim, c->rule, c->joint);
    l->mods = c->mods;
    for (m = 0; m < 3; m++) {
        if (c->dims[m] < 0) return mmspcl__fail(err, MMSPCL_ERR_ARG, "prune: modality %s has width %d", mmspcl__heads_mod_name[m], c->dims[m]);
        if (!c->mods && c->dims[m] > 0 && m != c->base) l->mods |= 1u << m;
        l->width[m] = c->dims[m] > 0 ? (c->proj_dim > 0 ? c->proj_dim : c->dims[m]) : 0;
    }
    if (!l->mods || (l->mods & (1u << c->base)) || (l->mods & ~7u))
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "prune: pruning modalities 0x%x: one or more of t, a, v, not the base %s", l->mods, mmspcl__heads_mod_name[c->base]);
    if (l->width[c->base] % c->K)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "prune: base width %d must be a multiple of head size %d", l->width[c->base], c->K);
    for (m = 0; m < 3; m++) {
        if (!(l->mods & (1u << m))) continue;
        if (c->dims[m] <= 0) return mmspcl__fail(err, MMSPCL_ERR_ARG, "prune: pruning modality %s is not present", mmspcl__heads_mod_name[m]);
        l->np[m] = (l->width[m] + c->K - 1) / c->K;
        l->koff[m] = k;
        k += l->np[m];
    }
    l->n_kept = k;
    return MMSPCL_OK;
}

/* cosine of base head hb with head hp of modality m (a short last head: its width) */
static double mmspcl__xprune_cos(const mmspcl_xprune_cfg *c, const mmspcl_xprune_layout *l, const double *const u[3],
                                 int m, int hb, int hp) {
    const int K = c->K, w = (hp + 1) * K <= l->width[m] ? K : l->width[m] - hp * K;
    const double *a = u[c->base] + (size_t)hb * K, *b = u[m] + (size_t)hp * K;
    double ab = 0, aa = 0, bb = 0;
    int i;
    for (i = 0; i < w; i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
    aa = sqrt(aa); bb = sqrt(bb);
    return ab / ((aa > 1e-8 ? aa : 1e-8) * (bb > 1e-8 ? bb : 1e-8));
}

void mmspcl_xprune_select(const mmspcl_xprune_cfg *c, const mmspcl_xprune_layout *l, const double *const u[3],
                          unsigned char *kept) {
    mmspcl_xprune_select_some(c, l, u, l->mods, kept);
}

void mmspcl_xprune_select_some(const mmspcl_xprune_cfg *c, const mmspcl_xprune_layout *l, const double *const u[3],
                               unsigned mods, unsigned char *kept) {
    const int nb = l->width[c->base] / c->K;
    int m, hb, hp;
    mods &= l->mods;
    for (hp = 0; hp < l->n_kept; hp++) kept[hp] = 1;
    if (c->rule == MMSPCL_PRUNE_THRESHOLD) {
        for (m = 0; m < 3; m++)
            for (hp = 0; mods & (1u << m) && hp < l->np[m]; hp++)
                for (hb = 0; hb < nb && kept[l->koff[m] + hp]; hb++)
                    if (mmspcl__xprune_cos(c, l, u, m, hb, hp) >= c->tau) kept[l->koff[m] + hp] = 0;
        return;
    }
    for (hb = 0; hb < nb; hb++) {
        int best = -1;
        double bc = -2;
        for (m = 0; m < 3; m++) {
            if (!(mods & (1u << m))) continue;
            if (!c->joint) { best = -1; bc = -2; }
            for (hp = 0; hp < l->np[m]; hp++) {
                const double cs = mmspcl__xprune_cos(c, l, u, m, hb, hp);
                if (cs > bc) { bc = cs; best = l->koff[m] + hp; }
            }
            if (!c->joint) kept[best] = 0;
        }
        if (c->joint && best >= 0) kept[best] = 0;
    }
}

mmspcl_status mmspcl_xprune_forward(const mmspcl_xprune *p, const float *const x[3], int n, float *const y[3],
                                    unsigned char *kept, mmspcl_error *err) {
    const int T[3] = { 1, 1, 1 };
    return mmspcl_xprune_forward_seq(p, x, T, NULL, n, y, kept, err);
}

/* the real steps of modality m in sample i (all T[m] without lengths) */
static int mmspcl__xprune_len(const int T[3], const int *const lens[3], int m, int i) {
    return lens && lens[m] ? lens[m][i] : T[m];
}

static mmspcl_status mmspcl__xprune_check_seq(const mmspcl_xprune *p, const float *const x[3], const int T[3],
                                              const int *const lens[3], int n, float *const y[3], int *tmax,
                                              mmspcl_error *err) {
    int m, i;
    *tmax = 1;
    for (m = 0; m < 3; m++) {
        if (p->cfg.dims[m] <= 0) continue;
        if (!x[m] || !y[m] || T[m] < 1)
            return mmspcl__fail(err, MMSPCL_ERR_ARG, "prune: modality %s has width %d but no input or output (steps %d)", mmspcl__heads_mod_name[m], p->cfg.dims[m], T[m]);
        if (T[m] > *tmax) *tmax = T[m];
        for (i = 0; lens && lens[m] && i < n; i++)
            if (lens[m][i] < 1 || lens[m][i] > T[m])
                return mmspcl__fail(err, MMSPCL_ERR_ARG, "prune: sample %d of %s has length %d (steps 1..%d)", i, mmspcl__heads_mod_name[m], lens[m][i], T[m]);
    }
    return MMSPCL_OK;
}

mmspcl_status mmspcl_xprune_forward_seq(const mmspcl_xprune *p, const float *const x[3], const int T[3],
                                        const int *const lens[3], int n, float *const y[3], unsigned char *kept,
                                        mmspcl_error *err) {
    const mmspcl_xprune_layout *l = &p->lay;
    const int b = p->cfg.base;
    double *row[3] = { NULL, NULL, NULL }, *buf;
    unsigned char *kp;
    size_t tot = 0;
    int m, i, j, s, tmax;
    mmspcl_status st = mmspcl__xprune_check_seq(p, x, T, lens, n, y, &tmax, err);
    if (st) return st;
    for (m = 0; m < 3; m++) if (p->cfg.dims[m] > 0) tot += (size_t)l->width[m];
    buf = (double *)MMSPCL_MALLOC(sizeof(double) * (tot + 1) + (size_t)l->n_kept + 1);
    if (!buf) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "prune: out of memory");
    kp = (unsigned char *)(buf + tot + 1);
    for (m = 0, tot = 0; m < 3; m++) {
        if (p->cfg.dims[m] <= 0) continue;
        row[m] = buf + tot;
        tot += (size_t)l->width[m];
        if (p->cfg.proj_dim > 0) {
            if (mmspcl_head_linear_forward(&p->proj[m], x[m], y[m], n * T[m])) { MMSPCL_FREE(buf); return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "prune: out of memory in a kernel"); }
        } else memcpy(y[m], x[m], sizeof(float) * (size_t)n * T[m] * l->width[m]);
        for (i = 0; i < n; i++)   /* padded steps: zero */
            for (j = mmspcl__xprune_len(T, lens, m, i) * l->width[m]; j < T[m] * l->width[m]; j++) y[m][(size_t)i * T[m] * l->width[m] + j] = 0.0f;
    }
    for (i = 0; i < n; i++)
        for (s = 0; s < tmax; s++) {
            unsigned char *ks = kept ? kept + ((size_t)i * tmax + s) * l->n_kept : kp;
            unsigned real = 0;
            for (m = 0; m < 3; m++)
                if (row[m] && s < mmspcl__xprune_len(T, lens, m, i)) {
                    real |= 1u << m;
                    for (j = 0; j < l->width[m]; j++) row[m][j] = y[m][((size_t)i * T[m] + s) * l->width[m] + j];
                }
            if (!(real & (1u << b))) real = 0;   /* no base step: nothing is compared */
            mmspcl_xprune_select_some(&p->cfg, l, (const double *const *)row, real, ks);
            for (m = 0; m < 3; m++)
                for (j = 0; (real & l->mods & (1u << m)) && j < l->width[m]; j++)
                    if (!ks[l->koff[m] + j / p->cfg.K]) y[m][((size_t)i * T[m] + s) * l->width[m] + j] = 0.0f;
        }
    MMSPCL_FREE(buf);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_xprune_load(mmspcl_xprune *p, const mmspcl_weights *w, const char *prefix, mmspcl_error *err) {
    char key[512];
    int m, mods;
    mmspcl_status st;
    memset(p, 0, sizeof *p);
    for (m = 0; m < 3; m++) {
        snprintf(key, sizeof key, "dim.%s", mmspcl__heads_mod_name[m]);
        if ((st = mmspcl__heads_int(w, prefix, key, 0, 1 << 24, &p->cfg.dims[m], err))) return st;
    }
    if ((st = mmspcl__heads_int(w, prefix, "base", 0, 2, &p->cfg.base, err)) || (st = mmspcl__heads_int(w, prefix, "mods", 0, 7, &mods, err)) ||
        (st = mmspcl__heads_int(w, prefix, "K", 1, 1 << 20, &p->cfg.K, err)) || (st = mmspcl__heads_int(w, prefix, "rule", 0, 1, &p->cfg.rule, err)) ||
        (st = mmspcl__heads_int(w, prefix, "joint", 0, 1, &p->cfg.joint, err)) ||
        (st = mmspcl__heads_int(w, prefix, "proj_dim", 0, 1 << 20, &p->cfg.proj_dim, err))) return st;
    p->cfg.mods = (unsigned)mods;
    snprintf(key, sizeof key, "%s.tau", prefix);
    if (!mmspcl_weights_get_float(w, key, &p->cfg.tau)) return mmspcl__fail(err, MMSPCL_ERR_NOT_FOUND, "float key %s is missing", key);
    if ((st = mmspcl_xprune_plan(&p->cfg, &p->lay, err))) return st;
    for (m = 0; m < 3 && p->cfg.proj_dim > 0; m++) {
        if (p->cfg.dims[m] <= 0) continue;
        snprintf(key, sizeof key, "%s.proj.%s", prefix, mmspcl__heads_mod_name[m]);
        if ((st = mmspcl__heads_linear(&p->proj[m], w, key, p->cfg.dims[m], p->cfg.proj_dim, err))) return st;
    }
    return MMSPCL_OK;
}

/* ---- 12.9 Sequence MulT: MulT as its code does it ----------------------------------------- */
void mmspcl_sinusoids(double *pos, int T, int D) {
    const int half = D / 2;
    const double step = log(10000.0) / (double)(half - 1);
    int t, j;
    for (t = 0; t < T; t++) {
        double *r = pos + (size_t)t * D;
        for (j = 0; j < half; j++) {
            const double a = (double)(t + 1) * exp(-(double)j * step);
            r[j] = sin(a);
            r[half + j] = cos(a);
        }
        if (D % 2) r[D - 1] = 0.0;
    }
}

void mmspcl_mult_seq_free(mmspcl_mult_seq *m) {
    MMSPCL_FREE(m->cross);
    MMSPCL_FREE(m->mem);
    m->cross = m->mem = NULL;
}

/* checks the inputs; mask[m] [ns][T[m]] from lens (1 = real step) for samples i0 .. i0+ns-1 */
static mmspcl_status mmspcl__mseq_masks(const mmspcl_mult_seq *m, const float *const x[3], const int T[3],
                                        const int *const lens[3], int i0, int ns, unsigned char *mask[3],
                                        mmspcl_error *err) {
    int s, i, t;
    for (s = 0; s < m->n_mod; s++) {
        const int mi = m->mods[s];
        if (!x[mi] || T[mi] < 1)
            return mmspcl__fail(err, MMSPCL_ERR_ARG, "mult_seq: modality %s has no input (steps %d)", mmspcl__heads_mod_name[mi], T[mi]);
        for (i = 0; i < ns; i++) {
            const int L = lens && lens[mi] ? lens[mi][i0 + i] : T[mi];
            if (L < 1 || L > T[mi])
                return mmspcl__fail(err, MMSPCL_ERR_ARG, "mult_seq: sample %d of %s has length %d (steps 1..%d)", i0 + i, mmspcl__heads_mod_name[mi], L, T[mi]);
            if (mask) for (t = 0; t < T[mi]; t++) mask[mi][(size_t)i * T[mi] + t] = t < L;
        }
    }
    return MMSPCL_OK;
}

/* the output row of one target: the last real step or the mean over the real ones */
static void mmspcl__mseq_pool(const float *g, const unsigned char *mask, int T, int D, int pool, float *out) {
    int t, j, L = 0;
    for (t = 0; t < T; t++) L += mask[t] != 0;
    if (pool == MMSPCL_POOL_LAST) { memcpy(out, g + (size_t)(L - 1) * D, sizeof(float) * (size_t)D); return; }
    for (j = 0; j < D; j++) out[j] = 0.0f;
    for (t = 0; t < T; t++) if (mask[t]) for (j = 0; j < D; j++) out[j] += g[(size_t)t * D + j];
    for (j = 0; j < D; j++) out[j] /= (float)L;
}

typedef struct mmspcl__mseq_buf {
    float *e[3], *h, *g, *tmp, *z, *hid, *r, *pd, *pm, *scr;
    unsigned char *mask[3];
    void *mem;
} mmspcl__mseq_buf;

static mmspcl_status mmspcl__mseq_alloc(const mmspcl_mult_seq *m, const int T[3], int CH, mmspcl__mseq_buf *b) {
    const int d = m->cfg.d, Dm = (m->n_mod - 1) * d, Z = m->n_mod * Dm;
    int s, tmax = 1, p, l;
    size_t nf = 0, nb = 0, scr = 0, t;
    float *f;
    unsigned char *u;
    for (s = 0; s < m->n_mod; s++) if (T[m->mods[s]] > tmax) tmax = T[m->mods[s]];
    for (p = 0; p < m->n_pairs; p++)
        for (l = 0; l < m->cfg.n_layers; l++)
            if ((t = mmspcl_head_block_scratch(&m->cross[p * m->cfg.n_layers + l], CH, T[m->pa[p]], T[m->pb[p]])) > scr) scr = t;
    for (s = 0; s < m->n_mod; s++)
        for (l = 0; l < m->cfg.n_mem_layers; l++)
            if ((t = mmspcl_head_block_scratch(&m->mem[s * m->cfg.n_mem_layers + l], CH, T[m->mods[s]], T[m->mods[s]])) > scr) scr = t;
    for (s = 0; s < m->n_mod; s++) { nf += (size_t)CH * T[m->mods[s]] * d; nb += (size_t)CH * T[m->mods[s]]; }
    nf += (size_t)CH * tmax * (d + 2 * (size_t)Dm) + 3 * (size_t)CH * Z + (size_t)tmax * (d + Dm) + scr;
    b->mem = MMSPCL_MALLOC(sizeof(float) * nf + nb + 16);
    if (!b->mem) return MMSPCL_ERR_NOMEM;
    f = (float *)b->mem;
    for (s = 0; s < 3; s++) { b->e[s] = NULL; b->mask[s] = NULL; }
    for (s = 0; s < m->n_mod; s++) { b->e[m->mods[s]] = f; f += (size_t)CH * T[m->mods[s]] * d; }
    b->h = f; f += (size_t)CH * tmax * d;
    b->g = f; f += (size_t)CH * tmax * Dm;
    b->tmp = f; f += (size_t)CH * tmax * Dm;
    b->z = f; f += (size_t)CH * Z;
    b->hid = f; f += (size_t)CH * Z;
    b->r = f; f += (size_t)CH * Z;
    b->pd = f; f += (size_t)tmax * d;
    b->pm = f; f += (size_t)tmax * Dm;
    b->scr = f; f += scr;
    u = (unsigned char *)f;
    for (s = 0; s < m->n_mod; s++) { b->mask[m->mods[s]] = u; u += (size_t)CH * T[m->mods[s]]; }
    return MMSPCL_OK;
}

/* float sinusoids [T][D] */
static mmspcl_status mmspcl__mseq_pos(float *out, int T, int D) {
    double *p = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)T * D);
    size_t q;
    if (!p) return MMSPCL_ERR_NOMEM;
    mmspcl_sinusoids(p, T, D);
    for (q = 0; q < (size_t)T * D; q++) out[q] = (float)p[q];
    MMSPCL_FREE(p);
    return MMSPCL_OK;
}

/* e [ns][T][d] = sqrt(d) x W^T + pos (Conv1d of kernel 1; the bias in the file is 0) */
static mmspcl_status mmspcl__mseq_embed(const mmspcl_head_linear *proj, const float *x, int ns, int T,
                                        const float *pos, float *e) {
    const int d = proj->out;
    const float sc = (float)sqrt((double)d);
    size_t s, q, per = (size_t)T * d;
    mmspcl_status st = mmspcl_head_linear_forward(proj, x, e, ns * T);
    if (st) return st;
    for (s = 0; s < (size_t)ns; s++)
        for (q = 0; q < per; q++) e[s * per + q] = sc * e[s * per + q] + pos[q];
    return MMSPCL_OK;
}

/* target s of one chunk: its pairs' cross-modal encoders into g, the memory encoder, the pooled row */
static mmspcl_status mmspcl__mseq_target(const mmspcl_mult_seq *m, int s, const int T[3], int ns, mmspcl__mseq_buf *b) {
    const int d = m->cfg.d, Dm = (m->n_mod - 1) * d, a = m->mods[s], Ta = T[a], L = m->cfg.n_layers;
    const int Lm = m->cfg.n_mem_layers, Z = m->n_mod * Dm;
    const float scm = (float)sqrt((double)Dm);
    mmspcl_status st = MMSPCL_OK;
    int k, l, i, t, j;
    for (k = 0; k < m->n_mod - 1; k++) {
        const int p = s * (m->n_mod - 1) + k, src = m->pb[p];
        memcpy(b->h, b->e[a], sizeof(float) * (size_t)ns * Ta * d);
        for (l = 0; l < L && !st; l++)
            st = mmspcl_head_block_forward(&m->cross[p * L + l], b->h, ns, Ta, b->e[src], T[src], b->mask[src], b->scr);
        if (st) return st;
        mmspcl_head_ln_forward(&m->cross_ln[p], b->h, b->tmp, ns * Ta);
        for (i = 0; i < ns * Ta; i++)
            for (j = 0; j < d; j++) b->g[(size_t)i * Dm + k * d + j] = b->tmp[(size_t)i * d + j];
    }
    for (i = 0; i < ns; i++)
        for (t = 0; t < Ta; t++)
            for (j = 0; j < Dm; j++) {
                float *v = &b->g[((size_t)i * Ta + t) * Dm + j];
                *v = scm * *v + b->pm[(size_t)t * Dm + j];
            }
    for (l = 0; l < Lm && !st; l++)
        st = mmspcl_head_block_forward(&m->mem[s * Lm + l], b->g, ns, Ta, NULL, 0, b->mask[a], b->scr);
    if (st) return st;
    mmspcl_head_ln_forward(&m->mem_ln[s], b->g, b->tmp, ns * Ta);
    for (i = 0; i < ns; i++)
        mmspcl__mseq_pool(b->tmp + (size_t)i * Ta * Dm, b->mask[a] + (size_t)i * Ta, Ta, Dm, m->cfg.pool,
                          b->z + (size_t)i * Z + (size_t)s * Dm);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_mult_seq_forward(const mmspcl_mult_seq *m, const float *const x[3], const int T[3],
                                      const int *const lens[3], int n, float *y, mmspcl_error *err) {
    const int CH = 16, d = m->cfg.d, Dm = (m->n_mod - 1) * d, Z = m->n_mod * Dm;
    mmspcl__mseq_buf b;
    mmspcl_status st;
    int i, s, tmax = 1;
    size_t q;
    if ((st = mmspcl__mseq_masks(m, x, T, lens, 0, n, NULL, err))) return st;
    for (s = 0; s < m->n_mod; s++) if (T[m->mods[s]] > tmax) tmax = T[m->mods[s]];
    if (mmspcl__mseq_alloc(m, T, CH, &b) || mmspcl__mseq_pos(b.pd, tmax, d) || mmspcl__mseq_pos(b.pm, tmax, Dm)) {
        MMSPCL_FREE(b.mem);
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "mult_seq: out of memory for a chunk of %d samples", CH);
    }
    for (i = 0; i < n && !st; i += CH) {
        const int ns = n - i < CH ? n - i : CH;
        mmspcl__mseq_masks(m, x, T, lens, i, ns, b.mask, NULL);
        for (s = 0; s < m->n_mod && !st; s++) {
            const int mi = m->mods[s];
            st = mmspcl__mseq_embed(&m->in_proj[mi], x[mi] + (size_t)i * T[mi] * m->cfg.dims[mi], ns, T[mi], b.pd, b.e[mi]);
        }
        for (s = 0; s < m->n_mod && !st; s++) st = mmspcl__mseq_target(m, s, T, ns, &b);
        /* the residual output block, then the output layer */
        if (!st) st = mmspcl_head_mlp_forward(&m->res, b.z, b.r, ns, b.hid);
        for (q = 0; !st && q < (size_t)ns * Z; q++) b.r[q] += b.z[q];
        if (!st) st = mmspcl_head_linear_forward(&m->out, b.r, y + (size_t)i * m->cfg.out_dim, ns);
    }
    MMSPCL_FREE(b.mem);
    if (st) return mmspcl__fail(err, st, "mult_seq: out of memory in a kernel");
    return MMSPCL_OK;
}

/* pairs, target-major over the present modalities; sources in t, a, v order */
static void mmspcl__mseq_pairs(const mmspcl_mult_seq_cfg *c, int *n_mod, int mods[3], int *n_pairs, int pa[6], int pb[6]) {
    int a, b;
    *n_mod = 0; *n_pairs = 0;
    for (a = 0; a < 3; a++) if (c->dims[a] > 0) mods[(*n_mod)++] = a;
    for (a = 0; a < *n_mod; a++)
        for (b = 0; b < *n_mod; b++)
            if (a != b) { pa[*n_pairs] = mods[a]; pb[*n_pairs] = mods[b]; (*n_pairs)++; }
}

/* one MulT layer: a pre-LN block whose keys/values go through the queries' layer norm */
static mmspcl_status mmspcl__mseq_layer(mmspcl_head_block *b, const mmspcl_weights *w, const char *name, int D,
                                        int H, int cross, mmspcl_error *err) {
    mmspcl_status st = mmspcl__heads_blockl(b, w, name, D, H, 4, MMSPCL_ACT_RELU, 0, err);
    if (st) return st;
    b->cross = cross;
    b->ln_kv = b->ln_q;
    return MMSPCL_OK;
}

static mmspcl_status mmspcl__mseq_cfg_load(mmspcl_mult_seq_cfg *c, const mmspcl_weights *w, const char *prefix,
                                           mmspcl_error *err) {
    char key[64];
    mmspcl_status st;
    int mi, present = 0;
    for (mi = 0; mi < 3; mi++) {
        snprintf(key, sizeof key, "dim.%s", mmspcl__heads_mod_name[mi]);
        if ((st = mmspcl__heads_int(w, prefix, key, 0, 1 << 20, &c->dims[mi], err))) return st;
        present += c->dims[mi] > 0;
    }
    if ((st = mmspcl__heads_int(w, prefix, "d", 4, 1 << 14, &c->d, err)) ||
        (st = mmspcl__heads_int(w, prefix, "n_heads", 1, c->d, &c->n_heads, err)) ||
        (st = mmspcl__heads_int(w, prefix, "n_layers", 1, 64, &c->n_layers, err)) ||
        (st = mmspcl__heads_int(w, prefix, "n_mem_layers", 0, 64, &c->n_mem_layers, err)) ||
        (st = mmspcl__heads_int(w, prefix, "out_dim", 1, 1 << 20, &c->out_dim, err)) ||
        (st = mmspcl__heads_int(w, prefix, "pool", 0, 1, &c->pool, err))) return st;
    if (present < 2 || c->d % c->n_heads)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %d modalities (needs 2 or 3), d %d, %d heads", prefix, present, c->d, c->n_heads);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_mult_seq_load(mmspcl_mult_seq *m, const mmspcl_weights *w, const char *prefix,
                                   mmspcl_error *err) {
    char key[512];
    mmspcl_status st;
    int s, p, l, d, Dm, L, Lm;
    memset(m, 0, sizeof *m);
    if ((st = mmspcl__mseq_cfg_load(&m->cfg, w, prefix, err))) return st;
    mmspcl__mseq_pairs(&m->cfg, &m->n_mod, m->mods, &m->n_pairs, m->pa, m->pb);
    d = m->cfg.d; Dm = (m->n_mod - 1) * d; L = m->cfg.n_layers; Lm = m->cfg.n_mem_layers;
    if (Dm % m->cfg.n_heads) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: memory width %d is not a multiple of %d heads", prefix, Dm, m->cfg.n_heads);
    m->cross = (mmspcl_head_block *)MMSPCL_MALLOC(sizeof(mmspcl_head_block) * (size_t)m->n_pairs * L);
    m->mem = (mmspcl_head_block *)MMSPCL_MALLOC(sizeof(mmspcl_head_block) * (size_t)(m->n_mod * Lm + 1));
    if (!m->cross || !m->mem) { mmspcl_mult_seq_free(m); return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: out of memory", prefix); }
    for (s = 0; s < m->n_mod && !st; s++) {
        snprintf(key, sizeof key, "%s.proj.%s", prefix, mmspcl__heads_mod_name[m->mods[s]]);
        st = mmspcl__heads_linear(&m->in_proj[m->mods[s]], w, key, m->cfg.dims[m->mods[s]], d, err);
    }
    for (p = 0; p < m->n_pairs && !st; p++) {
        const char *an = mmspcl__heads_mod_name[m->pa[p]], *bn = mmspcl__heads_mod_name[m->pb[p]];
        for (l = 0; l < L && !st; l++) {
            snprintf(key, sizeof key, "%s.%s_%s.layer.%d", prefix, an, bn, l);
            st = mmspcl__mseq_layer(&m->cross[p * L + l], w, key, d, m->cfg.n_heads, 1, err);
        }
        snprintf(key, sizeof key, "%s.%s_%s.ln", prefix, an, bn);
        if (!st) st = mmspcl__heads_lnorm(&m->cross_ln[p], w, key, d, err);
    }
    for (s = 0; s < m->n_mod && !st; s++) {
        const char *an = mmspcl__heads_mod_name[m->mods[s]];
        for (l = 0; l < Lm && !st; l++) {
            snprintf(key, sizeof key, "%s.%s_mem.layer.%d", prefix, an, l);
            st = mmspcl__mseq_layer(&m->mem[s * Lm + l], w, key, Dm, m->cfg.n_heads, 0, err);
        }
        snprintf(key, sizeof key, "%s.%s_mem.ln", prefix, an);
        if (!st) st = mmspcl__heads_lnorm(&m->mem_ln[s], w, key, Dm, err);
    }
    snprintf(key, sizeof key, "%s.res", prefix);
    if (!st) st = mmspcl__heads_mlpl(&m->res, w, key, m->n_mod * Dm, m->n_mod * Dm, m->n_mod * Dm, MMSPCL_ACT_RELU, err);
    snprintf(key, sizeof key, "%s.out", prefix);
    if (!st) st = mmspcl__heads_linear(&m->out, w, key, m->n_mod * Dm, m->cfg.out_dim, err);
    if (st) mmspcl_mult_seq_free(m);
    return st;
}

/* ---------------------------------------------------------------------------------------------
   13. Classifier
   ------------------------------------------------------------------------------------------ */
/* ---- 13.1 Labels and the n-gram view ----------------------------------------------------- */
const char *const mmspcl_emotion_names[MMSPCL_NUM_EMOTIONS] = {"neutral", "joy", "sadness", "surprise",
                                                                "fear", "disgust", "anger"};
const char *const mmspcl_sentiment_names[MMSPCL_NUM_SENTIMENTS] = {"neutral", "positive", "negative"};

static int mmspcl__name_index(const char *const *names, int n, const char *s) {
    int i, j;
    for (i = 0; i < n; i++) {
        for (j = 0; names[i][j] && s[j] && (s[j] | 32) == names[i][j]; j++) {}
        if (!names[i][j] && !s[j]) return i;
    }
    return -1;
}
int mmspcl_emotion_id(const char *name) { return mmspcl__name_index(mmspcl_emotion_names, MMSPCL_NUM_EMOTIONS, name); }
int mmspcl_sentiment_id(const char *name) { return mmspcl__name_index(mmspcl_sentiment_names, MMSPCL_NUM_SENTIMENTS, name); }

/* The n-gram view: FNV-1a hashes of words, word pairs and character n-grams. */
static uint32_t mmspcl__ng_hash(const char *s, size_t n, uint32_t h) {
    size_t i;
    for (i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 16777619u; }
    return h;
}

typedef struct mmspcl__kv32 { uint32_t k; float v; } mmspcl__kv32;
static int mmspcl__kv_cmp(const void *a, const void *b) {
    const uint32_t x = ((const mmspcl__kv32 *)a)->k, y = ((const mmspcl__kv32 *)b)->k;
    return x < y ? -1 : x > y;
}
/* sort, merge duplicates (summing), sublinear tf * idf, l2-normalise; returns the new count */
static int mmspcl__kv_finish(mmspcl__kv32 *e, int n, const float *idf, int tf_log) {
    int i, o = 0;
    double norm = 0;
    if (!n) return 0;
    qsort(e, (size_t)n, sizeof *e, mmspcl__kv_cmp);
    for (i = 0; i < n; i++) {
        if (o && e[o - 1].k == e[i].k) e[o - 1].v += e[i].v;
        else e[o++] = e[i];
    }
    for (i = 0; i < o; i++) {
        if (tf_log) e[i].v = 1.0f + logf(e[i].v);
        if (idf) e[i].v *= idf[e[i].k];
        norm += (double)e[i].v * e[i].v;
    }
    if (norm > 0) for (i = 0; i < o; i++) e[i].v = (float)(e[i].v / sqrt(norm));
    return o;
}

int mmspcl_ngram_sparse(const char *text, int nbits, const float *idf, int32_t *idx, float *val, int cap) {
    const uint32_t mask = (1u << nbits) - 1u;
    char *buf;
    size_t L = strlen(text), n = 0, p, *st, *ln;
    mmspcl__kv32 *e;
    int nt = 0, nw = 0, ne = 0, ne2, i, k, g;
    buf = (char *)MMSPCL_MALLOC(L + 3);
    st = (size_t *)MMSPCL_MALLOC(sizeof(size_t) * (L + 2));
    ln = (size_t *)MMSPCL_MALLOC(sizeof(size_t) * (L + 2));
    e = (mmspcl__kv32 *)MMSPCL_MALLOC(sizeof(mmspcl__kv32) * (12 * L + 64));
    if (!buf || !st || !ln || !e) { MMSPCL_FREE(buf); MMSPCL_FREE(st); MMSPCL_FREE(ln); MMSPCL_FREE(e); return -1; }
    for (p = 0; p < L; p++) {
        unsigned char c = (unsigned char)text[p];
        if (c == 0xE2 && p + 2 < L && (unsigned char)text[p + 1] == 0x80 && (unsigned char)text[p + 2] == 0x99) { buf[n++] = '\''; p += 2; continue; }
        if (c == '"') continue;
        buf[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    buf[n] = 0;
    /* block 1: word tokens (letter/digit/' runs, other characters alone), uni- and bigrams */
    for (p = 0; p < n;) {
        unsigned char c = (unsigned char)buf[p];
        if (c <= ' ') { p++; continue; }
        st[nt] = p;
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '\'' || c >= 0x80) {
            while (p < n) {
                c = (unsigned char)buf[p];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '\'' || c >= 0x80)) break;
                p++;
            }
        } else p++;
        ln[nt] = p - st[nt];
        nt++;
    }
    for (i = 0; i < nt; i++) { e[ne].k = mmspcl__ng_hash(buf + st[i], ln[i], 2166136261u) & mask; e[ne++].v = 1.0f; }
    for (i = 0; i + 1 < nt; i++) {
        uint32_t h = mmspcl__ng_hash(buf + st[i], ln[i], 2166136261u ^ 0x5bd1e995u);
        h = mmspcl__ng_hash(" ", 1, h);
        e[ne].k = mmspcl__ng_hash(buf + st[i + 1], ln[i + 1], h) & mask;
        e[ne++].v = 1.0f;
    }
    ne = mmspcl__kv_finish(e, ne, idf, 1);
    /* block 2: character 2..5-grams inside each space-separated word padded with spaces (char_wb) */
    ne2 = ne;
    for (p = 0; p < n;) {
        size_t s0, w;
        char tmp[256];
        while (p < n && (unsigned char)buf[p] <= ' ') p++;
        if (p >= n) break;
        s0 = p;
        while (p < n && (unsigned char)buf[p] > ' ') p++;
        w = p - s0 < sizeof tmp - 2 ? p - s0 : sizeof tmp - 2;
        tmp[0] = ' ';
        memcpy(tmp + 1, buf + s0, w);
        tmp[w + 1] = ' ';
        nw++;
        for (g = 2; g <= 5; g++)
            for (k = 0; k + g <= (int)w + 2; k++) {
                e[ne2].k = mmspcl__ng_hash(tmp + k, (size_t)g, 0x811c9dc5u ^ 0x27d4eb2du) & mask;
                e[ne2++].v = 1.0f;
            }
    }
    (void)nw;
    ne2 = ne + mmspcl__kv_finish(e + ne, ne2 - ne, idf, 1);
    /* both blocks (each l2-normalised) merged; colliding buckets add */
    k = mmspcl__kv_finish(e, ne2, NULL, 0);
    /* kv_finish re-normalised the union: scale back to the sum of two unit blocks */
    for (i = 0; i < k; i++) e[i].v *= (float)sqrt(2.0);
    for (i = 0; i < k && i < cap; i++) { idx[i] = (int32_t)e[i].k; val[i] = e[i].v; }
    MMSPCL_FREE(buf); MMSPCL_FREE(st); MMSPCL_FREE(ln); MMSPCL_FREE(e);
    return k;
}

void mmspcl_sparse_log_softmax(const float *W, const float *b, int C, int64_t F, const int32_t *idx,
                               const float *val, int nnz, float *out) {
    double z[MMSPCL_MAX_CLASSES], mx, s = 0;
    int c, j;
    if (C < 1 || C > MMSPCL_MAX_CLASSES) return;
    for (c = 0; c < C; c++) {
        double a = b[c];
        for (j = 0; j < nnz; j++) a += (double)W[(size_t)c * F + idx[j]] * val[j];
        z[c] = a;
    }
    mx = z[0];
    for (c = 1; c < C; c++) if (z[c] > mx) mx = z[c];
    for (c = 0; c < C; c++) s += exp(z[c] - mx);
    for (c = 0; c < C; c++) out[c] = (float)(z[c] - mx - log(s));
}

/* ---- 13.2 The classifier file ------------------------------------------------------------ */
void mmspcl_classifier_free(mmspcl_classifier *m) {
    if (!m) return;
    mmspcl_roberta_free(m->enc);
    mmspcl_bpe_free(m->tok);
    mmspcl_weights_free(m->w);
    MMSPCL_FREE(m->lr_w[0]);
    MMSPCL_FREE(m->lr_w[1]);
    if (m->has_joint && m->joint_kind == 1) mmspcl_mult_free(&m->joint_mult);
    if (m->has_joint && m->joint_kind == 2) mmspcl_mbt_free(&m->joint_mbt);
    memset(m, 0, sizeof *m);
}

/* meld.idf and the two n-gram regressions (weights dequantized once, biases in place) */
static mmspcl_status mmspcl__classifier_ngram_load(mmspcl_classifier *m, const char *label, mmspcl_error *err) {
    static const char *const wn[2] = {"meld.lr.emotion.weight", "meld.lr.sentiment.weight"};
    static const char *const bn[2] = {"meld.lr.emotion.bias", "meld.lr.sentiment.bias"};
    const int CC[2] = {MMSPCL_NUM_EMOTIONS, MMSPCL_NUM_SENTIMENTS};
    const int64_t F = (int64_t)1 << m->ngram_bits;
    const mmspcl_tensor *t = mmspcl_weights_find(m->w, "meld.idf");
    int k, c;
    if (!t || t->dtype != MMSPCL_F32 || t->ndim != 1 || t->ne[0] != F)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: meld.idf must be f32 [2^%d]", label, m->ngram_bits);
    m->idf = (const float *)t->data;
    for (k = 0; k < 2; k++) {
        const mmspcl_tensor *tb = mmspcl_weights_find(m->w, bn[k]);
        t = mmspcl_weights_find(m->w, wn[k]);
        if (!t || t->ndim != 2 || t->ne[0] != CC[k] || t->ne[1] != F || !tb || tb->dtype != MMSPCL_F32 || tb->ndim != 1 ||
            tb->ne[0] != CC[k] || mmspcl_dtype_row_size(t->dtype, F) * (size_t)CC[k] != t->nbytes)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %s must be [%d][2^%d] and %s f32 [%d]", label, wn[k], CC[k],
                                m->ngram_bits, bn[k], CC[k]);
        if (!(m->lr_w[k] = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)(CC[k] * F))))
            return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: out of memory", label);
        for (c = 0; c < CC[k]; c++)
            mmspcl_dequantize_row(t->dtype, (const unsigned char *)t->data + (size_t)c * mmspcl_dtype_row_size(t->dtype, F),
                                  m->lr_w[k] + (size_t)c * F, F);
        m->lr_b[k] = (const float *)tb->data;
    }
    return MMSPCL_OK;
}

/* Whether the file has head `name` for task 0 (emotion) / 1 (sentiment). */
static int mmspcl__classifier_has_head(const mmspcl_classifier *m, int task, const char *name) {
    if (!strcmp(name, "lr")) return m->has_ngram;
    if (!strcmp(name, "linear")) return m->lin_w[task] != NULL;
    if (task == 1) return !strcmp(name, "sentiment") && m->has_sentiment;
    if (!strcmp(name, "emotion")) return m->has_msve;
    if (!strcmp(name, "protos")) return m->protos != NULL;
    if (!strncmp(name, "view.", 5) && (name[5] == 't' || name[5] == 'a' || name[5] == 'v') && !name[6]) {
        char key[64];
        int64_t v;
        snprintf(key, sizeof key, "meld.%s.n_classes", name);
        return mmspcl_weights_get_int(m->w, key, &v);
    }
    return 0;
}

/* The default heads: the file's meld.default_head / meld.default_sentiment_head when given
   (they must exist); else the better on dev of the MSVE ensemble and the regression
   (meld.log.heads rows [k, dev F1, dev accuracy]: k 0/1 MSVE emotion/sentiment, 10/11 regression
   emotion/sentiment) where both exist; else whichever exists, linear before protos. */
static mmspcl_status mmspcl__classifier_defaults(mmspcl_classifier *m, const char *label, mmspcl_error *err) {
    static const char *const key[2] = {"meld.default_head", "meld.default_sentiment_head"};
    static const char *const msve_name[2] = {"emotion", "sentiment"};
    const mmspcl_tensor *lh = mmspcl_weights_find(m->w, "meld.log.heads");
    const char *named;
    int64_t r;
    int k;
    m->dev_f1[0][0] = m->dev_f1[0][1] = m->dev_f1[1][0] = m->dev_f1[1][1] = -1;
    if (lh && lh->dtype == MMSPCL_F32 && lh->ndim == 2 && lh->ne[1] == 3)
        for (r = 0; r < lh->ne[0]; r++) {
            const float *row = (const float *)lh->data + r * 3;
            const int i = (int)row[0];
            if (i == 0 || i == 1) m->dev_f1[i][0] = row[1];
            if (i == 10 || i == 11) m->dev_f1[i - 10][1] = row[1];
        }
    for (k = 0; k < 2; k++) {
        const int msve = mmspcl__classifier_has_head(m, k, msve_name[k]);
        if (mmspcl_weights_get_str(m->w, key[k], &named)) {
            if (!mmspcl__classifier_has_head(m, k, named))
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %s names head '%.40s', which the file does not have", label, key[k], named);
            m->default_head[k] = named;
        } else if (msve && m->has_ngram) m->default_head[k] = m->dev_f1[k][1] > m->dev_f1[k][0] ? "lr" : msve_name[k];
        else if (msve) m->default_head[k] = msve_name[k];
        else if (m->has_ngram) m->default_head[k] = "lr";
        else if (m->lin_w[k]) m->default_head[k] = "linear";
        else if (k == 0 && m->protos) m->default_head[k] = "protos";
    }
    if (!m->default_head[0])
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: no emotion head (meld.emotion, meld.lr, meld.linear or meld.protos)", label);
    m->emo_lr = !strcmp(m->default_head[0], "lr");
    m->sent_lr = m->default_head[1] && !strcmp(m->default_head[1], "lr");
    return MMSPCL_OK;
}

const char *mmspcl_classifier_default_head(const mmspcl_classifier *m, int task) {
    return m && (task == 0 || task == 1) ? m->default_head[task] : NULL;
}

int mmspcl_classifier_has_head(const mmspcl_classifier *m, int task, const char *name) {
    return m && m->w && name && (task == 0 || task == 1) && mmspcl__classifier_has_head(m, task, name);
}

/* An MSVE head of the classifier must have the task's class count and the views' widths (a
   width of 0: that view unused). */
static mmspcl_status mmspcl__classifier_check_msve(const mmspcl_classifier *m, const mmspcl_msve *h, const char *name,
                                                   int n_classes, const char *label, mmspcl_error *err) {
    const int want[3] = {m->t_scores ? MMSPCL_SCORES_DIM : m->hidden, MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS, m->hidden};
    int v;
    if (h->n_classes != n_classes)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: head %s has %d classes, its task has %d", label, name, h->n_classes,
                            n_classes);
    if (h->dims[1] != 0 && !m->has_ngram)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: head %s takes the n-gram view a, which the file lacks (meld.ngram_bits)",
                            label, name);
    for (v = 0; v < 3; v++)
        if (h->dims[v] != 0 && h->dims[v] != want[v])
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: head %s takes view %c of width %d, the model's is %d", label, name,
                                "tav"[v], h->dims[v], want[v]);
    return MMSPCL_OK;
}

/* meld.linear.{emotion,sentiment}: optional linear heads on t */
static mmspcl_status mmspcl__classifier_linear_load(mmspcl_classifier *m, const char *label, mmspcl_error *err) {
    static const char *const task[2] = {"emotion", "sentiment"};
    const int CC[2] = {MMSPCL_NUM_EMOTIONS, MMSPCL_NUM_SENTIMENTS};
    char wn[64], bn[64];
    int k;
    for (k = 0; k < 2; k++) {
        const mmspcl_tensor *tb;
        mmspcl_status st;
        snprintf(wn, sizeof wn, "meld.linear.%s.weight", task[k]);
        snprintf(bn, sizeof bn, "meld.linear.%s.bias", task[k]);
        if (!mmspcl_weights_find(m->w, wn)) continue;
        if ((st = mmspcl_weights_expect_matrix(m->w, wn, CC[k], m->hidden, &m->lin_w[k], err))) return st;
        tb = mmspcl_weights_find(m->w, bn);
        if (!tb || tb->dtype != MMSPCL_F32 || tb->ndim != 1 || tb->ne[0] != CC[k])
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %s must be f32 [%d]", label, bn, CC[k]);
        m->lin_b[k] = (const float *)tb->data;
    }
    return MMSPCL_OK;
}

/* the MSVE heads (optional each); one that takes the view a needs the n-gram view */
static mmspcl_status mmspcl__classifier_msve_heads(mmspcl_classifier *m, const char *label, mmspcl_error *err) {
    int64_t v;
    mmspcl_status st;
    if (mmspcl_weights_get_int(m->w, "meld.emotion.n_classes", &v)) {
        if ((st = mmspcl_msve_load(&m->emotion, m->w, "meld.emotion", err)) ||
            (st = mmspcl__classifier_check_msve(m, &m->emotion, "meld.emotion", MMSPCL_NUM_EMOTIONS, label, err)))
            return st;
        m->has_msve = 1;
    }
    if (mmspcl_weights_get_int(m->w, "meld.sentiment.n_classes", &v)) {
        if ((st = mmspcl_msve_load(&m->sentiment, m->w, "meld.sentiment", err)) ||
            (st = mmspcl__classifier_check_msve(m, &m->sentiment, "meld.sentiment", MMSPCL_NUM_SENTIMENTS, label, err)))
            return st;
        m->has_sentiment = 1;
    }
    return MMSPCL_OK;
}

/* meld.media.{emotion,sentiment}: optional MSVE heads over t and the per-turn media vectors a,
   v (13.6); both heads must agree on the media widths, which the caller has to supply */
static mmspcl_status mmspcl__classifier_media_load(mmspcl_classifier *m, const char *label, mmspcl_error *err) {
    static const char *const name[2] = {"meld.media.emotion", "meld.media.sentiment"};
    const int CC[2] = {MMSPCL_NUM_EMOTIONS, MMSPCL_NUM_SENTIMENTS};
    int *const width[2] = {&m->audio_dim, &m->video_dim};
    char key[64];
    int64_t v;
    int k, mi;
    mmspcl_status st;
    for (k = 0; k < 2; k++) {
        mmspcl_msve *h = &m->media[k];
        snprintf(key, sizeof key, "%s.n_classes", name[k]);
        if (!mmspcl_weights_get_int(m->w, key, &v)) continue;
        if ((st = mmspcl_msve_load(h, m->w, name[k], err))) return st;
        if (h->n_classes != CC[k])
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: head %s has %d classes, its task has %d", label, name[k], h->n_classes, CC[k]);
        if (h->dims[0] != 0 && h->dims[0] != m->hidden)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: head %s takes t of width %d, the model's is %d", label, name[k], h->dims[0],
                                m->hidden);
        for (mi = 1; mi < 3; mi++) {
            if (!h->dims[mi]) continue;
            if (*width[mi - 1] && *width[mi - 1] != h->dims[mi])
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: the media heads take %s vectors of widths %d and %d", label,
                                    mi == 1 ? "audio" : "video", *width[mi - 1], h->dims[mi]);
            *width[mi - 1] = h->dims[mi];
        }
        m->has_media[k] = 1;
    }
    if (m->audio_dim && !mmspcl_weights_get_str(m->w, "meld.media.audio", &m->audio_features)) m->audio_features = NULL;
    return MMSPCL_OK;
}

/* the width m takes for media input mi (1 a, 2 v): set it, or check it against what is set */
static mmspcl_status mmspcl__classifier_media_width(mmspcl_classifier *m, int mi, int w, const char *label, mmspcl_error *err) {
    int *const width = mi == 1 ? &m->audio_dim : &m->video_dim;
    if (!w) return MMSPCL_OK;
    if (*width && *width != w)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: the media and joint heads take %s vectors of widths %d and %d", label,
                            mi == 1 ? "audio" : "video", *width, w);
    *width = w;
    return MMSPCL_OK;
}

/* meld.joint.*: the fusion head (and pruning) over t, a, v of a joint fine-tuning (13.6) */
static mmspcl_status mmspcl__classifier_joint_load(mmspcl_classifier *m, const char *label, mmspcl_error *err) {
    static const char *const hn[2] = {"meld.joint.linear.emotion", "meld.joint.linear.sentiment"};
    const int CC[2] = {MMSPCL_NUM_EMOTIONS, MMSPCL_NUM_SENTIMENTS};
    const char *af = NULL;
    char key[64];
    int64_t kind;
    int dims[3], k, pc, pd;
    mmspcl_status st;
    if (!mmspcl_weights_get_int(m->w, "meld.joint.kind", &kind)) return MMSPCL_OK;
    if (kind < 0 || kind > 2) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: meld.joint.kind %lld (0 linear, 1 mult, 2 bottleneck)", label, (long long)kind);
    m->joint_kind = (int)kind;
    if (kind == 0) {
        if ((st = mmspcl_fuse_linear_load(&m->joint_lin, m->w, "meld.joint.fusion", err))) return st;
        for (k = 0; k < 3; k++) dims[k] = m->joint_lin.dims[k];
        m->joint_dim = m->joint_lin.proj.out;
    } else if (kind == 1) {
        if ((st = mmspcl_mult_load(&m->joint_mult, m->w, "meld.joint.fusion", err))) return st;
        for (k = 0; k < 3; k++) dims[k] = m->joint_mult.seq[k] * m->joint_mult.tok[k];
        m->joint_dim = m->joint_mult.out_dim;
    } else {
        if ((st = mmspcl_mbt_load(&m->joint_mbt, m->w, "meld.joint.fusion", err))) return st;
        for (k = 0; k < 3; k++) dims[k] = m->joint_mbt.seq[k] * m->joint_mbt.tok[k];
        m->joint_dim = m->joint_mbt.out_dim;
    }
    m->has_joint = 1;   /* from here the free releases the fusion head */
    if (mmspcl_weights_get_int(m->w, "meld.joint.prune.mods", &kind)) {
        if ((st = mmspcl_xprune_load(&m->joint_xp, m->w, "meld.joint.prune", err))) return st;
        for (k = 0; k < 3; k++)
            if (m->joint_xp.lay.width[k] != dims[k])
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: meld.joint.prune gives %s %d values, meld.joint.fusion takes %d", label,
                                    k == 0 ? "t" : k == 1 ? "a" : "v", m->joint_xp.lay.width[k], dims[k]);
        for (k = 0; k < 3; k++) dims[k] = m->joint_xp.cfg.dims[k];
        m->joint_prune = 1;
    }
    for (k = 0; k < 3; k++) m->joint_in[k] = dims[k];
    if (dims[0] != m->hidden)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: the joint head takes t of width %d, the model's is %d", label, dims[0], m->hidden);
    if ((st = mmspcl__classifier_media_width(m, 1, dims[1], label, err)) || (st = mmspcl__classifier_media_width(m, 2, dims[2], label, err)))
        return st;
    if ((st = mmspcl_protos_load(&m->joint_protos, &pc, &pd, m->w, "meld.joint", err))) return st;
    if (pc != MMSPCL_NUM_EMOTIONS || pd != m->joint_dim)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: meld.joint.protos is [%d][%d], expected [%d][%d]", label, pc, pd, MMSPCL_NUM_EMOTIONS,
                            m->joint_dim);
    for (k = 0; k < 2; k++) {
        snprintf(key, sizeof key, "%s.weight", hn[k]);
        if (!mmspcl_weights_find(m->w, key)) continue;
        if ((st = mmspcl_head_linear_load(&m->joint_head[k], m->w, hn[k], err))) return st;
        if (m->joint_head[k].in != m->joint_dim || m->joint_head[k].out != CC[k])
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %s is [%d][%d], expected [%d][%d]", label, hn[k], m->joint_head[k].out,
                                m->joint_head[k].in, CC[k], m->joint_dim);
        m->joint_has_head[k] = 1;
    }
    if (dims[1] && mmspcl_weights_get_str(m->w, "meld.joint.audio", &af)) m->audio_features = af;
    return MMSPCL_OK;
}

/* Everything after the weights are open (m->w set). */
static mmspcl_status mmspcl__classifier_build(mmspcl_classifier *m, const char *label, mmspcl_error *err) {
    int64_t v;
    mmspcl_status st;
    const mmspcl_tensor *t;
    if (!mmspcl_weights_get_int(m->w, "meld.max_len", &v) || v < 16 || v > 4096)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s is not a classifier (no meld.max_len in 16..4096): train one with mmspcl train",
                            label);
    m->max_len = (int)v;
    m->max_batch = 16;
    if (mmspcl_weights_get_int(m->w, "meld.ngram_bits", &v)) {
        if (v < 4 || v > 24) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: meld.ngram_bits %lld is outside 4..24", label, (long long)v);
        m->ngram_bits = (int)v;
        if ((st = mmspcl__classifier_ngram_load(m, label, err))) return st;
        m->has_ngram = 1;
    }
    if ((st = mmspcl_roberta_load(&m->enc, m->w, m->max_batch, m->max_len, err))) return st;
    m->hidden = mmspcl_roberta_get_config(m->enc)->hidden_size;
    if ((st = mmspcl_bpe_from_weights(&m->tok, m->w, err))) return st;
    if ((t = mmspcl_weights_find(m->w, "meld.protos"))) {
        if (t->dtype != MMSPCL_F32 || t->ndim != 2 || t->ne[0] != MMSPCL_NUM_EMOTIONS || t->ne[1] != m->hidden)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: meld.protos must be f32 [%d][%d]", label, MMSPCL_NUM_EMOTIONS, m->hidden);
        m->protos = (const float *)t->data;
    }
    if ((st = mmspcl__classifier_linear_load(m, label, err))) return st;
    {
        const char *vt = NULL;
        if (mmspcl_weights_get_str(m->w, "meld.view_t", &vt)) {
            if (strcmp(vt, "scores"))
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: meld.view_t '%.40s' is not a known view (scores)", label, vt);
            if (!m->protos || !m->lin_w[0] || !m->lin_w[1])
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: meld.view_t scores needs meld.protos and both meld.linear heads", label);
            m->t_scores = 1;
        }
    }
    if ((st = mmspcl__classifier_msve_heads(m, label, err)) || (st = mmspcl__classifier_media_load(m, label, err)) ||
        (st = mmspcl__classifier_joint_load(m, label, err)))
        return st;
    return mmspcl__classifier_defaults(m, label, err);
}

#ifndef MMSPCL_NO_STDIO
mmspcl_status mmspcl_classifier_load(mmspcl_classifier *m, const char *path, mmspcl_error *err) {
    mmspcl_status st;
    if (!m || !path) return mmspcl__fail(err, MMSPCL_ERR_ARG, "classifier_load: NULL argument");
    memset(m, 0, sizeof *m);
    if ((st = mmspcl_weights_open(&m->w, path, err))) return st;
    if ((st = mmspcl__classifier_build(m, path, err))) mmspcl_classifier_free(m);
    return st;
}
#endif

mmspcl_status mmspcl_classifier_from_memory(mmspcl_classifier *m, const void *bytes, size_t size,
                                            mmspcl_error *err) {
    mmspcl_status st;
    if (!m || !bytes) return mmspcl__fail(err, MMSPCL_ERR_ARG, "classifier_from_memory: NULL argument");
    memset(m, 0, sizeof *m);
    if ((st = mmspcl_weights_from_memory(&m->w, bytes, size, err))) return st;
    if ((st = mmspcl__classifier_build(m, "classifier in memory", err))) mmspcl_classifier_free(m);
    return st;
}

/* ---- 13.3 Views -------------------------------------------------------------------------- */
/* t (the <mask> row) and v (the mean over the prompt) of a dialogue's turns, in batches */
static mmspcl_status mmspcl__classifier_encode(mmspcl_classifier *m, const mmspcl_turn *turns, int n, float *t, float *v,
                                               mmspcl_error *err) {
    const int H = m->hidden, ML = m->max_len, B = m->max_batch;
    int32_t *ids = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)n * ML);
    int *len = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)n), *mask = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)n);
    float *hid = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)B * ML * H);
    int i, b, j, k;
    mmspcl_status st;
    if (!ids || !len || !mask || !hid) { st = mmspcl__fail(err, MMSPCL_ERR_NOMEM, "classifier: out of memory"); goto done; }
    if ((st = mmspcl_spcl_prompts(m->tok, turns, n, ML, ids, len, mask, err))) goto done;
    for (i = 0; i < n; i += B) {
        const int nb = n - i < B ? n - i : B;
        if (!v) {   /* the <mask> rows alone: the last layer skips the others (the same bits) */
            if ((st = mmspcl_roberta_forward_rows(m->enc, ids + (size_t)i * ML, len + i, nb, ML, mask + i, t + (size_t)i * H, err)))
                goto done;
            continue;
        }
        if ((st = mmspcl_roberta_forward(m->enc, ids + (size_t)i * ML, len + i, nb, ML, hid, err))) goto done;
        for (b = 0; b < nb; b++) {
            const float *hb = hid + (size_t)b * ML * H;
            if (t) memcpy(t + (size_t)(i + b) * H, hb + (size_t)mask[i + b] * H, sizeof(float) * H);
            if (v) {
                float *vr = v + (size_t)(i + b) * H;
                for (k = 0; k < H; k++) vr[k] = 0.0f;
                for (j = 0; j < len[i + b]; j++)
                    for (k = 0; k < H; k++) vr[k] += hb[(size_t)j * H + k];
                for (k = 0; k < H; k++) vr[k] /= (float)len[i + b];
            }
        }
    }
done:
    MMSPCL_FREE(ids); MMSPCL_FREE(len); MMSPCL_FREE(mask); MMSPCL_FREE(hid);
    return st;
}

/* a [n][10]: the n-gram regressions' log-probabilities of every turn's text */
static mmspcl_status mmspcl__classifier_ngram_view(const mmspcl_classifier *m, const mmspcl_turn *turns, int n, float *a,
                                                   mmspcl_error *err) {
    const int64_t F = (int64_t)1 << m->ngram_bits;
    const int D = MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS;
    int cap = 1024, nz = 0, i;
    int32_t *ix = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)cap);
    float *vx = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)cap);
    mmspcl_status st = MMSPCL_OK;
    for (i = 0; i < n && !st; i++) {
        const char *txt = turns[i].text ? turns[i].text : "";
        for (;;) {   /* the count is exact: a second call with that room always fits */
            nz = ix && vx ? mmspcl_ngram_sparse(txt, m->ngram_bits, m->idf, ix, vx, cap) : -1;
            if (nz < 0) { st = mmspcl__fail(err, MMSPCL_ERR_NOMEM, "classifier: out of memory"); break; }
            if (nz <= cap) break;
            cap = nz;
            MMSPCL_FREE(ix); MMSPCL_FREE(vx);
            ix = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)cap);
            vx = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)cap);
        }
        if (st) break;
        mmspcl_sparse_log_softmax(m->lr_w[0], m->lr_b[0], MMSPCL_NUM_EMOTIONS, F, ix, vx, nz, a + (size_t)i * D);
        mmspcl_sparse_log_softmax(m->lr_w[1], m->lr_b[1], MMSPCL_NUM_SENTIMENTS, F, ix, vx, nz,
                                  a + (size_t)i * D + MMSPCL_NUM_EMOTIONS);
    }
    MMSPCL_FREE(ix); MMSPCL_FREE(vx);
    return st;
}

mmspcl_status mmspcl_classifier_features(mmspcl_classifier *m, const mmspcl_turn *turns, int n,
                                         float *t, float *a, float *v, mmspcl_error *err) {
    mmspcl_status st = MMSPCL_OK;
    if (!m || !m->enc || (n > 0 && !turns) || n < 0) return mmspcl__fail(err, MMSPCL_ERR_ARG, "classifier_features: bad argument");
    if (n == 0) return MMSPCL_OK;
    if ((t || v) && (st = mmspcl__classifier_encode(m, turns, n, t, v, err))) return st;
    if (a && m->has_ngram) st = mmspcl__classifier_ngram_view(m, turns, n, a, err);
    else if (a) memset(a, 0, sizeof(float) * (size_t)n * (MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS));   /* no head reads it */
    return st;
}

/* ---- 13.4 Heads -------------------------------------------------------------------------- */
static void mmspcl__softmax_rows(float *x, int n, int C) {
    int i;
    for (i = 0; i < n; i++) mmspcl_softmax(x + (size_t)i * C, C);
}

/* logits [n][C] of the linear head of task k on t */
static mmspcl_status mmspcl__classifier_linear(const mmspcl_classifier *m, int k, const float *t, int n, float *out) {
    return mmspcl_linear(out, t, n, m->hidden, m->lin_w[k], m->lin_b[k]);
}

mmspcl_status mmspcl_classifier_scores(const mmspcl_classifier *m, const float *t, int n, float *s, mmspcl_error *err) {
    const int H = m ? m->hidden : 0, C = MMSPCL_NUM_EMOTIONS, CS = MMSPCL_NUM_SENTIMENTS;
    float *le, *ls;
    double pn[MMSPCL_NUM_EMOTIONS];
    int i, c, k;
    mmspcl_status st;
    if (!m || !m->enc || n < 0 || (n > 0 && (!t || !s))) return mmspcl__fail(err, MMSPCL_ERR_ARG, "classifier_scores: bad argument");
    if (!m->protos || !m->lin_w[0] || !m->lin_w[1])
        return mmspcl__fail(err, MMSPCL_ERR_NOT_FOUND, "classifier_scores: the model lacks meld.protos or a meld.linear head");
    if (n == 0) return MMSPCL_OK;
    le = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)n * C);
    ls = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)n * CS);
    if (!le || !ls) { MMSPCL_FREE(le); MMSPCL_FREE(ls); return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "classifier: out of memory"); }
    if ((st = mmspcl__classifier_linear(m, 0, t, n, le)) || (st = mmspcl__classifier_linear(m, 1, t, n, ls))) {
        MMSPCL_FREE(le); MMSPCL_FREE(ls);
        return mmspcl__fail(err, st, "classifier_scores: linear heads failed");
    }
    for (c = 0; c < C; c++) {
        double a = 0;
        for (k = 0; k < H; k++) a += (double)m->protos[(size_t)c * H + k] * m->protos[(size_t)c * H + k];
        pn[c] = sqrt(a) > 1e-8 ? sqrt(a) : 1e-8;
    }
    for (i = 0; i < n; i++) {
        const float *ti = t + (size_t)i * H;
        float *si = s + (size_t)i * MMSPCL_SCORES_DIM;
        double tn = 0;
        for (k = 0; k < H; k++) tn += (double)ti[k] * ti[k];
        tn = sqrt(tn) > 1e-8 ? sqrt(tn) : 1e-8;
        for (c = 0; c < C; c++) {
            double d = 0;
            for (k = 0; k < H; k++) d += (double)ti[k] * m->protos[(size_t)c * H + k];
            si[c] = (float)(d / (tn * pn[c]));
        }
        memcpy(si + C, le + (size_t)i * C, sizeof(float) * C);
        memcpy(si + 2 * C, ls + (size_t)i * CS, sizeof(float) * CS);
    }
    MMSPCL_FREE(le); MMSPCL_FREE(ls);
    return MMSPCL_OK;
}

/* emotion logits [n][7] of one head (before the softmax) */
static mmspcl_status mmspcl__classifier_emotion_head(mmspcl_classifier *m, const float *const x[3], const float *const xm[3], int n,
                                                     const char *head, float *emo, mmspcl_error *err) {
    const int D = MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS;
    int i;
    mmspcl_status st;
    if (!mmspcl__classifier_has_head(m, 0, head)) {
        static const char *const all[] = {"emotion", "lr", "protos", "linear", "view.t", "view.a", "view.v"};
        char have[160] = "";
        size_t k;
        for (k = 0; k < sizeof all / sizeof all[0]; k++)
            if (mmspcl__classifier_has_head(m, 0, all[k])) {
                strcat(have, have[0] ? ", " : "");
                strcat(have, all[k]);
            }
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "classifier: no emotion head '%.40s' in this model (it has: %s)", head, have);
    }
    if (!strcmp(head, "emotion")) return mmspcl_msve_forward(&m->emotion, xm, n, 0, emo, err);
    if (!strcmp(head, "linear")) return mmspcl__classifier_linear(m, 0, x[0], n, emo);
    if (!strcmp(head, "lr")) {
        for (i = 0; i < n; i++) memcpy(emo + (size_t)i * MMSPCL_NUM_EMOTIONS, x[1] + (size_t)i * D, sizeof(float) * MMSPCL_NUM_EMOTIONS);
        return MMSPCL_OK;
    }
    if (!strcmp(head, "protos")) {
        int *pred;
        if (!(pred = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(n + 1)))) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "classifier: out of memory");
        mmspcl_proto_classify(x[0], n, m->hidden, m->protos, MMSPCL_NUM_EMOTIONS, pred, emo);
        MMSPCL_FREE(pred);
        for (i = 0; i < n * MMSPCL_NUM_EMOTIONS; i++) emo[i] /= 0.08f;   /* SPCL's temperature */
        return MMSPCL_OK;
    }
    {   /* view.t / view.a / view.v */
        char prefix[64];
        mmspcl_msve single;
        snprintf(prefix, sizeof prefix, "meld.%s", head);
        if ((st = mmspcl_msve_load(&single, m->w, prefix, err)) ||
            (st = mmspcl__classifier_check_msve(m, &single, prefix, MMSPCL_NUM_EMOTIONS, "classifier", err)))
            return st;
        return mmspcl_msve_forward(&single, xm, n, 0, emo, err);
    }
}

/* sentiment logits [n][3] of one head (before the softmax) */
static mmspcl_status mmspcl__classifier_sentiment_head(mmspcl_classifier *m, const float *const x[3], const float *const xm[3], int n,
                                                       const char *head, float *sent, mmspcl_error *err) {
    const int D = MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS;
    int i;
    if (!mmspcl__classifier_has_head(m, 1, head))
        return mmspcl__fail(err, strcmp(head, "sentiment") && strcmp(head, "lr") && strcmp(head, "linear") ? MMSPCL_ERR_ARG : MMSPCL_ERR_NOT_FOUND,
                            "classifier: no sentiment head '%.40s' in this model (sentiment heads: sentiment, lr, linear)", head);
    if (!strcmp(head, "sentiment")) return mmspcl_msve_forward(&m->sentiment, xm, n, 0, sent, err);
    if (!strcmp(head, "linear")) return mmspcl__classifier_linear(m, 1, x[0], n, sent);
    for (i = 0; i < n; i++)
        memcpy(sent + (size_t)i * MMSPCL_NUM_SENTIMENTS, x[1] + (size_t)i * D + MMSPCL_NUM_EMOTIONS, sizeof(float) * MMSPCL_NUM_SENTIMENTS);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_classifier_heads(mmspcl_classifier *m, const float *t, const float *a, const float *v,
                                      int n, const char *head, const char *sent_head, float *emo, float *sent,
                                      mmspcl_error *err) {
    const float *x[3], *xm[3];
    float *sc = NULL;
    mmspcl_status st = MMSPCL_OK;
    x[0] = xm[0] = t; x[1] = xm[1] = a; x[2] = xm[2] = v;
    if (!m || !m->enc || n < 0) return mmspcl__fail(err, MMSPCL_ERR_ARG, "classifier_heads: bad argument");
    if (!head) head = m->default_head[0];
    if (!sent_head) sent_head = m->default_head[1];
    if (m->t_scores && t && n > 0) {   /* the MSVE heads' t: the score view */
        if (!(sc = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)n * MMSPCL_SCORES_DIM)))
            return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "classifier: out of memory");
        if ((st = mmspcl_classifier_scores(m, t, n, sc, err))) goto done;
        xm[0] = sc;
    }
    if (emo) {
        if ((st = mmspcl__classifier_emotion_head(m, x, xm, n, head, emo, err))) goto done;
        mmspcl__softmax_rows(emo, n, MMSPCL_NUM_EMOTIONS);
    }
    if (sent) {
        if (!sent_head) { st = mmspcl__fail(err, MMSPCL_ERR_NOT_FOUND, "classifier: this model has no sentiment head"); goto done; }
        if ((st = mmspcl__classifier_sentiment_head(m, x, xm, n, sent_head, sent, err))) goto done;
        mmspcl__softmax_rows(sent, n, MMSPCL_NUM_SENTIMENTS);
    }
done:
    MMSPCL_FREE(sc);
    return st;
}

mmspcl_status mmspcl_classifier_classify(mmspcl_classifier *m, const mmspcl_turn *turns, int n,
                                         const char *head, float *emo, float *sent, mmspcl_error *err) {
    const int H = m ? m->hidden : 0, D = MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS;
    float *t, *v, *a;
    mmspcl_status st;
    if (!m || !m->enc || n < 0 || (n > 0 && !turns)) return mmspcl__fail(err, MMSPCL_ERR_ARG, "classifier_classify: bad argument");
    if (n == 0) return MMSPCL_OK;
    t = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)n * H);
    v = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)n * H);
    a = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)n * D);
    if (!t || !v || !a) st = mmspcl__fail(err, MMSPCL_ERR_NOMEM, "classifier: out of memory");
    else if (!(st = mmspcl_classifier_features(m, turns, n, t, a, v, err)))
        st = mmspcl_classifier_heads(m, t, a, v, n, head, NULL, emo, sent, err);
    MMSPCL_FREE(t); MMSPCL_FREE(v); MMSPCL_FREE(a);
    return st;
}

/* ---- 13.5 Dialogues as text -------------------------------------------------------------- */
void mmspcl_dialogues_free(mmspcl_dialogues *d) {
    if (!d) return;
    MMSPCL_FREE(d->turns);
    MMSPCL_FREE(d->start);
    MMSPCL_FREE(d->text);
    memset(d, 0, sizeof *d);
}

mmspcl_status mmspcl_dialogues_parse(const char *bytes, size_t size, mmspcl_dialogues *out, mmspcl_error *err) {
    char *p, *end;
    int blank = 1, cap = 0;
    if (!out || (!bytes && size)) return mmspcl__fail(err, MMSPCL_ERR_ARG, "dialogues_parse: NULL argument");
    memset(out, 0, sizeof *out);
    if (size > (size_t)INT32_MAX) return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "dialogues: %zu bytes is over 2 GiB", size);
    out->text = (char *)MMSPCL_MALLOC(size + 1);
    out->start = (int *)MMSPCL_MALLOC(sizeof(int) * (size / 2 + 2));   /* a dialogue takes >= 2 bytes */
    if (!out->text || !out->start) { mmspcl_dialogues_free(out); return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "dialogues: out of memory"); }
    if (size) memcpy(out->text, bytes, size);
    out->text[size] = 0;
    for (p = out->text, end = out->text + size; p < end;) {
        char *nl = (char *)memchr(p, '\n', (size_t)(end - p)), *line = p, *colon, *e;
        if (!nl) nl = end;
        *nl = 0;
        e = nl;
        while (e > line && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
        while (*line == ' ' || *line == '\t') line++;
        p = nl + 1;
        if (!*line) { blank = 1; continue; }
        if (*line == '#') continue;
        if (out->n_turns == cap) {
            mmspcl_turn *q = (mmspcl_turn *)MMSPCL_REALLOC(out->turns, sizeof *q * (size_t)(cap = cap ? cap * 2 : 64));
            if (!q) { mmspcl_dialogues_free(out); return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "dialogues: out of memory"); }
            out->turns = q;
        }
        colon = strchr(line, ':');
        if (colon && colon - line <= 40 && colon[1] == ' ') {
            *colon = 0;
            out->turns[out->n_turns].speaker = line;
            out->turns[out->n_turns].text = colon + 2;
        } else {
            out->turns[out->n_turns].speaker = "Speaker";
            out->turns[out->n_turns].text = line;
        }
        if (blank) out->start[out->n_dialogues++] = out->n_turns;
        blank = 0;
        out->n_turns++;
    }
    out->start[out->n_dialogues] = out->n_turns;
    return MMSPCL_OK;
}

/* ---- 13.6 Media heads -------------------------------------------------------------------- */
/* logits [n][C] of media head h: turn i votes with the head's combinations that need only what
   mods[i] has (t always); voted[i] = 0 where there is none (its row is left alone) */
static mmspcl_status mmspcl__classifier_media_vote(const mmspcl_msve *h, const float *const x[3], const unsigned char *mods, int n,
                                                   float *logits, unsigned char *voted, mmspcl_error *err) {
    int i, c, mi;
    mmspcl_status st;
    for (i = 0; i < n; i++) {
        const unsigned have = mods[i] | (unsigned)MMSPCL_MOD_T;
        unsigned combos = 0;
        const float *xi[3];
        for (c = 1; c < 8; c++)
            if ((h->combos & MMSPCL_COMBO(c)) && !((unsigned)c & ~have)) combos |= MMSPCL_COMBO(c);
        voted[i] = combos != 0;
        if (!combos) continue;
        for (mi = 0; mi < 3; mi++) xi[mi] = h->dims[mi] && (have & (1u << mi)) ? x[mi] + (size_t)i * h->dims[mi] : NULL;
        if ((st = mmspcl_msve_forward(h, xi, 1, combos, logits + (size_t)i * h->n_classes, err))) return st;
    }
    return MMSPCL_OK;
}

/* task k's media head over the turns it can vote on: their rows of out [n][C] become its
   probabilities; the others keep the text head's (have_text 0: there is none, an error) */
static mmspcl_status mmspcl__classifier_media_task(mmspcl_classifier *m, int k, const float *const x[3], const unsigned char *mods,
                                                   int n, int have_text, float *out, float *tmp, unsigned char *voted,
                                                   mmspcl_error *err) {
    const int C = m->media[k].n_classes;
    int i;
    mmspcl_status st;
    if ((st = mmspcl__classifier_media_vote(&m->media[k], x, mods, n, tmp, voted, err))) return st;
    for (i = 0; i < n; i++) {
        if (!voted[i] && !have_text)
            return mmspcl__fail(err, MMSPCL_ERR_NOT_FOUND,
                                "classifier: turn %d: the %s media head cannot vote without %s, and the model has no text %s head", i,
                                k ? "sentiment" : "emotion", m->media[k].dims[1] ? "audio" : "video", k ? "sentiment" : "emotion");
        if (!voted[i]) continue;
        memcpy(out + (size_t)i * C, tmp + (size_t)i * C, sizeof(float) * (size_t)C);
        mmspcl_softmax(out + (size_t)i * C, C);
    }
    return MMSPCL_OK;
}

/* the joint head on t [n][hidden] and the turns' media (a turn without a vector: zeros):
   emotion by nearest class mean of z, sentiment by its linear head (when it has one) */
static mmspcl_status mmspcl__classifier_joint(mmspcl_classifier *m, const float *t, const float *const x[3], const unsigned char *mods,
                                              int n, float *emo, float *sent, mmspcl_error *err) {
    const int D = m->joint_dim, C = MMSPCL_NUM_EMOTIONS;
    const int da = m->joint_in[1], dv = m->joint_in[2];
    const int wd[3] = {m->joint_prune ? m->joint_xp.lay.width[0] : 0, m->joint_prune ? m->joint_xp.lay.width[1] : 0,
                       m->joint_prune ? m->joint_xp.lay.width[2] : 0};
    float *in = (float *)MMSPCL_MALLOC(sizeof(float) * ((size_t)n * (da + dv + wd[0] + wd[1] + wd[2] + D + C) + 1));
    float *ya, *yv, *z, *lg, *py[3];
    const float *xi[3];
    int *pred = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(n + 1)), i, j;
    mmspcl_status st = MMSPCL_OK;
    if (!in || !pred) { MMSPCL_FREE(in); MMSPCL_FREE(pred); return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "classifier: out of memory"); }
    ya = in; yv = ya + (size_t)n * da; py[0] = yv + (size_t)n * dv; py[1] = py[0] + (size_t)n * wd[0]; py[2] = py[1] + (size_t)n * wd[1];
    z = py[2] + (size_t)n * wd[2]; lg = z + (size_t)n * D;
    for (i = 0; i < n; i++) {
        for (j = 0; j < da; j++) ya[(size_t)i * da + j] = x[1] && (mods[i] & MMSPCL_MOD_A) ? x[1][(size_t)i * da + j] : 0.0f;
        for (j = 0; j < dv; j++) yv[(size_t)i * dv + j] = x[2] && (mods[i] & MMSPCL_MOD_V) ? x[2][(size_t)i * dv + j] : 0.0f;
    }
    xi[0] = t; xi[1] = da ? ya : NULL; xi[2] = dv ? yv : NULL;
    if (m->joint_prune) {
        for (j = 0; j < 3; j++) if (!wd[j]) py[j] = NULL;
        if ((st = mmspcl_xprune_forward(&m->joint_xp, xi, n, py, NULL, err))) goto done;
        for (j = 0; j < 3; j++) xi[j] = py[j];
    }
    st = m->joint_kind == 0 ? mmspcl_fuse_linear_forward(&m->joint_lin, xi, n, z, err)
       : m->joint_kind == 1 ? mmspcl_mult_forward(&m->joint_mult, xi, n, z, err) : mmspcl_mbt_forward(&m->joint_mbt, xi, n, z, err);
    if (st) goto done;
    if (emo) {
        mmspcl_proto_classify(z, n, D, m->joint_protos, C, pred, emo);
        for (i = 0; i < n; i++) {
            for (j = 0; j < C; j++) emo[(size_t)i * C + j] /= 0.08f;   /* SPCL's temperature */
            mmspcl_softmax(emo + (size_t)i * C, C);
        }
    }
    if (sent && m->joint_has_head[1]) {
        if (mmspcl_head_linear_forward(&m->joint_head[1], z, lg, n)) { st = mmspcl__fail(err, MMSPCL_ERR_NOMEM, "classifier: out of memory in a kernel"); goto done; }
        for (i = 0; i < n; i++) {
            memcpy(sent + (size_t)i * MMSPCL_NUM_SENTIMENTS, lg + (size_t)i * MMSPCL_NUM_SENTIMENTS, sizeof(float) * MMSPCL_NUM_SENTIMENTS);
            mmspcl_softmax(sent + (size_t)i * MMSPCL_NUM_SENTIMENTS, MMSPCL_NUM_SENTIMENTS);
        }
    }
done:
    MMSPCL_FREE(in);
    MMSPCL_FREE(pred);
    return st;
}

mmspcl_status mmspcl_classifier_classify_media(mmspcl_classifier *m, const mmspcl_turn *turns, int n,
                                               const float *audio, const float *video, const unsigned char *mods,
                                               float *emo, float *sent, mmspcl_error *err) {
    const int H = m ? m->hidden : 0, D = MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS;
    const int text_sent = m && m->default_head[1] != NULL;
    const unsigned given = (audio ? (unsigned)MMSPCL_MOD_A : 0u) | (video ? (unsigned)MMSPCL_MOD_V : 0u);
    float *t, *v, *a, *tmp;
    unsigned char *mk, *voted;
    const float *x[3];
    int i;
    mmspcl_status st;
    if (!m || !m->enc || n < 0 || (n > 0 && !turns)) return mmspcl__fail(err, MMSPCL_ERR_ARG, "classifier_classify_media: bad argument");
    if (!m->has_media[0] && !m->has_media[1] && !m->has_joint)
        return mmspcl__fail(err, MMSPCL_ERR_NOT_FOUND, "classifier: the model has no audio or video head (meld.media.*, meld.joint.*): it classifies from text only");
    if (sent && !text_sent && !m->has_media[1] && !m->joint_has_head[1]) return mmspcl__fail(err, MMSPCL_ERR_NOT_FOUND, "classifier: this model has no sentiment head");
    if (n == 0) return MMSPCL_OK;
    t = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)n * H);
    v = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)n * H);
    a = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)n * D);
    tmp = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)n * MMSPCL_NUM_EMOTIONS);
    mk = (unsigned char *)MMSPCL_MALLOC((size_t)n * 2);
    voted = mk ? mk + n : NULL;
    if (!t || !v || !a || !tmp || !mk) { st = mmspcl__fail(err, MMSPCL_ERR_NOMEM, "classifier: out of memory"); goto done; }
    for (i = 0; i < n; i++) mk[i] = (unsigned char)((mods ? mods[i] : given) & given);
    if ((st = mmspcl_classifier_features(m, turns, n, t, a, v, err)) ||
        (st = mmspcl_classifier_heads(m, t, a, v, n, NULL, NULL, emo, text_sent ? sent : NULL, err)))
        goto done;
    x[0] = t; x[1] = audio; x[2] = video;
    if (emo && m->has_media[0] && (st = mmspcl__classifier_media_task(m, 0, x, mk, n, 1, emo, tmp, voted, err))) goto done;
    if (sent && m->has_media[1] && (st = mmspcl__classifier_media_task(m, 1, x, mk, n, text_sent, sent, tmp, voted, err))) goto done;
    if (m->has_joint) st = mmspcl__classifier_joint(m, t, x, mk, n, emo, sent, err);
done:
    MMSPCL_FREE(t); MMSPCL_FREE(v); MMSPCL_FREE(a); MMSPCL_FREE(tmp); MMSPCL_FREE(mk);
    return st;
}

/* ---------------------------------------------------------------------------------------------
   14. Audio
   ------------------------------------------------------------------------------------------ */
/* ---- 14.1 WAV files ---------------------------------------------------------------------- */
static uint32_t mmspcl__le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static unsigned mmspcl__le16(const unsigned char *p) { return (unsigned)p[0] | ((unsigned)p[1] << 8); }

/* Reads n bytes at the reader's position (pos: bytes consumed so far); fewer only at the end. */
static size_t mmspcl__wav_bytes(mmspcl_wav_reader *r, int64_t *pos, unsigned char *dst, size_t n) {
    size_t got = 0;
    if (r->mem) {
        if (*pos < (int64_t)r->mem_size) got = (size_t)((int64_t)r->mem_size - *pos) < n ? (size_t)((int64_t)r->mem_size - *pos) : n;
        if (got) memcpy(dst, r->mem + *pos, got);
    }
#ifndef MMSPCL_NO_STDIO
    else got = fread(dst, 1, n, (FILE *)r->file);
#endif
    *pos += (int64_t)got;
    return got;
}

/* Skips n bytes (a chunk the reader does not use); 0 when the source ended first. */
static int mmspcl__wav_skip(mmspcl_wav_reader *r, int64_t *pos, int64_t n) {
    unsigned char tmp[512];
    if (r->mem) { *pos += n; return *pos <= (int64_t)r->mem_size; }
#ifndef MMSPCL_NO_STDIO
    if (r->seekable && n <= 0x7fffffff) {
        if (fseek((FILE *)r->file, (long)n, SEEK_CUR) != 0) return 0;
        *pos += n;
        return r->file_size < 0 || *pos <= r->file_size;
    }
#endif
    while (n > 0) {
        size_t want = n < (int64_t)sizeof tmp ? (size_t)n : sizeof tmp;
        if (mmspcl__wav_bytes(r, pos, tmp, want) != want) return 0;
        n -= (int64_t)want;
    }
    return 1;
}

static int mmspcl__wav_ch(unsigned char c) { return c >= 32 && c < 127 ? (int)c : '?'; }

static const unsigned char mmspcl__wav_guid_tail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                                        0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};

/* The fmt chunk's fields (size bytes at b, chunk at byte off) into r->info. */
static mmspcl_status mmspcl__wav_fmt(mmspcl_wav_reader *r, const unsigned char *b, uint32_t size, int64_t off,
                                     mmspcl_error *err) {
    mmspcl_wav_info *in = &r->info;
    unsigned tag = mmspcl__le16(b), align = mmspcl__le16(b + 12);
    uint32_t rate = mmspcl__le32(b + 4);
    in->channels = (int)mmspcl__le16(b + 2);
    in->bits = (int)mmspcl__le16(b + 14);
    in->format = (int)tag;
    if (tag == MMSPCL_WAV_EXTENSIBLE) {
        if (size < 40 || mmspcl__le16(b + 16) < 22)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: fmt chunk at byte %lld: WAVE_FORMAT_EXTENSIBLE needs 40 bytes with cbSize >= 22 (it has %u)",
                                r->name, (long long)off, (unsigned)size);
        if (memcmp(b + 26, mmspcl__wav_guid_tail, 14) != 0 || b[25] != 0)
            return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: fmt chunk at byte %lld: sub-format GUID is not the PCM or float one",
                                r->name, (long long)off);
        in->extensible = 1;
        in->format = (int)b[24];
        if (mmspcl__le16(b + 18) > (unsigned)in->bits)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: fmt chunk at byte %lld: %u valid bits in a %d-bit sample", r->name,
                                (long long)off, mmspcl__le16(b + 18), in->bits);
    }
    if (in->channels < 1) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: fmt chunk at byte %lld: 0 channels", r->name, (long long)(off + 10));
    if (rate < 1 || rate > MMSPCL_WAV_MAX_RATE)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: fmt chunk at byte %lld: sample rate %lu is outside 1..%d", r->name,
                            (long long)(off + 12), (unsigned long)rate, MMSPCL_WAV_MAX_RATE);
    in->sample_rate = (int)rate;
    if (in->format == MMSPCL_WAV_PCM) {
        if (in->bits < 1 || in->bits > 32)
            return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: fmt chunk at byte %lld: %d-bit PCM (1..32 are read)", r->name,
                                (long long)(off + 22), in->bits);
        in->container = (in->bits + 7) / 8;
    } else if (in->format == MMSPCL_WAV_FLOAT) {
        if (in->bits != 32 && in->bits != 64)
            return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: fmt chunk at byte %lld: %d-bit float (32 and 64 are read)", r->name,
                                (long long)(off + 22), in->bits);
        in->container = in->bits / 8;
    } else {
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: fmt chunk at byte %lld: format tag 0x%04x (PCM 1, float 3 and extensible are read)",
                            r->name, (long long)(off + 8), (unsigned)in->format);
    }
    if ((int64_t)align != (int64_t)in->channels * in->container)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: fmt chunk at byte %lld: block size %u is not %d channels x %d bytes", r->name,
                            (long long)(off + 20), align, in->channels, in->container);
    return MMSPCL_OK;
}

/* Walks the chunks up to the data chunk; pos is the byte after the RIFF header. */
static mmspcl_status mmspcl__wav_chunks(mmspcl_wav_reader *r, int64_t pos, int64_t riff_end, mmspcl_error *err) {
    unsigned char h[8], fmt[64];
    int have_fmt = 0;
    mmspcl_status st;
    for (;;) {
        int64_t off = pos;
        uint32_t size;
        if (off + 8 > riff_end)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: no data chunk before the end of the RIFF at byte %lld", r->name, (long long)riff_end);
        if (mmspcl__wav_bytes(r, &pos, h, 8) != 8)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: truncated: chunk header at byte %lld", r->name, (long long)off);
        size = mmspcl__le32(h + 4);
        if (off + 8 + (int64_t)size > riff_end)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: chunk '%c%c%c%c' at byte %lld: size %lu runs past the end of the %s at byte %lld",
                                r->name, mmspcl__wav_ch(h[0]), mmspcl__wav_ch(h[1]), mmspcl__wav_ch(h[2]), mmspcl__wav_ch(h[3]), (long long)off, (unsigned long)size,
                                r->file_size >= 0 && riff_end == r->file_size ? "file" : "RIFF", (long long)riff_end);
        if (!memcmp(h, "fmt ", 4)) {
            size_t keep = size < sizeof fmt ? size : sizeof fmt;
            if (have_fmt) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: second fmt chunk at byte %lld", r->name, (long long)off);
            if (size < 16) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: fmt chunk at byte %lld has %lu bytes (16 at least)", r->name, (long long)off, (unsigned long)size);
            memset(fmt, 0, sizeof fmt);
            if (mmspcl__wav_bytes(r, &pos, fmt, keep) != keep || !mmspcl__wav_skip(r, &pos, (int64_t)(size - keep) + (size & 1)))
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: truncated: fmt chunk at byte %lld", r->name, (long long)off);
            if ((st = mmspcl__wav_fmt(r, fmt, size, off, err))) return st;
            have_fmt = 1;
        } else if (!memcmp(h, "data", 4)) {
            int64_t block = (int64_t)r->info.channels * r->info.container;
            if (!have_fmt) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: data chunk at byte %lld comes before the fmt chunk", r->name, (long long)off);
            if (size % block)
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: data chunk at byte %lld: %lu bytes is not a whole number of %lld-byte frames",
                                    r->name, (long long)off, (unsigned long)size, (long long)block);
            if (size == 0) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: data chunk at byte %lld holds no samples", r->name, (long long)off);
            r->info.frames = (int64_t)size / block;
            r->info.data_offset = pos;
            return MMSPCL_OK;
        } else {
            if (!mmspcl__wav_skip(r, &pos, (int64_t)size))
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: truncated: chunk at byte %lld", r->name, (long long)off);
            if (size & 1) pos += mmspcl__wav_skip(r, &pos, 1) ? 0 : 1;   /* the pad byte (may be missing at the end) */
        }
    }
}

static mmspcl_status mmspcl__wav_start(mmspcl_wav_reader *r, mmspcl_error *err) {
    unsigned char h[12];
    int64_t pos = 0, riff_end;
    size_t block;
    mmspcl_status st;
    if (mmspcl__wav_bytes(r, &pos, h, 12) != 12) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: truncated: %lld bytes, no RIFF header", r->name, (long long)pos);
    if (memcmp(h, "RIFF", 4) || memcmp(h + 8, "WAVE", 4)) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: not a RIFF/WAVE file", r->name);
    riff_end = 8 + (int64_t)mmspcl__le32(h + 4);
    if (r->file_size >= 0 && riff_end > r->file_size)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: RIFF size %lu runs past the end of the file (%lld bytes)", r->name,
                            (unsigned long)mmspcl__le32(h + 4), (long long)r->file_size);
    if ((st = mmspcl__wav_chunks(r, pos, riff_end, err))) return st;
    block = (size_t)r->info.channels * (size_t)r->info.container;
    r->buf_cap = block > 65536 ? block : 65536 - 65536 % block;
    if (!r->mem && !(r->buf = (unsigned char *)MMSPCL_MALLOC(r->buf_cap)))
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: cannot allocate %zu bytes", r->name, r->buf_cap);
    return MMSPCL_OK;
}

static void mmspcl__wav_name(mmspcl_wav_reader *r, const char *name) {
    size_t n = strlen(name);
    if (n < sizeof r->name) memcpy(r->name, name, n + 1);
    else snprintf(r->name, sizeof r->name, "...%s", name + n - (sizeof r->name - 4));
}

mmspcl_status mmspcl_wav_open_memory(mmspcl_wav_reader *r, const void *bytes, size_t size, mmspcl_error *err) {
    mmspcl_status st;
    if (!r) return mmspcl__fail(err, MMSPCL_ERR_ARG, "wav: NULL reader");
    memset(r, 0, sizeof *r);
    mmspcl__wav_name(r, "wav");
    if (!bytes && size) return mmspcl__fail(err, MMSPCL_ERR_ARG, "wav: NULL bytes");
    r->mem = bytes ? (const unsigned char *)bytes : (const unsigned char *)"";
    r->mem_size = size;
    r->file_size = (int64_t)size;
    r->seekable = 1;
    if ((st = mmspcl__wav_start(r, err))) mmspcl_wav_close(r);
    return st;
}

#ifndef MMSPCL_NO_STDIO
mmspcl_status mmspcl_wav_open(mmspcl_wav_reader *r, const char *path, mmspcl_error *err) {
    FILE *f;
    long len;
    mmspcl_status st;
    if (!r) return mmspcl__fail(err, MMSPCL_ERR_ARG, "wav: NULL reader");
    memset(r, 0, sizeof *r);
    if (!path) return mmspcl__fail(err, MMSPCL_ERR_ARG, "wav: NULL path");
    mmspcl__wav_name(r, path);
    r->file_size = -1;
    if (path[0] == '-' && !path[1]) f = stdin;
    else if (!(f = fopen(path, "rb"))) return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot open", path);
    else r->own_file = 1;
    r->file = f;
    if (r->own_file && fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        int c = len > 0 ? fgetc(f) : 0;   /* a folder opens and may claim a size: read a byte first */
        if (c == EOF || fseek(f, 0, SEEK_SET)) {
            mmspcl_wav_close(r);
            return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot read (a directory?)", path);
        }
        r->file_size = (int64_t)len;
        r->seekable = 1;
    }
    if ((st = mmspcl__wav_start(r, err))) mmspcl_wav_close(r);
    return st;
}
#endif

mmspcl_status mmspcl_wav_rewind(mmspcl_wav_reader *r, mmspcl_error *err) {
    if (!r || (!r->mem && !r->file)) return mmspcl__fail(err, MMSPCL_ERR_ARG, "wav: reader not open");
    if (!r->seekable) return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: cannot go back in a stream", r->name);
#ifndef MMSPCL_NO_STDIO
    if (!r->mem && (r->info.data_offset > 0x7fffffff || fseek((FILE *)r->file, (long)r->info.data_offset, SEEK_SET)))
        return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot seek to byte %lld", r->name, (long long)r->info.data_offset);
#endif
    r->frames_read = 0;
    return MMSPCL_OK;
}

/* One sample of the container at p as a float. */
static double mmspcl__wav_sample(const mmspcl_wav_info *in, const unsigned char *p) {
    switch (in->format == MMSPCL_WAV_FLOAT ? 8 + in->container : in->container) {
    case 1: return ((double)p[0] - 128.0) / 128.0;
    case 2: return (double)(int16_t)mmspcl__le16(p) / 32768.0;
    case 3: return (double)((int32_t)(((uint32_t)p[0] << 8) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 24)) / 256) / 8388608.0;
    case 4: return (double)(int32_t)mmspcl__le32(p) / 2147483648.0;
    case 12: { uint32_t u = mmspcl__le32(p); float v; memcpy(&v, &u, 4); return (double)v; }
    default: { uint64_t u = (uint64_t)mmspcl__le32(p) | ((uint64_t)mmspcl__le32(p + 4) << 32); double v; memcpy(&v, &u, 8); return v; }
    }
}

mmspcl_status mmspcl_wav_read(mmspcl_wav_reader *r, float *mono, int max, int *got, mmspcl_error *err) {
    const mmspcl_wav_info *in;
    int64_t block, want, i, pos;
    const unsigned char *b;
    int c;
    if (got) *got = 0;
    if (!r || !got || (!mono && max > 0) || max < 0) return mmspcl__fail(err, MMSPCL_ERR_ARG, "wav: bad read arguments");
    if (!r->mem && !r->file) return mmspcl__fail(err, MMSPCL_ERR_ARG, "wav: reader not open");
    in = &r->info;
    block = (int64_t)in->channels * in->container;
    want = in->frames - r->frames_read;
    if (want > max) want = max;
    if (!r->mem && want > (int64_t)(r->buf_cap / (size_t)block)) want = (int64_t)(r->buf_cap / (size_t)block);
    if (want <= 0) return MMSPCL_OK;
    pos = in->data_offset + r->frames_read * block;
    if (r->mem) {
        if (pos + want * block > (int64_t)r->mem_size) want = ((int64_t)r->mem_size - pos) / block;
        b = r->mem + pos;
    } else {
        int64_t p2 = pos;
        want = (int64_t)mmspcl__wav_bytes(r, &p2, r->buf, (size_t)(want * block)) / block;
        b = r->buf;
    }
    if (want <= 0)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: truncated: the data chunk declares %lld frames, the file ends after %lld (byte %lld)",
                            r->name, (long long)in->frames, (long long)r->frames_read, (long long)pos);
    if (in->format == MMSPCL_WAV_PCM && in->container == 2 && in->channels <= 2) {   /* the common case, fast */
        for (i = 0; i < want; i++) {
            const unsigned char *q = b + i * block;
            int v = (int16_t)mmspcl__le16(q);
            if (in->channels == 2) mono[i] = (float)((double)(v + (int16_t)mmspcl__le16(q + 2)) / 65536.0);
            else mono[i] = (float)v / 32768.0f;
        }
        r->frames_read += want;
        *got = (int)want;
        return MMSPCL_OK;
    }
    for (i = 0; i < want; i++) {
        double s = 0;
        for (c = 0; c < in->channels; c++) {
            double v = mmspcl__wav_sample(in, b + i * block + (int64_t)c * in->container);
            if (!(v == v) || v > 3.4028234663852886e38 || v < -3.4028234663852886e38)   /* NaN, infinite, past float */
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: frame %lld channel %d (byte %lld) is not a finite number", r->name,
                                    (long long)(r->frames_read + i), c, (long long)(pos + i * block + (int64_t)c * in->container));
            s += v;
        }
        mono[i] = (float)(s / in->channels);
    }
    r->frames_read += want;
    *got = (int)want;
    return MMSPCL_OK;
}

mmspcl_status mmspcl_wav_read_all(mmspcl_wav_reader *r, int64_t max_frames, float **mono, int64_t *n, mmspcl_error *err) {
    int64_t total, have = 0;
    float *x;
    if (mono) *mono = NULL;
    if (n) *n = 0;
    if (!r || !mono || !n) return mmspcl__fail(err, MMSPCL_ERR_ARG, "wav: NULL argument");
    total = r->info.frames - r->frames_read;
    if (total > max_frames)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: %lld frames is over the limit of %lld", r->name, (long long)total, (long long)max_frames);
    if ((uint64_t)total + 1 > (uint64_t)(SIZE_MAX / sizeof(float)) || !(x = (float *)MMSPCL_MALLOC((size_t)(total + 1) * sizeof(float))))
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: cannot allocate %lld samples", r->name, (long long)total);
    while (have < total) {
        int got, step = total - have > (1 << 20) ? 1 << 20 : (int)(total - have);
        mmspcl_status st = mmspcl_wav_read(r, x + have, step, &got, err);
        if (st || got == 0) {
            MMSPCL_FREE(x);
            return st ? st : mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: truncated data chunk", r->name);
        }
        have += got;
    }
    *mono = x;
    *n = total;
    return MMSPCL_OK;
}

void mmspcl_wav_close(mmspcl_wav_reader *r) {
    if (!r) return;
#ifndef MMSPCL_NO_STDIO
    if (r->file && r->own_file) fclose((FILE *)r->file);
#endif
    MMSPCL_FREE(r->buf);
    r->file = NULL;
    r->mem = NULL;
    r->buf = NULL;
    r->own_file = 0;
}

/* ---- 14.2 Resampling --------------------------------------------------------------------- */
#define MMSPCL__RS_ZEROS 48          /* zero crossings of the lower rate on each side */
#define MMSPCL__RS_BETA 9.0
#define MMSPCL__RS_CUTOFF 0.46875    /* of the lower rate */
#define MMSPCL__RS_PHASES 1024       /* phases of the interpolated table (many-phase ratios) */

static double mmspcl__bessel_i0(double x) {
    double sum = 1, term = 1, q = x * x / 4;
    int k;
    for (k = 1; k < 200 && term > 1e-17 * sum; k++) {
        term *= q / ((double)k * k);
        sum += term;
    }
    return sum;
}

/* The kernel at d input samples from the output's time. */
static double mmspcl__rs_kernel(const mmspcl_resampler *r, double d) {
    double u = d / r->width, x = 2 * r->fc * d, s;
    if (u >= 1 || u <= -1) return 0;
    s = x == 0 ? 1 : sin(3.14159265358979323846 * x) / (3.14159265358979323846 * x);
    return 2 * r->fc * s * mmspcl__bessel_i0(MMSPCL__RS_BETA * sqrt(1 - u * u)) / mmspcl__bessel_i0(MMSPCL__RS_BETA);
}

int64_t mmspcl_resample_count(int in_rate, int out_rate, int64_t n) {
    if (in_rate <= 0 || out_rate <= 0 || n <= 0) return 0;
    return (int64_t)(((uint64_t)n * (uint64_t)out_rate + (uint64_t)in_rate - 1) / (uint64_t)in_rate);
}

mmspcl_status mmspcl_resampler_init(mmspcl_resampler *r, int in_rate, int out_rate, mmspcl_error *err) {
    int64_t a, b, t, lo, j, ph, rows;
    if (!r) return mmspcl__fail(err, MMSPCL_ERR_ARG, "resampler: NULL");
    memset(r, 0, sizeof *r);
    if (in_rate < 1 || in_rate > MMSPCL_WAV_MAX_RATE || out_rate < 1 || out_rate > MMSPCL_WAV_MAX_RATE)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "resampler: rates %d -> %d (each 1..%d)", in_rate, out_rate, MMSPCL_WAV_MAX_RATE);
    r->in_rate = in_rate;
    r->out_rate = out_rate;
    for (a = in_rate, b = out_rate; b; t = a % b, a = b, b = t) {}
    r->p = in_rate / a;
    r->q = out_rate / a;
    if (in_rate == out_rate) return MMSPCL_OK;   /* a copy: no taps */
    lo = in_rate < out_rate ? in_rate : out_rate;
    r->fc = MMSPCL__RS_CUTOFF * (double)lo / in_rate;
    r->width = (double)MMSPCL__RS_ZEROS * in_rate / lo;
    r->half = (int)ceil(r->width) + 1;
    r->taps = 2 * r->half;
    r->fine = r->q > MMSPCL__RS_PHASES;
    rows = r->fine ? MMSPCL__RS_PHASES + 1 : r->q;
    r->table_n = (int)(rows * r->taps);
    if (!(r->table = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)r->table_n)))
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "resampler: cannot allocate %d coefficients", r->table_n);
    for (ph = 0; ph < rows; ph++) {   /* row ph: the output ph / q (or ph / PHASES) of an input sample late */
        double frac = (double)ph / (double)(r->fine ? MMSPCL__RS_PHASES : r->q);
        for (j = 0; j < r->taps; j++) r->table[ph * r->taps + j] = (float)mmspcl__rs_kernel(r, (double)(j - r->half + 1) - frac);
    }
    /* samples before the first are zero */
    r->hist_cap = r->taps + 4096;
    if (!(r->hist = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)r->hist_cap))) {
        mmspcl_resampler_free(r);
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "resampler: out of memory");
    }
    memset(r->hist, 0, sizeof(float) * (size_t)r->half);
    r->hist_len = r->half;
    r->hist_base = -r->half;
    return MMSPCL_OK;
}

int64_t mmspcl_resample_bound(const mmspcl_resampler *r, int64_t n) {
    return mmspcl_resample_count(r->in_rate, r->out_rate, n + r->taps) + 2;
}

/* What one call can make from here: everything up to the end of n more inputs. */
static int64_t mmspcl__rs_due(const mmspcl_resampler *r, int64_t n) {
    return mmspcl_resample_count(r->in_rate, r->out_rate, r->n_in + n) - r->k;
}

/* sum a[j] b[j], j < n, in eight partial sums (vectorisable without -ffast-math) */
static double mmspcl__rs_dot(const float *a, const float *b, int n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int j, k;
    for (j = 0; j + 8 <= n; j += 8)
        for (k = 0; k < 8; k++) s[k] += a[j + k] * b[j + k];
    for (; j < n; j++) s[0] += a[j] * b[j];
    return ((double)s[0] + s[1] + s[2] + s[3]) + ((double)s[4] + s[5] + s[6] + s[7]);
}

static mmspcl_status mmspcl__rs_append(mmspcl_resampler *r, const float *x, int n, mmspcl_error *err) {
    int64_t keep_from = (r->k * r->p) / r->q - r->half + 1, drop = keep_from - r->hist_base;
    if (drop > 0 && drop <= r->hist_len) {
        memmove(r->hist, r->hist + drop, sizeof(float) * (size_t)(r->hist_len - drop));
        r->hist_len -= (int)drop;
        r->hist_base += drop;
    }
    if ((int64_t)r->hist_len + n > r->hist_cap) {
        int64_t cap = 2 * ((int64_t)r->hist_len + n);
        float *p;
        if (cap > INT32_MAX || !(p = (float *)MMSPCL_REALLOC(r->hist, sizeof(float) * (size_t)cap)))
            return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "resampler: out of memory");
        r->hist = p;
        r->hist_cap = (int)cap;
    }
    if (n > 0) memcpy(r->hist + r->hist_len, x, sizeof(float) * (size_t)n);
    r->hist_len += n;
    return MMSPCL_OK;
}

mmspcl_status mmspcl_resample(mmspcl_resampler *r, const float *in, int n, int last, float *out, int cap, int *n_out,
                              mmspcl_error *err) {
    int64_t total, made = 0;
    mmspcl_status st;
    if (n_out) *n_out = 0;
    if (!r || !n_out || n < 0 || (n > 0 && !in) || (!out && cap > 0)) return mmspcl__fail(err, MMSPCL_ERR_ARG, "resample: bad arguments");
    if (r->done && n > 0) return mmspcl__fail(err, MMSPCL_ERR_ARG, "resample: input after the last block");
    if (cap < mmspcl__rs_due(r, n))
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "resample: room for %d outputs, %lld may come", cap, (long long)mmspcl__rs_due(r, n));
    if (r->taps == 0) {   /* same rate */
        if (n > 0) memcpy(out, in, sizeof(float) * (size_t)n);
        r->n_in += n;
        r->k += n;
        r->done = last;
        *n_out = n;
        return MMSPCL_OK;
    }
    if ((st = mmspcl__rs_append(r, in, n, err))) return st;
    r->n_in += n;
    if (last && !r->done) {   /* samples after the last are zero */
        float z[64];
        int left = r->taps;
        memset(z, 0, sizeof z);
        while (left > 0 && !st) { st = mmspcl__rs_append(r, z, left < 64 ? left : 64, err); left -= 64; }
        if (st) return st;
        r->done = 1;
    }
    total = mmspcl_resample_count(r->in_rate, r->out_rate, r->n_in);
    while (r->k < total) {
        int64_t num = r->k * r->p, c = num / r->q, ph = num % r->q, s = c - r->half + 1 - r->hist_base;
        const float *x = r->hist + s;
        double acc = 0;
        if (c + r->half >= r->hist_base + r->hist_len) break;   /* needs input not yet given */
        if (!r->fine) {
            acc = mmspcl__rs_dot(r->table + ph * r->taps, x, r->taps);
        } else {   /* between the two nearest of the table's phases */
            double pos = (double)ph / (double)r->q * MMSPCL__RS_PHASES, w;
            int i = (int)pos;
            w = pos - i;
            acc = (1 - w) * mmspcl__rs_dot(r->table + (int64_t)i * r->taps, x, r->taps) +
                  w * mmspcl__rs_dot(r->table + (int64_t)(i + 1) * r->taps, x, r->taps);
        }
        out[made++] = (float)acc;
        r->k++;
    }
    *n_out = (int)made;
    return MMSPCL_OK;
}

void mmspcl_resampler_reset(mmspcl_resampler *r) {
    if (!r) return;
    r->n_in = r->k = 0;
    r->done = 0;
    if (r->hist) {
        memset(r->hist, 0, sizeof(float) * (size_t)r->half);
        r->hist_len = r->half;
        r->hist_base = -r->half;
    }
}

void mmspcl_resampler_free(mmspcl_resampler *r) {
    if (!r) return;
    MMSPCL_FREE(r->table);
    MMSPCL_FREE(r->hist);
    r->table = NULL;
    r->hist = NULL;
}

/* ---- 14.3 Kaldi filterbank and MFCC ------------------------------------------------------ */
#define MMSPCL__PI 3.14159265358979323846

/* Tables of a real FFT of n points (a power of two >= 4): twiddles e^{-2 pi i k / n}, k < n/2, and
   the bit reversal of n/2. */
static int mmspcl__fft_tables(int n, double **twc, double **tws, int **rev) {
    int h = n / 2, k, bits = 0;
    *twc = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)h);
    *tws = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)h);
    *rev = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)h);
    if (!*twc || !*tws || !*rev) return 0;
    while ((1 << bits) < h) bits++;
    for (k = 0; k < h; k++) {
        int b, v = 0;
        (*twc)[k] = cos(2 * MMSPCL__PI * k / n);
        (*tws)[k] = sin(2 * MMSPCL__PI * k / n);
        for (b = 0; b < bits; b++) v |= ((k >> b) & 1) << (bits - 1 - b);
        (*rev)[k] = v;
    }
    return 1;
}

/* X = FFT(x) of n real points: re[0..n/2], im[0..n/2]; work holds n doubles. An n/2-point complex
   FFT (iterative radix 2) of the even / odd samples, then the split into the real spectrum. */
static void mmspcl__rfft(int n, const double *twc, const double *tws, const int *rev, const double *x, double *re,
                         double *im, double *work) {
    const int h = n / 2;
    int len, i, j, k;
    for (i = 0; i < h; i++) {
        work[2 * rev[i]] = x[2 * i];
        work[2 * rev[i] + 1] = x[2 * i + 1];
    }
    for (i = 0; i < h; i += 2) {   /* the first stage: twiddle 1 */
        double *a = work + 2 * i, tr = a[2], ti = a[3];
        a[2] = a[0] - tr;
        a[3] = a[1] - ti;
        a[0] += tr;
        a[1] += ti;
    }
    for (i = 0; h >= 4 && i < h; i += 4) {   /* the second: twiddles 1 and -i */
        double *a = work + 2 * i, tr = a[4], ti = a[5], ur = a[7], ui = -a[6];
        a[4] = a[0] - tr;
        a[5] = a[1] - ti;
        a[0] += tr;
        a[1] += ti;
        a[6] = a[2] - ur;
        a[7] = a[3] - ui;
        a[2] += ur;
        a[3] += ui;
    }
    for (len = 8; 2 * len <= h; len *= 4) {   /* two stages at a time (len, 2 len): 3 products per 4 points */
        const int half = len / 2, step = n / len, step2 = n / (2 * len);
        for (i = 0; i < h; i += 2 * len)
            for (j = 0; j < half; j++) {
                const double w1r = twc[j * step], w1i = -tws[j * step], w2r = twc[j * step2], w2i = -tws[j * step2];
                double *a = work + 2 * (i + j), *b = a + 2 * half, *c = a + 2 * len, *d = c + 2 * half;
                double br = w1r * b[0] - w1i * b[1], bi = w1r * b[1] + w1i * b[0];
                double dr = w1r * d[0] - w1i * d[1], di = w1r * d[1] + w1i * d[0];
                double Ar = a[0] + br, Ai = a[1] + bi, Br = a[0] - br, Bi = a[1] - bi;
                double Cr = c[0] + dr, Ci = c[1] + di, Dr = c[0] - dr, Di = c[1] - di;
                double cr = w2r * Cr - w2i * Ci, ci = w2r * Ci + w2i * Cr;
                double er = w2r * Di + w2i * Dr, ei = w2i * Di - w2r * Dr;   /* w2 (-i) D */
                a[0] = Ar + cr; a[1] = Ai + ci;
                c[0] = Ar - cr; c[1] = Ai - ci;
                b[0] = Br + er; b[1] = Bi + ei;
                d[0] = Br - er; d[1] = Bi - ei;
            }
    }
    for (; len <= h; len *= 2) {   /* the last stage when the count left is odd */
        const int half = len / 2, step = n / len;
        for (i = 0; i < h; i += len)
            for (j = 0; j < half; j++) {
                double wr = twc[j * step], wi = -tws[j * step];
                double *a = work + 2 * (i + j), *b = work + 2 * (i + j + half);
                double tr = wr * b[0] - wi * b[1], ti = wr * b[1] + wi * b[0];
                b[0] = a[0] - tr;
                b[1] = a[1] - ti;
                a[0] += tr;
                a[1] += ti;
            }
    }
    re[0] = work[0] + work[1];
    im[0] = 0;
    re[h] = work[0] - work[1];
    im[h] = 0;
    for (k = 1; k < h; k++) {
        double ar = work[2 * k], ai = work[2 * k + 1], br = work[2 * (h - k)], bi = -work[2 * (h - k) + 1];
        double er = 0.5 * (ar + br), ei = 0.5 * (ai + bi), o_r = 0.5 * (ai - bi), oi = -0.5 * (ar - br);
        double c = twc[k], s = tws[k];
        re[k] = er + c * o_r + s * oi;
        im[k] = ei + c * oi - s * o_r;
    }
}

static double mmspcl__mel(double f) { return 1127.0 * log(1.0 + f / 700.0); }

/* The triangular mel bins of torchaudio's get_mel_banks (no VTLN), over the FFT bins 0..nfft/2-1. */
static int mmspcl__fbank_mel(mmspcl_fbank *f) {
    const double nyq = 0.5 * f->rate, binw = (double)f->rate / f->nfft, ml = mmspcl__mel(20.0), mh = mmspcl__mel(nyq);
    const double delta = (mh - ml) / (f->n_mel + 1);
    const int nb = f->nfft / 2;
    int m, k;
    f->mel_w = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)f->n_mel * (size_t)nb);
    f->mel_lo = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)f->n_mel);
    f->mel_n = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)f->n_mel);
    if (!f->mel_w || !f->mel_lo || !f->mel_n) return 0;
    for (m = 0; m < f->n_mel; m++) {
        double left = ml + m * delta, center = ml + (m + 1.0) * delta, right = ml + (m + 2.0) * delta;
        double *w = f->mel_w + (size_t)m * nb;
        int lo = -1, hi = -1;
        for (k = 0; k < nb; k++) {
            double mel = mmspcl__mel(binw * k), up = (mel - left) / (center - left), down = (right - mel) / (right - center);
            double v = up < down ? up : down;
            w[k] = v > 0 ? v : 0;
            if (w[k] > 0) { if (lo < 0) lo = k; hi = k; }
        }
        f->mel_lo[m] = lo < 0 ? 0 : lo;
        f->mel_n[m] = lo < 0 ? 0 : hi - lo + 1;
    }
    return 1;
}

mmspcl_status mmspcl_fbank_init(mmspcl_fbank *f, int kind, int sample_rate, mmspcl_error *err) {
    int i, k;
    if (!f) return mmspcl__fail(err, MMSPCL_ERR_ARG, "fbank: NULL");
    memset(f, 0, sizeof *f);
    if (kind != MMSPCL_FBANK && kind != MMSPCL_MFCC) return mmspcl__fail(err, MMSPCL_ERR_ARG, "fbank: kind %d (MMSPCL_FBANK or MMSPCL_MFCC)", kind);
    if (sample_rate < 400 || sample_rate > MMSPCL_WAV_MAX_RATE)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "fbank: sample rate %d (400..%d)", sample_rate, MMSPCL_WAV_MAX_RATE);
    f->kind = kind;
    f->rate = sample_rate;
    f->win = (int)(sample_rate * 25.0 * 0.001);   /* as torchaudio: int(sample_frequency * frame_length * 0.001) */
    f->shift = (int)(sample_rate * 10.0 * 0.001);
    for (f->nfft = 4; f->nfft < f->win; f->nfft *= 2) {}
    f->n_mel = kind == MMSPCL_FBANK ? 80 : 23;
    f->dim = kind == MMSPCL_FBANK ? 80 : 13;
    f->window = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)f->win);
    f->work = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)(4 * f->nfft + 8 + f->n_mel));
    f->buf_cap = 2 * f->win + 8192;
    f->buf = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)f->buf_cap);
    if (!f->window || !f->work || !f->buf || !mmspcl__fft_tables(f->nfft, &f->twc, &f->tws, &f->rev) || !mmspcl__fbank_mel(f)) {
        mmspcl_fbank_free(f);
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "fbank: out of memory");
    }
    for (i = 0; i < f->win; i++) f->window[i] = pow(0.5 - 0.5 * cos(2 * MMSPCL__PI * i / (f->win - 1)), 0.85);
    if (kind == MMSPCL_MFCC) {
        f->dct = (double *)MMSPCL_MALLOC(sizeof(double) * 13 * 23);
        f->lifter = (double *)MMSPCL_MALLOC(sizeof(double) * 13);
        if (!f->dct || !f->lifter) {
            mmspcl_fbank_free(f);
            return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "fbank: out of memory");
        }
        for (k = 0; k < 13; k++) {
            f->lifter[k] = 1.0 + 0.5 * 22.0 * sin(MMSPCL__PI * k / 22.0);
            for (i = 0; i < 23; i++)
                f->dct[k * 23 + i] = k == 0 ? sqrt(1.0 / 23) : sqrt(2.0 / 23) * cos(MMSPCL__PI / 23 * (i + 0.5) * k);
        }
    }
    return MMSPCL_OK;
}

int64_t mmspcl_fbank_frames(const mmspcl_fbank *f, int64_t n) { return n < f->win ? 0 : 1 + (n - f->win) / f->shift; }

/* One frame of f->win samples at s into out[dim]. */
static void mmspcl__fbank_frame(mmspcl_fbank *f, const float *s, float *out) {
    const int W = f->win, N = f->nfft;
    double *x = f->work, *re = x + N, *im = re + N / 2 + 1, *work = im + N / 2 + 1, *mel = work + N;
    double mean = 0, energy = 0;
    int i, m;
    for (i = 0; i < W; i++) mean += (x[i] = (double)s[i] * 32768.0);
    mean /= W;
    for (i = 0; i < W; i++) {
        x[i] -= mean;
        energy += x[i] * x[i];
    }
    for (i = W - 1; i > 0; i--) x[i] -= 0.97 * x[i - 1];
    x[0] -= 0.97 * x[0];
    for (i = 0; i < W; i++) x[i] *= f->window[i];
    for (i = W; i < N; i++) x[i] = 0;
    mmspcl__rfft(N, f->twc, f->tws, f->rev, x, re, im, work);
    for (i = 0; i <= N / 2; i++) re[i] = re[i] * re[i] + im[i] * im[i];
    for (m = 0; m < f->n_mel; m++) {
        const double *w = f->mel_w + (size_t)m * (N / 2);
        double e = 0;
        int k, lo = f->mel_lo[m], hi = lo + f->mel_n[m];
        for (k = lo; k < hi; k++) e += w[k] * re[k];
        mel[m] = log(e > 1.1920928955078125e-07 ? e : 1.1920928955078125e-07);   /* FLT_EPSILON */
    }
    if (f->kind == MMSPCL_FBANK) {
        for (m = 0; m < 80; m++) out[m] = (float)mel[m];
        return;
    }
    energy = log(energy > 1.1920928955078125e-07 ? energy : 1.1920928955078125e-07);
    out[0] = (float)(energy > 0 ? energy : 0);   /* energy floor 1 */
    for (i = 1; i < 13; i++) {
        double c = 0;
        for (m = 0; m < 23; m++) c += f->dct[i * 23 + m] * mel[m];
        out[i] = (float)(c * f->lifter[i]);
    }
}

mmspcl_status mmspcl_fbank_push(mmspcl_fbank *f, const float *x, int n, float *out, int cap, int *n_frames,
                                mmspcl_error *err) {
    int64_t end, avail, drop;
    int made = 0;
    if (n_frames) *n_frames = 0;
    if (!f || !n_frames || n < 0 || (n > 0 && !x) || (!out && cap > 0)) return mmspcl__fail(err, MMSPCL_ERR_ARG, "fbank: bad arguments");
    end = f->buf_base + f->buf_len + n;
    avail = mmspcl_fbank_frames(f, end) - f->next_frame;
    if (avail > cap) return mmspcl__fail(err, MMSPCL_ERR_ARG, "fbank: room for %d frames, %lld complete", cap, (long long)avail);
    drop = f->next_frame * f->shift - f->buf_base;
    if (drop > 0) {
        if (drop > f->buf_len) drop = f->buf_len;
        memmove(f->buf, f->buf + drop, sizeof(float) * (size_t)(f->buf_len - drop));
        f->buf_len -= (int)drop;
        f->buf_base += drop;
    }
    while (n > 0) {   /* take the input in pieces that fit the buffer */
        int room = f->buf_cap - f->buf_len, step = n < room ? n : room;
        memcpy(f->buf + f->buf_len, x, sizeof(float) * (size_t)step);
        f->buf_len += step;
        x += step;
        n -= step;
        while (f->next_frame * f->shift + f->win <= f->buf_base + f->buf_len) {
            mmspcl__fbank_frame(f, f->buf + (f->next_frame * f->shift - f->buf_base), out + (size_t)made * f->dim);
            made++;
            f->next_frame++;
        }
        drop = f->next_frame * f->shift - f->buf_base;
        if (drop > f->buf_len) drop = f->buf_len;
        if (drop > 0) {
            memmove(f->buf, f->buf + drop, sizeof(float) * (size_t)(f->buf_len - drop));
            f->buf_len -= (int)drop;
            f->buf_base += drop;
        }
    }
    *n_frames = made;
    return MMSPCL_OK;
}

void mmspcl_fbank_free(mmspcl_fbank *f) {
    if (!f) return;
    MMSPCL_FREE(f->window);
    MMSPCL_FREE(f->mel_w);
    MMSPCL_FREE(f->mel_lo);
    MMSPCL_FREE(f->mel_n);
    MMSPCL_FREE(f->dct);
    MMSPCL_FREE(f->lifter);
    MMSPCL_FREE(f->work);
    MMSPCL_FREE(f->twc);
    MMSPCL_FREE(f->tws);
    MMSPCL_FREE(f->rev);
    MMSPCL_FREE(f->buf);
    memset(f, 0, sizeof *f);
}

mmspcl_status mmspcl_fbank_compute(int kind, int sample_rate, const float *x, int64_t n, float *out, mmspcl_error *err) {
    mmspcl_fbank f;
    mmspcl_status st;
    int64_t done = 0;
    if ((st = mmspcl_fbank_init(&f, kind, sample_rate, err))) return st;
    while (!st && n > 0) {
        int step = n > (1 << 20) ? 1 << 20 : (int)n, got;
        st = mmspcl_fbank_push(&f, x, step, out + done * f.dim, (step + f.shift - 1) / f.shift + 1, &got, err);
        x += step;
        n -= step;
        done += got;
    }
    mmspcl_fbank_free(&f);
    return st;
}

/* ---- 14.4 F0 and voicing ----------------------------------------------------------------- */
#define MMSPCL__P_FLOOR 75.0
#define MMSPCL__P_CEIL 600.0
#define MMSPCL__P_SILENCE 0.03
#define MMSPCL__P_VOICING 0.45
#define MMSPCL__P_OCTAVE 0.01
#define MMSPCL__P_JUMP 0.35
#define MMSPCL__P_VUV 0.14

void mmspcl_audio_peak_add(mmspcl_audio_peak *p, const float *x, int64_t n) {
    int64_t i;
    for (i = 0; i < n; i++) {
        double v = x[i];
        if (p->n == 0 && i == 0) p->lo = p->hi = v;
        if (v < p->lo) p->lo = v;
        if (v > p->hi) p->hi = v;
        p->sum += v;
    }
    p->n += n > 0 ? n : 0;
}

double mmspcl_audio_peak_value(const mmspcl_audio_peak *p) {
    double mean, a, b;
    if (p->n <= 0) return 0;
    mean = p->sum / (double)p->n;
    a = p->hi - mean;
    b = mean - p->lo;
    return a > b ? a : b;
}

/* y[0..n) at position x (0-based) by sinc interpolation with a raised-cosine window reaching
   depth samples to each side (fewer near the ends; linear interpolation below 2). */
static double mmspcl__sinc_interp(const double *y, int n, double x, int depth) {
    int ml, mr, left, right, i;
    double res = 0, t;
    if (x >= n - 1) return y[n - 1];
    if (x <= 0) return y[0];
    ml = (int)floor(x);
    mr = ml + 1;
    if (x == ml) return y[ml];
    if (depth > mr) depth = mr;
    if (depth > n - 1 - ml) depth = n - 1 - ml;
    if (depth < 2) return y[ml] + (x - ml) * (y[mr] - y[ml]);
    left = mr - depth;
    right = ml + depth;
    /* both sides at once (two independent chains): distances d = x - i on the left, i - x on the
       right, window cos(pi d / w) with w = x - left + 1 (right - x + 1); sin(pi d) alternates sign */
    {
        const double dl0 = x - ml, dr0 = mr - x, wl = x - left + 1, wr = right - x + 1;
        double dl = dl0, dr = dr0, sl = sin(MMSPCL__PI * dl0), sr = sin(MMSPCL__PI * dr0);
        double cl = cos(MMSPCL__PI * dl0 / wl), snl = sin(MMSPCL__PI * dl0 / wl), cr = cos(MMSPCL__PI * dr0 / wr), snr = sin(MMSPCL__PI * dr0 / wr);
        const double dcl = cos(MMSPCL__PI / wl), dsl = sin(MMSPCL__PI / wl), dcr = cos(MMSPCL__PI / wr), dsr = sin(MMSPCL__PI / wr);
        double rl = 0, rr = 0;
        for (i = 0; i < depth; i++) {
            rl += y[ml - i] * sl / (MMSPCL__PI * dl) * 0.5 * (1 + cl);
            rr += y[mr + i] * sr / (MMSPCL__PI * dr) * 0.5 * (1 + cr);
            dl += 1;
            dr += 1;
            sl = -sl;
            sr = -sr;
            t = cl * dcl - snl * dsl; snl = snl * dcl + cl * dsl; cl = t;
            t = cr * dcr - snr * dsr; snr = snr * dcr + cr * dsr; cr = t;
        }
        res = rl + rr;
    }
    return res;
}

/* The maximum of the interpolated y over [a, b] (Brent's method: golden section and parabolas),
   starting from x0 (the vertex of the parabola through the three samples around the maximum). */
static double mmspcl__sinc_max(const double *y, int n, double a, double b, double x0, int depth, double *xmax) {
    const double g = 0.3819660112501051, tol = 1e-8;   /* position to 1e-8 relative: F0 to ~1e-8 */
    double x, w, v, fx, fw, fv, d = 0, e = 0, u, fu;
    int it;
    x = w = v = x0 > a && x0 < b ? x0 : a + g * (b - a);
    fx = fw = fv = -mmspcl__sinc_interp(y, n, x, depth);
    for (it = 0; it < 100; it++) {
        double m = 0.5 * (a + b), tol1 = tol * fabs(x) + 1e-12, tol2 = 2 * tol1;
        if (fabs(x - m) <= tol2 - 0.5 * (b - a)) break;
        if (fabs(e) > tol1) {
            double r = (x - w) * (fx - fv), q = (x - v) * (fx - fw), p = (x - v) * q - (x - w) * r;
            q = 2 * (q - r);
            if (q > 0) p = -p; else q = -q;
            r = e;
            e = d;
            if (fabs(p) < fabs(0.5 * q * r) && p > q * (a - x) && p < q * (b - x)) {
                d = p / q;
                u = x + d;
                if (u - a < tol2 || b - u < tol2) d = x < m ? tol1 : -tol1;
            } else {
                e = (x < m ? b : a) - x;
                d = g * e;
            }
        } else {
            e = (x < m ? b : a) - x;
            d = g * e;
        }
        u = x + (fabs(d) >= tol1 ? d : (d > 0 ? tol1 : -tol1));
        fu = -mmspcl__sinc_interp(y, n, u, depth);
        if (fu <= fx) {
            if (u < x) b = x; else a = x;
            v = w; fv = fw; w = x; fw = fx; x = u; fx = fu;
        } else {
            if (u < x) a = u; else b = u;
            if (fu <= fw || w == x) { v = w; fv = fw; w = u; fw = fu; }
            else if (fu <= fv || v == x || v == w) { v = u; fv = fu; }
        }
    }
    *xmax = x;
    return -fx;
}

/* Autocorrelation r[0..ixmax] of frame[0..nfft) (zero-padded) via the power spectrum. */
static void mmspcl__pitch_ac(mmspcl_pitch *p, double *frame, double *ac) {
    const int N = p->nfft;
    double *re = p->spec, *im = re + N / 2 + 1, *sym = im + N / 2 + 1;
    int k;
    mmspcl__rfft(N, p->twc, p->tws, p->rev, frame, re, im, p->work);
    for (k = 0; k <= N / 2; k++) sym[k] = re[k] * re[k] + im[k] * im[k];
    for (k = N / 2 + 1; k < N; k++) sym[k] = sym[N - k];
    mmspcl__rfft(N, p->twc, p->tws, p->rev, sym, re, im, p->work);   /* even input: the real part is the inverse */
    for (k = 0; k <= p->ixmax; k++) ac[k] = re[k];
}

int64_t mmspcl_pitch_frames(int sample_rate, int64_t n) {
    double dx = 1.0 / sample_rate, dur = dx * (double)n;
    if (sample_rate < 1 || n <= 0 || dur < 3.0 / MMSPCL__P_FLOOR) return 0;
    return (int64_t)floor((dur - 3.0 / MMSPCL__P_FLOOR) / 0.01) + 1;
}

mmspcl_status mmspcl_pitch_init(mmspcl_pitch *p, int sample_rate, int64_t n_samples, double global_peak,
                                mmspcl_error *err) {
    double dx, *tmp;
    int i;
    if (!p) return mmspcl__fail(err, MMSPCL_ERR_ARG, "pitch: NULL");
    memset(p, 0, sizeof *p);
    if (sample_rate < 2000 || sample_rate > MMSPCL_WAV_MAX_RATE || n_samples < 0)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "pitch: sample rate %d (2000..%d), %lld samples", sample_rate, MMSPCL_WAV_MAX_RATE, (long long)n_samples);
    dx = 1.0 / sample_rate;
    p->rate = sample_rate;
    p->n_samples = n_samples;
    p->dt = 0.01;
    p->global_peak = global_peak;
    p->nper = (int)floor(1.0 / dx / MMSPCL__P_FLOOR);
    p->halfper = p->nper / 2 + 1;
    p->half = (int)floor(3.0 / MMSPCL__P_FLOOR / dx) / 2 - 1;
    p->nwin = 2 * p->half;
    p->max_lag = (int)floor(p->nwin / 3.0) + 2;
    if (p->max_lag > p->nwin) p->max_lag = p->nwin;
    for (p->nfft = 1; p->nfft < p->nwin * 1.5; p->nfft *= 2) {}
    p->ixmax = (int)floor(p->nwin * 0.5);
    p->n_frames = mmspcl_pitch_frames(sample_rate, n_samples);
    p->decide_lag = MMSPCL_PITCH_MAX_LAG;
    /* Praat's frames: as many as fit, centred in the sound (first sample at time dx / 2) */
    p->t0 = 0.5 * dx - 0.5 * dx + 0.5 * (dx * (double)n_samples) - 0.5 * (double)p->n_frames * p->dt + 0.5 * p->dt;
    p->window = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)p->nwin);
    p->windowR = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)(p->ixmax + 1));
    p->work = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)(3 * p->nfft + 8));
    p->spec = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)(3 * p->nfft + 8));
    p->R = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)(2 * p->ixmax + 1));
    p->buf_cap = 2 * (p->nwin + 2 * p->nper) + 16384;
    p->buf = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)p->buf_cap);
    p->q_cap = 256;
    p->q = (mmspcl_pitch_frame *)MMSPCL_MALLOC(sizeof(mmspcl_pitch_frame) * (size_t)p->q_cap);
    p->ready_cap = 256;
    p->ready = (float *)MMSPCL_MALLOC(sizeof(float) * 2 * (size_t)p->ready_cap);
    if (!p->window || !p->windowR || !p->work || !p->spec || !p->R || !p->buf || !p->q || !p->ready ||
        !mmspcl__fft_tables(p->nfft, &p->twc, &p->tws, &p->rev)) {
        mmspcl_pitch_free(p);
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "pitch: out of memory");
    }
    for (i = 0; i < p->nwin; i++) p->window[i] = 0.5 - 0.5 * cos((i + 1) * 2 * MMSPCL__PI / (p->nwin + 1));
    /* the normalised autocorrelation of the window */
    tmp = p->work + p->nfft;
    for (i = 0; i < p->nfft; i++) tmp[i] = i < p->nwin ? p->window[i] : 0;
    {
        double *ac = p->R;
        mmspcl__pitch_ac(p, tmp, ac);
        for (i = 1; i <= p->ixmax; i++) p->windowR[i] = ac[i] / ac[0];
        p->windowR[0] = 1;
    }
    return MMSPCL_OK;
}

/* Sample i of the sound (0 outside what the buffer holds: never for frames Praat fits). */
static double mmspcl__pitch_x(const mmspcl_pitch *p, int64_t i) {
    int64_t j = i - p->buf_base;
    return j >= 0 && j < p->buf_len ? (double)p->buf[j] : 0.0;
}

/* Candidates of frame `frame` (its samples are in the buffer) into c. */
static void mmspcl__pitch_frame(mmspcl_pitch *p, int64_t frame, mmspcl_pitch_frame *c) {
    const double dx = 1.0 / p->rate, t = p->t0 + (double)frame * p->dt, floor_f = MMSPCL__P_FLOOR;
    const int64_t left = (int64_t)floor((t - 0.5 * dx) / dx);
    double *fr = p->work + p->nfft, *ac = p->spec + 2 * p->nfft + 4, mean = 0, peak = 0, gpeak = p->global_peak;
    double *R = p->R + p->ixmax;   /* R[-ixmax..ixmax] */
    int imax[MMSPCL_PITCH_MAX_CAND], i, j, lo, hi;
    int64_t s;
    for (s = left + 1 - p->nper; s <= left + p->nper; s++) mean += mmspcl__pitch_x(p, s);
    mean /= 2 * p->nper;
    for (j = 0; j < p->nwin; j++) fr[j] = (mmspcl__pitch_x(p, left + 1 - p->half + j) - mean) * p->window[j];
    for (j = p->nwin; j < p->nfft; j++) fr[j] = 0;
    lo = p->half + 1 - p->halfper < 1 ? 1 : p->half + 1 - p->halfper;
    hi = p->half + p->halfper > p->nwin ? p->nwin : p->half + p->halfper;
    for (j = lo - 1; j < hi; j++) if (fabs(fr[j]) > peak) peak = fabs(fr[j]);
    if (gpeak <= 0) gpeak = mmspcl_audio_peak_value(&p->run);   /* of what came so far */
    c->intensity = (float)(peak > gpeak || gpeak <= 0 ? 1.0 : peak / gpeak);
    c->n = 1;
    c->freq[0] = 0;
    c->strength[0] = 0;
    imax[0] = 0;
    if (peak == 0) return;
    mmspcl__pitch_ac(p, fr, ac);
    R[0] = 1;
    for (i = 1; i <= p->ixmax; i++) R[i] = R[-i] = ac[i] / (ac[0] * p->windowR[i]);
    for (i = 2; i < p->max_lag && i < p->ixmax; i++) {
        double dr, d2r, f, str;
        int place = 0;
        if (!(R[i] > 0.5 * MMSPCL__P_VOICING && R[i] > R[i - 1] && R[i] >= R[i + 1])) continue;
        dr = 0.5 * (R[i + 1] - R[i - 1]);
        d2r = 2.0 * R[i] - R[i - 1] - R[i + 1];
        f = 1.0 / dx / (i + dr / d2r);
        str = mmspcl__sinc_interp(p->R, 2 * p->ixmax + 1, 1.0 / dx / f + p->ixmax, 30);
        if (str > 1.0) str = 1.0 / str;
        if (c->n < MMSPCL_PITCH_MAX_CAND) {
            place = c->n++;
        } else {   /* the weakest so far, high frequencies favoured */
            double weakest = 2.0;
            int k;
            for (k = 1; k < MMSPCL_PITCH_MAX_CAND; k++) {
                double ls = c->strength[k] - MMSPCL__P_OCTAVE * log2(floor_f / c->freq[k]);
                if (ls < weakest) { weakest = ls; place = k; }
            }
            if (str - MMSPCL__P_OCTAVE * log2(floor_f / f) <= weakest) place = 0;
        }
        if (place) {
            c->freq[place] = (float)f;
            c->strength[place] = (float)str;
            imax[place] = i;
        }
    }
    for (i = 1; i < c->n; i++) {   /* refine: the maximum of the sinc interpolation */
        double xm, ym;
        int depth = c->freq[i] > 0.3 / dx ? 700 : 70;
        ym = mmspcl__sinc_max(p->R, 2 * p->ixmax + 1, imax[i] - 1 + p->ixmax, imax[i] + 1 + p->ixmax,
                              1.0 / dx / c->freq[i] + p->ixmax, depth, &xm);
        c->freq[i] = (float)(1.0 / dx / (xm - p->ixmax));
        c->strength[i] = (float)(ym > 1.0 ? 1.0 / ym : ym);
    }
}

/* Viterbi over the undecided frames: the local score of candidate k of frame c. */
static double mmspcl__pitch_local(const mmspcl_pitch_frame *c, int k) {
    double f = c->freq[k], u;
    if (f == 0 || f > MMSPCL__P_CEIL) {
        u = 2 - c->intensity / (MMSPCL__P_SILENCE / (1 + MMSPCL__P_VOICING));
        return MMSPCL__P_VOICING + (u > 0 ? u : 0);
    }
    return c->strength[k] - MMSPCL__P_OCTAVE * log2(MMSPCL__P_CEIL / f);
}

static int mmspcl__pitch_emit(mmspcl_pitch *p, float f0, float strength) {
    if (p->ready_len == p->ready_cap) {
        float *q = (float *)MMSPCL_REALLOC(p->ready, sizeof(float) * 2 * (size_t)p->ready_cap * 2);
        if (!q) return 0;
        p->ready = q;
        p->ready_cap *= 2;
    }
    p->ready[2 * p->ready_len] = f0;
    p->ready[2 * p->ready_len + 1] = f0 > 0 ? strength : 0;
    p->ready_len++;
    p->frames_out++;
    return 1;
}

/* Decides the frames q_base..last on the path that is at candidate k of frame `last`. */
static int mmspcl__pitch_decide(mmspcl_pitch *p, int64_t last, int k) {
    int64_t n = last - p->q_base + 1, i;
    int start = p->ready_len;
    for (i = n - 1; i >= 0; i--) {   /* trace back, then emit in time order */
        float f = p->q[i].freq[k];
        if (!mmspcl__pitch_emit(p, f > 0 && f < MMSPCL__P_CEIL ? f : 0, p->q[i].strength[k])) return 0;
        k = p->q[i].psi[k];
    }
    for (i = 0; i < n / 2; i++) {
        float *a = p->ready + 2 * (start + i), *b = p->ready + 2 * (start + n - 1 - i), t;
        t = a[0]; a[0] = b[0]; b[0] = t;
        t = a[1]; a[1] = b[1]; b[1] = t;
    }
    memmove(p->q, p->q + n, sizeof(mmspcl_pitch_frame) * (size_t)(p->next_frame - 1 - last));
    p->q_base = last + 1;
    return 1;
}

/* Where all surviving paths meet (the latest such frame), decide up to it; when none do within
   decide_lag frames, follow the best path to half way and keep only paths through it. */
static int mmspcl__pitch_merge(mmspcl_pitch *p, int force) {
    const int64_t cur = p->next_frame - 1, n = cur - p->q_base + 1;
    int s[MMSPCL_PITCH_MAX_CAND], k, nc = p->q[n - 1].n, best = 0;
    int64_t i;
    for (k = 0; k < nc; k++) s[k] = k;
    for (i = n - 1; i > 0; i--) {
        int same = 1;
        for (k = 0; k < nc; k++) {
            s[k] = p->q[i].psi[s[k]];
            if (s[k] != s[0]) same = 0;
        }
        if (same) return mmspcl__pitch_decide(p, p->q_base + i - 1, s[0]);
    }
    if (!force) return 1;
    for (k = 1; k < nc; k++) if (p->delta[k] > p->delta[best]) best = k;
    {
        const int64_t mid = n / 2;
        int at = best, keep[MMSPCL_PITCH_MAX_CAND];
        for (k = 0; k < nc; k++) keep[k] = k;
        for (i = n - 1; i > mid; i--) {
            at = p->q[i].psi[at];
            for (k = 0; k < nc; k++) keep[k] = p->q[i].psi[keep[k]];
        }
        for (k = 0; k < nc; k++) if (keep[k] != at) p->delta[k] = -1e300;
        return mmspcl__pitch_decide(p, p->q_base + mid, at);
    }
}

/* Adds frame c (the next one) to the search. */
static int mmspcl__pitch_step(mmspcl_pitch *p, const mmspcl_pitch_frame *c) {
    const int64_t idx = p->next_frame - p->q_base;
    double nd[MMSPCL_PITCH_MAX_CAND];
    mmspcl_pitch_frame *f;
    int k, j;
    if (idx >= p->q_cap) {
        mmspcl_pitch_frame *q = (mmspcl_pitch_frame *)MMSPCL_REALLOC(p->q, sizeof(mmspcl_pitch_frame) * (size_t)p->q_cap * 2);
        if (!q) return 0;
        p->q = q;
        p->q_cap *= 2;
    }
    f = &p->q[idx];
    *f = *c;
    for (k = 0; k < f->n; k++) {
        const mmspcl_pitch_frame *pr = idx > 0 ? &p->q[idx - 1] : NULL;   /* NULL: the first frame */
        double loc = mmspcl__pitch_local(f, k), f2 = f->freq[k], best = -1e308;
        int place = 0;
        for (j = 0; pr && j < pr->n; j++) {
            double f1 = pr->freq[j], cost, v;
            int pv = f1 <= 0 || f1 >= MMSPCL__P_CEIL, cv = f2 <= 0 || f2 >= MMSPCL__P_CEIL;
            cost = cv ? (pv ? 0 : MMSPCL__P_VUV) : (pv ? MMSPCL__P_VUV : MMSPCL__P_JUMP * fabs(log2(f1 / f2)));
            v = p->delta[j] - cost + loc;
            if (v > best) { best = v; place = j; }
        }
        nd[k] = pr ? best : loc;
        f->psi[k] = (unsigned char)place;
    }
    memcpy(p->delta, nd, sizeof(double) * (size_t)f->n);
    p->next_frame++;
    {
        const int64_t lag = p->decide_lag > 2 ? p->decide_lag : 2;   /* a forced decision keeps the last frame queued */
        if ((p->next_frame - p->q_base) % 32 == 0 || p->next_frame - p->q_base > lag)
            return mmspcl__pitch_merge(p, p->next_frame - p->q_base > lag);
    }
    return 1;
}

mmspcl_status mmspcl_pitch_push(mmspcl_pitch *p, const float *x, int n, mmspcl_error *err) {
    const int reach = p && p->nper > p->half ? p->nper : (p ? p->half : 0);
    if (!p || n < 0 || (n > 0 && !x)) return mmspcl__fail(err, MMSPCL_ERR_ARG, "pitch: bad arguments");
    if (!p->buf) return mmspcl__fail(err, MMSPCL_ERR_ARG, "pitch: not initialised");
    if (p->buf_base + p->buf_len + n > p->n_samples)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "pitch: more than the %lld samples announced", (long long)p->n_samples);
    while (n > 0) {
        int room, step;
        /* keep the samples from the first one the next frame needs */
        if (p->next_frame < p->n_frames) {
            const double dx = 1.0 / p->rate, t = p->t0 + (double)p->next_frame * p->dt;
            int64_t need = (int64_t)floor((t - 0.5 * dx) / dx) + 1 - reach, drop = need - p->buf_base;
            if (drop > p->buf_len) drop = p->buf_len;
            if (drop > 0) {
                memmove(p->buf, p->buf + drop, sizeof(float) * (size_t)(p->buf_len - drop));
                p->buf_len -= (int)drop;
                p->buf_base += drop;
            }
        } else {
            p->buf_base += p->buf_len;
            p->buf_len = 0;
        }
        room = p->buf_cap - p->buf_len;
        step = n < room ? n : room;
        memcpy(p->buf + p->buf_len, x, sizeof(float) * (size_t)step);
        if (p->global_peak <= 0) mmspcl_audio_peak_add(&p->run, x, step);
        p->buf_len += step;
        x += step;
        n -= step;
        while (p->next_frame < p->n_frames) {
            const double dx = 1.0 / p->rate, t = p->t0 + (double)p->next_frame * p->dt;
            const int64_t left = (int64_t)floor((t - 0.5 * dx) / dx);
            mmspcl_pitch_frame c;
            if (left + reach >= p->buf_base + p->buf_len && p->buf_base + p->buf_len < p->n_samples) break;
            mmspcl__pitch_frame(p, p->next_frame, &c);
            if (!mmspcl__pitch_step(p, &c)) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "pitch: out of memory");
        }
    }
    return MMSPCL_OK;
}

mmspcl_status mmspcl_pitch_finish(mmspcl_pitch *p, mmspcl_error *err) {
    int k, best = 0;
    if (!p || !p->buf) return mmspcl__fail(err, MMSPCL_ERR_ARG, "pitch: not initialised");
    if (p->next_frame < p->n_frames) {   /* fewer samples than announced: the rest are zero */
        static const float z[256] = {0};
        mmspcl_status st;
        int64_t left = p->n_samples - p->buf_base - p->buf_len;
        while (left > 0) {
            int step = left > 256 ? 256 : (int)left;
            if ((st = mmspcl_pitch_push(p, z, step, err))) return st;
            left -= step;
        }
    }
    if (p->next_frame > p->q_base) {
        const mmspcl_pitch_frame *last = &p->q[p->next_frame - 1 - p->q_base];
        for (k = 1; k < last->n; k++) if (p->delta[k] > p->delta[best]) best = k;
        if (!mmspcl__pitch_decide(p, p->next_frame - 1, best)) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "pitch: out of memory");
    }
    return MMSPCL_OK;
}

int mmspcl_pitch_take(mmspcl_pitch *p, float *f0, float *strength, int cap) {
    int n, i;
    if (!p || !f0 || cap <= 0) return 0;
    n = p->ready_len < cap ? p->ready_len : cap;
    for (i = 0; i < n; i++) {
        f0[i] = p->ready[2 * i];
        if (strength) strength[i] = p->ready[2 * i + 1];
    }
    memmove(p->ready, p->ready + 2 * n, sizeof(float) * 2 * (size_t)(p->ready_len - n));
    p->ready_len -= n;
    return n;
}

double mmspcl_pitch_time(const mmspcl_pitch *p, int64_t frame) { return p->t0 + (double)frame * p->dt; }

void mmspcl_pitch_free(mmspcl_pitch *p) {
    if (!p) return;
    MMSPCL_FREE(p->window);
    MMSPCL_FREE(p->windowR);
    MMSPCL_FREE(p->work);
    MMSPCL_FREE(p->spec);
    MMSPCL_FREE(p->R);
    MMSPCL_FREE(p->twc);
    MMSPCL_FREE(p->tws);
    MMSPCL_FREE(p->rev);
    MMSPCL_FREE(p->buf);
    MMSPCL_FREE(p->q);
    MMSPCL_FREE(p->ready);
    memset(p, 0, sizeof *p);
}

mmspcl_status mmspcl_pitch_compute(int sample_rate, const float *x, int64_t n, float *f0, mmspcl_error *err) {
    mmspcl_pitch p;
    mmspcl_audio_peak pk;
    mmspcl_status st;
    int64_t done = 0;
    memset(&pk, 0, sizeof pk);
    mmspcl_audio_peak_add(&pk, x, n);
    if ((st = mmspcl_pitch_init(&p, sample_rate, n, mmspcl_audio_peak_value(&pk), err))) return st;
    while (!st && n > 0) {
        int step = n > (1 << 20) ? 1 << 20 : (int)n;
        st = mmspcl_pitch_push(&p, x, step, err);
        x += step;
        n -= step;
        done += mmspcl_pitch_take(&p, f0 + done, NULL, INT32_MAX);
    }
    if (!st) st = mmspcl_pitch_finish(&p, err);
    done += mmspcl_pitch_take(&p, f0 + done, NULL, INT32_MAX);
    mmspcl_pitch_free(&p);
    return st;
}

/* ---- 14.5 eGeMAPS ------------------------------------------------------------------------ */
const char *const mmspcl_egemaps_names[MMSPCL_EGEMAPS_N] = {
    "F0semitoneFrom27.5Hz_sma3nz_amean", "F0semitoneFrom27.5Hz_sma3nz_stddevNorm",
    "F0semitoneFrom27.5Hz_sma3nz_percentile20.0", "F0semitoneFrom27.5Hz_sma3nz_percentile50.0",
    "F0semitoneFrom27.5Hz_sma3nz_percentile80.0", "F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2",
    "F0semitoneFrom27.5Hz_sma3nz_meanRisingSlope", "F0semitoneFrom27.5Hz_sma3nz_stddevRisingSlope",
    "F0semitoneFrom27.5Hz_sma3nz_meanFallingSlope", "F0semitoneFrom27.5Hz_sma3nz_stddevFallingSlope",
    "loudness_sma3_amean", "loudness_sma3_stddevNorm", "loudness_sma3_percentile20.0", "loudness_sma3_percentile50.0",
    "loudness_sma3_percentile80.0", "loudness_sma3_pctlrange0-2", "loudness_sma3_meanRisingSlope",
    "loudness_sma3_stddevRisingSlope", "loudness_sma3_meanFallingSlope", "loudness_sma3_stddevFallingSlope",
    "spectralFlux_sma3_amean", "spectralFlux_sma3_stddevNorm", "mfcc1_sma3_amean", "mfcc1_sma3_stddevNorm",
    "mfcc2_sma3_amean", "mfcc2_sma3_stddevNorm", "mfcc3_sma3_amean", "mfcc3_sma3_stddevNorm", "mfcc4_sma3_amean",
    "mfcc4_sma3_stddevNorm", "jitterLocal_sma3nz_amean", "jitterLocal_sma3nz_stddevNorm",
    "shimmerLocaldB_sma3nz_amean", "shimmerLocaldB_sma3nz_stddevNorm", "HNRdBACF_sma3nz_amean",
    "HNRdBACF_sma3nz_stddevNorm", "logRelF0-H1-H2_sma3nz_amean", "logRelF0-H1-H2_sma3nz_stddevNorm",
    "logRelF0-H1-A3_sma3nz_amean", "logRelF0-H1-A3_sma3nz_stddevNorm", "F1frequency_sma3nz_amean",
    "F1frequency_sma3nz_stddevNorm", "F1bandwidth_sma3nz_amean", "F1bandwidth_sma3nz_stddevNorm",
    "F1amplitudeLogRelF0_sma3nz_amean", "F1amplitudeLogRelF0_sma3nz_stddevNorm", "F2frequency_sma3nz_amean",
    "F2frequency_sma3nz_stddevNorm", "F2bandwidth_sma3nz_amean", "F2bandwidth_sma3nz_stddevNorm",
    "F2amplitudeLogRelF0_sma3nz_amean", "F2amplitudeLogRelF0_sma3nz_stddevNorm", "F3frequency_sma3nz_amean",
    "F3frequency_sma3nz_stddevNorm", "F3bandwidth_sma3nz_amean", "F3bandwidth_sma3nz_stddevNorm",
    "F3amplitudeLogRelF0_sma3nz_amean", "F3amplitudeLogRelF0_sma3nz_stddevNorm", "alphaRatioV_sma3nz_amean",
    "alphaRatioV_sma3nz_stddevNorm", "hammarbergIndexV_sma3nz_amean", "hammarbergIndexV_sma3nz_stddevNorm",
    "slopeV0-500_sma3nz_amean", "slopeV0-500_sma3nz_stddevNorm", "slopeV500-1500_sma3nz_amean",
    "slopeV500-1500_sma3nz_stddevNorm", "spectralFluxV_sma3nz_amean", "spectralFluxV_sma3nz_stddevNorm",
    "mfcc1V_sma3nz_amean", "mfcc1V_sma3nz_stddevNorm", "mfcc2V_sma3nz_amean", "mfcc2V_sma3nz_stddevNorm",
    "mfcc3V_sma3nz_amean", "mfcc3V_sma3nz_stddevNorm", "mfcc4V_sma3nz_amean", "mfcc4V_sma3nz_stddevNorm",
    "alphaRatioUV_sma3nz_amean", "hammarbergIndexUV_sma3nz_amean", "slopeUV0-500_sma3nz_amean",
    "slopeUV500-1500_sma3nz_amean", "spectralFluxUV_sma3nz_amean", "loudnessPeaksPerSec", "VoicedSegmentsPerSec",
    "MeanVoicedSegmentLengthSec", "StddevVoicedSegmentLengthSec", "MeanUnvoicedSegmentLength",
    "StddevUnvoicedSegmentLength", "equivalentSoundLevel_dBp"};

/* LLD row columns */
enum { MMSPCL__L_F0, MMSPCL__L_LOUD, MMSPCL__L_FLUX, MMSPCL__L_MFCC, MMSPCL__L_JIT = 7, MMSPCL__L_SHIM, MMSPCL__L_HNR,
       MMSPCL__L_H1H2, MMSPCL__L_H1A3, MMSPCL__L_FORM, MMSPCL__L_ALPHA = 21, MMSPCL__L_HAMM, MMSPCL__L_SL0, MMSPCL__L_SL1,
       MMSPCL__L_POW };
#define MMSPCL__EG_ALL 0   /* every frame */
#define MMSPCL__EG_V 1     /* voiced frames (where the LLD is defined) */
#define MMSPCL__EG_UV 2    /* unvoiced frames */
/* The mean / coefficient-of-variation functionals: {LLD column, frames, out index of the mean,
   of the coefficient of variation or -1}. */
static const signed char mmspcl__eg_stats[][4] = {
    {MMSPCL__L_F0, 1, 0, 1},        {MMSPCL__L_LOUD, 0, 10, 11},    {MMSPCL__L_FLUX, 0, 20, 21},
    {MMSPCL__L_MFCC, 0, 22, 23},    {MMSPCL__L_MFCC + 1, 0, 24, 25}, {MMSPCL__L_MFCC + 2, 0, 26, 27},
    {MMSPCL__L_MFCC + 3, 0, 28, 29}, {MMSPCL__L_JIT, 1, 30, 31},     {MMSPCL__L_SHIM, 1, 32, 33},
    {MMSPCL__L_HNR, 1, 34, 35},     {MMSPCL__L_H1H2, 1, 36, 37},    {MMSPCL__L_H1A3, 1, 38, 39},
    {MMSPCL__L_FORM, 1, 40, 41},    {MMSPCL__L_FORM + 1, 1, 42, 43}, {MMSPCL__L_FORM + 2, 1, 44, 45},
    {MMSPCL__L_FORM + 3, 1, 46, 47}, {MMSPCL__L_FORM + 4, 1, 48, 49}, {MMSPCL__L_FORM + 5, 1, 50, 51},
    {MMSPCL__L_FORM + 6, 1, 52, 53}, {MMSPCL__L_FORM + 7, 1, 54, 55}, {MMSPCL__L_FORM + 8, 1, 56, 57},
    {MMSPCL__L_ALPHA, 1, 58, 59},   {MMSPCL__L_HAMM, 1, 60, 61},    {MMSPCL__L_SL0, 1, 62, 63},
    {MMSPCL__L_SL1, 1, 64, 65},     {MMSPCL__L_FLUX, 1, 66, 67},    {MMSPCL__L_MFCC, 1, 68, 69},
    {MMSPCL__L_MFCC + 1, 1, 70, 71}, {MMSPCL__L_MFCC + 2, 1, 72, 73}, {MMSPCL__L_MFCC + 3, 1, 74, 75},
    {MMSPCL__L_ALPHA, 2, 76, -1},   {MMSPCL__L_HAMM, 2, 77, -1},    {MMSPCL__L_SL0, 2, 78, -1},
    {MMSPCL__L_SL1, 2, 79, -1},     {MMSPCL__L_FLUX, 2, 80, -1}};
#define MMSPCL__EG_NSTATS ((int)(sizeof mmspcl__eg_stats / sizeof mmspcl__eg_stats[0]))

/* Rising / falling parts of a contour: slopes (units a second) between turning points. */
typedef struct mmspcl__eg_slope {
    double prev, start;
    int64_t prev_t, start_t;
    int have, dir;
    double sum[2], sq[2];
    int64_t n[2];
} mmspcl__eg_slope;

struct mmspcl_egemaps {
    mmspcl_pitch pitch;
    mmspcl_resampler rs11;
    int64_t n_samples, n_frames, done;
    int keep_lld;
    float *x, *y, *ytmp;              /* 16 kHz; 11 kHz pre-emphasised; resampler output */
    int64_t x_base, y_base;
    int x_len, x_cap, y_len, y_cap, ytmp_cap, y_flushed;
    double y_last;                   /* last 11 kHz sample before pre-emphasis */
    float *pend;                     /* decided (F0, strength) of frames not yet analysed */
    int pend_len, pend_cap;
    /* analysis */
    double *ham400, *ham960, *gauss, *bark_w, *mel_w, *dct, bark_el[26], *work, *fr, *re, *im, *P, *prev_mag;
    double *t512c, *t512s, *t1024c, *t1024s;
    int *r512, *r1024, bark_lo[26], bark_n[26], mel_lo[26], mel_n[26], have_prev_mag;
    /* smoothing: raw rows of the last three frames, frame t in slot t % 3 (column 0 in semitones) */
    float raw[3][MMSPCL_EGEMAPS_LLD];
    unsigned char def[3][MMSPCL_EGEMAPS_LLD];
    int rawv[3];
    float *lld;
    int lld_len, lld_cap;
    /* functionals */
    double sum[MMSPCL__EG_NSTATS], sq[MMSPCL__EG_NSTATS];
    int64_t cnt[MMSPCL__EG_NSTATS];
    float *vals[2];                  /* F0 semitones (voiced), loudness (all) */
    int64_t nvals[2], capvals[2];
    mmspcl__eg_slope slope[2];
    double loud_hist[2];
    int64_t peaks, n_smooth;
    int seg_v, seg_len;
    double seg_sum[2], seg_sq[2];
    int64_t seg_n[2];
    double pow_sum;
};

static double mmspcl__eg_x(const mmspcl_egemaps *g, int64_t i) {
    int64_t j = i - g->x_base;
    return j >= 0 && j < g->x_len ? (double)g->x[j] : 0.0;
}
static double mmspcl__eg_y(const mmspcl_egemaps *g, int64_t i) {
    int64_t j = i - g->y_base;
    return j >= 0 && j < g->y_len ? (double)g->y[j] : 0.0;
}
static double mmspcl__db(double p) { return 10.0 * log10(p > 1e-30 ? p : 1e-30); }
static double mmspcl__bark(double f) { return 26.81 * f / (1960.0 + f) - 0.53; }
static double mmspcl__bark_hz(double z) { return 1960.0 * (z + 0.53) / (26.28 - z); }
static double mmspcl__mel_htk(double f) { return 2595.0 * log10(1.0 + f / 700.0); }
static double mmspcl__mel_htk_hz(double m) { return 700.0 * (pow(10.0, m / 2595.0) - 1.0); }

/* 26 triangular bands, edges equally spaced on a scale (scale / inverse), 20 Hz .. 8 kHz, over the 257
   bins of a 512-point spectrum at 16 kHz; the centres' frequencies into fc (may be NULL). */
static void mmspcl__eg_bands(double (*scale)(double), double (*inv)(double), double *w, int *lo, int *n, double *fc) {
    const double a = scale(20.0), b = scale(8000.0), d = (b - a) / 27;
    int m, k;
    for (m = 0; m < 26; m++) {
        double l = a + m * d, c = a + (m + 1) * d, r = a + (m + 2) * d;
        int first = -1, last = -1;
        for (k = 0; k < 257; k++) {
            double z = scale(k * 31.25), v = z <= l || z >= r ? 0 : z <= c ? (z - l) / (c - l) : (r - z) / (r - c);
            w[m * 257 + k] = v;
            if (v > 0) { if (first < 0) first = k; last = k; }
        }
        lo[m] = first < 0 ? 0 : first;
        n[m] = first < 0 ? 0 : last - first + 1;
        if (fc) fc[m] = inv(c);
    }
}

mmspcl_status mmspcl_egemaps_new(mmspcl_egemaps **out, int64_t n_samples, double global_peak, int keep_lld,
                                 mmspcl_error *err) {
    mmspcl_egemaps *g;
    mmspcl_status st;
    double fc[26];
    int i, k;
    if (!out) return mmspcl__fail(err, MMSPCL_ERR_ARG, "egemaps: NULL");
    *out = NULL;
    if (!(g = (mmspcl_egemaps *)MMSPCL_MALLOC(sizeof *g))) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "egemaps: out of memory");
    memset(g, 0, sizeof *g);
    if ((st = mmspcl_pitch_init(&g->pitch, MMSPCL_AUDIO_RATE, n_samples, global_peak, err)) ||
        (st = mmspcl_resampler_init(&g->rs11, MMSPCL_AUDIO_RATE, 11000, err))) {
        mmspcl_egemaps_free(g);
        return st;
    }
    g->n_samples = n_samples;
    g->n_frames = g->pitch.n_frames;
    g->keep_lld = keep_lld;
    g->x_cap = 1 << 16;
    g->y_cap = 1 << 16;
    g->ytmp_cap = (int)mmspcl_resample_bound(&g->rs11, 4096) + 16;
    g->pend_cap = 256;
    g->ham400 = (double *)MMSPCL_MALLOC(sizeof(double) * (400 + 960 + 550 + 2 * 26 * 257 + 4 * 26 + 3 * 2048 + 4 * 1030 + 257));
    g->x = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)g->x_cap);
    g->y = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)g->y_cap);
    g->ytmp = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)g->ytmp_cap);
    g->pend = (float *)MMSPCL_MALLOC(sizeof(float) * 2 * (size_t)g->pend_cap);
    if (!g->ham400 || !g->x || !g->y || !g->ytmp || !g->pend || !mmspcl__fft_tables(512, &g->t512c, &g->t512s, &g->r512) ||
        !mmspcl__fft_tables(1024, &g->t1024c, &g->t1024s, &g->r1024)) {
        mmspcl_egemaps_free(g);
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "egemaps: out of memory");
    }
    g->ham960 = g->ham400 + 400;
    g->gauss = g->ham960 + 960;
    g->bark_w = g->gauss + 550;
    g->mel_w = g->bark_w + 26 * 257;
    g->dct = g->mel_w + 26 * 257;
    g->work = g->dct + 4 * 26;
    g->fr = g->work + 2048;
    g->re = g->fr + 2048;
    g->im = g->re + 1030;
    g->P = g->im + 1030;
    g->prev_mag = g->P + 2060;
    for (i = 0; i < 400; i++) g->ham400[i] = 0.54 - 0.46 * cos(2 * MMSPCL__PI * i / 399);
    for (i = 0; i < 960; i++) g->ham960[i] = 0.54 - 0.46 * cos(2 * MMSPCL__PI * i / 959);
    for (i = 0; i < 550; i++) {   /* Praat's Gaussian window of To Formant (burg) */
        double mid = 0.5 * (550 + 1), edge = exp(-12.0), d = (i + 1) - mid;
        g->gauss[i] = (exp(-48.0 * d * d / (551.0 * 551.0)) - edge) / (1.0 - edge);
    }
    mmspcl__eg_bands(mmspcl__bark, mmspcl__bark_hz, g->bark_w, g->bark_lo, g->bark_n, fc);
    for (i = 0; i < 26; i++) {   /* equal-loudness weight at the band centre (Hermansky 1990) */
        double w2 = (2 * MMSPCL__PI * fc[i]) * (2 * MMSPCL__PI * fc[i]);
        g->bark_el[i] = (w2 + 56.8e6) * w2 * w2 / ((w2 + 6.3e6) * (w2 + 6.3e6) * (w2 + 0.38e9));
    }
    mmspcl__eg_bands(mmspcl__mel_htk, mmspcl__mel_htk_hz, g->mel_w, g->mel_lo, g->mel_n, NULL);
    for (k = 0; k < 4; k++)
        for (i = 0; i < 26; i++) g->dct[k * 26 + i] = sqrt(2.0 / 26) * cos(MMSPCL__PI * (k + 1) * (i + 0.5) / 26) * (1.0 + 11.0 * sin(MMSPCL__PI * (k + 1) / 22.0));
    *out = g;
    return MMSPCL_OK;
}

/* The LLDs every frame has, from the 25 ms frame around sample left + 0.5. */
static void mmspcl__eg_spectral(mmspcl_egemaps *g, int64_t left, float *row) {
    double *fr = g->fr, *P = g->P, pw = 0, wsum = 0, e, lo = 0, hi = 0, m1 = 0, m2 = 0, norm = 0, flux = 0;
    double sx[2] = {0, 0}, sy[2] = {0, 0}, sxx[2] = {0, 0}, sxy[2] = {0, 0};
    int j, k, b, cnt[2] = {0, 0};
    for (j = 0; j < 400; j++) {
        double v = mmspcl__eg_x(g, left - 199 + j);
        pw += v * v;
        fr[j] = v * g->ham400[j];
        wsum += g->ham400[j] * g->ham400[j];
    }
    for (j = 400; j < 512; j++) fr[j] = 0;
    mmspcl__rfft(512, g->t512c, g->t512s, g->r512, fr, g->re, g->im, g->work);
    for (k = 0; k <= 256; k++) P[k] = (g->re[k] * g->re[k] + g->im[k] * g->im[k]) / wsum;
    row[MMSPCL__L_POW] = (float)(pw / 400);
    for (e = 0, b = 0; b < 26; b++) {
        double s = 0;
        for (k = g->bark_lo[b]; k < g->bark_lo[b] + g->bark_n[b]; k++) s += g->bark_w[b * 257 + k] * P[k];
        e += pow(g->bark_el[b] * s, 0.33);
    }
    row[MMSPCL__L_LOUD] = (float)e;
    {
        double lm[26];
        for (b = 0; b < 26; b++) {
            double s = 0;
            for (k = g->mel_lo[b]; k < g->mel_lo[b] + g->mel_n[b]; k++) s += g->mel_w[b * 257 + k] * P[k];
            lm[b] = log(s > 1e-30 ? s : 1e-30);
        }
        for (k = 0; k < 4; k++) {
            double c = 0;
            for (b = 0; b < 26; b++) c += g->dct[k * 26 + b] * lm[b];
            row[MMSPCL__L_MFCC + k] = (float)c;
        }
    }
    for (k = 0; k <= 256; k++) norm += P[k];
    norm = norm > 0 ? 1.0 / sqrt(norm) : 0;
    for (k = 0; k <= 256; k++) {
        double m = sqrt(P[k]) * norm, f = k * 31.25, L;
        if (g->have_prev_mag) flux += (m - g->prev_mag[k]) * (m - g->prev_mag[k]);
        g->prev_mag[k] = m;
        if (f >= 50 && f < 1000) lo += P[k];
        if (f >= 1000 && f < 5000) hi += P[k];
        if (f <= 2000 && P[k] > m1) m1 = P[k];
        if (f > 2000 && f <= 5000 && P[k] > m2) m2 = P[k];
        if (f > 1500) continue;
        L = mmspcl__db(P[k]);
        for (j = 0; j < 2; j++)
            if (j == 0 ? f <= 500 : f >= 500) {
                sx[j] += f; sy[j] += L; sxx[j] += f * f; sxy[j] += f * L; cnt[j]++;
            }
    }
    g->have_prev_mag = 1;
    row[MMSPCL__L_FLUX] = (float)flux;
    row[MMSPCL__L_ALPHA] = (float)(mmspcl__db(lo) - mmspcl__db(hi));
    row[MMSPCL__L_HAMM] = (float)(mmspcl__db(m1) - mmspcl__db(m2));
    for (j = 0; j < 2; j++) {
        double den = cnt[j] * sxx[j] - sx[j] * sx[j];
        row[MMSPCL__L_SL0 + j] = (float)(den > 0 ? (cnt[j] * sxy[j] - sx[j] * sy[j]) / den : 0);
    }
}

/* Periods by waveform matching in the 60 ms around sample left + 0.5: from a peak near the
   centre back to the window's start, then period after period, each the lag in 0.9 .. 1.1 / f0
   that best correlates one period with the next (parabolic refinement); amplitudes are each
   period's peak. As Praat's jitter and shimmer: a period counts when its correlation is at least
   0.5, a pair of periods when their ratio is at most 1.3 (jitter) and the amplitudes' at most 1.6
   (shimmer). jitter (local) = mean |T[j+1] - T[j]| / mean T, shimmer (local, dB) =
   mean |20 log10(A[j+1] / A[j])|. 0 when no pair counts. */
static int mmspcl__eg_jitter(const mmspcl_egemaps *g, int64_t left, double f0, double *jit, double *shim) {
    const double P = MMSPCL_AUDIO_RATE / f0;
    const int L = (int)floor(P + 0.5), lo_lag = (int)floor(0.9 * P), hi_lag = (int)ceil(1.1 * P);
    const int64_t lo = left - 479, hi = left + 480;
    double T[64], A[64], r[520], xs[962], sumT = 0, sumd = 0, sums = 0, mx = 0;
    const double *x = xs - lo;   /* x[i] for i in lo .. hi */
    int ok[64], n = 0, j, k, nd = 0, ns = 0, nt = 0;
    int64_t m = left, i;
    for (i = lo; i <= hi; i++) xs[i - lo] = mmspcl__eg_x(g, i);
    for (i = left - L / 2; i <= left + L / 2; i++)
        if (fabs(x[i]) > mx) { mx = fabs(x[i]); m = i; }
    if (mx == 0 || hi_lag + 2 > 520) return 0;
    while (m - L >= lo) m -= L;
    while (n < 64 && m + L + hi_lag + 1 <= hi) {
        double a = 0, e0 = 0, den, d;
        int bl = lo_lag;
        for (j = lo_lag - 1; j <= hi_lag + 1; j++) r[j] = 2;
        for (k = 0; k < L; k++) {
            double v = x[m + k];
            e0 += v * v;
            if (fabs(v) > a) a = fabs(v);
        }
        {   /* lags around the previous period (the first: around 1 / f0), the search widened while the
               best is at its edge */
            const double *u = x + m;
            const double guess = n > 0 ? T[n - 1] : P;
            int from = (int)floor(guess) - 2, to = (int)ceil(guess) + 2;
            if (from < lo_lag) from = lo_lag;
            if (to > hi_lag) to = hi_lag;
            for (;;) {
                for (j = from - 1; j <= to + 1; j++) {
                    const double *w = u + j;
                    double xy[2] = {0, 0}, e1[2] = {0, 0};
                    if (r[j] == 2) {   /* 2: not computed yet (a correlation is at most 1) */
                        for (k = 0; k + 1 < L; k += 2) {
                            xy[0] += u[k] * w[k];
                            xy[1] += u[k + 1] * w[k + 1];
                            e1[0] += w[k] * w[k];
                            e1[1] += w[k + 1] * w[k + 1];
                        }
                        if (k < L) { xy[0] += u[k] * w[k]; e1[0] += w[k] * w[k]; }
                        xy[0] += xy[1];
                        e1[0] += e1[1];
                        r[j] = e0 > 0 && e1[0] > 0 ? xy[0] / sqrt(e0 * e1[0]) : 0;
                    }
                }
                bl = from;
                for (j = from; j <= to; j++) if (r[j] > r[bl]) bl = j;
                if (bl == from && from > lo_lag) { from = from - 3 < lo_lag ? lo_lag : from - 3; continue; }
                if (bl == to && to < hi_lag) { to = to + 3 > hi_lag ? hi_lag : to + 3; continue; }
                break;
            }
        }
        den = r[bl - 1] - 2 * r[bl] + r[bl + 1];
        d = den < 0 ? 0.5 * (r[bl - 1] - r[bl + 1]) / den : 0;
        T[n] = bl + (d > 0.5 ? 0.5 : d < -0.5 ? -0.5 : d);
        A[n] = a;
        ok[n] = r[bl] >= 0.5;
        n++;
        m += bl;
    }
    for (j = 0; j < n; j++) if (ok[j]) { sumT += T[j]; nt++; }
    for (j = 0; j + 1 < n; j++) {
        double rt = T[j + 1] > T[j] ? T[j + 1] / T[j] : T[j] / T[j + 1];
        double ra = A[j + 1] > A[j] ? A[j + 1] / A[j] : A[j] / A[j + 1];
        if (!ok[j] || !ok[j + 1]) continue;
        if (rt <= 1.3) { sumd += fabs(T[j + 1] - T[j]); nd++; }
        if (A[j] > 0 && A[j + 1] > 0 && ra <= 1.6) { sums += 20.0 * log10(ra); ns++; }
    }
    if (!nd || !ns) return 0;
    *jit = (sumd / nd) / (sumT / nt);
    *shim = sums / ns;
    return 1;
}

/* Burg's method: a[0..m] (a[0] = 1) of the predictor x[t] + sum a[i] x[t-i] = e[t]. The forward and
   backward errors of order k live in f[j], b[j - 1] (j > k); work: 4 n doubles. */
static int mmspcl__burg(const double *x, int n, int m, double *a, double *work) {
    double *f = work, *b = work + n, *nf = work + 2 * n, *nb = work + 3 * n, *t;
    int k, i, j;
    for (j = 0; j < n; j++) f[j] = b[j] = x[j];
    for (i = 0; i <= m; i++) a[i] = 0;
    a[0] = 1;
    for (k = 0; k < m; k++) {
        double num[2] = {0, 0}, den[2] = {0, 0}, mu;
        for (j = k + 1; j + 1 < n; j += 2) {   /* two partial sums: no single chain of additions */
            num[0] += f[j] * b[j - 1];
            num[1] += f[j + 1] * b[j];
            den[0] += f[j] * f[j] + b[j - 1] * b[j - 1];
            den[1] += f[j + 1] * f[j + 1] + b[j] * b[j];
        }
        if (j < n) { num[0] += f[j] * b[j - 1]; den[0] += f[j] * f[j] + b[j - 1] * b[j - 1]; }
        num[0] += num[1];
        den[0] += den[1];
        if (!(den[0] > 0)) return 0;
        mu = -2 * num[0] / den[0];
        for (i = 0; i <= (k + 1) / 2; i++) {
            double t1 = a[i] + mu * a[k + 1 - i], t2 = a[k + 1 - i] + mu * a[i];
            a[i] = t1;
            a[k + 1 - i] = t2;
        }
        for (j = k + 1; j < n; j++) {   /* the next order's errors, into the other pair of arrays */
            nf[j] = f[j] + mu * b[j - 1];
            nb[j] = b[j - 1] + mu * f[j];
        }
        t = f; f = nf; nf = t;
        t = b; b = nb; nb = t;
    }
    return 1;
}

/* The roots of z^m + c[1] z^(m-1) + ... + c[m] (Durand-Kerner, then Newton), reflected into the unit circle. */
static void mmspcl__poly_roots(const double *c, int m, double *zr, double *zi) {
    int it, i, j, k;
    for (i = 0; i < m; i++) {   /* (0.4 + 0.9i)^i */
        double r = pow(0.985, i), t = 1.15 * i + 0.3;
        zr[i] = r * cos(t);
        zi[i] = r * sin(t);
    }
    for (it = 0; it < 500; it++) {
        double change = 0;
        for (i = 0; i < m; i++) {
            double pr = 1, pi = 0, qr = 1, qi = 0, t, den, dr, di;
            for (k = 1; k <= m; k++) {   /* p(z) by Horner */
                t = pr * zr[i] - pi * zi[i] + c[k];
                pi = pr * zi[i] + pi * zr[i];
                pr = t;
            }
            for (j = 0; j < m; j++) if (j != i) {
                double ar = zr[i] - zr[j], ai = zi[i] - zi[j];
                t = qr * ar - qi * ai;
                qi = qr * ai + qi * ar;
                qr = t;
            }
            den = qr * qr + qi * qi;
            if (den == 0) { zr[i] += 1e-8; continue; }
            dr = (pr * qr + pi * qi) / den;
            di = (pi * qr - pr * qi) / den;
            zr[i] -= dr;
            zi[i] -= di;
            change += fabs(dr) + fabs(di);
        }
        if (change < 1e-13) break;
    }
    for (i = 0; i < m; i++) {
        double a2 = zr[i] * zr[i] + zi[i] * zi[i];
        if (a2 > 1) { zr[i] /= a2; zi[i] = zi[i] / a2; }   /* 1 / conj(z) */
    }
}

/* F1..F3 and their bandwidths at the 11 kHz sample left11 + 0.5 (Praat's To Formant (burg):
   50 ms Gaussian window, 10 poles, formants in 50 .. 5450 Hz); returns how many (<= 3). */
static int mmspcl__eg_formants(mmspcl_egemaps *g, int64_t left11, double *F, double *B) {
    double x[550], w[4 * 550], a[11], zr[10], zi[10], ff[10], bb[10], mx = 0;
    int j, n = 0, i, k;
    for (j = 0; j < 550; j++) {
        double v = mmspcl__eg_y(g, left11 - 274 + j);
        if (fabs(v) > mx) mx = fabs(v);
        x[j] = v * g->gauss[j];
    }
    if (mx == 0 || !mmspcl__burg(x, 550, 10, a, w)) return 0;
    mmspcl__poly_roots(a, 10, zr, zi);
    for (i = 0; i < 10; i++) {
        double f, b;
        if (zi[i] < 0) continue;
        f = fabs(atan2(zi[i], zr[i])) * 5500.0 / MMSPCL__PI;
        b = -log(zr[i] * zr[i] + zi[i] * zi[i]) * 5500.0 / MMSPCL__PI;
        if (!(f >= 50 && f <= 5450 && b == b)) continue;
        for (k = n; k > 0 && ff[k - 1] > f; k--) { ff[k] = ff[k - 1]; bb[k] = bb[k - 1]; }
        ff[k] = f;
        bb[k] = b;
        n++;
    }
    for (k = 0; k < n && k < 3; k++) { F[k] = ff[k]; B[k] = bb[k]; }
    return n < 3 ? n : 3;
}

/* The level (dB) of harmonic h of f0: the strongest of the 513 bins of P (15.625 Hz) from
   (h - 0.1) f0 to (h + 0.1) f0, widened to the bins on either side. */
static double mmspcl__eg_harm(const double *P, double f0, int h) {
    int k0 = (int)floor((h - 0.1) * f0 / 15.625), k1 = (int)ceil((h + 0.1) * f0 / 15.625), k;
    double mx = 0;
    if (k0 < 0) k0 = 0;
    if (k1 > 512) k1 = 512;
    for (k = k0; k <= k1; k++)
        if (P[k] > mx) mx = P[k];
    return mmspcl__db(mx);
}

/* The voiced-only LLDs of a frame with F0 f0 and autocorrelation strength r; def[col] = 1 where defined. */
static void mmspcl__eg_voiced(mmspcl_egemaps *g, int64_t left, int64_t left11, double f0, double r, float *row,
                              unsigned char *def) {
    double *fr = g->fr, *P = g->P, jit, shim, F[3], B[3], h1, H[3];
    int j, k, nf;
    row[MMSPCL__L_F0] = (float)f0;
    def[MMSPCL__L_F0] = 1;
    r = r < 1e-6 ? 1e-6 : r > 1 - 1e-6 ? 1 - 1e-6 : r;   /* -60 .. 60 dB */
    row[MMSPCL__L_HNR] = (float)(10 * log10(r / (1 - r)));
    def[MMSPCL__L_HNR] = 1;
    if (mmspcl__eg_jitter(g, left, f0, &jit, &shim)) {
        row[MMSPCL__L_JIT] = (float)jit;
        row[MMSPCL__L_SHIM] = (float)shim;
        def[MMSPCL__L_JIT] = def[MMSPCL__L_SHIM] = 1;
    }
    nf = mmspcl__eg_formants(g, left11, F, B);
    /* harmonic amplitudes from a 60 ms Hamming frame, 1024-point spectrum (15.6 Hz bins) */
    for (j = 0; j < 960; j++) fr[j] = mmspcl__eg_x(g, left - 479 + j) * g->ham960[j];
    for (j = 960; j < 1024; j++) fr[j] = 0;
    mmspcl__rfft(1024, g->t1024c, g->t1024s, g->r1024, fr, g->re, g->im, g->work);
    for (k = 0; k <= 512; k++) P[k] = g->re[k] * g->re[k] + g->im[k] * g->im[k];
    h1 = mmspcl__eg_harm(P, f0, 1);
    H[0] = mmspcl__eg_harm(P, f0, 2);
    row[MMSPCL__L_H1H2] = (float)(h1 - H[0]);
    def[MMSPCL__L_H1H2] = 1;
    for (k = 0; k < nf; k++) {
        int h = (int)floor(F[k] / f0 + 0.5);
        if (h < 1) h = 1;
        H[k] = mmspcl__eg_harm(P, f0, h);
        row[MMSPCL__L_FORM + 3 * k] = (float)F[k];
        row[MMSPCL__L_FORM + 3 * k + 1] = (float)B[k];
        row[MMSPCL__L_FORM + 3 * k + 2] = (float)(H[k] - h1);
        def[MMSPCL__L_FORM + 3 * k] = def[MMSPCL__L_FORM + 3 * k + 1] = def[MMSPCL__L_FORM + 3 * k + 2] = 1;
    }
    if (nf == 3) {   /* A3: the strongest harmonic within F3 +- B3 / 2 (the nearest one at least) */
        double a3 = H[2], q0 = ceil((F[2] - 0.5 * B[2]) / f0), q1 = floor((F[2] + 0.5 * B[2]) / f0);
        int h, h0 = q0 > 1 ? (q0 < 100 ? (int)q0 : 100) : 1, h1n = q1 > 0 ? (q1 < 100 ? (int)q1 : 100) : 0;
        for (h = h0; h <= h1n; h++) {
            double v = mmspcl__eg_harm(P, f0, h);
            if (v > a3) a3 = v;
        }
        row[MMSPCL__L_H1A3] = (float)(h1 - a3);
        def[MMSPCL__L_H1A3] = 1;
    }
}

static void mmspcl__eg_slope_close(mmspcl__eg_slope *s) {
    if (s->have && s->dir != 0 && s->prev_t > s->start_t) {
        double v = fabs(s->prev - s->start) / ((double)(s->prev_t - s->start_t) * 0.01);
        int k = s->dir > 0 ? 0 : 1;
        s->sum[k] += v;
        s->sq[k] += v * v;
        s->n[k]++;
    }
    s->dir = 0;
}

/* The next value of a contour at frame t (a gap since the last value ends the part). */
static void mmspcl__eg_slope_add(mmspcl__eg_slope *s, double v, int64_t t) {
    int dir;
    if (!s->have || t != s->prev_t + 1) {
        mmspcl__eg_slope_close(s);
        s->have = 1;
        s->prev = s->start = v;
        s->prev_t = s->start_t = t;
        return;
    }
    dir = v > s->prev ? 1 : v < s->prev ? -1 : 0;
    if (dir != s->dir) {
        mmspcl__eg_slope_close(s);
        s->dir = dir;
        s->start = s->prev;
        s->start_t = s->prev_t;
    }
    s->prev = v;
    s->prev_t = t;
}

static int mmspcl__eg_keep(mmspcl_egemaps *g, int which, double v) {
    if (g->nvals[which] == g->capvals[which]) {
        int64_t cap = g->capvals[which] ? 2 * g->capvals[which] : 1024;
        float *p = (float *)MMSPCL_REALLOC(g->vals[which], sizeof(float) * (size_t)cap);
        if (!p) return 0;
        g->vals[which] = p;
        g->capvals[which] = cap;
    }
    g->vals[which][g->nvals[which]++] = (float)v;
    return 1;
}

/* Smooths frame t (ring slot t % 3; its neighbours when has_prev / has_next) over three frames
   (sma3: every frame for the all-frame LLDs, frames of the same voicing where defined for the
   others) and adds it to the functionals. */
static int mmspcl__eg_smooth(mmspcl_egemaps *g, int64_t t, int has_prev, int has_next) {
    double all[MMSPCL_EGEMAPS_LLD], cls[MMSPCL_EGEMAPS_LLD];
    unsigned char cdef[MMSPCL_EGEMAPS_LLD];
    const int me = (int)(t % 3), v = g->rawv[me];
    int slots[3], ns = 0, c, s, i;
    if (has_prev) slots[ns++] = (int)((t + 2) % 3);
    slots[ns++] = me;
    if (has_next) slots[ns++] = (int)((t + 1) % 3);
    for (c = 0; c < MMSPCL_EGEMAPS_LLD; c++) {
        double sa = 0, sc = 0;
        int nc = 0;
        for (s = 0; s < ns; s++) {
            const int k = slots[s];
            sa += g->raw[k][c];
            if (g->def[k][c] && g->rawv[k] == v) { sc += g->raw[k][c]; nc++; }
        }
        all[c] = sa / ns;
        cdef[c] = g->def[me][c] && nc > 0;
        cls[c] = nc ? sc / nc : 0;
    }
    for (i = 0; i < MMSPCL__EG_NSTATS; i++) {
        const int col = mmspcl__eg_stats[i][0], cl = mmspcl__eg_stats[i][1];
        double x;
        if (cl == MMSPCL__EG_ALL) x = all[col];
        else if (cdef[col] && (cl == MMSPCL__EG_V) == (v == 1)) x = cls[col];
        else continue;
        g->sum[i] += x;
        g->sq[i] += x * x;
        g->cnt[i]++;
    }
    if (v && cdef[MMSPCL__L_F0]) {
        if (!mmspcl__eg_keep(g, 0, cls[MMSPCL__L_F0])) return 0;
        mmspcl__eg_slope_add(&g->slope[0], cls[MMSPCL__L_F0], t);
    }
    if (!mmspcl__eg_keep(g, 1, all[MMSPCL__L_LOUD])) return 0;
    mmspcl__eg_slope_add(&g->slope[1], all[MMSPCL__L_LOUD], t);
    /* loudness peaks: the previous smoothed value above its predecessor and not below this one */
    if (g->n_smooth >= 2 && g->loud_hist[1] > g->loud_hist[0] && g->loud_hist[1] >= all[MMSPCL__L_LOUD]) g->peaks++;
    g->loud_hist[0] = g->loud_hist[1];
    g->loud_hist[1] = all[MMSPCL__L_LOUD];
    g->n_smooth++;
    /* voiced / unvoiced segments */
    if (t > 0 && v != g->seg_v) {
        double len = g->seg_len * 0.01;
        g->seg_sum[g->seg_v] += len;
        g->seg_sq[g->seg_v] += len * len;
        g->seg_n[g->seg_v]++;
        g->seg_len = 0;
    }
    g->seg_v = v;
    g->seg_len++;
    g->pow_sum += g->raw[me][MMSPCL__L_POW];
    return 1;
}

/* One decided frame: its LLDs, queued for take_lld; the frame before it smoothed and counted. */
static int mmspcl__eg_frame(mmspcl_egemaps *g, double f0, double strength) {
    const double t = mmspcl_pitch_time(&g->pitch, g->done);
    const int64_t left = (int64_t)floor((t - 0.5 / MMSPCL_AUDIO_RATE) * MMSPCL_AUDIO_RATE);
    const int64_t left11 = (int64_t)floor((t - 0.5 / MMSPCL_AUDIO_RATE) * 11000.0);
    const int slot = (int)(g->done % 3);
    float *row = g->raw[slot];
    unsigned char *d = g->def[slot];
    int c;
    memset(row, 0, sizeof g->raw[0]);
    for (c = 0; c < MMSPCL_EGEMAPS_LLD; c++) d[c] = c == MMSPCL__L_F0 || (c >= MMSPCL__L_JIT && c <= MMSPCL__L_FORM + 8) ? 0 : 1;
    mmspcl__eg_spectral(g, left, row);
    if (f0 > 0) mmspcl__eg_voiced(g, left, left11, f0, strength, row, d);
    if (g->keep_lld) {
        if (g->lld_len == g->lld_cap) {
            int cap = g->lld_cap ? 2 * g->lld_cap : 256;
            float *p = (float *)MMSPCL_REALLOC(g->lld, sizeof(float) * MMSPCL_EGEMAPS_LLD * (size_t)cap);
            if (!p) return 0;
            g->lld = p;
            g->lld_cap = cap;
        }
        memcpy(g->lld + (size_t)g->lld_len * MMSPCL_EGEMAPS_LLD, row, sizeof g->raw[0]);
        g->lld_len++;
    }
    if (f0 > 0) row[MMSPCL__L_F0] = (float)(12.0 * log2(f0 / 27.5));   /* semitones from here on */
    g->rawv[slot] = f0 > 0;
    g->done++;
    return g->done < 2 || mmspcl__eg_smooth(g, g->done - 2, g->done - 2 > 0, 1);
}

/* Appends n samples to a buffer [base, base + len) after dropping those before keep. */
static int mmspcl__eg_append(float **buf, int64_t *base, int *len, int *cap, int64_t keep, const float *x, int n) {
    int64_t drop = keep - *base;
    if (drop > *len) drop = *len;
    if (drop > 0) {
        memmove(*buf, *buf + drop, sizeof(float) * (size_t)(*len - drop));
        *len -= (int)drop;
        *base += drop;
    }
    if ((int64_t)*len + n > *cap) {
        int64_t c = 2 * ((int64_t)*len + n);
        float *p;
        if (c > INT32_MAX || !(p = (float *)MMSPCL_REALLOC(*buf, sizeof(float) * (size_t)c))) return 0;
        *buf = p;
        *cap = (int)c;
    }
    if (n > 0) memcpy(*buf + *len, x, sizeof(float) * (size_t)n);
    *len += n;
    return 1;
}

/* The first 16 kHz and 11 kHz samples frame `frame` needs. */
static void mmspcl__eg_needs(const mmspcl_egemaps *g, int64_t frame, int64_t *x0, int64_t *x1, int64_t *y0, int64_t *y1) {
    const double t = mmspcl_pitch_time(&g->pitch, frame);
    const int64_t left = (int64_t)floor((t - 0.5 / MMSPCL_AUDIO_RATE) * MMSPCL_AUDIO_RATE);
    const int64_t left11 = (int64_t)floor((t - 0.5 / MMSPCL_AUDIO_RATE) * 11000.0);
    *x0 = left - 481;
    *x1 = left + 481;
    *y0 = left11 - 276;
    *y1 = left11 + 276;
}

/* Decided frames whose samples have come (all of them when flushing). */
static mmspcl_status mmspcl__eg_run(mmspcl_egemaps *g, int flush, mmspcl_error *err) {
    int got, i = 0;
    float f0[64], str[64];
    while ((got = mmspcl_pitch_take(&g->pitch, f0, str, 64)) > 0) {
        if (g->pend_len + got > g->pend_cap) {
            float *p = (float *)MMSPCL_REALLOC(g->pend, sizeof(float) * 2 * (size_t)(g->pend_cap * 2 + got));
            if (!p) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "egemaps: out of memory");
            g->pend = p;
            g->pend_cap = g->pend_cap * 2 + got;
        }
        for (i = 0; i < got; i++) {
            g->pend[2 * (g->pend_len + i)] = f0[i];
            g->pend[2 * (g->pend_len + i) + 1] = str[i];
        }
        g->pend_len += got;
    }
    for (i = 0; i < g->pend_len; i++) {
        int64_t x0, x1, y0, y1;
        mmspcl__eg_needs(g, g->done, &x0, &x1, &y0, &y1);
        if (!flush && (x1 >= g->x_base + g->x_len || y1 >= g->y_base + g->y_len)) break;
        if (!mmspcl__eg_frame(g, g->pend[2 * i], g->pend[2 * i + 1])) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "egemaps: out of memory");
    }
    memmove(g->pend, g->pend + 2 * i, sizeof(float) * 2 * (size_t)(g->pend_len - i));
    g->pend_len -= i;
    return MMSPCL_OK;
}

/* 11 kHz samples from the resampler, pre-emphasised (x[i] - exp(-2 pi 50 / 11000) x[i-1]). */
static mmspcl_status mmspcl__eg_y_add(mmspcl_egemaps *g, const float *x, int n, int last, mmspcl_error *err) {
    const double a = exp(-2 * MMSPCL__PI * 50.0 / 11000.0);
    int64_t x0, x1, y0, y1;
    mmspcl_status st;
    int got, i;
    if ((st = mmspcl_resample(&g->rs11, x, n, last, g->ytmp, g->ytmp_cap, &got, err))) return st;
    for (i = 0; i < got; i++) {
        double v = g->ytmp[i];
        g->ytmp[i] = (float)(v - a * g->y_last);
        g->y_last = v;
    }
    mmspcl__eg_needs(g, g->done, &x0, &x1, &y0, &y1);
    if (!mmspcl__eg_append(&g->y, &g->y_base, &g->y_len, &g->y_cap, y0, g->ytmp, got))
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "egemaps: out of memory");
    return MMSPCL_OK;
}

mmspcl_status mmspcl_egemaps_push(mmspcl_egemaps *g, const float *x, int n, mmspcl_error *err) {
    mmspcl_status st;
    if (!g || n < 0 || (n > 0 && !x)) return mmspcl__fail(err, MMSPCL_ERR_ARG, "egemaps: bad arguments");
    while (n > 0) {
        const int step = n < 4096 ? n : 4096;
        int64_t x0, x1, y0, y1;
        if ((st = mmspcl_pitch_push(&g->pitch, x, step, err))) return st;
        mmspcl__eg_needs(g, g->done, &x0, &x1, &y0, &y1);
        if (!mmspcl__eg_append(&g->x, &g->x_base, &g->x_len, &g->x_cap, x0, x, step))
            return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "egemaps: out of memory");
        if ((st = mmspcl__eg_y_add(g, x, step, 0, err)) || (st = mmspcl__eg_run(g, 0, err))) return st;
        x += step;
        n -= step;
    }
    return MMSPCL_OK;
}

static double mmspcl__eg_pctl(const float *v, int64_t n, double p) {
    double pos = p * (double)(n - 1), w;
    int64_t i;
    if (n <= 0) return 0;
    i = (int64_t)pos;
    w = pos - (double)i;
    return i + 1 < n ? v[i] * (1 - w) + v[i + 1] * w : v[i];
}

static int mmspcl__eg_cmp(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static void mmspcl__eg_meansd(double sum, double sq, int64_t n, float *mean, float *sd) {
    double m = n ? sum / (double)n : 0, v = n ? sq / (double)n - m * m : 0;
    *mean = (float)m;
    *sd = (float)(v > 0 ? sqrt(v) : 0);
}

mmspcl_status mmspcl_egemaps_finish(mmspcl_egemaps *g, float *out, mmspcl_error *err) {
    const double dur = g ? (double)g->n_samples / MMSPCL_AUDIO_RATE : 0;
    mmspcl_status st;
    int i, k;
    if (!g || !out) return mmspcl__fail(err, MMSPCL_ERR_ARG, "egemaps: bad arguments");
    if ((st = mmspcl_pitch_finish(&g->pitch, err)) || (!g->y_flushed && (st = mmspcl__eg_y_add(g, NULL, 0, 1, err))) ||
        (st = mmspcl__eg_run(g, 1, err)))
        return st;
    g->y_flushed = 1;
    if (g->done >= 1 && !mmspcl__eg_smooth(g, g->done - 1, g->done - 1 > 0, 0)) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "egemaps: out of memory");
    g->done = -g->done - 1;   /* finished: no second smoothing of the last frame */
    memset(out, 0, sizeof(float) * MMSPCL_EGEMAPS_N);
    for (i = 0; i < MMSPCL__EG_NSTATS; i++) {
        float m, sd;
        mmspcl__eg_meansd(g->sum[i], g->sq[i], g->cnt[i], &m, &sd);
        out[(int)mmspcl__eg_stats[i][2]] = m;
        if (mmspcl__eg_stats[i][3] >= 0) out[(int)mmspcl__eg_stats[i][3]] = m != 0 ? sd / fabsf(m) : 0;
    }
    for (k = 0; k < 2; k++) {   /* percentiles and slopes: F0 (0..9), loudness (10..19) */
        const int o = 10 * k;
        float *v = g->vals[k];
        int64_t n = g->nvals[k];
        if (n > 0) qsort(v, (size_t)n, sizeof(float), mmspcl__eg_cmp);
        out[o + 2] = (float)mmspcl__eg_pctl(v, n, 0.2);
        out[o + 3] = (float)mmspcl__eg_pctl(v, n, 0.5);
        out[o + 4] = (float)mmspcl__eg_pctl(v, n, 0.8);
        out[o + 5] = out[o + 4] - out[o + 2];
        mmspcl__eg_slope_close(&g->slope[k]);
        mmspcl__eg_meansd(g->slope[k].sum[0], g->slope[k].sq[0], g->slope[k].n[0], &out[o + 6], &out[o + 7]);
        mmspcl__eg_meansd(g->slope[k].sum[1], g->slope[k].sq[1], g->slope[k].n[1], &out[o + 8], &out[o + 9]);
    }
    if (g->seg_len > 0) {
        double len = g->seg_len * 0.01;
        g->seg_sum[g->seg_v] += len;
        g->seg_sq[g->seg_v] += len * len;
        g->seg_n[g->seg_v]++;
        g->seg_len = 0;
    }
    out[81] = dur > 0 ? (float)(g->peaks / dur) : 0;
    out[82] = dur > 0 ? (float)(g->seg_n[1] / dur) : 0;
    mmspcl__eg_meansd(g->seg_sum[1], g->seg_sq[1], g->seg_n[1], &out[83], &out[84]);
    mmspcl__eg_meansd(g->seg_sum[0], g->seg_sq[0], g->seg_n[0], &out[85], &out[86]);
    out[87] = (float)mmspcl__db(g->n_smooth ? g->pow_sum / (double)g->n_smooth : 0);
    return MMSPCL_OK;
}

int mmspcl_egemaps_take_lld(mmspcl_egemaps *g, float *rows, int cap) {
    int n;
    if (!g || !rows || cap <= 0) return 0;
    n = g->lld_len < cap ? g->lld_len : cap;
    memcpy(rows, g->lld, sizeof(float) * MMSPCL_EGEMAPS_LLD * (size_t)n);
    memmove(g->lld, g->lld + (size_t)n * MMSPCL_EGEMAPS_LLD, sizeof(float) * MMSPCL_EGEMAPS_LLD * (size_t)(g->lld_len - n));
    g->lld_len -= n;
    return n;
}

void mmspcl_egemaps_free(mmspcl_egemaps *g) {
    if (!g) return;
    mmspcl_pitch_free(&g->pitch);
    mmspcl_resampler_free(&g->rs11);
    MMSPCL_FREE(g->x);
    MMSPCL_FREE(g->y);
    MMSPCL_FREE(g->ytmp);
    MMSPCL_FREE(g->pend);
    MMSPCL_FREE(g->ham400);
    MMSPCL_FREE(g->t512c);
    MMSPCL_FREE(g->t512s);
    MMSPCL_FREE(g->r512);
    MMSPCL_FREE(g->t1024c);
    MMSPCL_FREE(g->t1024s);
    MMSPCL_FREE(g->r1024);
    MMSPCL_FREE(g->lld);
    MMSPCL_FREE(g->vals[0]);
    MMSPCL_FREE(g->vals[1]);
    MMSPCL_FREE(g);
}

mmspcl_status mmspcl_egemaps_compute(const float *x, int64_t n, float *out, mmspcl_error *err) {
    mmspcl_egemaps *g;
    mmspcl_audio_peak pk;
    mmspcl_status st;
    memset(&pk, 0, sizeof pk);
    mmspcl_audio_peak_add(&pk, x, n);
    if ((st = mmspcl_egemaps_new(&g, n, mmspcl_audio_peak_value(&pk), 0, err))) return st;
    while (!st && n > 0) {
        int step = n > (1 << 20) ? 1 << 20 : (int)n;
        st = mmspcl_egemaps_push(g, x, step, err);
        x += step;
        n -= step;
    }
    if (!st) st = mmspcl_egemaps_finish(g, out, err);
    mmspcl_egemaps_free(g);
    return st;
}

/* ---- 14.6 Encoding a WAV stream ---------------------------------------------------------- */
int mmspcl_audio_dim(int feature) {
    switch (feature) {
    case MMSPCL_FBANK: return 80;
    case MMSPCL_MFCC: return 13;
    case MMSPCL_F0: return 1;
    case MMSPCL_EGEMAPS: return MMSPCL_EGEMAPS_N;
    default: return 0;
    }
}

typedef struct mmspcl__enc {
    int feature;
    mmspcl_fbank fb;
    mmspcl_pitch pt;
    mmspcl_egemaps *eg;
    float *rows;
    int cap;
    mmspcl_audio_rows_fn fn;
    void *user;
} mmspcl__enc;

/* 16 kHz samples x[0..n) into the feature; rows out to the callback. */
static mmspcl_status mmspcl__enc_feed(mmspcl__enc *e, const float *x, int n, mmspcl_error *err) {
    mmspcl_status st = MMSPCL_OK;
    int got;
    if (e->feature == MMSPCL_FBANK || e->feature == MMSPCL_MFCC) {
        while (!st && n > 0) {
            int step = n < 4096 ? n : 4096;
            if (!(st = mmspcl_fbank_push(&e->fb, x, step, e->rows, e->cap, &got, err)) && got > 0)
                st = e->fn(e->user, e->rows, got, e->fb.dim, err);
            x += step;
            n -= step;
        }
        return st;
    }
    if (e->feature == MMSPCL_EGEMAPS) return mmspcl_egemaps_push(e->eg, x, n, err);
    if ((st = mmspcl_pitch_push(&e->pt, x, n, err))) return st;
    while (!st && (got = mmspcl_pitch_take(&e->pt, e->rows, NULL, e->cap)) > 0) st = e->fn(e->user, e->rows, got, 1, err);
    return st;
}

/* The peak for F0: a pass over the rest of the file when it can be read again, else 0 (running). */
static mmspcl_status mmspcl__enc_peak(mmspcl_wav_reader *r, float *block, double *peak, mmspcl_error *err) {
    mmspcl_audio_peak pk;
    int64_t start = r->frames_read;
    mmspcl_status st;
    int got;
    *peak = 0;
    if (!r->seekable) return MMSPCL_OK;
    memset(&pk, 0, sizeof pk);
    while (!(st = mmspcl_wav_read(r, block, 4096, &got, err)) && got > 0) mmspcl_audio_peak_add(&pk, block, got);
    if (st || (st = mmspcl_wav_rewind(r, err))) return st;
    while (!st && r->frames_read < start)
        if (!(st = mmspcl_wav_read(r, block, (int)(start - r->frames_read < 4096 ? start - r->frames_read : 4096), &got, err)) && got == 0) break;
    *peak = mmspcl_audio_peak_value(&pk);
    return st;
}

mmspcl_status mmspcl_audio_encode(mmspcl_wav_reader *r, int feature, mmspcl_audio_rows_fn fn, void *user, mmspcl_error *err) {
    mmspcl__enc e;
    mmspcl_resampler rs;
    float *block = NULL, *x16 = NULL;
    int64_t n16;
    double peak = 0;
    int got, n_out, cap16;
    mmspcl_status st;
    if (!r || !fn || !mmspcl_audio_dim(feature) || (!r->mem && !r->file)) return mmspcl__fail(err, MMSPCL_ERR_ARG, "audio_encode: bad arguments");
    memset(&e, 0, sizeof e);
    e.feature = feature;
    e.fn = fn;
    e.user = user;
    n16 = mmspcl_resample_count(r->info.sample_rate, MMSPCL_AUDIO_RATE, r->info.frames - r->frames_read);
    if ((st = mmspcl_resampler_init(&rs, r->info.sample_rate, MMSPCL_AUDIO_RATE, err))) return st;
    cap16 = (int)mmspcl_resample_bound(&rs, 4096) + 8;
    block = (float *)MMSPCL_MALLOC(sizeof(float) * 4096);
    x16 = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)cap16);
    e.cap = 4096 / 160 + 2;
    e.rows = (float *)MMSPCL_MALLOC(sizeof(float) * 88 * (size_t)e.cap);
    if (!block || !x16 || !e.rows) { st = mmspcl__fail(err, MMSPCL_ERR_NOMEM, "audio_encode: out of memory"); goto done; }
    if (feature == MMSPCL_F0 || feature == MMSPCL_EGEMAPS)
        if ((st = mmspcl__enc_peak(r, block, &peak, err))) goto done;
    if (feature == MMSPCL_FBANK || feature == MMSPCL_MFCC) st = mmspcl_fbank_init(&e.fb, feature, MMSPCL_AUDIO_RATE, err);
    else if (feature == MMSPCL_F0) st = mmspcl_pitch_init(&e.pt, MMSPCL_AUDIO_RATE, n16, peak, err);
    else st = mmspcl_egemaps_new(&e.eg, n16, peak, 0, err);
    if (st) goto done;
    for (;;) {
        int last;
        if ((st = mmspcl_wav_read(r, block, 4096, &got, err))) goto done;
        last = r->frames_read >= r->info.frames;
        if ((st = mmspcl_resample(&rs, block, got, last, x16, cap16, &n_out, err)) || (st = mmspcl__enc_feed(&e, x16, n_out, err))) goto done;
        if (last) break;
    }
    if (feature == MMSPCL_F0) {
        if (!(st = mmspcl_pitch_finish(&e.pt, err)))
            while (!st && (got = mmspcl_pitch_take(&e.pt, e.rows, NULL, e.cap)) > 0) st = fn(user, e.rows, got, 1, err);
    } else if (feature == MMSPCL_EGEMAPS) {
        if (!(st = mmspcl_egemaps_finish(e.eg, e.rows, err))) st = fn(user, e.rows, 1, MMSPCL_EGEMAPS_N, err);
    }
done:
    mmspcl_resampler_free(&rs);
    mmspcl_fbank_free(&e.fb);
    mmspcl_pitch_free(&e.pt);
    mmspcl_egemaps_free(e.eg);
    MMSPCL_FREE(block);
    MMSPCL_FREE(x16);
    MMSPCL_FREE(e.rows);
    return st;
}


/* ---------------------------------------------------------------------------------------------
   15. Threads
   One pool per process, started on the first call that can use it, grown when asked for more
   threads. A call (the "owner") posts a job: n items, a function, its context. Items are
   claimed one at a time from one atomic word (job number << 32 | next item), by the owner and
   by every worker that is awake, so a thread that gets no CPU claims nothing, and the owner
   waits only for the items already claimed. Waiting: a bounded spin on the job counter (about
   the gap between two kernels of one forward), then sleeping on a condition variable, so an
   idle or descheduled thread never holds a core another process (or our own late thread) needs.
   A call made while another owns the pool (another user thread, a kernel called from a task)
   runs its items on its own thread. Workers of the default count run at idle priority
   (mmspcl__pool_idle_priority). The job's fields are written between two stores of the
   word (a seqlock: a worker that read another job's fields fails its claim), so a worker that
   wakes late never runs a finished job.
   ------------------------------------------------------------------------------------------ */
static int mmspcl__cores(void);
static int mmspcl__env_count(void);

#ifdef MMSPCL__POOL
#ifndef MMSPCL_SPIN
#define MMSPCL_SPIN 4000   /* pause instructions a waiting thread spins before it sleeps */
#endif
#define MMSPCL__POOL_MAX 256

typedef struct mmspcl__pool {
    pthread_mutex_t mu;
    pthread_cond_t wake, done_cv;
    pthread_t th[MMSPCL__POOL_MAX];
    unsigned start_seq[MMSPCL__POOL_MAX];
    int started, team, owned;
    int polite;                /* 1: the count is the default, so workers start at idle priority */
    int started_polite;        /* the priority the running workers were started with */
    mmspcl__task_fn fn;        /* the job: fn(ctx, i, tid) for i < n, on threads tid < team */
    void *ctx;
    int n, job_team, done;
    unsigned long long word;   /* job number << 32 | next item; next 0xFFFFFFFF: fields being written */
    unsigned seq;              /* jobs posted: what sleeping workers wait on */
    int sleepers, owner_waits, quit;
    /* is sharing worth it (owner only)? over the jobs of a window: the owner's estimate of
       what the jobs would have cost it alone, minus what they took; solo: until tick solo_until */
    double gain, spent;
    int window;
    unsigned long long solo_until, solo_len;
} mmspcl__pool;

static mmspcl__pool mmspcl__the_pool;
static pthread_once_t mmspcl__pool_once = PTHREAD_ONCE_INIT;

static void mmspcl__pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

/* A clock for the pool's bookkeeping (ticks, MMSPCL__TICKS_PER_S of them a second, roughly:
   the x86 TSC runs at about the nominal clock, ARM's counter says its rate). 0: no clock, and
   the pool never goes solo. */
static unsigned long long mmspcl__ticks(void) {
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
    unsigned long long t;
    __asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(t));
    return t;
#else
    return 0;
#endif
}

static double mmspcl__ticks_per_s(void) {
#if defined(__aarch64__)
    unsigned long long f;
    __asm__ __volatile__("mrs %0, cntfrq_el0" : "=r"(f));
    return f ? (double)f : 1e9;
#else
    return 2.5e9;
#endif
}

/* A forked child has the parent's memory but none of its threads: start from nothing. */
static void mmspcl__pool_after_fork(void) {
    mmspcl__pool *p = &mmspcl__the_pool;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    p->started = p->owned = p->sleepers = p->owner_waits = p->quit = 0;
}

static void mmspcl__pool_stop(void);

static void mmspcl__pool_init(void) {
    mmspcl__pool_after_fork();
    pthread_atfork(NULL, NULL, mmspcl__pool_after_fork);
    atexit(mmspcl__pool_stop);
}

/* Claims and runs items of job `gen` until none is left; returns how many it ran. */
static int mmspcl__pool_work(mmspcl__pool *p, unsigned long long gen, mmspcl__task_fn fn, void *ctx, int n, int tid) {
    int ran = 0;
    for (;;) {
        unsigned long long w = __atomic_load_n(&p->word, __ATOMIC_ACQUIRE);
        if (w >> 32 != gen || (long long)(w & 0xFFFFFFFFull) >= (long long)n) return ran;
        if (!__atomic_compare_exchange_n(&p->word, &w, w + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) continue;
        fn(ctx, (int)(w & 0xFFFFFFFFull), tid);
        ran++;
        if (__atomic_add_fetch(&p->done, 1, __ATOMIC_SEQ_CST) == n && __atomic_load_n(&p->owner_waits, __ATOMIC_SEQ_CST)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

/* A worker of a default-sized pool runs at idle priority (Linux SCHED_IDLE, policy 5 of the
   kernel's ABI): it gets a core only when nothing else wants it, so a job never takes a core
   from another process or from another job's calling thread, and the calling threads of jobs
   that share a machine get a core each. A count that was asked for (--threads N,
   mmspcl_set_threads(N), MMSPCL_NUM_THREADS, OMP_NUM_THREADS) keeps normal priority. Elsewhere
   (no SCHED_IDLE), or if the call fails, the worker keeps the priority it has. */
static void mmspcl__pool_idle_priority(pthread_t th) {
#ifdef __linux__
    struct sched_param sp;
    memset(&sp, 0, sizeof sp);
    (void)pthread_setschedparam(th, 5, &sp);
#else
    (void)th;
#endif
}

static void *mmspcl__pool_thread(void *arg) {
    mmspcl__pool *p = &mmspcl__the_pool;
    const int tid = (int)(size_t)arg;
    unsigned seen = p->start_seq[tid];
    for (;;) {
        unsigned long long w;
        mmspcl__task_fn fn;
        void *ctx;
        int k, n, team;
        for (k = 0; k < MMSPCL_SPIN && __atomic_load_n(&p->seq, __ATOMIC_ACQUIRE) == seen; k++) mmspcl__pause();
        if (__atomic_load_n(&p->seq, __ATOMIC_ACQUIRE) == seen) {
            pthread_mutex_lock(&p->mu);
            __atomic_add_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
            while (__atomic_load_n(&p->seq, __ATOMIC_SEQ_CST) == seen && !p->quit) pthread_cond_wait(&p->wake, &p->mu);
            __atomic_sub_fetch(&p->sleepers, 1, __ATOMIC_SEQ_CST);
            pthread_mutex_unlock(&p->mu);
        }
        if (__atomic_load_n(&p->quit, __ATOMIC_ACQUIRE)) return NULL;
        seen = __atomic_load_n(&p->seq, __ATOMIC_ACQUIRE);
        w = __atomic_load_n(&p->word, __ATOMIC_ACQUIRE);
        fn = __atomic_load_n(&p->fn, __ATOMIC_RELAXED);
        ctx = __atomic_load_n(&p->ctx, __ATOMIC_RELAXED);
        n = __atomic_load_n(&p->n, __ATOMIC_RELAXED);
        team = __atomic_load_n(&p->job_team, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);   /* the fields were this job's if the claim succeeds */
        if (tid < team && fn) mmspcl__pool_work(p, w >> 32, fn, ctx, n, tid);
    }
}

/* Workers told to stop and joined; the caller owns the pool. */
static void mmspcl__pool_join(mmspcl__pool *p) {
    int i, n;
    pthread_mutex_lock(&p->mu);
    __atomic_store_n(&p->quit, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    n = p->started;
    for (i = 1; i < n; i++) pthread_join(p->th[i], NULL);
    p->started = 0;
}

/* At exit: workers stopped (leak checkers see no live threads). */
static void mmspcl__pool_stop(void) {
    mmspcl__pool *p = &mmspcl__the_pool;
    if (__atomic_exchange_n(&p->owned, 1, __ATOMIC_ACQUIRE)) return;   /* exit during a job: leave them */
    mmspcl__pool_join(p);
}

/* The count changed between default and asked-for: workers of the other priority are stopped
   (an idle-priority thread may not raise its priority back without privileges); the next job
   starts new ones. Skipped while a job runs (set the count between calls, 15. Threads). */
static void mmspcl__pool_repriority(mmspcl__pool *p, int polite) {
    __atomic_store_n(&p->polite, polite, __ATOMIC_RELAXED);
    if (p->started <= 1 || p->started_polite == polite) return;
    if (__atomic_exchange_n(&p->owned, 1, __ATOMIC_ACQUIRE)) return;
    mmspcl__pool_join(p);
    __atomic_store_n(&p->quit, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&p->owned, 0, __ATOMIC_RELEASE);
}

/* Threads a call may use now (its per-thread scratch is sized for this many). */
static int mmspcl__team(void) {
    mmspcl__pool *p = &mmspcl__the_pool;
    int t;
    pthread_once(&mmspcl__pool_once, mmspcl__pool_init);
    t = __atomic_load_n(&p->team, __ATOMIC_RELAXED);
    if (t < 1) {
        t = mmspcl__cores();
        __atomic_store_n(&p->polite, !mmspcl__env_count(), __ATOMIC_RELAXED);
        __atomic_store_n(&p->team, t, __ATOMIC_RELAXED);
    }
    return t;
}

/* Solo or shared? After each shared job the owner compares what it took (t_all) with what the
   owner alone would have taken: its own time per item (t_own / own) times n. On an idle machine
   the gain is about half the work with 2 threads. When a helper does not get a core (another
   process holds it, or another job's threads), the owner ends up waiting for an item that a
   descheduled thread holds, and the jobs take longer than alone: then the pool goes solo (the
   caller runs every item) for solo_len, doubled each time sharing fails again (50 to 800 ms),
   and tries sharing again after it: sharing is kept when it saves at least 15% (2 threads on an
   idle machine save up to 50%), judged after 4, 8 and 64 jobs. Probing costs a few jobs; a solo
   job on a busy machine runs at single-thread speed. */
static int mmspcl__pool_solo(mmspcl__pool *p) {
    return p->solo_until && mmspcl__ticks() < p->solo_until;
}

static void mmspcl__pool_account(mmspcl__pool *p, int n, int own, unsigned long long t0, unsigned long long t_own,
                                 unsigned long long t_all) {
    const double tps = mmspcl__ticks_per_s();
    double alone;
    if (!t0 || own < 1 || t_own < t0 || t_all < t0) return;   /* no clock, or nothing to compare with */
    alone = (double)(t_own - t0) * n / own;
    p->gain += alone - (double)(t_all - t0);
    p->spent += alone;
    p->window++;
    if ((p->window >= 4 && p->gain < 0.0) || ((p->window == 8 || p->window >= 64) && p->gain < 0.15 * p->spent)) {
        if (p->solo_len < (unsigned long long)(0.05 * tps)) p->solo_len = (unsigned long long)(0.05 * tps);
        p->solo_until = t_all + p->solo_len;
        if (p->solo_len < (unsigned long long)(0.7 * tps)) p->solo_len *= 2;
        p->gain = p->spent = 0.0;
        p->window = 0;
    } else if (p->window >= 64) {   /* sharing pays: forget the back-off */
        p->solo_len = 0;
        p->gain = p->spent = 0.0;
        p->window = 0;
    }
}

/* fn(ctx, i, tid) for every i in [0, n), on at most `team` threads (tid < team; the caller is 0). */
static void mmspcl__parallel(int n, int team, mmspcl__task_fn fn, void *ctx) {
    mmspcl__pool *p = &mmspcl__the_pool;
    unsigned long long gen, t0, t_own;
    int i, k, own;
    if (n <= 0) return;
    if (team > mmspcl__team()) team = mmspcl__team();
    if (team > n) team = n;
    if (team <= 1 || __atomic_exchange_n(&p->owned, 1, __ATOMIC_ACQUIRE)) {
        for (i = 0; i < n; i++) fn(ctx, i, 0);
        return;
    }
    if (mmspcl__pool_solo(p)) {
        __atomic_store_n(&p->owned, 0, __ATOMIC_RELEASE);
        for (i = 0; i < n; i++) fn(ctx, i, 0);
        return;
    }
    while (p->started < team && !p->quit) {   /* workers 1 .. team-1 (slot 0 is the caller) */
        if (!p->started) {
            p->started = 1;
            p->started_polite = __atomic_load_n(&p->polite, __ATOMIC_RELAXED);
        }
        p->start_seq[p->started] = __atomic_load_n(&p->seq, __ATOMIC_RELAXED);
        if (pthread_create(&p->th[p->started], NULL, mmspcl__pool_thread, (void *)(size_t)p->started)) break;
        if (p->started_polite) mmspcl__pool_idle_priority(p->th[p->started]);
        p->started++;
    }
    if (team > p->started) team = p->started;
    if (team <= 1) {
        __atomic_store_n(&p->owned, 0, __ATOMIC_RELEASE);
        for (i = 0; i < n; i++) fn(ctx, i, 0);
        return;
    }
    t0 = mmspcl__ticks();
    gen = (__atomic_load_n(&p->word, __ATOMIC_RELAXED) >> 32) + 1;
    __atomic_store_n(&p->word, gen << 32 | 0xFFFFFFFFull, __ATOMIC_RELAXED);   /* no claims while the fields change */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&p->fn, fn, __ATOMIC_RELAXED);
    __atomic_store_n(&p->ctx, ctx, __ATOMIC_RELAXED);
    __atomic_store_n(&p->n, n, __ATOMIC_RELAXED);
    __atomic_store_n(&p->job_team, team, __ATOMIC_RELAXED);
    __atomic_store_n(&p->done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->word, gen << 32, __ATOMIC_RELEASE);
    __atomic_add_fetch(&p->seq, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&p->sleepers, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    own = mmspcl__pool_work(p, gen, fn, ctx, n, 0);
    t_own = mmspcl__ticks();
    for (k = 0; k < MMSPCL_SPIN && __atomic_load_n(&p->done, __ATOMIC_ACQUIRE) < n; k++) mmspcl__pause();
    if (__atomic_load_n(&p->done, __ATOMIC_ACQUIRE) < n) {   /* an item is still running elsewhere: sleep */
        pthread_mutex_lock(&p->mu);
        __atomic_store_n(&p->owner_waits, 1, __ATOMIC_SEQ_CST);
        while (__atomic_load_n(&p->done, __ATOMIC_SEQ_CST) < n) pthread_cond_wait(&p->done_cv, &p->mu);
        __atomic_store_n(&p->owner_waits, 0, __ATOMIC_SEQ_CST);
        pthread_mutex_unlock(&p->mu);
    }
    mmspcl__pool_account(p, n, own, t0, t_own, mmspcl__ticks());
    __atomic_store_n(&p->owned, 0, __ATOMIC_RELEASE);
}

int mmspcl_set_threads(int n) {
    mmspcl__pool *p = &mmspcl__the_pool;
    pthread_once(&mmspcl__pool_once, mmspcl__pool_init);
    mmspcl__pool_repriority(p, n < 1 && !mmspcl__env_count());
    p->solo_until = p->solo_len = 0;   /* a new count: judge sharing afresh */
    p->gain = p->spent = 0.0;
    p->window = 0;
    if (n < 1) n = mmspcl__cores();
    if (n > MMSPCL__POOL_MAX) n = MMSPCL__POOL_MAX;
    __atomic_store_n(&p->team, n, __ATOMIC_RELAXED);
#ifdef _OPENMP
    omp_set_num_threads(n);   /* mmspcl_train.h's loops are OpenMP's */
#endif
    return n;
}

int mmspcl_threads(void) { return mmspcl__team(); }

#else /* no pool: the calling thread (or OpenMP, where the build has it and no pthreads) */
static int mmspcl__team_n;

static int mmspcl__team(void) {
    if (mmspcl__team_n < 1) mmspcl__team_n = mmspcl__cores();
    return mmspcl__team_n;
}

static void mmspcl__parallel(int n, int team, mmspcl__task_fn fn, void *ctx) {
    int i;
#ifdef _OPENMP
    if (team > 1 && !omp_in_parallel()) {
        MMSPCL__PRAGMA(omp parallel for schedule(dynamic) num_threads(team))
        for (i = 0; i < n; i++) fn(ctx, i, omp_get_thread_num());
        return;
    }
#endif
    (void)team;
    for (i = 0; i < n; i++) fn(ctx, i, 0);
}

int mmspcl_set_threads(int n) {
    mmspcl__team_n = n < 1 ? mmspcl__cores() : n;
#ifdef _OPENMP
    omp_set_num_threads(mmspcl__team_n);
#endif
    return mmspcl__team_n;
}

int mmspcl_threads(void) { return mmspcl__team(); }
#endif /* MMSPCL__POOL */

/* The default thread count: MMSPCL_NUM_THREADS, else OMP_NUM_THREADS (its first number), else
   the cores this process may run on (its CPU affinity, /proc/self/status) capped by its cgroup's
   CPU quota (cgroup v2 cpu.max, v1 cpu.cfs_quota_us), else the online CPUs. */
static int mmspcl__env_threads(const char *name) {
    const char *s = getenv(name);
    long v;
    char *end;
    if (!s) return 0;
    v = strtol(s, &end, 10);
    return end != s && v >= 1 && v <= 4096 ? (int)v : 0;
}

#if !defined(MMSPCL_NO_STDIO) && defined(__linux__)
/* CPUs in a list such as "0-3,8,10-11"; 0 when unreadable */
static int mmspcl__count_cpu_list(const char *s) {
    int n = 0;
    while (*s && *s != '\n') {
        char *end;
        long a = strtol(s, &end, 10), b = a;
        if (end == s) return 0;
        s = end;
        if (*s == '-') { b = strtol(s + 1, &end, 10); if (end == s + 1) return 0; s = end; }
        if (b >= a) n += (int)(b - a + 1);
        if (*s == ',') s++;
        else break;
    }
    return n;
}

static int mmspcl__affinity_cpus(void) {
    char line[4096];
    int n = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "Cpus_allowed_list:", 18)) { n = mmspcl__count_cpu_list(line + 18 + strspn(line + 18, " \t")); break; }
    fclose(f);
    return n;
}

/* ceil(quota / period) from "QUOTA PERIOD" (v2) or two files (v1); 0 for none */
static int mmspcl__quota_cpus(void) {
    long long q = -1, per = 0;
    char buf[64];
    FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f) || sscanf(buf, "%lld %lld", &q, &per) != 2) q = -1;   /* "max 100000": none */
        fclose(f);
    } else if ((f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "r"))) {
        if (fgets(buf, sizeof buf, f)) q = strtoll(buf, NULL, 10);
        fclose(f);
        if ((f = fopen("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "r"))) {
            if (fgets(buf, sizeof buf, f)) per = strtoll(buf, NULL, 10);
            fclose(f);
        }
    }
    return q > 0 && per > 0 ? (int)((q + per - 1) / per) : 0;
}
#endif

/* The count the environment asks for, 0 if none. */
static int mmspcl__env_count(void) {
    const int n = mmspcl__env_threads("MMSPCL_NUM_THREADS");
    return n ? n : mmspcl__env_threads("OMP_NUM_THREADS");
}

static int mmspcl__cores(void) {
    int n = mmspcl__env_count();
    if (n) return n;
#if !defined(MMSPCL_NO_STDIO) && defined(__linux__)
    {
        const int q = mmspcl__quota_cpus();
        n = mmspcl__affinity_cpus();
        if (q > 0 && (n < 1 || q < n)) n = q;
    }
#endif
#if defined(MMSPCL__POOL) && defined(_SC_NPROCESSORS_ONLN)
    if (n < 1) n = (int)sysconf(_SC_NPROCESSORS_ONLN);
#endif
    return n < 1 ? 1 : n;
}

int mmspcl_default_threads(void) { return mmspcl__cores(); }

#ifdef __cplusplus
}
#endif

#endif /* MMSPCL_IMPLEMENTATION_DONE */
#endif /* MMSPCL_IMPLEMENTATION */

/*
   LICENSE
   This software is available under two licences; choose whichever you prefer.
   A) MIT License, Copyright (c) 2026 the mmspcl authors: Permission is hereby granted, free of
      charge, to any person obtaining a copy of this software and associated documentation files
      (the "Software"), to deal in the Software without restriction, including without limitation
      the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
      of the Software, and to permit persons to whom the Software is furnished to do so, subject
      to the following conditions: The above copyright notice and this permission notice shall be
      included in all copies or substantial portions of the Software. THE SOFTWARE IS PROVIDED
      "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED.
   B) Public domain (unlicense.org): anyone is free to copy, modify, publish, use, compile,
      sell, or distribute this software, for any purpose, commercial or non-commercial, and by
      any means.
*/
