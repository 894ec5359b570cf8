/* Implementation of the model parts, in reading order (inlined into mmspcl.h at release). */
#include "kernels_impl.h"
#include "bpe_impl.h"
#include "roberta_impl.h"
#include "spcl_impl.h"
#include "image_impl.h"
#include "clip_impl.h"
#include "heads_impl.h"
#include "meld_impl.h"
