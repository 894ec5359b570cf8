/* safetensors.h — reader for Hugging Face .safetensors files (tools/convert). C99, POSIX.

   Format: u64 little-endian N, then N bytes of JSON header
       { "__metadata__": {...}, "NAME": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]}, ... }
   then the data section; tensor bytes are data[b..e), row-major, little-endian.

   st_open maps the file (mmap; plain read when mmap is unavailable) and checks everything a
   reader must not trust: N <= file size - 8 and N <= 100 MB, the header is a JSON object whose
   entries have a string dtype, a shape of non-negative integers whose element count and byte
   size do not overflow, data_offsets with begin <= end <= data size, end - begin ==
   elements * element size for every dtype it knows, no two tensors overlap, no duplicate names.
   "__metadata__" is ignored. Unknown dtype strings are kept (elem_size 0, size not checked) so
   the caller can refuse them only when it needs the tensor.

   API
     int  st_open(const char *path, st_file *f, char *err, size_t errlen);      0 ok, -1 error
     int  st_open_memory(const void *buf, size_t size, const char *label, st_file *f,
                         char *err, size_t errlen);   buf must outlive f (not copied)
     void st_close(st_file *f);
     const st_tensor *st_find(const st_file *f, const char *name);
     int  st_dtype_size(const char *dtype);            bytes per element, 0 when unknown
   Messages start with the file name and name the tensor and byte offset ("model.safetensors:
   tensor 'x': data_offsets [10, 20) end past the data section (16 bytes)"). */
#ifndef MMSPCL_SAFETENSORS_H
#define MMSPCL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

typedef struct st_tensor {
    char *name;                    /* owned, NUL-terminated */
    char dtype[16];                /* as written in the header: "F32", "BF16", "I64", ... */
    int elem_size;                 /* bytes per element; 0 for an unknown dtype */
    int ndim;                      /* 0 (scalar) .. ST_MAX_DIMS */
    int64_t shape[ST_MAX_DIMS];
    uint64_t nelem;
    uint64_t begin, end;           /* data_offsets, relative to the data section */
    const unsigned char *data;     /* points into the file's bytes */
    uint64_t nbytes;               /* end - begin */
} st_tensor;

typedef struct st_file {
    char *path;                    /* owned copy of the label / path */
    const unsigned char *bytes;    /* the whole file */
    size_t size;
    int storage;                   /* 0 caller's memory, 1 malloc'd, 2 mmap */
    uint64_t header_len;
    const unsigned char *data;     /* bytes + 8 + header_len */
    uint64_t data_size;
    st_tensor *tensors;            /* header order */
    size_t n;
} st_file;

int st_open(const char *path, st_file *f, char *err, size_t errlen);
int st_open_memory(const void *buf, size_t size, const char *label, st_file *f, char *err, size_t errlen);
void st_close(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);
int st_dtype_size(const char *dtype);

#endif
