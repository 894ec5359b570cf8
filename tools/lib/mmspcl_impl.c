/* The one translation unit that holds the library's code (build/libmmspcl.a). */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
