/* The one translation unit that holds the library's code (build/libmmspcl.a): inference and
   training. */
#define MMSPCL_IMPLEMENTATION
#define MMSPCL_TRAIN_IMPLEMENTATION
#include "mmspcl.h"
#include "mmspcl_train.h"
