/* The one translation unit that holds the library's code (build/libmmspcl.a): inference and
   training. _DEFAULT_SOURCE: madvise, with which a loaded model hands back the file pages of the
   weights it keeps packed (mmspcl.h, 8.). */
#define _DEFAULT_SOURCE
#define MMSPCL_IMPLEMENTATION
#define MMSPCL_TRAIN_IMPLEMENTATION
#include "mmspcl.h"
#include "mmspcl_train.h"
