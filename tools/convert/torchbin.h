/* torchbin.h — reader for PyTorch checkpoints written by torch.save (torch >= 1.6 ZIP format),
   e.g. a Hugging Face pytorch_model.bin. Part of the mmspcl converter (tools/convert/).

   Self-contained C99 (also C++11), libc only. It never executes anything from the file: the
   pickle inside the checkpoint is interpreted by a small stack machine that knows only the
   opcodes torch.save emits and only the PyTorch rebuild functions on an allow-list; every other
   GLOBAL is refused by name ("refusing pickle GLOBAL os.system").

   Usage:
       tb_file f; char err[256];
       if (tb_read("pytorch_model.bin", &f, err, sizeof err) != 0) { puts(err); return 1; }
       for (int i = 0; i < f.n; i++) use(f.tensors[i].name, f.tensors[i].dtype, ...);
       tb_free(&f);

   What comes out: every tensor reachable from the top-level dict (a state dict, an OrderedDict or
   a plain dict). Nested dicts are flattened with '.' ({"model": {"w": t}} -> "model.w"; integer
   keys are written in decimal); values that are neither tensors nor dicts (ints, strings, lists,
   None) are skipped. Tensors keep the file's order. Each tensor is a contiguous row-major copy
   (views, transposes, storage offsets, shared storages and expanded strides are resolved),
   little-endian, owned by the tb_file. `data` is never NULL (1-byte allocation when nbytes==0).
   A 0-dim tensor (scalar) has ndim 0 and one element.

   What is refused, with a message in err ("<file>: ..."): legacy (torch < 1.6) files, compressed
   or encrypted ZIP entries, multi-disk archives, TorchScript archives, big-endian storages,
   unknown opcodes, GLOBALs outside the allow-list, more than TB_MAX_DIMS dimensions, anything
   outside its storage, and files over the limits below (all overridable with -D at build time):
     TB_MAX_PICKLE_BYTES  size of data.pkl                       (64 MiB)
     TB_MAX_STACK         pickle stack entries                   (262144)
     TB_MAX_DEPTH         MARK nesting and container nesting     (1000)
     TB_MAX_MEMO          pickle memo index                      (4194304)
     TB_MAX_OBJECTS       pickle objects created                 (8388608)
     TB_MAX_STRING        one pickle string                      (1 MiB)
     TB_MAX_TENSORS       tensors in the output                  (262144)
     TB_MAX_ENTRIES       ZIP entries                            (1048576)
     TB_MAX_CD_BYTES      ZIP central directory                  (256 MiB)
     TB_MAX_DICT_NEST     nested dicts flattened                 (64)
     TB_MAX_TOTAL_BYTES   sum of the output tensors' nbytes      (128 GiB, and SIZE_MAX)
     TB_EXPAND_FACTOR     output may be at most this many times the file size plus 64 MiB (16);
                          bounds what stride-0 (expanded) tensors can blow up to.

   Build: link tools/convert/torchbin.c, or #include it into one translation unit; defining
   TB_API as `static` before including makes every public function static (the test does this).
   Allocation goes through TB_MALLOC / TB_REALLOC / TB_FREE (default: malloc/realloc/free). */
#ifndef TORCHBIN_H
#define TORCHBIN_H

#include <stddef.h>
#include <stdint.h>

#ifndef TB_API
#define TB_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define TB_MAX_DIMS 8

typedef enum {
    TB_F32, TB_F16, TB_BF16, TB_F64, TB_I64, TB_I32, TB_I16, TB_I8, TB_U8, TB_BOOL
} tb_dtype;

typedef struct {
    char *name;                  /* NUL-terminated, owned */
    tb_dtype dtype;
    int ndim;                    /* 0..TB_MAX_DIMS */
    int64_t shape[TB_MAX_DIMS];  /* shape[ndim..] are 0 */
    void *data;                  /* contiguous row-major little-endian copy, owned, never NULL */
    size_t nbytes;               /* product(shape) * tb_dtype_size(dtype) */
} tb_tensor;

typedef struct {
    tb_tensor *tensors;
    int n;
} tb_file;

/* Read a checkpoint from a file / from memory. 0 on success; -1 on error with a message in
   err (if err is non-NULL and errlen > 0) and *out left empty ({NULL, 0}). label names the
   buffer in messages (NULL: "<memory>"). The memory buffer is not referenced after return. */
TB_API int  tb_read(const char *path, tb_file *out, char *err, size_t errlen);
TB_API int  tb_read_memory(const unsigned char *buf, size_t size, const char *label,
                           tb_file *out, char *err, size_t errlen);
/* Free everything tb_read* allocated; f is reset to {NULL, 0}. Safe on an empty tb_file. */
TB_API void tb_free(tb_file *f);
/* Bytes per element (bool: 1) and a short name ("f32", "f16", "bf16", "f64", "i64", "i32",
   "i16", "i8", "u8", "bool"). */
TB_API size_t tb_dtype_size(tb_dtype t);
TB_API const char *tb_dtype_name(tb_dtype t);

#ifdef __cplusplus
}
#endif

#endif /* TORCHBIN_H */
