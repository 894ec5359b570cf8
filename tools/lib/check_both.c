/* Compiled by `make check-headers` only: both implementations in one translation unit. */
#define MMSPCL_IMPLEMENTATION
#define MMSPCL_TRAIN_IMPLEMENTATION
#include "mmspcl.h"
#include "mmspcl_train.h"
